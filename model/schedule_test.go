package model

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// plateauFixture is testdata/plateau_reference.json, written by
// testdata/plateau_reference.py from torch.optim.lr_scheduler.ReduceLROnPlateau.
type plateauFixture struct {
	Torch string `json:"torch"`
	Cases []struct {
		Name      string    `json:"name"`
		Patience  int       `json:"patience"`
		Factor    float64   `json:"factor"`
		Threshold float64   `json:"threshold"`
		LR0       float64   `json:"lr0"`
		Losses    []float64 `json:"losses"`
		LR        []float64 `json:"lr"`         // after each step: the next epoch's lr
		Best      []float64 `json:"best"`       // scheduler.best after each step
		BadEpochs []int     `json:"bad_epochs"` // scheduler.num_bad_epochs after each step
	} `json:"cases"`
}

func readPlateauFixture(t *testing.T, b []byte) *plateauFixture {
	t.Helper()
	var f plateauFixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Cases) == 0 {
		t.Fatal("plateau fixture has no cases")
	}
	return &f
}

// TestPlateauMatchesPyTorch replays the fixture's loss curves through
// Plateau and requires PyTorch's learning rates, best loss and bad-epoch
// count after every step, exactly. Halfway through each curve the scheduler
// goes through JSON, as it does in last.safetensors when a run resumes.
func TestPlateauMatchesPyTorch(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "plateau_reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	f := readPlateauFixture(t, b)
	reductions := 0
	for _, c := range f.Cases {
		if len(c.LR) != len(c.Losses) || len(c.Best) != len(c.Losses) || len(c.BadEpochs) != len(c.Losses) {
			t.Fatalf("%s: malformed fixture case", c.Name)
		}
		p := NewPlateau(c.Patience, c.Factor, c.Threshold)
		lr := c.LR0
		for i, loss := range c.Losses {
			if i == len(c.Losses)/2 {
				js, err := json.Marshal(p)
				if err != nil {
					t.Fatalf("%s patience %d: marshal at step %d: %v", c.Name, c.Patience, i, err)
				}
				p = &Plateau{}
				if err := json.Unmarshal(js, p); err != nil {
					t.Fatal(err)
				}
			}
			next := p.Step(loss, lr)
			if next != c.LR[i] || p.Best != c.Best[i] || p.BadEpochs != c.BadEpochs[i] {
				t.Errorf("%s patience %d, step %d (loss %v, lr %v): lr %v best %v bad %d; PyTorch lr %v best %v bad %d",
					c.Name, c.Patience, i, loss, lr, next, p.Best, p.BadEpochs, c.LR[i], c.Best[i], c.BadEpochs[i])
				break
			}
			if next != lr {
				reductions++
			}
			lr = next
		}
	}
	if reductions < 10 {
		t.Errorf("the fixture reduces the learning rate only %d times: it no longer exercises the scheduler", reductions)
	}
}

