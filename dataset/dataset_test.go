package dataset

import (
	"path/filepath"
	"reflect"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	n := 5000 // more than one record batch
	img := make([]float32, n*3)
	aud := make([]uint8, n*2)
	lab := make([]int64, n)
	src := make([]string, n)
	for i := 0; i < n; i++ {
		img[3*i], img[3*i+1], img[3*i+2] = float32(i), -float32(i)/7, 1.5
		aud[2*i], aud[2*i+1] = uint8(i), uint8(i*3)
		lab[i] = int64(i % 10)
		src[i] = filepath.Join("x", string(rune('a'+i%26)))
	}
	cols := []Column{
		{Name: "label", Int64: lab},
		{Name: "image", Width: 3, Float32: img},
		{Name: "audio", Width: 2, Uint8: aud},
		{Name: "source", String: src},
	}
	path := filepath.Join(t.TempDir(), "d.arrow")
	meta := map[string]string{"seed": "42", "a": "b"}
	if err := Write(path, cols, meta); err != nil {
		t.Fatal(err)
	}
	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Rows != n || !reflect.DeepEqual(got.Meta, meta) {
		t.Fatalf("rows %d meta %v", got.Rows, got.Meta)
	}
	if !reflect.DeepEqual(got.Columns, cols) {
		t.Fatal("columns differ after round trip")
	}
	if _, err := got.Column("nope"); err == nil {
		t.Fatal("missing column: no error")
	}
}

func TestWriteRejectsRagged(t *testing.T) {
	cols := []Column{{Name: "a", Int64: []int64{1, 2}}, {Name: "b", Int64: []int64{1}}}
	if err := Write(filepath.Join(t.TempDir(), "d.arrow"), cols, nil); err == nil {
		t.Fatal("ragged columns accepted")
	}
}
