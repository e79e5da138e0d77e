package torch

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadSafetensors: any bytes given as a checkpoint either fail to load
// with an error or load tensors whose sizes fit their shapes; a file that
// loads as verified (with its checksum) is byte for byte one that
// SaveSafetensors could have written, so re-saving it gives the same bytes.
func FuzzLoadSafetensors(f *testing.F) {
	if _, err := Load(); err != nil {
		f.Skipf("no libtorch shim: %v", err)
	}
	s := NewScope()
	dir := f.TempDir()
	seed := filepath.Join(dir, "seed.safetensors")
	if err := SaveSafetensors(seed, map[string]*Tensor{
		"w": s.From([]float32{1, 2, 3, 4, 5, 6}, 2, 3), "step": s.From([]int64{7}, 1), "m": s.From([]uint8{1, 2}, 2),
	}, map[string]string{"state": `{"next_epoch":1}`}); err != nil {
		f.Fatal(err)
	}
	s.Close()
	b, err := os.ReadFile(seed)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:40])
	f.Add([]byte{8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '})
	path := filepath.Join(f.TempDir(), "f.safetensors") // one file, rewritten each time: a temporary folder per input costs more than the read
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		s := NewScope()
		defer s.Close()
		ts, meta, err := LoadSafetensors(s, path)
		if err != nil {
			return
		}
		for name, x := range ts {
			if _, err := x.Numel(); err != nil {
				t.Fatalf("tensor %q: %v", name, err)
			}
		}
		if meta[ChecksumKey] == "" {
			return
		}
		again := path + ".again"
		rest := map[string]string{}
		for k, v := range meta {
			rest[k] = v
		}
		if err := SaveSafetensors(again, ts, rest); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(again); string(b) != string(data) {
			t.Fatalf("a verified file is not what saving its tensors writes")
		}
	})
}
