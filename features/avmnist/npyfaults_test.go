package avmnist

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/m2mix/m2mix/prep/npy"
)

// npyFolder writes a MultiBench-style avmnist folder with ntr train and
// nte test rows: float64 train images, float32 test images.
func npyFolder(t *testing.T, ntr, nte int) string {
	t.Helper()
	dir := t.TempDir()
	for _, sp := range []struct {
		name string
		n    int
	}{{"train", ntr}, {"test", nte}} {
		img := make([]float64, sp.n*ImageSize)
		for i := range img {
			img[i] = float64(i%255) / 255
		}
		var err error
		if sp.name == "train" {
			err = npy.WriteFloat64(filepath.Join(dir, "image", "train_data.npy"), []int{sp.n, ImageSize}, img)
		} else {
			f := make([]float32, len(img))
			for i, v := range img {
				f[i] = float32(v)
			}
			err = npy.WriteFloat32(filepath.Join(dir, "image", "test_data.npy"), []int{sp.n, 28, 28}, f)
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := npy.WriteUint8(filepath.Join(dir, "audio", sp.name+"_data.npy"), []int{sp.n, 112, 112}, make([]uint8, sp.n*AudioSize)); err != nil {
			t.Fatal(err)
		}
		lab := make([]int64, sp.n)
		for i := range lab {
			lab[i] = int64(i % 10)
		}
		if err := npy.WriteInt64(filepath.Join(dir, sp.name+"_labels.npy"), []int{sp.n}, lab); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// prepNPYErr runs PrepNPY, which must fail with every fragment in its
// message and leave no dataset behind.
func prepNPYErr(t *testing.T, npyDir string, fragments ...string) {
	t.Helper()
	data := t.TempDir()
	_, _, _, err := PrepNPY(data, npyDir)
	if err == nil {
		t.Fatal("PrepNPY accepted faulty .npy files")
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not mention %q", err, f)
		}
	}
	if _, err := os.Stat(Dir(data)); !os.IsNotExist(err) {
		t.Errorf("%s exists despite the error", Dir(data))
	}
}

// NaN or Inf in the imported images is an error naming the file, the row
// and the value, in float64 and in float32 files.
func TestImportNPYRefusesNonFiniteImages(t *testing.T) {
	cases := []struct {
		name, split string
		row, pixel  int
		v           float64
		want        string
	}{
		{"NaN in float64", "train", 13, 400, math.NaN(), "NaN"},
		{"+Inf in float64", "train", 0, 0, math.Inf(1), "+Inf"},
		{"-Inf in float32", "test", 4, 783, math.Inf(-1), "-Inf"},
		{"NaN in float32", "test", 2, 5, math.NaN(), "NaN"},
		{"float64 beyond float32", "train", 7, 9, 1e39, "1e+39"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := npyFolder(t, 24, 5)
			path := filepath.Join(dir, "image", c.split+"_data.npy")
			a, err := npy.Read(path)
			if err != nil {
				t.Fatal(err)
			}
			i := c.row*ImageSize + c.pixel
			if a.Kind == npy.Float64 {
				a.Float64[i] = c.v
			} else {
				a.Float32[i] = float32(c.v)
			}
			if err := npy.Write(path, a); err != nil {
				t.Fatal(err)
			}
			prepNPYErr(t, dir, path+": image "+strconv.Itoa(c.row)+", pixel "+strconv.Itoa(c.pixel)+" is "+c.want, "not a finite")
		})
	}
}

// Row-count mismatches name the file that disagrees and what the labels
// file says.
func TestImportNPYMismatchNamesBothFiles(t *testing.T) {
	dir := npyFolder(t, 24, 5)
	labels := filepath.Join(dir, "test_labels.npy")
	if err := npy.WriteInt64(labels, []int{6}, make([]int64, 6)); err != nil {
		t.Fatal(err)
	}
	prepNPYErr(t, dir, filepath.Join(dir, "image", "test_data.npy")+": shape [5 28 28]", labels+" has 6 labels")

	dir = npyFolder(t, 24, 5)
	audio := filepath.Join(dir, "audio", "train_data.npy")
	if err := npy.WriteUint8(audio, []int{23, 112, 112}, make([]uint8, 23*AudioSize)); err != nil {
		t.Fatal(err)
	}
	prepNPYErr(t, dir, audio+": shape [23 112 112]", filepath.Join(dir, "train_labels.npy")+" has 24 labels")

	dir = npyFolder(t, 24, 5)
	image := filepath.Join(dir, "image", "train_data.npy")
	if err := npy.WriteFloat32(image, []int{24, 783}, make([]float32, 24*783)); err != nil {
		t.Fatal(err)
	}
	prepNPYErr(t, dir, image+": shape [24 783]", "784 values")
}

// Empty files, and a train split too small to leave a validation row, are
// refused before any dataset is written.
func TestImportNPYRefusesEmpty(t *testing.T) {
	dir := npyFolder(t, 24, 0)
	prepNPYErr(t, dir, filepath.Join(dir, "test_labels.npy"), "no rows")

	dir = npyFolder(t, 11, 5)
	prepNPYErr(t, dir, filepath.Join(dir, "train_labels.npy"), "11 rows", "validation")

	if _, _, _, err := PrepNPY(t.TempDir(), npyFolder(t, 12, 1)); err != nil {
		t.Errorf("12 train rows (1 validation row), 1 test row: %v", err)
	}
}
