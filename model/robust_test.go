package model

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/dataset"
	"github.com/m2mix/m2mix/robustness"
	"github.com/m2mix/m2mix/runrecord"
)

// trainQuick trains one seed of a configuration for one epoch.
func trainQuick(t *testing.T, name, data, runs string, seed int64) *Config {
	t.Helper()
	cfg, err := LoadConfig(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Train(cfg, []int64{seed}, Options{DataDir: data, RunsDir: runs, MaxEpochs: 1, Threads: 1}); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func readRecordT(t *testing.T, runs, config string, seed int64) runrecord.Record {
	t.Helper()
	var rec runrecord.Record
	if err := artifact.ReadJSON(filepath.Join(RunDir(runs, config, seed), runrecord.FileName), &rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

// On synthetic AV-MNIST: the clean condition reproduces the run's own test
// accuracies (every head), an image-only model loses nothing when the audio
// is removed or degraded, the result is the same bytes on a second run, the
// training statistics are the training rows' means, and a run whose record
// names other test data is refused.
func TestRobustnessAVMNIST(t *testing.T) {
	data, runs := t.TempDir(), t.TempDir()
	writeSyntheticAVMNIST(t, data, [3]int{96, 48, 64})
	multi := trainQuick(t, "m2mixer_s", data, runs, 3)
	image := trainQuick(t, "unimodal_image", data, runs, 3)
	o := RobustOptions{DataDir: data, RunsDir: runs, Threads: 1, Batch: 24, Seed: 5}

	for _, cfg := range []*Config{multi, image} {
		res, err := EvaluateRobustness(cfg, 3, o)
		if err != nil {
			t.Fatal(err)
		}
		rec := readRecordT(t, runs, cfg.Name, 3)
		clean := res.Conditions[0]
		if clean.Kind != robustness.Clean || res.Rows != 64 {
			t.Fatalf("%s: first condition %v, rows %d", cfg.Name, clean.Corruption, res.Rows)
		}
		for h, a := range rec.Final.HeadAccuracy {
			if clean.Accuracy[h] != a {
				t.Errorf("%s head %s: clean accuracy %v, the run's test %v", cfg.Name, h, clean.Accuracy[h], a)
			}
		}
		// 1 clean + 4 missing + 20 Gaussian (no noise-weight files given).
		if len(res.Conditions) != 25 {
			t.Errorf("%s: %d conditions", cfg.Name, len(res.Conditions))
		}
		first, err := os.ReadFile(filepath.Join(RunDir(runs, cfg.Name, 3), robustness.FileName))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := EvaluateRobustness(cfg, 3, o); err != nil {
			t.Fatal(err)
		}
		second, _ := os.ReadFile(filepath.Join(RunDir(runs, cfg.Name, 3), robustness.FileName))
		if !bytes.Equal(first, second) {
			t.Errorf("%s: robustness.json differs between two runs", cfg.Name)
		}
		if cfg == image {
			for _, c := range res.Conditions {
				if c.Modality == "audio" && c.Accuracy["image"] != clean.Accuracy["image"] {
					t.Errorf("image-only model under %s: %v, clean %v", c.Name(), c.Accuracy["image"], clean.Accuracy["image"])
				}
			}
			if v, _ := res.Find(robustness.Corruption{Kind: robustness.Missing, Modality: "image", Fill: robustness.FillMean}); v > 0.5 {
				t.Errorf("image-only model with the image replaced by its mean: accuracy %v (one constant input gives one class)", v)
			}
		}
	}

	// The cached statistics are the training rows' per-position means.
	var st robustness.TrainStats
	if err := artifact.ReadJSON(filepath.Join(robustness.Dir(data, "avmnist"), robustness.StatsFile), &st); err != nil {
		t.Fatal(err)
	}
	tr, err := dataset.Read(filepath.Join(data, "avmnist", SplitFiles[0]))
	if err != nil {
		t.Fatal(err)
	}
	img, _ := tr.Column("image")
	for _, p := range []int{0, 400, 783} {
		sum := 0.0
		for r := 0; r < tr.Rows; r++ {
			sum += float64(img.Float32[r*784+p])
		}
		if m := st.Modalities["image"].Mean[p]; math.Abs(m-sum/float64(tr.Rows)) > 1e-9 {
			t.Errorf("image mean at %d: %v, want %v", p, m, sum/float64(tr.Rows))
		}
	}

	// A record that names other test data is refused, naming the file.
	recPath := filepath.Join(RunDir(runs, image.Name, 3), runrecord.FileName)
	rec := readRecordT(t, runs, image.Name, 3)
	rec.Inputs["avmnist/test.arrow"] = strings.Repeat("0", 64)
	if err := artifact.WriteJSON(recPath, rec); err != nil {
		t.Fatal(err)
	}
	if _, err := EvaluateRobustness(image, 3, o); err == nil || !strings.Contains(err.Error(), "test.arrow") || !strings.Contains(err.Error(), "other data") {
		t.Errorf("other test data: %v", err)
	}
	// An unfinished run is refused.
	rec.Final = nil
	artifact.WriteJSON(recPath, rec)
	if _, err := EvaluateRobustness(image, 3, o); err == nil || !strings.Contains(err.Error(), "not finished") {
		t.Errorf("unfinished run: %v", err)
	}
}

// On synthetic MIMIC-III: the time-step and static corruptions, and
// dropping every time step is the time series replaced by its mean.
func TestRobustnessMIMIC(t *testing.T) {
	data, runs := t.TempDir(), t.TempDir()
	writeSyntheticMIMIC(t, data)
	cfg := trainQuick(t, "m2mixer_h", data, runs, 2)
	res, err := EvaluateRobustness(cfg, 2, RobustOptions{DataDir: data, RunsDir: runs, Threads: 1, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	// 1 clean + 4 missing + 20 Gaussian + 10 dropped-step levels.
	if len(res.Conditions) != 35 || res.Rows != 60 {
		t.Fatalf("%d conditions, %d rows", len(res.Conditions), res.Rows)
	}
	rec := readRecordT(t, runs, cfg.Name, 2)
	if c, _ := res.Find(robustness.Corruption{Kind: robustness.Clean}); c != rec.Final.Accuracy {
		t.Errorf("clean %v, the run's test %v", c, rec.Final.Accuracy)
	}
	all, _ := res.Find(robustness.Corruption{Kind: robustness.DropSteps, Modality: "time", Level: 1})
	mean, _ := res.Find(robustness.Corruption{Kind: robustness.Missing, Modality: "time", Fill: robustness.FillMean})
	if all != mean {
		t.Errorf("every step dropped: %v; the series replaced by its mean: %v", all, mean)
	}
	for _, h := range cfg.Heads {
		for _, c := range res.Conditions {
			if _, ok := c.Accuracy[h]; !ok {
				t.Fatalf("%s: no accuracy of head %s", c.Name(), h)
			}
		}
	}
	if _, ok := res.Find(robustness.Corruption{Kind: robustness.Missing, Modality: "static", Fill: robustness.FillZeros}); !ok {
		t.Error("no static-missing condition")
	}
}

// Baselines too: the clean condition reproduces the run's test accuracy
// for a LeNet baseline and for Gradient Blending, whose best checkpoint
// holds its encoders and fine-tuned head only and whose BatchNorm uses
// batch statistics at test (so the evaluation must batch as its test did).
func TestRobustnessBaselines(t *testing.T) {
	data, runs := t.TempDir(), t.TempDir()
	writeSyntheticAVMNIST(t, data, [3]int{120, 48, 64})
	o := RobustOptions{DataDir: data, RunsDir: runs, Threads: 1, Batch: 24, Seed: 5}
	for _, name := range []string{"late_fusion", "gradblend"} {
		cfg, err := LoadConfig(name)
		if err != nil {
			t.Fatal(err)
		}
		opts := Options{DataDir: data, RunsDir: runs, MaxEpochs: 1, Threads: 1}
		if cfg.GradBlend != nil {
			opts.GradBlendRound, opts.GradBlendFinetune = 1, 1
		}
		if _, err := Train(cfg, []int64{4}, opts); err != nil {
			t.Fatal(err)
		}
		res, err := EvaluateRobustness(cfg, 4, o)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		rec := readRecordT(t, runs, name, 4)
		if c, _ := res.Find(robustness.Corruption{Kind: robustness.Clean}); c != rec.Final.Accuracy {
			t.Errorf("%s: clean %v, the run's test %v", name, c, rec.Final.Accuracy)
		}
	}
}
