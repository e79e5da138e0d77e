package model

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/dataset"
	"github.com/m2mix/m2mix/runrecord"
	"github.com/m2mix/m2mix/torch"
)

// writeSyntheticMIMIC writes a small seeded MIMIC-III-shaped dataset to
// dir/mimic/{train,validation,test}.arrow (300/60/60 rows), with a little
// label signal in both modalities so that training makes progress.
func writeSyntheticMIMIC(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "mimic"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(10, 20))
	row := 0
	for i, n := range []int{300, 60, 60} {
		static := make([]float32, n*5)
		series := make([]float32, n*288)
		label := make([]int64, n)
		index := make([]int64, n)
		for j := 0; j < n; j++ {
			y := r.IntN(6)
			label[j], index[j] = int64(y), int64(row)
			row++
			for k := 0; k < 5; k++ {
				v := r.NormFloat64()
				if k == y%5 {
					v += 1
				}
				static[j*5+k] = float32(v)
			}
			for k := 0; k < 288; k++ {
				series[j*288+k] = float32(r.NormFloat64() + 0.3*float64(y)*float64(k%12)/12)
			}
		}
		cols := []dataset.Column{
			{Name: "static", Width: 5, Float32: static},
			{Name: "timeseries", Width: 288, Float32: series},
			{Name: "label", Int64: label},
			{Name: "row_index", Int64: index},
		}
		if err := dataset.Write(filepath.Join(dir, "mimic", SplitFiles[i]), cols, map[string]string{"synthetic": "model tests"}); err != nil {
			t.Fatal(err)
		}
	}
	writeManifest(t, filepath.Join(dir, "mimic"))
}

// killed is the panic value that stands for kill -9.
type killed struct{}

// killLog is a run's log that "kills" the run (panics out of Train) when a
// line contains at. Train prints an epoch's line after that epoch's
// last.safetensors and record.json are on disk, so the disk is left as a
// kill right after the epoch would leave it. onLine, if set, sees each
// line first (to copy files at a given point).
type killLog struct {
	at     string
	onLine func(line string)
	buf    bytes.Buffer
}

func (k *killLog) Write(p []byte) (int, error) {
	k.buf.Write(p)
	if k.onLine != nil {
		k.onLine(string(p))
	}
	if k.at != "" && bytes.Contains(p, []byte(k.at)) {
		panic(killed{})
	}
	return len(p), nil
}

// train1 is the one loop's K = 1 case: one seed's run and its record.
func train1(cfg *Config, seed int64, o Options) (*runrecord.Record, error) {
	recs, err := Train(cfg, []int64{seed}, o)
	if err != nil {
		return nil, err
	}
	return recs[0], nil
}

// trainKilled runs Train and requires it to be killed by its log.
func trainKilled(t *testing.T, cfg *Config, seeds []int64, o Options) {
	t.Helper()
	defer func() {
		if r := recover(); r == nil {
			t.Fatal("the run was not killed")
		} else if _, ok := r.(killed); !ok {
			panic(r)
		}
	}()
	if _, err := Train(cfg, seeds, o); err != nil {
		t.Fatalf("before the kill: %v", err)
	}
}

// trainResumed runs Train on a killed run's folder, turning a panic into a
// test failure, and returns the records and the log.
func trainResumed(t *testing.T, cfg *Config, seeds []int64, o Options) (recs []*runrecord.Record, log string) {
	t.Helper()
	var buf bytes.Buffer
	o.Log = &buf
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("resumed run panicked: %v\nlog:\n%s", r, buf.String())
			}
		}()
		var err error
		if recs, err = Train(cfg, seeds, o); err != nil {
			t.Fatalf("resumed run: %v\nlog:\n%s", err, buf.String())
		}
	}()
	return recs, buf.String()
}

// withoutTimes copies what a record must reproduce exactly: everything but
// wall-clock seconds.
func withoutTimes(r *runrecord.Record) runrecord.Record {
	c := *r
	c.History = append([]runrecord.Epoch(nil), r.History...)
	for i := range c.History {
		c.History[i].Seconds = 0
	}
	if r.Final != nil {
		f := *r.Final
		f.TrainSeconds, f.TestSeconds = 0, 0
		c.Final = &f
	}
	s, _ := jsonCanonical(r.Settings) // the resumed run's record read its settings back from JSON
	c.Settings = map[string]any{"canonical": string(s)}
	return c
}

