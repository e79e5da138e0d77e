package dataset

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzRead: any bytes given as an Arrow file either fail to read with an
// error or give a table whose columns all have its number of rows and
// their declared width of values: no panic, no inconsistent table.
func FuzzRead(f *testing.F) {
	dir := f.TempDir()
	seed := filepath.Join(dir, "seed.arrow")
	cols := []Column{
		{Name: "label", Int64: []int64{3, 1, 4}},
		{Name: "x", Width: 2, Float32: []float32{1, 2, 3, 4, 5, 6}},
		{Name: "b", Width: 3, Uint8: []uint8{1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{Name: "s", String: []string{"a", "", "c"}},
	}
	if err := Write(seed, cols, map[string]string{"k": "v"}); err != nil {
		f.Fatal(err)
	}
	b, err := os.ReadFile(seed)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Add([]byte("ARROW1"))
	path := filepath.Join(f.TempDir(), "f.arrow") // one file, rewritten each time: a temporary folder per input costs more than the read
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		tab, err := Read(path)
		if err != nil {
			return
		}
		for _, c := range tab.Columns {
			if c.Rows() != tab.Rows {
				t.Fatalf("column %q has %d rows, the table %d", c.Name, c.Rows(), tab.Rows)
			}
		}
	})
}
