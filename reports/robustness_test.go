package reports

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/robustness"
)

// fakeRobustness writes a robustness.json for (config, seed) whose head
// accuracy is clean, missing image/audio as given, and under Gaussian
// noise falls linearly by drop per 0.1 of level.
func fakeRobustness(t *testing.T, runs, config string, seed int64, clean, noImage, noAudio, drop float64) {
	t.Helper()
	acc := func(v float64) map[string]float64 { return map[string]float64{"fusion": v} }
	r := robustness.Result{Config: config, Model: "model-" + config, Dataset: "avmnist", Kind: "multimodal", Seed: seed, Head: "fusion",
		Modalities: []string{"image", "audio"}, Rows: 100, Inputs: map[string]string{}}
	r.Conditions = append(r.Conditions, robustness.Condition{Corruption: robustness.Corruption{Kind: robustness.Clean}, Accuracy: acc(clean)})
	for _, m := range []struct {
		mod string
		v   float64
	}{{"image", noImage}, {"audio", noAudio}} {
		for _, fill := range []string{robustness.FillZeros, robustness.FillMean} {
			v := m.v
			if fill == robustness.FillZeros {
				v -= 0.05
			}
			r.Conditions = append(r.Conditions, robustness.Condition{Corruption: robustness.Corruption{Kind: robustness.Missing, Modality: m.mod, Fill: fill}, Accuracy: acc(v)})
		}
	}
	for _, m := range []string{"image", "audio"} {
		for i, l := range robustness.Levels() {
			r.Conditions = append(r.Conditions, robustness.Condition{Corruption: robustness.Corruption{Kind: robustness.Gaussian, Modality: m, Level: l}, Accuracy: acc(clean - drop*float64(i+1))})
		}
	}
	r.Conditions = append(r.Conditions, robustness.Condition{Corruption: robustness.Corruption{Kind: robustness.NoiseWeight, Modality: "audio", Level: 0.1}, Accuracy: acc(clean - 0.1)})
	if err := artifact.WriteJSON(filepath.Join(runs, config, strconv.FormatInt(seed, 10), robustness.FileName), r); err != nil {
		t.Fatal(err)
	}
}

func TestTableIV(t *testing.T) {
	runs, out := t.TempDir(), t.TempDir()
	for s := int64(1); s <= 2; s++ {
		writeRuns(t, runs, fakeRun{config: "mmixer", seed: s, acc: 0.7, train: 1}, fakeRun{config: "m2mixer_m", seed: s, acc: 0.8, train: 1})
	}
	// MMixer: 70 % clean, image gone 40 / 42 %, audio gone 60 / 62 %, 1 point lost per 0.1.
	fakeRobustness(t, runs, "mmixer", 1, 0.70, 0.40, 0.60, 0.01)
	fakeRobustness(t, runs, "mmixer", 2, 0.72, 0.42, 0.62, 0.01)
	// M2-Mixer_M: 80 % clean, loses 0.5 point per 0.1 (half as fast).
	fakeRobustness(t, runs, "m2mixer_m", 1, 0.80, 0.70, 0.75, 0.005)
	fakeRobustness(t, runs, "m2mixer_m", 2, 0.80, 0.70, 0.75, 0.005)
	if _, err := Generate(runs, out, Options{PaperResults: paperFile, Claims: "../" + DefaultClaims}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(out, IndexFile))
	md := string(b)
	for _, want := range []string{
		"## Table IV",
		"| Configuration | n | Clean | no image (mean) | no image (zeros) | no audio (mean) | no audio (zeros) |",
		"| model-mmixer (`mmixer`) | 2 | 71.00 ± 1.41 | 41.00 ± 1.41 | 36.00 ± 1.41 | 61.00 ± 1.41 | 56.00 ± 1.41 |",
		"| model-m2mixer_m (`m2mixer_m`) | 2 | 80.00 ± 0.00 | 70.00 ± 0.00 | 65.00 ± 0.00 | 75.00 ± 0.00 | 70.00 ± 0.00 |",
		"Reference: `mmixer`",
		// Relative robustness: area under a line from c to c - 10 drop: c - 5 drop (in %).
		// MMixer: (70-5 + 72-5)/2 = 66; M2-Mixer_M: 80 - 2.5 = 77.5.
		// Effective against MMixer's mean curve: M2-Mixer_M keeps 0.5 point more per
		// step, summed over steps 1..10: 0.5 * 55 = 27.5.
		"| `mmixer` | 66.00 ± 1.41 | 0.00 ± 0.00 | 66.00 ± 1.41 | 0.00 ± 0.00 |",
		"| `m2mixer_m` | 77.50 ± 0.00 | 27.50 ± 0.00 | 77.50 ± 0.00 | 27.50 ± 0.00 |",
		"plots/robustness_avmnist.png",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if testing.Verbose() {
		t.Log(md[strings.Index(md, "## Table IV"):strings.Index(md, "## Runs")])
	}
	png, err := os.ReadFile(filepath.Join(out, "plots", "robustness_avmnist.png"))
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("robustness plot: %v", err)
	}
	// Regenerated from the same files: the same bytes.
	again := t.TempDir()
	if _, err := Generate(runs, again, Options{PaperResults: paperFile}); err != nil {
		t.Fatal(err)
	}
	b2, _ := os.ReadFile(filepath.Join(again, IndexFile))
	png2, _ := os.ReadFile(filepath.Join(again, "plots", "robustness_avmnist.png"))
	if !bytes.Equal(b, b2) || !bytes.Equal(png, png2) {
		t.Error("the report from the same robustness files differs")
	}
	// A result holding a percentage is refused, naming the file.
	fakeRobustness(t, runs, "mmixer", 2, 72, 0.42, 0.62, 0.01)
	if _, err := Generate(runs, t.TempDir(), Options{PaperResults: paperFile}); err == nil || !strings.Contains(err.Error(), filepath.Join("mmixer", "2", robustness.FileName)) {
		t.Errorf("accuracy 72: %v", err)
	}
}

func TestTableIVNotRun(t *testing.T) {
	runs, out := t.TempDir(), t.TempDir()
	writeRuns(t, runs, fakeRun{config: "mmixer", seed: 1, acc: 0.7, train: 1})
	if _, err := Generate(runs, out, Options{PaperResults: paperFile, NoPlots: true}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(out, IndexFile))
	if !strings.Contains(string(b), "## Table IV: accuracy with a modality missing (not in the paper)\n\n**Not run:**") {
		t.Error("no not-run notice for Table IV")
	}
}
