package reports

import (
	"path/filepath"
	"testing"
)

// BenchmarkGenerate times a full report over 100 records: the paper
// profile's 10 configurations x 10 seeds, each with 100 epochs of history.
func BenchmarkGenerate(b *testing.B) {
	dir := b.TempDir()
	runs := filepath.Join(dir, "runs")
	configs := []string{"mmixer", "m2mixer_b", "m2mixer_m", "m2mixer_s", "m2mixer_h", "m2mixer_lc",
		"unimodal_image", "unimodal_audio", "probe_image", "probe_audio"}
	for i, c := range configs {
		heads := map[string]float64{"fusion": 0.7, "image": 0.4, "audio": 0.66}
		dataset := "avmnist"
		if c == "m2mixer_h" || c == "m2mixer_lc" {
			heads = map[string]float64{"fusion": 0.78, "static": 0.7, "time": 0.76}
			dataset = "mimic"
		}
		for s := int64(42); s < 52; s++ {
			writeRuns(b, runs, fakeRun{config: c, dataset: dataset, seed: s, acc: 0.7 + float64(i)/100, macro: 0.69,
				train: 1000, test: 5, heads: heads, epochs: 100, wfStep: 0.05})
		}
	}
	for _, bc := range []struct {
		name string
		opts Options
	}{
		{"with plots", Options{PaperResults: paperFile}},
		{"tables only", Options{PaperResults: paperFile, NoPlots: true}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			out := filepath.Join(dir, "results")
			for b.Loop() {
				if _, err := Generate(runs, out, bc.opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
