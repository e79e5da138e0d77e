package model

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/dataset"
	"github.com/m2mix/m2mix/runrecord"
	"github.com/m2mix/m2mix/torch"
)

// writeSyntheticAVMNIST writes small AV-MNIST-shaped datasets under dir/avmnist.
func writeSyntheticAVMNIST(t *testing.T, dir string, rows [3]int) {
	t.Helper()
	r := rand.New(rand.NewPCG(5, 6))
	for i, f := range SplitFiles {
		n := rows[i]
		img := make([]float32, n*784)
		aud := make([]uint8, n*112*112)
		lab := make([]int64, n)
		for j := range lab {
			lab[j] = int64(r.IntN(10))
			// A little signal so that training has something to find.
			for p := 0; p < 784; p++ {
				img[j*784+p] = float32(r.NormFloat64()) + float32(lab[j])*0.3
			}
		}
		for j := range aud {
			aud[j] = uint8(r.IntN(256))
		}
		cols := []dataset.Column{{Name: "label", Int64: lab}, {Name: "image", Width: 784, Float32: img}, {Name: "audio", Width: 112 * 112, Uint8: aud}}
		if err := dataset.Write(filepath.Join(dir, "avmnist", f), cols, nil); err != nil {
			t.Fatal(err)
		}
	}
	writeManifest(t, filepath.Join(dir, "avmnist"))
}

// writeManifest commits a test's dataset folder as a preparation does: a
// manifest.json with each split file's sha256.
func writeManifest(t *testing.T, dir string) {
	t.Helper()
	m := artifact.Manifest{Stage: "test", Inputs: map[string]string{}}
	if err := m.HashOutputs(dir, SplitFiles[:]...); err != nil {
		t.Fatal(err)
	}
	if err := artifact.WriteJSON(filepath.Join(dir, "manifest.json"), m); err != nil {
		t.Fatal(err)
	}
}

// TestSeedBatchEqualsOneByOne trains K = 3 seeds in lockstep and the same
// seeds one by one (K = 1), with a hair-trigger scheduler and early
// stopping after 2 epochs so that learning-rate and stopping decisions
// happen within a few epochs, and requires the same decisions and best
// weights equal within 1e-5 (relative, per tensor). M2-Mixer_LC (MIMIC-III)
// shuffles its training rows by configuration, so there each model of the
// batch reads its own order; M2-Mixer_S (AV-MNIST) reads the data's order,
// and once more shuffled by the override, through the per-model patch
// embedding.
func TestSeedBatchEqualsOneByOne(t *testing.T) {
	shuffled := true
	for _, c := range []struct {
		name, config string
		shuffle      *bool
	}{{"m2mixer_s", "m2mixer_s", nil}, {"m2mixer_s_shuffled", "m2mixer_s", &shuffled}, {"m2mixer_lc", "m2mixer_lc", nil}} {
		name := c.config
		t.Run(c.name, func(t *testing.T) {
			data := t.TempDir()
			writeSyntheticAVMNIST(t, data, [3]int{96, 48, 32})
			writeSyntheticMIMIC(t, data)
			cfg, err := LoadConfig(name)
			if err != nil {
				t.Fatal(err)
			}
			// Decisions within a few epochs: any epoch that does not halve the
			// loss cuts the learning rate, and two epochs without a new best stop.
			cfg.Plateau.Patience, cfg.Plateau.Threshold = 0, 0.5
			cfg.EarlyStopping = 2
			if cfg.Dataset == "mimic" {
				// A bumpier run, where seed 4 stops early and seeds 3 and 5 train on.
				cfg.LR, cfg.Plateau.Threshold = 0.03, 0.05
			}
			seeds := []int64{3, 4, 5}
			base := Options{DataDir: data, MaxEpochs: 9, Threads: 1, Shuffle: c.shuffle}

			alone := map[int64]*runrecord.Record{}
			aloneRuns := t.TempDir()
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
			wantShuffle := cfg.Shuffle || c.shuffle != nil
			if got := batched[0].Settings["shuffle"]; got != wantShuffle || alone[seeds[0]].Settings["shuffle"] != wantShuffle {
				t.Fatalf("records say shuffle %v (batch) and %v (alone), want %v", got, alone[seeds[0]].Settings["shuffle"], wantShuffle)
			}
			decisions := 0
			for i, seed := range seeds {
				a, b := alone[seed], batched[i]
				if len(a.History) != len(b.History) || a.Final.StoppedEarly != b.Final.StoppedEarly || a.Final.BestEpoch != b.Final.BestEpoch {
					t.Fatalf("seed %d: alone %d epochs (stopped %v, best %d), batched %d (stopped %v, best %d)", seed,
						len(a.History), a.Final.StoppedEarly, a.Final.BestEpoch, len(b.History), b.Final.StoppedEarly, b.Final.BestEpoch)
				}
				for e := range a.History {
					if a.History[e].LR != b.History[e].LR || a.History[e].WFusion != b.History[e].WFusion {
						t.Fatalf("seed %d epoch %d: lr %v / %v, w_f %v / %v", seed, e, a.History[e].LR, b.History[e].LR, a.History[e].WFusion, b.History[e].WFusion)
					}
					if e > 0 && a.History[e].LR != a.History[e-1].LR {
						decisions++
					}
					if rel := math.Abs(a.History[e].ValLoss-b.History[e].ValLoss) / math.Abs(a.History[e].ValLoss); rel > 1e-5 {
						t.Errorf("seed %d epoch %d: validation loss %v alone, %v batched", seed, e, a.History[e].ValLoss, b.History[e].ValLoss)
					}
				}
				if a.Final.StoppedEarly {
					decisions++
				}
				t.Logf("seed %d: %d epochs, stopped early %v, lr %v", seed, len(a.History), a.Final.StoppedEarly, lrs(a))
				compareCheckpoints(t, filepath.Join(RunDir(aloneRuns, name, seed), BestFile), filepath.Join(RunDir(o.RunsDir, name, seed), BestFile))
			}
			if name == "m2mixer_lc" && len(alone[3].History) == len(alone[4].History) && len(alone[4].History) == len(alone[5].History) {
				t.Errorf("every seed ran the same number of epochs: a model stopping while others train on is not exercised")
			}
			if decisions == 0 {
				t.Fatal("no learning-rate change or early stop happened: the test checks nothing about decisions")
			}
		})
	}
}

