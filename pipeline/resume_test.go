package pipeline

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/model"
	"github.com/m2mix/m2mix/prep/mimic/mimictest"
	"github.com/m2mix/m2mix/runrecord"
)

// panicLog stands for kill -9: it panics out of the training when a line
// contains at (the training prints an epoch's line after writing its files).
type panicLog struct {
	at  string
	buf bytes.Buffer
}

func (p *panicLog) Write(b []byte) (int, error) {
	p.buf.Write(b)
	if bytes.Contains(b, []byte(p.at)) {
		panic(p)
	}
	return len(b), nil
}

// TestReproduceContinuesSeedBatch: a seed-batch training stage interrupted
// in the middle of an epoch's bookkeeping (one seed has written the epoch,
// the other has not) is continued by the next reproduce, not restarted, and
// ends with the records and checkpoints of an uninterrupted reproduce.
func TestReproduceContinuesSeedBatch(t *testing.T) {
	dir := t.TempDir()
	pk := filepath.Join(dir, "im.pk")
	if err := mimictest.WritePickleFile(pk, mimictest.Synthetic(400, 3)); err != nil {
		t.Fatal(err)
	}
	three := 3
	prof := &Profile{Name: "tiny-batch", Seeds: []int64{7, 8}, Configs: []string{"m2mixer_h"}, SeedBatch: true,
		Overrides: Overrides{MaxEpochs: &three}}
	options := func(name string) ReproduceOptions {
		d := filepath.Join(dir, name)
		return ReproduceOptions{Profile: prof, Data: filepath.Join(d, "data"), Runs: filepath.Join(d, "runs"),
			Results: filepath.Join(d, "results"), PK: pk, Threads: 1, LockPath: filepath.Join(d, "m2mix.lock")}
	}
	// run runs the MIMIC-III preparation and the training stage.
	run := func(o ReproduceOptions, names ...string) string {
		t.Helper()
		var log bytes.Buffer
		o.Log = &log
		stages, err := Stages(o)
		if err != nil {
			t.Fatal(err)
		}
		var picked []Stage
		for _, st := range stages {
			for _, n := range names {
				if st.Name == n {
					picked = append(picked, st)
				}
			}
		}
		if len(picked) != len(names) {
			t.Fatalf("stages %v not all in the pipeline", names)
		}
		if _, err := Run(context.Background(), picked, Options{LockPath: o.LockPath, Log: &log}); err != nil {
			t.Fatalf("%v\n%s", err, log.String())
		}
		return log.String()
	}
	a := options("uninterrupted")
	run(a, "prep-mimic", "train/m2mixer_h")

	b := options("interrupted")
	run(b, "prep-mimic")
	cfg, err := model.LoadConfig("m2mixer_h")
	if err != nil {
		t.Fatal(err)
	}
	// The stage's own training, with the stage's options, killed after seed
	// 7 has written epoch 2 and before seed 8 has.
	kill := &panicLog{at: "seed 7 epoch 2/3:"}
	func() {
		defer func() {
			if r := recover(); r != kill {
				t.Fatalf("the training was not killed: %v\n%s", r, kill.buf.String())
			}
		}()
		model.Train(cfg, prof.Seeds, model.Options{DataDir: b.Data, RunsDir: b.Runs, Threads: 1, Profile: prof.Name, MaxEpochs: three, Log: kill})
	}()
	log := run(b, "prep-mimic", "train/m2mixer_h")
	if !strings.Contains(log, "seed 7: resuming at epoch 2") || !strings.Contains(log, "seed 8: resuming at epoch 1") {
		t.Fatalf("the stage did not continue the interrupted batch:\n%s", log)
	}
	for _, seed := range prof.Seeds {
		da, db := model.RunDir(a.Runs, cfg.Name, seed), model.RunDir(b.Runs, cfg.Name, seed)
		var ra, rb runrecord.Record
		if err := artifact.ReadJSON(filepath.Join(da, runrecord.FileName), &ra); err != nil {
			t.Fatal(err)
		}
		if err := artifact.ReadJSON(filepath.Join(db, runrecord.FileName), &rb); err != nil {
			t.Fatal(err)
		}
		for _, r := range []*runrecord.Record{&ra, &rb} {
			for i := range r.History {
				r.History[i].Seconds = 0
			}
			r.Final.TrainSeconds, r.Final.TestSeconds = 0, 0
		}
		if !reflect.DeepEqual(ra, rb) {
			t.Errorf("seed %d: records differ:\n uninterrupted %+v\n continued     %+v", seed, ra, rb)
		}
		for _, f := range []string{model.BestFile, "last.safetensors"} {
			x, _ := os.ReadFile(filepath.Join(da, f))
			y, _ := os.ReadFile(filepath.Join(db, f))
			if len(x) == 0 || !bytes.Equal(x, y) {
				t.Errorf("seed %d: %s differs", seed, f)
			}
		}
	}
}
