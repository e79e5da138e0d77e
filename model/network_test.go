package model

import "testing"

// TestParameterCounts checks every configuration against the trainable
// parameter counts of reproduction.md (PyTorch's counts of the reference).
func TestParameterCounts(t *testing.T) {
	want := map[string]int64{
		"mmixer": 877362, "m2mixer_s": 192742, "m2mixer_m": 878662, "m2mixer_b": 8339354,
		"m2mixer_h": 29355, "m2mixer_lc": 29355,
		// Not in reproduction.md; counted by hand from the layer sizes: the M
		// image encoder is 12,608 (patch conv) + 2 x 132,564 (blocks) + 128
		// (LayerNorm) = 277,864, the audio encoder 200,768 + 265,128 + 128 =
		// 466,024, and a head Linear(64, 10) 650. Probes train the head alone.
		"unimodal_image": 277864 + 650, "unimodal_audio": 466024 + 650, "probe_image": 650, "probe_audio": 650,
	}
	names, err := ConfigNames()
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 10 {
		t.Fatalf("configurations: %v", names)
	}
	for _, name := range names {
		c, err := LoadConfig(name)
		if err != nil {
			t.Fatal(err)
		}
		got, err := CountParams(c)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%-15s %9d", name, got)
		if w, ok := want[name]; !ok || got != w {
			t.Errorf("%s: %d trainable parameters, want %d", name, got, w)
		}
	}
}