// compareCheckpoints requires every tensor of two checkpoints to agree within
// 1e-5 relative (||a-b|| / ||a||). The token-mixing output biases
// (".tok.3.bias") are the exception: every LayerNorm after them removes a
// per-token constant, so their true gradient is zero and what Adam sees is
// rounding noise, which it scales up to a step of lr; they are checked to
// stay within lr x epochs x batches of each other instead; and LeNet's
// BatchNorm biases within 1e-5 absolute.
func compareCheckpoints(t *testing.T, pathA, pathB string) {
	t.Helper()
	s := torch.NewScope()
	defer s.Close()
	a, b := loadCheckpoints(t, s, pathA, pathB)
	if len(a) != len(b) {
		t.Fatalf("%d tensors vs %d", len(a), len(b))
	}
	for name, ta := range a {
		va, _ := ta.Float64s()
		vb, err := b[name].Float64s()
		if err != nil || len(va) != len(vb) {
			t.Fatalf("%s: %v (%d vs %d values)", name, err, len(va), len(vb))
		}
		var diff, norm, maxAbs float64
		for i := range va {
			d := va[i] - vb[i]
			diff += d * d
			norm += va[i] * va[i]
			maxAbs = math.Max(maxAbs, math.Abs(d))
		}
		if strings.HasSuffix(name, ".tok.3.bias") {
			if maxAbs > 1 {
				t.Errorf("%s: moved apart by %g", name, maxAbs)
			}
			continue
		}
		if strings.Contains(name, ".bns.") && strings.HasSuffix(name, ".bias") && maxAbs < 1e-5 {
			// A LeNet BatchNorm bias's gradient sums the batch's and the
			// pixels' mostly cancelling terms: after a few SGD steps from 0
			// it is small (1e-4) and its rounding, relative to it, large.
			continue
		}
		if rel := math.Sqrt(diff / norm); rel > 1e-5 {
			t.Errorf("%s: relative difference %.3g (max abs %.3g)", name, rel, maxAbs)
		}
	}
}

func lrs(r *runrecord.Record) []float64 {
	var out []float64
	for _, e := range r.History {
		out = append(out, e.LR)
	}
	return out
}

// TestStackedLayerNormForms: the broadcast affine (used on GPUs) equals the
// per-model fused kernel (used on the CPU) up to rounding, and each model's
// slice equals a lone LayerNorm with that model's affine.
func TestStackedLayerNormForms(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	r := rand.New(rand.NewPCG(3, 4))
	vals := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		return v
	}
	const k, b, tok, d = 3, 5, 4, 8
	w, bias := s.From(vals(k*d), k, d), s.From(vals(k*d), k, d)
	x := s.From(vals(k*b*tok*d), k, b, tok, d)
	fused, _ := LayerNorm{W: w, B: bias}.Forward(s, x).Float32s()
	broad, _ := LayerNorm{W: w, B: bias, broadcast: true}.Forward(s, x).Float32s()
	lone, _ := s.LayerNorm(s.Narrow(x, 0, 1, 1), 1, s.Reshape(s.Narrow(w, 0, 1, 1), d), s.Reshape(s.Narrow(bias, 0, 1, 1), d), 1e-5).Float32s()
	if s.Err() != nil {
		t.Fatal(s.Err())
	}
	for i := range fused {
		if math.Abs(float64(fused[i]-broad[i])) > 1e-5 {
			t.Fatalf("element %d: fused %v, broadcast %v", i, fused[i], broad[i])
		}
	}
	for i := range lone {
		if fused[b*tok*d+i] != lone[i] {
			t.Fatalf("model 1 element %d: stacked %v, alone %v", i, fused[b*tok*d+i], lone[i])
		}
	}
}

