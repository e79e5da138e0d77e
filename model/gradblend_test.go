package model

import (
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/manifests"
	"github.com/m2mix/m2mix/runrecord"
	"github.com/m2mix/m2mix/torch"
)

// TestBlendWeight checks w = |G / O^2| (G the held-out loss after the
// estimate, O the held-out loss less the trained rows' loss, 1e-4 when
// negative) and the normalisation, on cases computed by hand.
func TestBlendWeight(t *testing.T) {
	for _, c := range []struct {
		train, heldOut, want float64
	}{
		{0.5, 0.7, 0.7 / (0.2 * 0.2)},   // O = 0.2: 17.5
		{1.2, 2.2, 2.2 / 1},             // O = 1: w = G
		{0.9, 0.6, 0.6 / (1e-4 * 1e-4)}, // better on the held-out rows: O = 1e-4, w = 6e7
		{2, 2.5, 2.5 / (0.5 * 0.5)},     // 10
		{0.1, 0.1, math.Inf(1)},         // O = 0 is not negative: MultiBench divides by zero too
	} {
		got := blendWeight(c.train, c.heldOut)
		if math.IsInf(c.want, 1) {
			if !math.IsInf(got, 1) {
				t.Errorf("blendWeight(%v, %v) = %v, want +Inf", c.train, c.heldOut, got)
			}
			continue
		}
		if math.Abs(got-c.want) > 1e-9*c.want {
			t.Errorf("blendWeight(%v, %v) = %v, want %v", c.train, c.heldOut, got, c.want)
		}
	}
	// 17.5, 10 and 2.5 (= 2.5 / 1^2) sum to 30.
	w := normalised(map[string]float64{"fusion": blendWeight(0.5, 0.7), "image": blendWeight(2, 2.5), "audio": blendWeight(1.5, 2.5)})
	want := map[string]float64{"fusion": 17.5 / 30, "image": 10.0 / 30, "audio": 2.5 / 30}
	for h, v := range want {
		if math.Abs(w[h]-v) > 1e-12 {
			t.Errorf("normalised %s = %v, want %v", h, w[h], v)
		}
	}
}

