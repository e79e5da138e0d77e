package npy

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fixture values follow testdata/make_fixtures.py.
func fvals(n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = float64(i)*1.5 - 3
	}
	return out
}

func TestReadNumpyFixtures(t *testing.T) {
	cases := []struct {
		file  string
		kind  Kind
		shape []int
	}{
		{"le_f4.npy", Float32, []int{2, 3}},
		{"le_f8.npy", Float64, []int{4}},
		{"na_u1.npy", Uint8, []int{2, 2, 3}},
		{"le_i8.npy", Int64, []int{5}},
		{"be_f8.npy", Float64, []int{3}},
		{"be_i8.npy", Int64, []int{2, 2}},
		{"v2_f8.npy", Float64, []int{3, 2}},
		{"scalar_f8.npy", Float64, []int{}},
		{"empty_f4.npy", Float32, []int{0, 3}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			a, err := Read(filepath.Join("testdata", c.file))
			if err != nil {
				t.Fatal(err)
			}
			if a.Kind != c.kind || !reflect.DeepEqual(a.Shape, c.shape) {
				t.Fatalf("got %v %v, want %v %v", a.Kind, a.Shape, c.kind, c.shape)
			}
			n := a.Len()
			switch {
			case c.file == "scalar_f8.npy":
				if !reflect.DeepEqual(a.Float64, []float64{2.5}) {
					t.Fatalf("scalar: %v", a.Float64)
				}
			case c.kind == Uint8:
				for i, v := range a.Uint8 {
					if int(v) != i*7%256 {
						t.Fatalf("elem %d = %d", i, v)
					}
				}
			case c.kind == Int64:
				for i, v := range a.Int64 {
					if v != int64(i-3) {
						t.Fatalf("elem %d = %d", i, v)
					}
				}
			default:
				if got, want := a.AsFloat64(), fvals(n); !reflect.DeepEqual(got, want) && n > 0 {
					t.Fatalf("got %v want %v", got, want)
				}
			}
		})
	}
}

func TestRoundTripMatchesNumpyBytes(t *testing.T) {
	// Our encoder must produce the very bytes numpy wrote (same header
	// padding), so files we hand to Python tools look native.
	cases := []struct {
		file string
		a    *Array
	}{
		{"le_f8.npy", &Array{Kind: Float64, Shape: []int{4}, Float64: fvals(4)}},
		{"le_i8.npy", &Array{Kind: Int64, Shape: []int{5}, Int64: []int64{-3, -2, -1, 0, 1}}},
		{"na_u1.npy", &Array{Kind: Uint8, Shape: []int{2, 2, 3}, Uint8: []uint8{0, 7, 14, 21, 28, 35, 42, 49, 56, 63, 70, 77}}},
	}
	for _, c := range cases {
		want, err := os.ReadFile(filepath.Join("testdata", c.file))
		if err != nil {
			t.Fatal(err)
		}
		got, err := Encode(c.a)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: encoded bytes differ from numpy's\n got %q\nwant %q", c.file, got, want)
		}
	}
	// And the writers round-trip through files.
	p := filepath.Join(t.TempDir(), "x.npy")
	f32 := []float32{1, -2, 3.25, 4, 5, 6}
	if err := WriteFloat32(p, []int{3, 2}, f32); err != nil {
		t.Fatal(err)
	}
	a, err := Read(p)
	if err != nil || !reflect.DeepEqual(a.Float32, f32) || !reflect.DeepEqual(a.Shape, []int{3, 2}) {
		t.Fatalf("float32 round trip: %v %v", a, err)
	}
	if err := WriteFloat64(p, []int{2, 2}, []float64{1, 2, 3}); err == nil {
		t.Fatal("shape/data mismatch accepted")
	}
}

func TestBadInputs(t *testing.T) {
	good, err := os.ReadFile(filepath.Join("testdata", "le_f8.npy"))
	if err != nil {
		t.Fatal(err)
	}
	mut := func(f func([]byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	dir := t.TempDir()
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "truncated"},
		{"bad magic", mut(func(b []byte) []byte { b[1] = 'X'; return b }), "bad magic"},
		{"version 4", mut(func(b []byte) []byte { b[6] = 4; return b }), "version 4.0"},
		{"truncated data", good[:len(good)-3], "truncated"},
		{"trailing bytes", append(append([]byte(nil), good...), 1, 2), "trailing"},
		{"truncated header", good[:40], "truncated: header"},
		{"header garbage", mut(func(b []byte) []byte { copy(b[10:], "[not a dict"); return b }), "corrupt header"},
	}
	// fixtures numpy wrote that we must refuse
	for _, f := range []struct{ file, want string }{
		{"fortran_f8.npy", "Fortran"},
		{"int32.npy", "unsupported dtype \"<i4\""},
		{"object.npy", "unsupported dtype \"|O\""},
	} {
		b, err := os.ReadFile(filepath.Join("testdata", f.file))
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, struct {
			name string
			data []byte
			want string
		}{f.file, b, f.want})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, "bad.npy")
			if err := os.WriteFile(p, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Read(p)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q should name the file and say %q", err, c.want)
			}
		})
	}
}

func TestHugeShapeIsNotAllocated(t *testing.T) {
	// A header claiming 10^12 elements over a few data bytes must fail
	// before allocating anything.
	hdr := "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000), }"
	b := append([]byte("\x93NUMPY\x01\x00"), byte(len(hdr)), 0)
	b = append(b, hdr...)
	b = append(b, make([]byte, 16)...)
	if _, err := Decode(b); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("got %v", err)
	}
}

func FuzzNPY(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.npy"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := Decode(b)
		if err != nil {
			return
		}
		// A successful decode must be self-consistent and re-encodable.
		if a.Len()*a.Kind.size() > len(b) {
			t.Fatalf("decoded %d elements from %d bytes", a.Len(), len(b))
		}
		if _, err := Encode(a); err != nil {
			t.Fatalf("re-encode: %v", err)
		}
	})
}
