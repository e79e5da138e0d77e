package pipeline

import (
	"context"
	"io"
	"path/filepath"
	"testing"

	"github.com/m2mix/m2mix/model"
)

// TestSmokeTrainingBeatsChance generates AV-MNIST from the real sources
// (the first 2,500 MNIST rows of each split) and trains M2-Mixer_M on 2,000
// samples for 3 epochs: its test accuracy must clearly beat chance (10%).
func TestSmokeTrainingBeatsChance(t *testing.T) {
	mirror, mnist := rawSources(t)
	dir := t.TempDir()
	o := ReproduceOptions{
		Profile: &Profile{Name: "smoke", Seeds: []int64{42}, Configs: []string{"m2mixer_m"}},
		Data:    filepath.Join(dir, "data"), Runs: filepath.Join(dir, "runs"), Results: filepath.Join(dir, "results"),
		Mirror: mirror, MNISTDir: mnist, NoiseSeed: 42, AVLimit: 2500,
		LockPath: filepath.Join(dir, "m2mix.lock"), Log: io.Discard,
	}
	stages, err := Stages(o)
	if err != nil {
		t.Fatal(err)
	}
	// fetch and prep-avmnist only; the training below sets its own limits.
	if _, err := Run(context.Background(), stages[:2], Options{LockPath: o.LockPath, Log: io.Discard}); err != nil {
		t.Fatal(err)
	}
	cfg, err := model.LoadConfig("m2mixer_m")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := model.Train(cfg, []int64{42}, model.Options{DataDir: o.Data, RunsDir: o.Runs, MaxEpochs: 3, LimitTrain: 2000})
	if err != nil {
		t.Fatal(err)
	}
	rec := recs[0]
	t.Logf("test accuracy %.3f, macro F1 %.3f, heads %v", rec.Final.Accuracy, rec.Final.MacroF1, rec.Final.HeadAccuracy)
	if rec.Final.Accuracy < 0.3 {
		t.Fatalf("test accuracy %.3f after 3 epochs on 2,000 samples: not clearly above chance (0.10)", rec.Final.Accuracy)
	}
}
