package export

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/m2mix/m2mix/dataset"
	"github.com/m2mix/m2mix/features/avmnist"
	featmimic "github.com/m2mix/m2mix/features/mimic"
	"github.com/m2mix/m2mix/prep/mimic/mimictest"
	"github.com/m2mix/m2mix/prep/npy"
)

// writeAVMNIST prepares a small seeded AV-MNIST folder in data/avmnist with
// the preparation's own writer: 36 generator training rows (33 train, 3
// validation) and 7 test rows.
func writeAVMNIST(t *testing.T, data string) {
	t.Helper()
	r := rand.New(rand.NewPCG(19, 1))
	split := func(n int) *avmnist.Split {
		s := &avmnist.Split{Label: make([]int64, n), Image: make([]float32, n*imageSize), Audio: make([]uint8, n*audioSide*audioSide),
			MNISTIndex: make([]int64, n), FSDDFile: make([]string, n), NoiseFile: make([]string, n)}
		for i := range s.Label {
			s.Label[i], s.MNISTIndex[i] = int64(r.IntN(10)), int64(i)
		}
		for i := range s.Image {
			s.Image[i] = float32(r.NormFloat64() * 100)
		}
		for i := range s.Audio {
			s.Audio[i] = uint8(r.IntN(256))
		}
		return s
	}
	if _, err := avmnist.WriteDatasets(avmnist.Dir(data), split(36), split(7), map[string]string{"source": "test"}, nil, nil); err != nil {
		t.Fatal(err)
	}
}

// writeMIMIC prepares a synthetic MIMIC-III folder in data/mimic.
func writeMIMIC(t *testing.T, data string) {
	t.Helper()
	if _, err := featmimic.Prepare(mimictest.Synthetic(150, 4), filepath.Join(data, "mimic"), featmimic.Source{Kind: "pk", SHA256: "synthetic"}); err != nil {
		t.Fatal(err)
	}
}

// arrowSplits reads a dataset folder's columns: split -> column -> values
// as float32 (labels and bytes converted exactly), row-major.
func arrowSplits(t *testing.T, dir string, columns ...string) map[string]map[string][]float32 {
	t.Helper()
	out := map[string]map[string][]float32{}
	for _, split := range []string{"train", "validation", "test"} {
		tb, err := dataset.Read(filepath.Join(dir, split+".arrow"))
		if err != nil {
			t.Fatal(err)
		}
		out[split] = map[string][]float32{}
		for _, name := range columns {
			c, err := tb.Column(name)
			if err != nil {
				t.Fatal(err)
			}
			var v []float32
			switch {
			case c.Float32 != nil:
				v = c.Float32
			case c.Uint8 != nil:
				for _, x := range c.Uint8 {
					v = append(v, float32(x))
				}
			case c.Int64 != nil:
				for _, x := range c.Int64 {
					v = append(v, float32(x))
				}
			}
			out[split][name] = v
		}
	}
	return out
}

func readNPY(t *testing.T, path string, kind npy.Kind, shape ...int) *npy.Array {
	t.Helper()
	a, err := npy.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if a.Kind != kind || !slices.Equal(a.Shape, shape) {
		t.Fatalf("%s: %v %v, want %v %v", path, a.Kind, a.Shape, kind, shape)
	}
	return a
}

