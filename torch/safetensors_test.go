package torch

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestSafetensorsRoundTrip(t *testing.T) {
	s := newTestScope(t)
	path := filepath.Join(t.TempDir(), "ckpt.safetensors")
	in := map[string]*Tensor{
		"w":    s.From([]float32{1, 2, 3, 4, 5, 6}, 2, 3),
		"step": s.From([]int64{7}, 1),
		"d":    s.From([]float64{-0.5}, 1),
	}
	meta := map[string]string{"epoch": "3"}
	if err := SaveSafetensors(path, in, meta); err != nil {
		t.Fatal(err)
	}
	// The header is plain JSON at offset 8, as other tools expect.
	raw, _ := os.ReadFile(path)
	n := binary.LittleEndian.Uint64(raw[:8])
	var h map[string]any
	if err := json.Unmarshal(raw[8:8+n], &h); err != nil {
		t.Fatalf("header is not JSON: %v", err)
	}
	if w := h["w"].(map[string]any); w["dtype"] != "F32" {
		t.Fatalf("w dtype %v", w["dtype"])
	}
	out, gotMeta, err := LoadSafetensors(s, path)
	if err != nil {
		t.Fatal(err)
	}
	if len(gotMeta) != 2 || gotMeta["epoch"] != "3" || len(gotMeta[ChecksumKey]) != 64 {
		t.Fatalf("meta %v: want epoch and the checksum", gotMeta)
	}
	w, _ := out["w"].Float32s()
	if sh, _ := out["w"].Shape(); !reflect.DeepEqual(sh, []int64{2, 3}) || w[5] != 6 {
		t.Fatalf("w: %v %v", sh, w)
	}
	if st, _ := out["step"].Int64s(); st[0] != 7 {
		t.Fatalf("step %v", st)
	}
	// A truncated file is an error that names the file, not a crash.
	if err := os.WriteFile(path, raw[:len(raw)-4], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadSafetensors(s, path); err == nil {
		t.Fatal("truncated file loaded")
	}
}

// TestSafetensorsDetectsEveryFlippedByte: flipping any one bit of any byte
// of a saved file (length, header or data) makes loading it fail, or (a
// flip inside the checksum's own key name) come back without a checksum,
// which callers that require verified files refuse.
func TestSafetensorsDetectsEveryFlippedByte(t *testing.T) {
	s := newTestScope(t)
	path := filepath.Join(t.TempDir(), "ckpt.safetensors")
	in := map[string]*Tensor{"w": s.From([]float32{1, 2, 3, 4, 5, 6}, 2, 3), "b": s.From([]int64{7, 8}, 2)}
	if err := SaveSafetensors(path, in, map[string]string{"state": `{"next_epoch":2}`}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.safetensors")
	for i := range raw {
		for _, bit := range []byte{0x01, 0x20, 0x80} {
			b := append([]byte(nil), raw...)
			b[i] ^= bit
			if err := os.WriteFile(bad, b, 0o644); err != nil {
				t.Fatal(err)
			}
			ls := newTestScope(t)
			if _, meta, err := LoadSafetensors(ls, bad); err == nil && meta[ChecksumKey] != "" {
				t.Fatalf("byte %d of %d with bit %#x flipped: loaded as verified", i, len(raw), bit)
			}
		}
	}
}
