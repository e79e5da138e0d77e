package mimic

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An im.pk whose arrays have 0 rows decodes (numpy writes such a file
// happily) but is refused: a 0-row dataset is never a result. The error
// names the file and shows the shape read.
func TestReadPickleRefusesNoRows(t *testing.T) {
	path := filepath.Join("testdata", "p4_empty.pk") // numpy's own 0-row arrays
	a, err := ReadPickle(path)
	if err == nil {
		t.Fatalf("0-row im.pk accepted (N = %d)", a.N)
	}
	for _, want := range []string{path, "no rows", `"ep_tdata"`, "(0, 24, 12)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// Bytes after the STOP opcode are not part of any pickle numpy writes: a
// file with them is damaged (two files run together, a bad copy) and is
// refused rather than half read.
func TestReadPickleRefusesTrailingBytes(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "p4_f64.pk"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "im.pk")
	if err := os.WriteFile(path, append(b, b[:40]...), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = ReadPickle(path)
	if err == nil {
		t.Fatal("im.pk with 40 trailing bytes accepted")
	}
	for _, want := range []string{path, "40 bytes after the STOP opcode"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