// TestNPYAVMNIST: the export holds the Arrow files' values in MultiBench's
// layout (train then validation rows in train_data), its manifest lists
// every file's sha256, and `prep avmnist --from npy`'s importer reads it
// back as the same splits.
func TestNPYAVMNIST(t *testing.T) {
	data := t.TempDir()
	writeAVMNIST(t, data)
	out := filepath.Join(t.TempDir(), "npy")
	var log bytes.Buffer
	res, err := NPY(NPYOptions{Data: data, Dataset: "avmnist", Out: out, Progress: &log})
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows["train"] != 33 || res.Rows["validation"] != 3 || res.Rows["test"] != 7 || len(res.Files) != 6 {
		t.Fatalf("result %+v", res)
	}
	if !strings.Contains(log.String(), "export-npy avmnist") {
		t.Errorf("no progress lines: %q", log.String())
	}
	tr, _ := dataset.Read(filepath.Join(avmnist.Dir(data), "train.arrow"))
	va, _ := dataset.Read(filepath.Join(avmnist.Dir(data), "validation.arrow"))
	te, _ := dataset.Read(filepath.Join(avmnist.Dir(data), "test.arrow"))
	col := func(tb *dataset.Table, name string) *dataset.Column {
		c, err := tb.Column(name)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	img := readNPY(t, filepath.Join(out, "image/train_data.npy"), npy.Float32, 36, imageSize)
	aud := readNPY(t, filepath.Join(out, "audio/train_data.npy"), npy.Uint8, 36, audioSide, audioSide)
	lab := readNPY(t, filepath.Join(out, "train_labels.npy"), npy.Int64, 36)
	if !slices.Equal(img.Float32, slices.Concat(col(tr, "image").Float32, col(va, "image").Float32)) ||
		!slices.Equal(aud.Uint8, slices.Concat(col(tr, "audio").Uint8, col(va, "audio").Uint8)) ||
		!slices.Equal(lab.Int64, slices.Concat(col(tr, "label").Int64, col(va, "label").Int64)) {
		t.Error("train_data is not the train rows then the validation rows")
	}
	img = readNPY(t, filepath.Join(out, "image/test_data.npy"), npy.Float32, 7, imageSize)
	aud = readNPY(t, filepath.Join(out, "audio/test_data.npy"), npy.Uint8, 7, audioSide, audioSide)
	lab = readNPY(t, filepath.Join(out, "test_labels.npy"), npy.Int64, 7)
	if !slices.Equal(img.Float32, col(te, "image").Float32) || !slices.Equal(aud.Uint8, col(te, "audio").Uint8) || !slices.Equal(lab.Int64, col(te, "label").Int64) {
		t.Error("test files are not the test rows")
	}

	// The importer of MultiBench's files takes the export back to our
	// splits: its validation is the last 1/12 of train_data, as ours.
	train, test, _, err := avmnist.ImportNPY(out)
	if err != nil {
		t.Fatal(err)
	}
	if n := train.Rows(); n-avmnist.ValidationRows(n) != 33 || !slices.Equal(train.Image, slices.Concat(col(tr, "image").Float32, col(va, "image").Float32)) ||
		!slices.Equal(test.Audio, col(te, "audio").Uint8) {
		t.Error("prep's importer does not read the export back as our splits")
	}

	// A second export gives the same bytes.
	out2 := filepath.Join(t.TempDir(), "npy")
	if _, err := NPY(NPYOptions{Data: data, Dataset: "avmnist", Out: out2, Progress: &log}); err != nil {
		t.Fatal(err)
	}
	for f := range res.Files {
		a, _ := os.ReadFile(filepath.Join(out, f))
		b, _ := os.ReadFile(filepath.Join(out2, f))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs on a second export", f)
		}
	}
	for _, f := range []string{NPYManifest} {
		a, _ := os.ReadFile(filepath.Join(out, f))
		b, _ := os.ReadFile(filepath.Join(out2, f))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs on a second export", f)
		}
	}
}

