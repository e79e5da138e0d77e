package wav

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestReadFixtures(t *testing.T) {
	cases := []struct {
		file string
		rate int
		want []int16
	}{
		{"mono16.wav", 8000, []int16{0, 1000, -1000, 32767, -32768}},
		{"list_chunk.wav", 44100, []int16{-5, 5}},
	}
	for _, c := range cases {
		a, err := Read(filepath.Join("testdata", c.file))
		if err != nil {
			t.Fatal(err)
		}
		if a.SampleRate != c.rate || !reflect.DeepEqual(a.Samples, c.want) {
			t.Fatalf("%s: %d Hz %v", c.file, a.SampleRate, a.Samples)
		}
	}
	a, _ := Read(filepath.Join("testdata", "mono16.wav"))
	if f := a.Float(); f[3] != 32767.0/32768 || f[4] != -1 {
		t.Fatalf("float scaling: %v", f)
	}
}

func TestBadInputs(t *testing.T) {
	good, _ := os.ReadFile(filepath.Join("testdata", "mono16.wav"))
	mut := func(f func([]byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "truncated"},
		{"not riff", mut(func(b []byte) []byte { copy(b, "RIFX"); return b }), "not a WAV"},
		{"stereo", read("stereo16.wav"), "2 channels"},
		{"8-bit", read("mono8.wav"), "8-bit"},
		{"24-bit", read("mono24.wav"), "24-bit"},
		{"float", read("float32.wav"), "encoding 3"},
		{"truncated data", good[:len(good)-3], "truncated: chunk \"data\""},
		{"no data chunk", good[:36], "no data chunk"},
		{"short fmt", mut(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[16:], 8); return b }), "fmt chunk of 8 bytes"},
		{"huge chunk", mut(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[40:], 0xfffffff0); return b }), "declares 4294967280 bytes"},
		{"odd data", mut(func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[40:], 9)
			return append(b, 0)
		}), "not whole 16-bit samples"},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, "bad.wav")
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
}

// TestRealFSDD reads a few mirrored FSDD and ESC-50 clips when the shared
// mirror is present; their formats are documented in ../shared/data/README.md.
func TestRealFSDD(t *testing.T) {
	for _, c := range []struct {
		glob string
		rate int
	}{
		{"../../../shared/data/fsdd/recordings/0_jackson_*.wav", 8000},
		{"../../../shared/data/esc50/audio/4-1*.wav", 44100},
	} {
		fs, _ := filepath.Glob(c.glob)
		if len(fs) == 0 {
			t.Skip("shared data mirror not present")
		}
		for _, p := range fs[:min(5, len(fs))] {
			a, err := Read(p)
			if err != nil {
				t.Fatal(err)
			}
			if a.SampleRate != c.rate || len(a.Samples) < 1000 {
				t.Fatalf("%s: %d Hz, %d samples", p, a.SampleRate, len(a.Samples))
			}
		}
	}
}

func FuzzWAV(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.wav"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := Decode(b)
		if err != nil {
			return
		}
		if 2*len(a.Samples) > len(b) {
			t.Fatalf("%d samples from %d bytes", len(a.Samples), len(b))
		}
	})
}