// TestEstimationSplit: the held-out rows are the first 8% of the training
// rows in file order (int(n * 0.08), as MultiBench truncates: 4,400 of
// AV-MNIST's 55,000), the trained rows the others, in order.
func TestEstimationSplit(t *testing.T) {
	for _, c := range []struct{ n, want int64 }{{55000, 4400}, {200, 16}, {50, 4}, {12, 0}, {26221, 2097}} {
		if got := estimationRows(c.n, 0.08); got != c.want {
			t.Errorf("estimationRows(%d, 0.08) = %d, want %d", c.n, got, c.want)
		}
	}
	data := t.TempDir()
	writeSyntheticAVMNIST(t, data, [3]int{50, 8, 8})
	cfg, err := LoadConfig("gradblend")
	if err != nil {
		t.Fatal(err)
	}
	s := torch.NewScope()
	defer s.Close()
	ds, err := LoadDatasets(s, filepath.Join(data, "avmnist"), "avmnist", torch.CPU, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	net, err := NewNetwork(cfg, []uint64{1}, torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	tr, err := newTrainer(net, cfg, ds.Train, Options{Device: torch.CPU})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	g, err := newGradBlend(cfg, net, tr, ds, []int64{1}, Options{Device: torch.CPU}, true, 40)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	labels, _ := ds.Train.Label.Int64s()
	images, _ := ds.Train.X["image"].Float32s()
	held, _ := g.heldOut.Label.Int64s()
	rest, _ := g.rest.Label.Int64s()
	heldImg, _ := g.heldOut.X["image"].Float32s()
	restImg, _ := g.rest.X["image"].Float32s()
	if !reflect.DeepEqual(held, labels[:4]) || !reflect.DeepEqual(rest, labels[4:]) {
		t.Errorf("held-out labels %v, trained %v; want the first 4 of %v and the others", held, rest, labels)
	}
	if !reflect.DeepEqual(heldImg, images[:4*784]) || !reflect.DeepEqual(restImg, images[4*784:]) {
		t.Errorf("held-out and trained images are not the training rows' first 4 and the others")
	}

	// The estimate trains copies: the network is left as it was, each
	// branch is measured on the trained and the held-out rows, and the
	// weights are the normalised |G / O^2| of those measurements.
	before := paramValues(t, net)
	w, _, err := g.estimate(0)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, paramValues(t, net)) {
		t.Errorf("the estimate changed the network it copied")
	}
	raw := map[string]float64{}
	for b, h := range g.branches {
		trained, heldOut, err := g.estimateBranch(b, h, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(trained[0].label, labels[4:]) || !reflect.DeepEqual(heldOut[0].label, labels[:4]) {
			t.Errorf("branch %s measured on %v and %v", h, trained[0].label, heldOut[0].label)
		}
		raw[h] = blendWeight(trained[0].loss[h], heldOut[0].loss[h])
		t.Logf("branch %s: trained rows' loss %.4f, held-out %.4f, raw weight %.4g", h, trained[0].loss[h], heldOut[0].loss[h], raw[h])
	}
	if want := normalised(raw); !reflect.DeepEqual(w[0], want) || len(want) != 3 {
		t.Errorf("estimated weights %v, want %v", w[0], want)
	}
}

// paramValues reads every parameter and buffer of a network.
func paramValues(t *testing.T, n *Network) map[string][]float32 {
	t.Helper()
	out := map[string][]float32{}
	for j, name := range n.Params.Names {
		v, err := n.Params.Tensors[j].Float32s()
		if err != nil {
			t.Fatal(err)
		}
		out[name] = v
	}
	return out
}

// TestGradBlendConfigRefused: configurations Gradient Blending cannot run
// are refused when read, saying why.
func TestGradBlendConfigRefused(t *testing.T) {
	b, err := manifests.Read(filepath.Join(ConfigDir, "gradblend.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ from, to, want string }{
		{`"estimation_share": 0.08`, `"estimation_share": 0`, "estimation_share 0"},
		{`"estimation_share": 0.08`, `"estimation_share": 1`, "estimation_share 1"},
		{`"round_epochs": 10`, `"round_epochs": 0`, "round_epochs and finetune_epochs must be positive"},
		{`"finetune_epochs": 25`, `"finetune_epochs": -1`, "round_epochs and finetune_epochs must be positive"},
		{`"fusion": {"type": "concat"}`, `"fusion": {"type": "mi-matrix", "out": 10}`, "the fusion must be concat"},
		{`"heads": ["fusion", "image", "audio"]`, `"heads": ["image", "fusion", "audio"]`, "want the fusion head first"},
		{`"early_stopping": 0`, `"early_stopping": 3`, "no auxiliary losses, plateau scheduler or early stopping"},
		{`"max_epochs": 300`, `"max_epochs": 5`, "max_epochs 5 is less than one round of 10"},
	} {
		bad := strings.Replace(string(b), c.from, c.to, 1)
		if bad == string(b) {
			t.Fatalf("%q is not in gradblend.json", c.from)
		}
		_, err := ParseConfig("bad.json", []byte(bad))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "bad.json") {
			t.Errorf("%s: error %v, want one naming bad.json and saying %q", c.to, err, c.want)
		}
	}
}

// TestBatchStatsAtTest: MultiBench's Gradient Blending evaluates with its
// encoders in training mode, so BatchNorm normalises with the batch's
// statistics: the faithful configuration's evaluation gives exactly the
// training-mode forward's logits, and predictions other than the intended
// configuration's (running statistics) from the same weights.
func TestBatchStatsAtTest(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	b := syntheticAVMNIST(s, 40, 3, torch.CPU).Batch(s)
	logits := func(name string, mode Mode) ([]float32, []int64) {
		cfg, err := LoadConfig(name)
		if err != nil {
			t.Fatal(err)
		}
		net, err := NewNetwork(cfg, []uint64{9}, torch.CPU)
		if err != nil {
			t.Fatal(err)
		}
		defer net.Close()
		var v []float32
		var pred []int64
		if err := torch.NoGrad(func() {
			l := net.Forward(s, b, mode)[fusionHead]
			v, _ = l.Float32s()
			pred, _ = s.Argmax(l, -1).Int64s()
		}); err != nil {
			t.Fatal(err)
		}
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		return v, pred
	}
	faithful, predF := logits("gradblend", Mode{})
	trainMode, _ := logits("gradblend", Mode{Train: true})
	intended, predI := logits("gradblend_intended", Mode{})
	if !reflect.DeepEqual(faithful, trainMode) {
		t.Errorf("evaluation with batch statistics differs from the training-mode forward")
	}
	maxDiff, differ := 0.0, 0
	for i := range faithful {
		maxDiff = math.Max(maxDiff, math.Abs(float64(faithful[i]-intended[i])))
	}
	for i := range predF {
		if predF[i] != predI[i] {
			differ++
		}
	}
	t.Logf("logits differ by up to %.3g; %d of %d predictions differ", maxDiff, differ, len(predF))
	if maxDiff < 1e-3 || differ == 0 {
		t.Errorf("batch statistics at test change nothing: logits differ by %g, %d predictions differ", maxDiff, differ)
	}
}

// tinyGradBlend is a configuration's Gradient Blending cut to rounds of
// round epochs, finetune head epochs and max epochs.
func tinyGradBlend(t *testing.T, name string, round, finetune, epochs int) *Config {
	t.Helper()
	base, err := LoadConfig(name)
	if err != nil {
		t.Fatal(err)
	}
	cfg := *base
	gb := *base.GradBlend
	gb.RoundEpochs, gb.FinetuneEpochs = round, finetune
	cfg.GradBlend, cfg.MaxEpochs = &gb, epochs
	return &cfg
}

// TestGradBlendEndToEnd runs AV-MNIST's Gradient Blending on 200 training
// rows, 2 rounds of 1 epoch with 2 head fine-tune epochs: the record has a
// line per round with that round's blend weights (positive, summing to 1,
// re-estimated each round) and fine-tune validation losses, the best
// checkpoint is the encoders with the fine-tuned head, last.safetensors
// carries the fine-tuned head, and a rerun is byte-identical.
func TestGradBlendEndToEnd(t *testing.T) {
	data := t.TempDir()
	writeSyntheticAVMNIST(t, data, [3]int{230, 48, 32})
	cfg := tinyGradBlend(t, "gradblend", 1, 2, 2)
	const seed = 11
	run := func() (string, *runrecord.Record, string) {
		var log strings.Builder
		o := Options{DataDir: data, RunsDir: t.TempDir(), LimitTrain: 200, Threads: 1, Log: &log}
		rec, err := train1(cfg, seed, o)
		if err != nil {
			t.Fatal(err)
		}
		return RunDir(o.RunsDir, cfg.Name, seed), rec, log.String()
	}
	dirA, recA, log := run()
	t.Logf("log:\n%s", log)
	if len(recA.History) != 2 || recA.Final == nil || recA.Final.Epochs != 2 || recA.Settings["train_rows"] != int64(200) {
		t.Fatalf("record: %d lines, final %+v, train rows %v; want 2 rounds of 200 rows", len(recA.History), recA.Final, recA.Settings["train_rows"])
	}
	for r, e := range recA.History {
		sum := 0.0
		for _, h := range cfg.Heads {
			w := e.BlendWeights[h]
			if !(w > 0 && w <= 1) {
				t.Errorf("round %d: weight of %s %v", r, h, w)
			}
			sum += w
		}
		if math.Abs(sum-1) > 1e-12 || len(e.BlendWeights) != 3 || e.WFusion != e.BlendWeights[fusionHead] {
			t.Errorf("round %d: blend weights %v (sum %v), w_f %v", r, e.BlendWeights, sum, e.WFusion)
		}
		if e.Epoch != r || len(e.FinetuneValLoss) != 2 || e.ValLoss != e.FinetuneValLoss[1] || e.HeadLoss[fusionHead] != e.ValLoss {
			t.Errorf("round %d: epoch %d, fine-tune losses %v, validation loss %v (%v)", r, e.Epoch, e.FinetuneValLoss, e.ValLoss, e.HeadLoss)
		}
	}
	if reflect.DeepEqual(recA.History[0].BlendWeights, recA.History[1].BlendWeights) {
		t.Errorf("the weights were not re-estimated: %v both rounds", recA.History[0].BlendWeights)
	}
	if recA.Settings["eval_batch"] != 40 {
		t.Errorf("evaluation batch %v: with batch statistics at test it must be the training batch (40)", recA.Settings["eval_batch"])
	}
	s := torch.NewScope()
	defer s.Close()
	best, bestMeta, err := torch.LoadSafetensors(s, filepath.Join(dirA, BestFile))
	if err != nil {
		t.Fatal(err)
	}
	if bestMeta["config"] != "gradblend" {
		t.Errorf("best.safetensors says configuration %q", bestMeta["config"])
	}
	last, _, err := torch.LoadSafetensors(s, filepath.Join(dirA, lastFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"img.convs.0.weight", "aud.bns.5.running_var", "hf.fc.weight", "hf.fc2.bias"} {
		if best[name] == nil {
			t.Errorf("best.safetensors lacks %s", name)
		}
	}
	for _, name := range []string{"hi.fc.weight", "ha.fc2.bias"} {
		if best[name] != nil {
			t.Errorf("best.safetensors has the uni-modal head's %s (the tested model is the encoders and the fine-tuned head)", name)
		}
		if last[name] == nil {
			t.Errorf("last.safetensors lacks %s", name)
		}
	}
	for _, name := range []string{"finetune.hf.fc.weight", "finetune.sgd.step", "sgd.step"} {
		if last[name] == nil {
			t.Errorf("last.safetensors lacks %s", name)
		}
	}
	// The tested head is the fine-tuned one, not the jointly trained one.
	if equalTensors(t, best["hf.fc.weight"], last["hf.fc.weight"]) || !equalTensors(t, best["img.convs.0.weight"], last["img.convs.0.weight"]) && recA.Final.BestEpoch == 1 {
		t.Errorf("best.safetensors' fusion head is the jointly trained one, or its encoders are not the network's")
	}

	dirB, recB, _ := run()
	requireSameRun(t, dirA, dirB, recA, recB)
}

func equalTensors(t *testing.T, a, b *torch.Tensor) bool {
	t.Helper()
	va, err := a.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	vb, err := b.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(va, vb)
}

// TestGradBlendResumeAfterKill kills a MIMIC-III Gradient Blending run in
// the middle of its third round (after the round's estimates, before its
// blended epochs): the resumed run repeats that round from its start and
// ends byte for byte as the uninterrupted run (records less times, best
// and last checkpoints).
func TestGradBlendResumeAfterKill(t *testing.T) {
	data := t.TempDir()
	writeSyntheticMIMIC(t, data)
	cfg := tinyGradBlend(t, "mimic_gradblend", 2, 2, 6)
	const seed = 7
	o := Options{DataDir: data, RunsDir: t.TempDir(), Threads: 1}
	recA, err := train1(cfg, seed, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(recA.History) != 3 || recA.Final.BestEpoch == 1 {
		t.Fatalf("uninterrupted: %d rounds, best epoch %d (the test needs a best after the first round)", len(recA.History), recA.Final.BestEpoch)
	}
	runsB := t.TempDir()
	ob := o
	ob.RunsDir, ob.Log = runsB, &killLog{at: "round 3: blend weights"}
	trainKilled(t, cfg, []int64{seed}, ob)
	dirB := RunDir(runsB, cfg.Name, seed)
	var mid runrecord.Record
	if err := artifact.ReadJSON(filepath.Join(dirB, runrecord.FileName), &mid); err != nil {
		t.Fatal(err)
	}
	if len(mid.History) != 2 || mid.Final != nil {
		t.Fatalf("after the kill: %d rounds recorded, final %v; want 2 and none", len(mid.History), mid.Final)
	}
	ob.Log = nil
	recsB, log := trainResumed(t, cfg, []int64{seed}, ob)
	if !strings.Contains(log, "resuming at epoch 4\n") || strings.Contains(log, "round 2/3") || !strings.Contains(log, "round 3/3") {
		t.Errorf("resumed run's log does not show a resume at epoch 4 running round 3 only:\n%s", log)
	}
	requireSameRun(t, RunDir(o.RunsDir, cfg.Name, seed), dirB, recA, recsB[0])
}

// TestGradBlendSeedBatchEqualsOneByOne trains K = 3 seeds of Gradient
// Blending in lockstep (every sub-step stacked) and one by one, on
// MIMIC-III and on a small AV-MNIST, and requires the same rounds, best
// epochs, blend weights and validation losses (relative 1e-4 and 1e-5) and
// best weights within 1e-5.
func TestGradBlendSeedBatchEqualsOneByOne(t *testing.T) {
	for _, c := range []struct {
		config string
		limit  int
	}{{"mimic_gradblend", 0}, {"gradblend", 80}} {
		t.Run(c.config, func(t *testing.T) {
			data := t.TempDir()
			writeSyntheticMIMIC(t, data)
			writeSyntheticAVMNIST(t, data, [3]int{80, 40, 40})
			cfg := tinyGradBlend(t, c.config, 1, 2, 2)
			seeds := []int64{3, 4, 5}
			if c.limit > 0 {
				seeds = seeds[:2]
			}
			base := Options{DataDir: data, Threads: 1, LimitTrain: c.limit}
			aloneRuns := t.TempDir()
			alone := map[int64]*runrecord.Record{}
			for _, seed := range seeds {
				o := base
				o.RunsDir = aloneRuns
				rec, err := train1(cfg, seed, o)
				if err != nil {
					t.Fatal(err)
				}
				alone[seed] = rec
			}
			o := base
			o.RunsDir = t.TempDir()
			batched, err := Train(cfg, seeds, o)
			if err != nil {
				t.Fatal(err)
			}
			rel := func(a, b float64) float64 { return math.Abs(a-b) / math.Abs(a) }
			for i, seed := range seeds {
				a, b := alone[seed], batched[i]
				if len(a.History) != len(b.History) || a.Final.BestEpoch != b.Final.BestEpoch {
					t.Fatalf("seed %d: alone %d rounds (best %d), batched %d (best %d)", seed, len(a.History), a.Final.BestEpoch, len(b.History), b.Final.BestEpoch)
				}
				for r := range a.History {
					for h, w := range a.History[r].BlendWeights {
						if d := rel(w, b.History[r].BlendWeights[h]); d > 1e-4 {
							t.Errorf("seed %d round %d: weight of %s %v alone, %v batched", seed, r, h, w, b.History[r].BlendWeights[h])
						}
					}
					for f, v := range a.History[r].FinetuneValLoss {
						if d := rel(v, b.History[r].FinetuneValLoss[f]); d > 1e-5 {
							t.Errorf("seed %d round %d fine-tune epoch %d: validation loss %v alone, %v batched", seed, r, f, v, b.History[r].FinetuneValLoss[f])
						}
					}
				}
				t.Logf("seed %d: weights %v then %v, best epoch %d", seed, a.History[0].BlendWeights, a.History[1].BlendWeights, a.Final.BestEpoch)
				compareCheckpoints(t, filepath.Join(RunDir(aloneRuns, cfg.Name, seed), BestFile), filepath.Join(RunDir(o.RunsDir, cfg.Name, seed), BestFile))
			}
		})
	}
}

// TestGradBlendSeedBatchResumeAfterKill kills a K = 3 MIMIC-III batch
// between two seeds' writes of round 2: on resume the seeds that finished
// it wait, unchanged, while the third repeats it, and every seed ends byte
// for byte as in the uninterrupted batch.
func TestGradBlendSeedBatchResumeAfterKill(t *testing.T) {
	data := t.TempDir()
	writeSyntheticMIMIC(t, data)
	cfg := tinyGradBlend(t, "mimic_gradblend", 1, 1, 3)
	seeds := []int64{1, 2, 3}
	o := Options{DataDir: data, RunsDir: t.TempDir(), Threads: 1}
	recsA, err := Train(cfg, seeds, o)
	if err != nil {
		t.Fatal(err)
	}
	ob := o
	ob.RunsDir, ob.Log = t.TempDir(), &killLog{at: "seed 2 round 2/3"}
	trainKilled(t, cfg, seeds, ob)
	for _, seed := range seeds {
		var mid runrecord.Record
		if err := artifact.ReadJSON(filepath.Join(RunDir(ob.RunsDir, cfg.Name, seed), runrecord.FileName), &mid); err != nil {
			t.Fatal(err)
		}
		if want := map[int64]int{1: 2, 2: 2, 3: 1}[seed]; len(mid.History) != want {
			t.Fatalf("after the kill seed %d has %d rounds recorded, want %d", seed, len(mid.History), want)
		}
	}
	ob.Log = nil
	recsB, log := trainResumed(t, cfg, seeds, ob)
	for _, want := range []string{"seed 1: resuming at epoch 2\n", "seed 3: resuming at epoch 1\n", "seed 3 round 2/3", "seed 1 round 3/3"} {
		if !strings.Contains(log, want) {
			t.Errorf("resumed batch's log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "seed 1 round 2/3") {
		t.Errorf("seed 1 trained round 2 twice:\n%s", log)
	}
	for i, seed := range seeds {
		requireSameRun(t, RunDir(o.RunsDir, cfg.Name, seed), RunDir(ob.RunsDir, cfg.Name, seed), recsA[i], recsB[i])
	}
}

// TestGradBlendAgainstTorch runs Gradient Blending (2 rounds of 2 epochs,
// 3 fine-tune epochs, rows in file order) on MIMIC-III and on a small
// AV-MNIST (LeNet's BatchNorm on batch statistics when measuring and
// validating, MultiBench's quirk) here and in PyTorch
// (testdata/gradblend_reference.py, written from baselines.md §2.9) from
// the same initial weights and data: each round's blend weights, the
// fine-tune validation losses and the best model's weights (BatchNorm's
// running statistics included) must agree.
func TestGradBlendAgainstTorch(t *testing.T) {
	requireTorchPython(t)
	for _, c := range []struct {
		config  string
		limit   int
		tensors int     // in best.safetensors: the encoders' and the fine-tuned head's
		tol     float64 // relative, per tensor of the best weights
	}{
		{"mimic_gradblend", 0, 8 + 4, 1e-5},
		// The audio LeNet's first convolution sums 25 x 12,544 products of
		// unscaled bytes (0..255): float32 rounding, in another order in
		// each library, reaches 2e-5 of its weights after 21 steps.
		{"gradblend", 100, 4*4 + 4 + 6*5 + 4, 1e-4},
	} {
		t.Run(c.config, func(t *testing.T) {
			data := t.TempDir()
			writeSyntheticMIMIC(t, data)
			writeSyntheticAVMNIST(t, data, [3]int{100, 40, 8})
			cfg := tinyGradBlend(t, c.config, 2, 3, 4)
			const seed = 5
			noShuffle := false
			o := Options{DataDir: data, RunsDir: t.TempDir(), Threads: 1, Shuffle: &noShuffle, LimitTrain: c.limit}
			rec, err := train1(cfg, seed, o)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			net, err := NewNetwork(cfg, []uint64{seed}, torch.CPU)
			if err != nil {
				t.Fatal(err)
			}
			defer net.Close()
			if err := saveModel(filepath.Join(dir, "init.safetensors"), net, 0, nil, nil); err != nil {
				t.Fatal(err)
			}
			s := torch.NewScope()
			defer s.Close()
			ds, err := LoadDatasets(s, filepath.Join(data, cfg.Dataset), cfg.Dataset, torch.CPU, c.limit, 0)
			if err != nil {
				t.Fatal(err)
			}
			var modalities []string
			for _, m := range net.Modalities {
				modalities = append(modalities, m.Name)
			}
			tensors := map[string]*torch.Tensor{}
			for name, sp := range map[string]*Split{"train": ds.Train, "val": ds.Validation} {
				for _, m := range modalities {
					tensors[name+"_"+m] = sp.X[m]
				}
				tensors[name+"_label"] = sp.Label
			}
			if err := torch.SaveSafetensors(filepath.Join(dir, "data.safetensors"), tensors, nil); err != nil {
				t.Fatal(err)
			}
			job := map[string]any{
				"dataset": cfg.Dataset, "modalities": modalities,
				"init": filepath.Join(dir, "init.safetensors"), "data": filepath.Join(dir, "data.safetensors"), "out": filepath.Join(dir, "torch.safetensors"),
				"rounds": 2, "round_epochs": cfg.GradBlend.RoundEpochs, "finetune_epochs": cfg.GradBlend.FinetuneEpochs,
				"estimation_share": cfg.GradBlend.EstimationShare, "lr": cfg.LR, "batch": cfg.BatchSize, "eval_batch": rec.Settings["eval_batch"],
			}
			if err := artifact.WriteJSON(filepath.Join(dir, "job.json"), job); err != nil {
				t.Fatal(err)
			}
			runPython(t, 5*time.Minute, "gradblend_reference.py", filepath.Join(dir, "job.json"))
			ref, _, err := torch.LoadSafetensors(s, filepath.Join(dir, "torch.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			get := func(key string) []float64 {
				v, ok := ref[key]
				if !ok {
					t.Fatalf("the PyTorch output has no %s", key)
				}
				f, err := v.Float64s()
				if err != nil {
					t.Fatal(err)
				}
				return f
			}
			for r, e := range rec.History {
				want := get(fmt.Sprintf("weights.%d", r))
				got := []float64{e.BlendWeights[fusionHead], e.BlendWeights[modalities[0]], e.BlendWeights[modalities[1]]}
				for j := range want {
					// A weight whose O is small amplifies rounding: 1e-4 relative, or 1e-6 absolute.
					if d := math.Abs(got[j] - want[j]); d > 1e-6+1e-4*want[j] {
						t.Errorf("round %d: blend weights %v, PyTorch %v", r, got, want)
						break
					}
				}
				wantLoss := get(fmt.Sprintf("finetune_val_loss.%d", r))
				for j, v := range wantLoss {
					if d := math.Abs(e.FinetuneValLoss[j]-v) / v; d > 1e-5 {
						t.Errorf("round %d fine-tune epoch %d: validation loss %v, PyTorch %v", r, j, e.FinetuneValLoss[j], v)
					}
				}
				t.Logf("round %d: weights %v (PyTorch %v), fine-tune validation losses %v (PyTorch %v)", r, got, want, e.FinetuneValLoss, wantLoss)
			}
			best, _, err := torch.LoadSafetensors(s, filepath.Join(RunDir(o.RunsDir, cfg.Name, seed), BestFile))
			if err != nil {
				t.Fatal(err)
			}
			worst := 0.0
			for name, v := range best {
				ours, _ := v.Float32s()
				theirs, err := ref["best."+name].Float32s()
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				rel, maxAbs := relErr(ours, theirs)
				if strings.Contains(name, ".bns.") && strings.HasSuffix(name, ".bias") && maxAbs < 1e-5 {
					continue // small, and its rounding relatively large (see compareCheckpoints)
				}
				worst = math.Max(worst, rel)
				if !(rel <= c.tol) {
					t.Errorf("best %s: relative error %.3g > %g (max abs %.3g)", name, rel, c.tol, maxAbs)
				}
			}
			t.Logf("best epoch %d; best weights: worst relative error %.2g over %d tensors", rec.Final.BestEpoch, worst, len(best))
			if len(best) != c.tensors {
				t.Errorf("best.safetensors has %d tensors, want %d (the encoders' and the fine-tuned head's)", len(best), c.tensors)
			}
		})
	}
}