// TestNPYMIMIC: one file per split and input, the Arrow values with the
// time series as (N, 24, 12).
func TestNPYMIMIC(t *testing.T) {
	data := t.TempDir()
	writeMIMIC(t, data)
	out := t.TempDir()
	res, err := NPY(NPYOptions{Data: data, Dataset: "mimic", Out: out, Progress: &bytes.Buffer{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, split := range []string{"train", "validation", "test"} {
		tb, err := dataset.Read(filepath.Join(data, "mimic", split+".arrow"))
		if err != nil {
			t.Fatal(err)
		}
		n := tb.Rows
		if res.Rows[split] != n || n == 0 {
			t.Fatalf("%s: %d rows, Arrow %d", split, res.Rows[split], n)
		}
		st, _ := tb.Column("static")
		ts, _ := tb.Column("timeseries")
		lb, _ := tb.Column("label")
		if !slices.Equal(readNPY(t, filepath.Join(out, split+"_static.npy"), npy.Float32, n, 5).Float32, st.Float32) ||
			!slices.Equal(readNPY(t, filepath.Join(out, split+"_timeseries.npy"), npy.Float32, n, 24, 12).Float32, ts.Float32) ||
			!slices.Equal(readNPY(t, filepath.Join(out, split+"_labels.npy"), npy.Int64, n).Int64, lb.Int64) {
			t.Errorf("%s: the .npy files are not the Arrow columns", split)
		}
	}
}

// TestNPYRefuses: a dataset file that is not its manifest's, a dataset
// that was never prepared, and a write that fails midway, which leaves no
// manifest (the earlier set's is gone), so readers refuse the folder.
func TestNPYRefuses(t *testing.T) {
	data := t.TempDir()
	writeAVMNIST(t, data)
	out := t.TempDir()
	if _, err := NPY(NPYOptions{Data: data, Dataset: "avmnist", Out: out, Progress: &bytes.Buffer{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := NPY(NPYOptions{Data: t.TempDir(), Dataset: "avmnist", Out: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "m2mix prep avmnist") {
		t.Errorf("an unprepared dataset: %v", err)
	}
	if _, err := NPY(NPYOptions{Data: data, Dataset: "mnist", Out: t.TempDir()}); err == nil || !strings.Contains(err.Error(), `"mnist"`) {
		t.Errorf("an unknown dataset: %v", err)
	}

	// The audio folder is a file: the first split's audio cannot be written.
	os.RemoveAll(filepath.Join(out, "audio"))
	if err := os.WriteFile(filepath.Join(out, "audio"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NPY(NPYOptions{Data: data, Dataset: "avmnist", Out: out, Progress: &bytes.Buffer{}}); err == nil {
		t.Fatal("the export did not fail")
	}
	if _, err := os.Stat(filepath.Join(out, NPYManifest)); !os.IsNotExist(err) {
		t.Errorf("a failed export left %s (%v)", NPYManifest, err)
	}

	test := filepath.Join(avmnist.Dir(data), "test.arrow")
	b, _ := os.ReadFile(test)
	b[len(b)/2] ^= 1
	os.WriteFile(test, b, 0o644)
	_, err := NPY(NPYOptions{Data: data, Dataset: "avmnist", Out: t.TempDir(), Progress: &bytes.Buffer{}})
	if err == nil || !strings.Contains(err.Error(), "test.arrow has sha256") || !strings.Contains(err.Error(), "manifest.json") {
		t.Errorf("a changed dataset file: %v", err)
	}
}

// runDump runs testdata/dump_dataset.py (examples/torch_dataset.py) on root.
func runDump(t *testing.T, kind, root, out string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	examples, _ := filepath.Abs(filepath.Join("..", "examples"))
	cmd := exec.CommandContext(ctx, cpython, filepath.Join("testdata", "dump_dataset.py"), examples, kind, root, out)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dump_dataset.py %s %s: %v\n%s", kind, root, err, b)
	}
	return string(b)
}

// TestTorchDatasetFromNPY: examples/torch_dataset.py, given export-npy's
// folder, yields every row of every split, shaped as the reference's data
// modules give them, with the values of the Arrow files (read here in Go).
// Given the Arrow folder, it reads the same where pyarrow is installed,
// and otherwise refuses, pointing at export-npy. It refuses an export whose
// file does not match its manifest, or that has no manifest.
func TestTorchDatasetFromNPY(t *testing.T) {
	requirePython(t, "torch", "numpy")
	data := t.TempDir()
	writeAVMNIST(t, data)
	writeMIMIC(t, data)
	_, pyErr := exec.Command(cpython, "-c", "import pyarrow").CombinedOutput()
	hasPyarrow := pyErr == nil
	for _, c := range []struct {
		kind   string
		fields map[string]string // dumped field -> Arrow column
	}{
		{"avmnist", map[string]string{"image": "image", "audio": "audio", "label": "label"}},
		{"mimic", map[string]string{"static": "static", "timeseries": "timeseries", "label": "label"}},
	} {
		t.Run(c.kind, func(t *testing.T) {
			npyDir := filepath.Join(t.TempDir(), c.kind)
			if _, err := NPY(NPYOptions{Data: data, Dataset: c.kind, Out: npyDir, Progress: &bytes.Buffer{}}); err != nil {
				t.Fatal(err)
			}
			var cols []string
			for _, col := range c.fields {
				cols = append(cols, col)
			}
			want := arrowSplits(t, filepath.Join(data, c.kind), cols...)
			compare := func(from, dump string) {
				for split, byCol := range want {
					for field, col := range c.fields {
						var got []float32
						a, err := npy.Read(filepath.Join(dump, split+"_"+field+".npy"))
						if err != nil {
							t.Fatal(err)
						}
						if a.Kind == npy.Int64 {
							for _, x := range a.Int64 {
								got = append(got, float32(x))
							}
						} else {
							got = a.Float32
						}
						if !slices.Equal(got, byCol[col]) {
							t.Errorf("from %s: %s %s: %d values differ from the Arrow column's %d", from, split, field, len(got), len(byCol[col]))
						}
					}
				}
			}
			dump := t.TempDir()
			runDump(t, c.kind, npyDir, dump)
			compare("the .npy export", dump)

			arrowDump := t.TempDir()
			if hasPyarrow {
				runDump(t, c.kind, filepath.Join(data, c.kind), arrowDump)
				compare("the Arrow files", arrowDump)
			} else if msg := runDump(t, c.kind, filepath.Join(data, c.kind), "--error"); !strings.Contains(msg, "pyarrow is not installed") || !strings.Contains(msg, "export-npy") {
				t.Errorf("without pyarrow, the Arrow folder gave %q", msg)
			}

			// A changed file, then no manifest at all.
			labels := filepath.Join(npyDir, "test_labels.npy")
			b, _ := os.ReadFile(labels)
			b[len(b)-1] ^= 1
			os.WriteFile(labels, b, 0o644)
			if msg := runDump(t, c.kind, npyDir, "--error"); !strings.Contains(msg, "test_labels.npy has sha256") {
				t.Errorf("a changed file gave %q", msg)
			}
			os.Remove(filepath.Join(npyDir, NPYManifest))
			if msg := runDump(t, c.kind, npyDir, "--error"); !strings.Contains(msg, "no manifest.json") {
				t.Errorf("a folder without its manifest gave %q", msg)
			}
		})
	}
}
