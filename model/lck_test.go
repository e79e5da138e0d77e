package model

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

// TestLCKDelaysSchedule trains M2-Mixer_LC with k = 0 (its configuration,
// as the reference's) and with k = 2 and k = 5 on a tiny synthetic MIMIC
// set, and reads back each epoch's fusion weight: w_f grows after the
// validation of each epoch i >= k, so epoch i trains with
// min(1, 1/3 + 0.05*max(0, i-k)). Hand-computed for k = 2: 1/3, 1/3, 1/3,
// 1/3+0.05, 1/3+0.10, 1/3+0.15.
func TestLCKDelaysSchedule(t *testing.T) {
	data := t.TempDir()
	writeSyntheticMIMIC(t, data)
	base, err := LoadConfig("m2mixer_lc")
	if err != nil {
		t.Fatal(err)
	}
	if base.Loss.LCK != 0 || base.Loss.LCEta != 0.05 {
		t.Fatalf("m2mixer_lc: lc_k %d, lc_eta %v; want 0 (the reference configuration's) and 0.05", base.Loss.LCK, base.Loss.LCEta)
	}
	third := 1.0 / 3
	for _, c := range []struct {
		k    int
		want []float64
	}{
		{0, []float64{third, third + 0.05, third + 0.10, third + 0.15, third + 0.20, third + 0.25}},
		{2, []float64{third, third, third, third + 0.05, third + 0.10, third + 0.15}},
		{5, []float64{third, third, third, third, third, third}},
	} {
		cfg := *base
		cfg.Loss.LCK = c.k
		rec, err := train1(&cfg, 3, Options{DataDir: data, RunsDir: t.TempDir(), MaxEpochs: len(c.want), Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(rec.History) != len(c.want) {
			t.Fatalf("k %d: %d epochs, want %d", c.k, len(rec.History), len(c.want))
		}
		for i, e := range rec.History {
			if math.Abs(e.WFusion-c.want[i]) > 1e-12 {
				t.Errorf("k %d epoch %d: w_f %.15g, want %.15g", c.k, i, e.WFusion, c.want[i])
			}
		}
	}
}

// TestLCKInJSON: lc_k is read from a configuration file, is left out of the
// JSON when 0 (so configurations without it keep their stage keys), and a
// negative value is refused.
func TestLCKInJSON(t *testing.T) {
	base, err := LoadConfig("m2mixer_lc")
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(base)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "lc_k") {
		t.Fatalf("lc_k = 0 is written: %s", b)
	}
	withK := strings.Replace(string(b), `"lc_eta":0.05`, `"lc_eta":0.05,"lc_k":3`, 1)
	cfg, err := ParseConfig("k.json", []byte(withK))
	if err != nil || cfg.Loss.LCK != 3 {
		t.Fatalf("lc_k 3: %v, %+v", err, cfg)
	}
	neg := strings.Replace(withK, `"lc_k":3`, `"lc_k":-1`, 1)
	if _, err := ParseConfig("neg.json", []byte(neg)); err == nil || !strings.Contains(err.Error(), "lc_k") {
		t.Fatalf("lc_k -1: %v, want an error naming lc_k", err)
	}
}
