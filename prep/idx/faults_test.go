package idx

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A gzip stream cut anywhere (in the data, in the trailer) or with a bad
// CRC-32 or length is an error naming the file, even when every byte the
// IDX header promises has arrived.
func TestDamagedGzip(t *testing.T) {
	zipped, err := os.ReadFile(filepath.Join("testdata", "images.idx.gz"))
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		b := append([]byte(nil), zipped...)
		b[len(b)+i] ^= 0x01
		return b
	}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"cut in the data", zipped[:len(zipped)-12], "truncated gzip stream"},
		{"no trailer", zipped[:len(zipped)-8], "truncated gzip stream"},
		{"no length", zipped[:len(zipped)-4], "truncated gzip stream"},
		{"last byte cut", zipped[:len(zipped)-1], "truncated gzip stream"},
		{"header only", zipped[:5], "truncated gzip stream"},
		{"bad CRC", flip(-8), "corrupt gzip stream"},
		{"bad length", flip(-1), "corrupt gzip stream"},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, "images.idx.gz")
			if err := os.WriteFile(p, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, _, _, _, err := ReadImages(p)
			if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v; want one naming %s and saying %q", err, p, c.want)
			}
		})
	}
}

// Files with no images or no labels are refused, naming the file.
func TestEmptyIDX(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, c := range []struct {
		name string
		b    []byte
		want string
	}{
		{"0 images", []byte{0, 0, 8, 3, 0, 0, 0, 0, 0, 0, 0, 28, 0, 0, 0, 28}, "no images"},
		{"0 rows", gz([]byte{0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 28}), "empty images"},
		{"0 columns", []byte{0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 0}, "empty images"},
	} {
		p := write("images.idx", c.b)
		if _, _, _, _, err := ReadImages(p); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v; want one naming %s and saying %q", c.name, err, p, c.want)
		}
	}
	p := write("labels.idx.gz", gz([]byte{0, 0, 8, 1, 0, 0, 0, 0}))
	if _, err := ReadLabels(p); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "no labels") {
		t.Errorf("0 labels: error %v; want one naming %s and saying 'no labels'", err, p)
	}
}

// ReadImagesAndLabels reads a matching pair; a count mismatch names both
// files and what each holds.
func TestReadImagesAndLabels(t *testing.T) {
	img := filepath.Join("testdata", "images.idx.gz") // 3 images of 2 x 2
	lab := filepath.Join("testdata", "labels.idx")    // 3 labels 7 2 1
	n, r, c, pix, labels, err := ReadImagesAndLabels(img, lab)
	if err != nil || n != 3 || r != 2 || c != 2 || len(pix) != 12 || string(labels) != "\x07\x02\x01" {
		t.Fatalf("%d %d %d %d %v %v", n, r, c, len(pix), labels, err)
	}
	dir := t.TempDir()
	two := filepath.Join(dir, "two-labels.idx")
	if err := os.WriteFile(two, []byte{0, 0, 8, 1, 0, 0, 0, 2, 7, 2}, 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, _, _, _, err = ReadImagesAndLabels(img, two)
	if err == nil {
		t.Fatal("3 images with 2 labels accepted")
	}
	for _, want := range []string{img, "3 images", two, "2 labels"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