// TestProbeSeedBatch: a probe's seed batch starts each model from its own
// seed's trained encoder, keeps the encoders frozen, and matches the same
// probes trained one by one (decisions, validation losses within 1e-5, best
// weights within 1e-5); its records name each seed's encoder checkpoint.
func TestProbeSeedBatch(t *testing.T) {
	data := t.TempDir()
	writeSyntheticAVMNIST(t, data, [3]int{96, 48, 32})
	enc, err := LoadConfig("mmixer")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig("probe_image")
	if err != nil {
		t.Fatal(err)
	}
	cfg.EarlyStopping = 2
	seeds := []int64{3, 4}
	aloneRuns, batchRuns := t.TempDir(), t.TempDir()
	for _, seed := range seeds {
		if _, err := train1(enc, seed, Options{DataDir: data, RunsDir: aloneRuns, MaxEpochs: 1, Threads: 1}); err != nil {
			t.Fatal(err)
		}
		src := filepath.Join(RunDir(aloneRuns, enc.Name, seed), BestFile)
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(RunDir(batchRuns, enc.Name, seed), BestFile)
		os.MkdirAll(filepath.Dir(dst), 0o755)
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	base := Options{DataDir: data, MaxEpochs: 4, Threads: 1}
	o := base
	o.RunsDir = batchRuns
	batched, err := Train(cfg, seeds, o)
	if err != nil {
		t.Fatal(err)
	}
	for i, seed := range seeds {
		o := base
		o.RunsDir = aloneRuns
		a, err := train1(cfg, seed, o)
		if err != nil {
			t.Fatal(err)
		}
		b := batched[i]
		if len(a.History) != len(b.History) || a.Final.BestEpoch != b.Final.BestEpoch {
			t.Fatalf("seed %d: alone %d epochs (best %d), batched %d (best %d)", seed, len(a.History), a.Final.BestEpoch, len(b.History), b.Final.BestEpoch)
		}
		for e := range a.History {
			if rel := math.Abs(a.History[e].ValLoss-b.History[e].ValLoss) / math.Abs(a.History[e].ValLoss); rel > 1e-5 {
				t.Errorf("seed %d epoch %d: validation loss %v alone, %v batched", seed, e, a.History[e].ValLoss, b.History[e].ValLoss)
			}
		}
		if b.Inputs[enc.Name+"/"+BestFile] == "" || b.Inputs[enc.Name+"/"+BestFile] != a.Inputs[enc.Name+"/"+BestFile] {
			t.Fatalf("seed %d: encoder checksum %q batched, %q alone", seed, b.Inputs[enc.Name+"/"+BestFile], a.Inputs[enc.Name+"/"+BestFile])
		}
		compareCheckpoints(t, filepath.Join(RunDir(aloneRuns, cfg.Name, seed), BestFile), filepath.Join(RunDir(batchRuns, cfg.Name, seed), BestFile))
		// The encoder did not move: the probe's best weights carry the encoder's own.
		compareEncoder(t, filepath.Join(RunDir(batchRuns, enc.Name, seed), BestFile), filepath.Join(RunDir(batchRuns, cfg.Name, seed), BestFile), cfg.encoderPrefix())
	}
}

// compareEncoder requires the tensors under prefix to be bit-identical in two checkpoints.
func compareEncoder(t *testing.T, pathA, pathB, prefix string) {
	t.Helper()
	s := torch.NewScope()
	defer s.Close()
	a, b := loadCheckpoints(t, s, pathA, pathB)
	n := 0
	for name, tb := range b {
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		va, _ := a[name].Float32s()
		vb, _ := tb.Float32s()
		for j := range va {
			if va[j] != vb[j] {
				t.Fatalf("encoder tensor %s moved (element %d: %v -> %v)", name, j, va[j], vb[j])
			}
		}
		n++
	}
	if n == 0 {
		t.Fatalf("no %q tensors in %s", prefix, pathB)
	}
}

// loadCheckpoints reads two checkpoints into s.
func loadCheckpoints(t *testing.T, s *torch.Scope, pathA, pathB string) (a, b map[string]*torch.Tensor) {
	t.Helper()
	a, _, err := torch.LoadSafetensors(s, pathA)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err = torch.LoadSafetensors(s, pathB)
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}