// TestPlateauFixtureIsPyTorchs re-runs plateau_reference.py and requires it
// to reproduce the committed fixture (when this machine's python has torch).
func TestPlateauFixtureIsPyTorchs(t *testing.T) {
	if os.Getenv(skipTorchRefEnv) == "1" {
		t.Skipf("%s=1", skipTorchRefEnv)
	}
	if msg, ok := torchPythonAvailable(); !ok {
		t.Skipf("%s has no torch (%s); TestPlateauMatchesPyTorch uses the committed fixture", refPython, msg)
	}
	out := runPython(t, 2*time.Minute, "plateau_reference.py")
	b, err := os.ReadFile(filepath.Join("testdata", "plateau_reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	fresh, committed := readPlateauFixture(t, out), readPlateauFixture(t, b)
	if !reflect.DeepEqual(fresh.Cases, committed.Cases) {
		t.Errorf("plateau_reference.py (torch %s) no longer gives the committed fixture (torch %s); "+
			"regenerate: cd model/testdata && %s plateau_reference.py > plateau_reference.json",
			fresh.Torch, committed.Torch, refPython)
	}
}

// TestEarlyStop checks the strictly-lower rule and the patience count on
// hand-computed curves.
func TestEarlyStop(t *testing.T) {
	type step struct {
		loss           float64
		improved, stop bool
	}
	run := func(name string, patience int, steps []step) {
		e := NewEarlyStop(patience)
		for i, s := range steps {
			imp, stop := e.Step(s.loss)
			if imp != s.improved || stop != s.stop {
				t.Errorf("%s: epoch %d loss %v: improved %v stop %v, want %v %v", name, i, s.loss, imp, stop, s.improved, s.stop)
			}
		}
	}
	run("patience 3", 3, []step{
		{1.0, true, false},
		{0.9, true, false},
		{0.9, false, false},  // a tie is not lower: wait 1
		{0.95, false, false}, // wait 2
		{0.89, true, false},  // lower: wait back to 0
		{0.89, false, false}, // wait 1
		{0.9, false, false},  // wait 2
		{1.0, false, true},   // wait 3 = patience: stop
	})
	run("no min_delta", 3, []step{
		{1.0, true, false},
		{math.Nextafter(1.0, 0), true, false}, // any strictly lower loss counts
		{2.0, false, false},
		{math.Nextafter(1.0, 0), false, false},
		{math.Nextafter(math.Nextafter(1.0, 0), 0), true, false},
	})
	run("patience 1", 1, []step{{0.5, true, false}, {0.5, false, true}})

	// Patience 30 (the paper's): 29 epochs without a lower loss go on, an
	// improvement resets the count, and the 30th epoch without one stops.
	var steps []step
	steps = append(steps, step{1.0, true, false})
	for i := 0; i < 29; i++ {
		steps = append(steps, step{1.0 + float64(i%3)*0.1, false, false})
	}
	steps = append(steps, step{0.99, true, false}) // epoch 30
	for i := 1; i <= 30; i++ {
		steps = append(steps, step{0.99, false, i == 30}) // stops at epoch 60
	}
	run("patience 30", 30, steps)
	if len(steps) != 61 {
		t.Fatalf("curve has %d epochs", len(steps))
	}
}

// TestHeadWeights checks the multi-head loss weights of reproduction.md.
func TestHeadWeights(t *testing.T) {
	cases := []struct {
		config string
		wf     float64
		want   map[string]float64
	}{
		// AV-MNIST: 3 (w_f CE_f + w CE_img + w CE_aud), w_f = 1/3: the plain sum.
		{"m2mixer_s", 1.0 / 3, map[string]float64{"fusion": 1, "image": 1, "audio": 1}},
		{"m2mixer_m", 1.0 / 3, map[string]float64{"fusion": 1, "image": 1, "audio": 1}},
		// MIMIC: no factor 3; LC moves w_f and the others share the rest.
		{"m2mixer_h", 1.0 / 3, map[string]float64{"fusion": 1.0 / 3, "static": 1.0 / 3, "time": 1.0 / 3}},
		{"m2mixer_lc", 0.5, map[string]float64{"fusion": 0.5, "static": 0.25, "time": 0.25}},
		{"m2mixer_lc", 1, map[string]float64{"fusion": 1, "static": 0, "time": 0}},
		// A single head carries the whole loss whatever w_f is.
		{"mmixer", 1.0 / 3, map[string]float64{"fusion": 1}},
	}
	for _, c := range cases {
		cfg, err := LoadConfig(c.config)
		if err != nil {
			t.Fatal(err)
		}
		if c.config != "m2mixer_lc" && cfg.Loss.WFusion != c.wf && len(cfg.Heads) > 1 {
			t.Errorf("%s: w_fusion %v, want %v", c.config, cfg.Loss.WFusion, c.wf)
		}
		got := cfg.HeadWeights(c.wf)
		if len(got) != len(c.want) {
			t.Errorf("%s w_f %v: weights %v, want %v", c.config, c.wf, got, c.want)
			continue
		}
		for h, w := range c.want {
			if g, ok := got[h]; !ok || math.Abs(g-w) > 1e-15 {
				t.Errorf("%s w_f %v: weights %v, want %v", c.config, c.wf, got, c.want)
				break
			}
		}
	}
}

// TestLCScheduleInTraining trains M2-Mixer_LC on a tiny synthetic MIMIC set
// and reads back the fusion weight each epoch used: 1/3, 1/3 + 0.05, ...,
// capped at 1 (from epoch 14), with each epoch's validation loss weighted
// by that epoch's w_f. M2-Mixer_H keeps w_f = 1/3.
func TestLCScheduleInTraining(t *testing.T) {
	data := t.TempDir()
	writeSyntheticMIMIC(t, data)
	for _, c := range []struct {
		config string
		epochs int
		eta    float64
	}{{"m2mixer_lc", 16, 0.05}, {"m2mixer_h", 3, 0}} {
		cfg, err := LoadConfig(c.config)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Loss.LCEta != c.eta {
			t.Fatalf("%s: lc_eta %v, want %v", c.config, cfg.Loss.LCEta, c.eta)
		}
		rec, err := train1(cfg, 3, Options{DataDir: data, RunsDir: t.TempDir(), MaxEpochs: c.epochs, Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(rec.History) != c.epochs {
			t.Fatalf("%s: %d epochs recorded, want %d", c.config, len(rec.History), c.epochs)
		}
		capped := 0
		for i, e := range rec.History {
			want := math.Min(1, 1.0/3+c.eta*float64(i))
			if e.Epoch != i || math.Abs(e.WFusion-want) > 1e-12 {
				t.Errorf("%s epoch %d: w_f %.15g, want %.15g", c.config, e.Epoch, e.WFusion, want)
			}
			if want == 1 {
				capped++
				if e.WFusion != 1 {
					t.Errorf("%s epoch %d: w_f %.17g, want exactly 1", c.config, i, e.WFusion)
				}
			}
			// The scheduler's validation loss is weighted with this epoch's w_f.
			w := cfg.HeadWeights(e.WFusion)
			sum := 0.0
			for _, h := range cfg.Heads {
				sum += w[h] * e.HeadLoss[h]
			}
			if math.Abs(sum-e.ValLoss) > 1e-12*math.Abs(sum) {
				t.Errorf("%s epoch %d: validation loss %v, want sum of w_h * CE_h = %v (w_f %v, head losses %v)",
					c.config, i, e.ValLoss, sum, e.WFusion, e.HeadLoss)
			}
		}
		if c.eta > 0 && capped != 2 {
			t.Errorf("%s: %d epochs at w_f = 1, want 2 (epochs 14 and 15)", c.config, capped)
		}
	}
}