// requireSameRun compares two finished runs: records (less times) and the
// checkpoint files, byte for byte.
func requireSameRun(t *testing.T, dirA, dirB string, recA, recB *runrecord.Record) {
	t.Helper()
	a, b := withoutTimes(recA), withoutTimes(recB)
	if len(a.History) != len(b.History) {
		t.Fatalf("history: %d epochs uninterrupted, %d resumed", len(a.History), len(b.History))
	}
	for i := range a.History {
		if !reflect.DeepEqual(a.History[i], b.History[i]) {
			t.Errorf("epoch %d differs:\n uninterrupted %+v\n resumed       %+v", i, a.History[i], b.History[i])
		}
	}
	if !reflect.DeepEqual(a.Final, b.Final) {
		t.Errorf("final metrics differ:\n uninterrupted %+v\n resumed       %+v", a.Final, b.Final)
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("records differ (besides history and final): settings %v / %v, inputs %v / %v",
			a.Settings, b.Settings, a.Inputs, b.Inputs)
	}
	// The records on disk are the returned ones.
	for _, d := range []struct {
		dir string
		rec runrecord.Record
	}{{dirA, a}, {dirB, b}} {
		var onDisk runrecord.Record
		if err := artifact.ReadJSON(filepath.Join(d.dir, runrecord.FileName), &onDisk); err != nil {
			t.Fatal(err)
		}
		if got := withoutTimes(&onDisk); !reflect.DeepEqual(got, d.rec) {
			t.Errorf("%s: record.json differs from the returned record", d.dir)
		}
	}
	for _, f := range []string{BestFile, lastFile} {
		ba, err := os.ReadFile(filepath.Join(dirA, f))
		if err != nil {
			t.Fatal(err)
		}
		bb, err := os.ReadFile(filepath.Join(dirB, f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ba, bb) {
			t.Errorf("%s differs between the uninterrupted and the resumed run", f)
		}
	}
}

// TestResumeAfterKill trains M2-Mixer_LC for 4 epochs uninterrupted, and
// again killed after epoch 2 and resumed: the resumed run must continue at
// epoch 2 and finish with the very same history, test metrics and
// checkpoints (CPU, one thread: bit-for-bit).
func TestResumeAfterKill(t *testing.T) {
	cfg, o, dirA, recA := uninterruptedLC(t)
	opts := func(runs string, log io.Writer) Options {
		o.RunsDir, o.Log = runs, log
		return o
	}
	runsB := t.TempDir()
	dirB := RunDir(runsB, cfg.Name, lcSeed)
	trainKilled(t, cfg, []int64{lcSeed}, opts(runsB, &killLog{at: "epoch 2/4:"}))
	var mid runrecord.Record
	if err := artifact.ReadJSON(filepath.Join(dirB, runrecord.FileName), &mid); err != nil {
		t.Fatal(err)
	}
	if len(mid.History) != 2 || mid.Final != nil {
		t.Fatalf("after the kill: %d epochs recorded, final %v; want 2 and none", len(mid.History), mid.Final)
	}

	recsB, log := trainResumed(t, cfg, []int64{lcSeed}, opts(runsB, nil))
	if !strings.Contains(log, "resuming at epoch 2\n") || strings.Contains(log, "epoch 1/4") || strings.Contains(log, "epoch 2/4") ||
		!strings.Contains(log, "epoch 3/4") || !strings.Contains(log, "epoch 4/4") {
		t.Errorf("resumed run's log does not show a resume at epoch 2 running epochs 3 and 4:\n%s", log)
	}
	recB := recsB[0]
	requireSameRun(t, dirA, dirB, recA, recB)
	var val []float64
	for _, e := range recB.History {
		val = append(val, e.ValLoss)
	}
	t.Logf("best epoch %d, test accuracy %.4f, validation losses %v", recB.Final.BestEpoch, recB.Final.Accuracy, val)

	// A rerun of a complete run changes nothing.
	_, log = trainResumed(t, cfg, []int64{lcSeed}, opts(runsB, nil))
	if !strings.Contains(log, "already complete") {
		t.Errorf("rerun of a complete run: %s", log)
	}
}

// TestSeedBatchResumeAfterKill kills a K = 3 batch in the middle of epoch
// 2's bookkeeping, after the first two seeds have written that epoch and
// before the third has: on resume the first two wait, unchanged, while the
// third catches up, and every seed ends byte for byte as in the
// uninterrupted batch (records less times, best and last checkpoints).
func TestSeedBatchResumeAfterKill(t *testing.T) {
	seeds := []int64{1, 2, 3}
	cfg, o, runsA, recsA := killedLCBatch(t, seeds)
	ahead := 0
	for _, seed := range seeds {
		var mid runrecord.Record
		if err := artifact.ReadJSON(filepath.Join(RunDir(o.RunsDir, cfg.Name, seed), runrecord.FileName), &mid); err != nil {
			t.Fatal(err)
		}
		if len(mid.History) == 2 {
			ahead++
		}
	}
	if ahead != 2 {
		t.Fatalf("after the kill %d seeds have 2 epochs recorded; the test needs 2 (the kill fell between two seeds' writes)", ahead)
	}
	recsB, log := trainResumed(t, cfg, seeds, o)
	for _, want := range []string{"seed 1: resuming at epoch 2\n", "seed 3: resuming at epoch 1\n", "seed 3 epoch 2/4:"} {
		if !strings.Contains(log, want) {
			t.Errorf("resumed batch's log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "seed 1 epoch 2/4:") {
		t.Errorf("seed 1 trained epoch 2 twice:\n%s", log)
	}
	for i, seed := range seeds {
		requireSameRun(t, RunDir(runsA, cfg.Name, seed), RunDir(o.RunsDir, cfg.Name, seed), recsA[i], recsB[i])
	}
}

// TestDivergedModelStops: a model of a batch whose loss stops being finite
// (here: its weights made NaN in its last checkpoint before a resume) stops
// with the reason in its record and is tested on its best weights, while
// the other model trains on exactly as it would have.
func TestDivergedModelStops(t *testing.T) {
	seeds := []int64{1, 2}
	cfg, o, runsA, recsA := killedLCBatch(t, seeds)
	last := filepath.Join(RunDir(o.RunsDir, cfg.Name, 2), lastFile)
	poisonCheckpoint(t, last, "time.emb.weight")

	recs, log := trainResumed(t, cfg, seeds, o)
	requireSameRun(t, RunDir(runsA, cfg.Name, 1), RunDir(o.RunsDir, cfg.Name, 1), recsA[0], recs[0])
	bad := recs[1]
	if bad.Final == nil || !strings.Contains(bad.Final.Diverged, "epoch 2: training loss NaN") {
		t.Fatalf("the poisoned model's record does not say it diverged at epoch 2: %+v\nlog:\n%s", bad.Final, log)
	}
	if len(bad.History) != 2 || bad.Final.BestEpoch > 1 || bad.Final.Accuracy == 0 {
		t.Errorf("the poisoned model: %d epochs, best epoch %d, accuracy %v; want 2 finite epochs, tested on their best", len(bad.History), bad.Final.BestEpoch, bad.Final.Accuracy)
	}
	if !strings.Contains(log, "seed 2: training diverged at epoch 3") || strings.Contains(log, "seed 2 epoch 4/4") {
		t.Errorf("log:\n%s", log)
	}
}

// killedLCBatch trains an M2-Mixer_LC batch of seeds (1, 2, ...) for 4
// epochs uninterrupted, into runsA, and again, into o.RunsDir, killed right
// after seed 2 has written its second epoch.
func killedLCBatch(t *testing.T, seeds []int64) (cfg *Config, o Options, runsA string, recsA []*runrecord.Record) {
	t.Helper()
	cfg, data := lcWithData(t)
	var err error
	o = Options{DataDir: data, RunsDir: t.TempDir(), MaxEpochs: 4, Threads: 1}
	if recsA, err = Train(cfg, seeds, o); err != nil {
		t.Fatal(err)
	}
	runsA = o.RunsDir
	o.RunsDir = t.TempDir()
	o.Log = &killLog{at: "seed 2 epoch 2/4:"}
	trainKilled(t, cfg, seeds, o)
	return cfg, o, runsA, recsA
}

// poisonCheckpoint rewrites one tensor of a checkpoint as NaN.
func poisonCheckpoint(t *testing.T, path, name string) {
	t.Helper()
	s := torch.NewScope()
	defer s.Close()
	ts, meta, err := torch.LoadSafetensors(s, path)
	if err != nil {
		t.Fatal(err)
	}
	if ts[name] == nil {
		t.Fatalf("%s: no tensor %s", path, name)
	}
	ts[name] = s.MulScalar(ts[name], math.NaN())
	if err := torch.SaveSafetensors(path, ts, meta); err != nil {
		t.Fatal(err)
	}
}

// killBetweenWrites trains with a kill inside epoch 3's bookkeeping: after
// last.safetensors and record.json are both written for epoch 3, the file
// named stale is put back as it was after epoch 2, which is what a kill -9
// between the two writes leaves when stale is the one written second. It
// returns the run folder.
func killBetweenWrites(t *testing.T, cfg *Config, o Options, stale string) string {
	t.Helper()
	dir := RunDir(o.RunsDir, cfg.Name, lcSeed)
	path := filepath.Join(dir, stale)
	var after2 []byte
	o.Log = &killLog{at: "epoch 3/4:", onLine: func(line string) {
		if strings.Contains(line, "epoch 2/4:") {
			var err error
			if after2, err = os.ReadFile(path); err != nil {
				panic(err)
			}
		}
	}}
	trainKilled(t, cfg, []int64{lcSeed}, o)
	if after2 == nil {
		t.Fatal("no copy of " + stale + " after epoch 2")
	}
	if err := os.WriteFile(path, after2, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestResumeRecordAheadOfCheckpoint: record.json holds epoch 3, the
// checkpoint is epoch 2's (a kill between the two writes if record.json is
// written first). The run must redo epoch 3 from the checkpoint and finish
// exactly as the uninterrupted run.
func TestResumeRecordAheadOfCheckpoint(t *testing.T) {
	cfg, o, dirA, recA := uninterruptedLC(t)
	o.RunsDir = t.TempDir()
	dirB := killBetweenWrites(t, cfg, o, lastFile)
	recsB, log := trainResumed(t, cfg, []int64{lcSeed}, o)
	if !strings.Contains(log, "resuming at epoch 2\n") {
		t.Errorf("want a resume at epoch 2:\n%s", log)
	}
	requireSameRun(t, dirA, dirB, recA, recsB[0])
}

// TestResumeCheckpointAheadOfRecord: the checkpoint is epoch 3's, record.json
// still holds 2 epochs: a state the write order (record.json, then
// last.safetensors) no longer leaves, but a hand-copied folder might.
// Resuming must not crash: it must reproduce the uninterrupted run or refuse
// with an error.
func TestResumeCheckpointAheadOfRecord(t *testing.T) {
	cfg, o, dirA, recA := uninterruptedLC(t)
	o.RunsDir = t.TempDir()
	dirB := killBetweenWrites(t, cfg, o, runrecord.FileName)
	var buf bytes.Buffer
	o.Log = &buf
	var rec *runrecord.Record
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("resumed run panicked: %v\nlog:\n%s", r, buf.String())
			}
		}()
		rec, err = train1(cfg, lcSeed, o)
	}()
	if err != nil {
		t.Logf("refused, as allowed: %v", err)
		return
	}
	requireSameRun(t, dirA, dirB, recA, rec)
}

// lcWithData returns M2-Mixer_LC's configuration and a data folder of
// synthetic MIMIC-III.
func lcWithData(t *testing.T) (*Config, string) {
	t.Helper()
	data := t.TempDir()
	writeSyntheticMIMIC(t, data)
	cfg, err := LoadConfig("m2mixer_lc")
	if err != nil {
		t.Fatal(err)
	}
	return cfg, data
}

// lcSeed is the seed of uninterruptedLC's run.
const lcSeed = 1

// uninterruptedLC trains M2-Mixer_LC 4 epochs on synthetic data and returns
// the configuration, the options (DataDir set), the run folder and record.
func uninterruptedLC(t *testing.T) (*Config, Options, string, *runrecord.Record) {
	t.Helper()
	cfg, data := lcWithData(t)
	o := Options{DataDir: data, RunsDir: t.TempDir(), MaxEpochs: 4, Threads: 1}
	rec, err := train1(cfg, lcSeed, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.History) != 4 || rec.Final == nil {
		t.Fatalf("uninterrupted run: %d epochs, final %v", len(rec.History), rec.Final)
	}
	if rec.Final.BestEpoch == 0 {
		t.Fatalf("the best epoch is the first: best.safetensors would not show whether training resumed correctly")
	}
	return cfg, o, RunDir(o.RunsDir, cfg.Name, lcSeed), rec
}

// TestResumeAfterKillAtEarlyStop kills a run that early stopping has just
// ended, before its test evaluation and final record (the epoch's line is
// the last thing printed before them). The resumed run must not train on:
// it must finish with the uninterrupted run's history, best epoch and
// test metrics.
func TestResumeAfterKillAtEarlyStop(t *testing.T) {
	data := t.TempDir()
	writeSyntheticMIMIC(t, data)
	base, err := LoadConfig("m2mixer_lc")
	if err != nil {
		t.Fatal(err)
	}
	cfg := *base
	cfg.EarlyStopping, cfg.LR = 2, 0.03 // a short, bumpy run that stops early (at epoch 12)
	const maxEpochs, seed = 16, 2
	o := Options{DataDir: data, RunsDir: t.TempDir(), MaxEpochs: maxEpochs, Threads: 1}
	recA, err := train1(&cfg, seed, o)
	if err != nil {
		t.Fatal(err)
	}
	n := len(recA.History)
	if !recA.Final.StoppedEarly || n >= maxEpochs {
		t.Fatalf("the uninterrupted run did not stop early (%d epochs): the test needs another curve", n)
	}
	dirA := RunDir(o.RunsDir, cfg.Name, seed)

	o.RunsDir = t.TempDir()
	o.Log = &killLog{at: fmt.Sprintf("epoch %d/%d:", n, maxEpochs)}
	trainKilled(t, &cfg, []int64{seed}, o)
	recsB, log := trainResumed(t, &cfg, []int64{seed}, o)
	if strings.Contains(log, fmt.Sprintf("epoch %d/%d:", n+1, maxEpochs)) {
		t.Errorf("the resumed run trained past the epoch where early stopping ended the run:\n%s", log)
	}
	requireSameRun(t, dirA, RunDir(o.RunsDir, cfg.Name, seed), recA, recsB[0])
}

// TestTrainRefusesUncommittedData: a dataset file that differs from what
// its folder's manifest.json records (bytes overwritten, one bit flipped,
// or a newer preparation's file beside an older manifest), or a folder
// without a manifest, is refused before training, naming the file.
func TestTrainRefusesUncommittedData(t *testing.T) {
	cfg, data := lcWithData(t)
	dir := filepath.Join(data, "mimic")
	o := Options{DataDir: data, RunsDir: t.TempDir(), MaxEpochs: 1, Threads: 1}
	if _, err := train1(cfg, 1, o); err != nil {
		t.Fatalf("committed data refused: %v", err)
	}
	orig := map[string][]byte{}
	for _, f := range []string{"train.arrow", "test.arrow", "manifest.json"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		orig[f] = b
	}
	restore := func() {
		for f, b := range orig {
			if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, c := range []struct {
		name, file, want string
		fault            func(path string) error
	}{
		{"8 bytes overwritten", "train.arrow", "train.arrow has sha256", func(p string) error {
			b := append([]byte(nil), orig["train.arrow"]...)
			copy(b[len(b)/2:], "XXXXXXXX")
			return os.WriteFile(p, b, 0o644)
		}},
		{"one bit flipped", "test.arrow", "test.arrow has sha256", func(p string) error {
			b := append([]byte(nil), orig["test.arrow"]...)
			b[len(b)/3] ^= 0x10
			return os.WriteFile(p, b, 0o644)
		}},
		{"another preparation's file", "train.arrow", "a preparation was interrupted", func(p string) error {
			// A valid dataset file of the same schema and other rows.
			b, err := os.ReadFile(filepath.Join(dir, "validation.arrow"))
			if err != nil {
				return err
			}
			return os.WriteFile(p, b, 0o644)
		}},
		{"no manifest", "manifest.json", "not a finished preparation", os.Remove},
	} {
		t.Run(c.name, func(t *testing.T) {
			defer restore()
			if err := c.fault(filepath.Join(dir, c.file)); err != nil {
				t.Fatal(err)
			}
			_, err := train1(cfg, 2, o)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), dir) {
				t.Fatalf("want an error naming %s and saying %q, got %v", dir, c.want, err)
			}
		})
	}
}

// TestResumeRefusesCorruptCheckpoint: a last.safetensors with a few bytes
// flipped is refused on resume, naming the file and how to start again;
// a probe refuses a corrupt encoder checkpoint the same way.
func TestResumeRefusesCorruptCheckpoint(t *testing.T) {
	cfg, o, _, _ := uninterruptedLC(t)
	o.RunsDir = t.TempDir()
	o.Log = &killLog{at: "epoch 2/4:"}
	trainKilled(t, cfg, []int64{lcSeed}, o)
	last := filepath.Join(RunDir(o.RunsDir, cfg.Name, lcSeed), lastFile)
	b, err := os.ReadFile(last)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(b) - 40; i < len(b)-37; i++ {
		b[i] ^= 0x55
	}
	if err := os.WriteFile(last, b, 0o644); err != nil {
		t.Fatal(err)
	}
	o.Log = nil
	_, err = train1(cfg, lcSeed, o)
	if err == nil || !strings.Contains(err.Error(), last) || !strings.Contains(err.Error(), "corrupt") || !strings.Contains(err.Error(), "to train that run again") {
		t.Fatalf("want a refusal naming %s, saying it is corrupt and how to start again; got %v", last, err)
	}
}
