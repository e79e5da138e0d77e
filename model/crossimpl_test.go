package model

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/m2mix/m2mix/torch"
)

// The cross-implementation test runs our networks and PyTorch's
// (testdata/torch_reference.py, written from reproduction.md) from the same
// initial weights (our checkpoint writer's best.safetensors format) on the
// same batch, and compares per tensor the eval-mode logits, the loss, the
// gradients and the weights after one Adam step. Both sides run with
// dropout off, also for the step: each implementation draws its own
// dropout masks, and masks are not what is compared.

// refPython is the interpreter with Debian's python3-torch; a python3 earlier
// on PATH (a virtual environment) may lack it.
const refPython = "/usr/bin/python3"

// skipTorchRefEnv, set to 1, skips the tests that need PyTorch.
const skipTorchRefEnv = "M2MIX_SKIP_TORCH_REF"

// crossTol is the largest norm-wise relative error ||ours-ref||/||ref||
// accepted per tensor.
const crossTol = 1e-5

// requireTorchPython fails the test when refPython cannot import torch and
// numpy, unless skipTorchRefEnv=1.
func requireTorchPython(t *testing.T) {
	t.Helper()
	if os.Getenv(skipTorchRefEnv) == "1" {
		t.Skipf("%s=1: skipping the comparison with PyTorch", skipTorchRefEnv)
	}
	if msg, ok := torchPythonAvailable(); !ok {
		t.Fatalf("%s cannot import torch and numpy (%s): run `make deps` (it installs python3-torch and python3-numpy), "+
			"or set %s=1 to skip the PyTorch comparisons", refPython, msg, skipTorchRefEnv)
	}
}

func torchPythonAvailable() (string, bool) {
	out, err := exec.Command(refPython, "-c", "import torch, numpy").CombinedOutput()
	if err != nil {
		return fmt.Sprintf("%v: %s", err, lastLine(string(out))), false
	}
	return "", true
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndexByte(s, '\n')+1:]
}

// runPython runs a script from testdata with args and returns its output.
func runPython(t *testing.T, timeout time.Duration, script string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, refPython, append([]string{filepath.Join("testdata", script)}, args...)...)
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", refPython, script, err, stderr.String())
	}
	return out
}

type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.b = append(l.b, p...)
	if len(l.b) > 1<<16 {
		l.b = l.b[len(l.b)-1<<16:]
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return string(l.b) }

// crossCase is one configuration's side of the comparison.
type crossCase struct {
	cfg     *Config
	dir     string
	names   []string             // parameter names, creation order
	before  map[string][]float32 // initial weights
	grads   map[string][]float32 // gradients of the loss (eval mode)
	after   map[string][]float32 // after our Adam step
	logits  map[string][]float32 // eval-mode logits per head
	loss    float64
	batchSz int64
}

// prepareCrossCase builds the network, writes its initial weights and a
// fixed batch for the Python side, and records our logits and one Adam step.
func prepareCrossCase(t *testing.T, name string, batch int64) *crossCase {
	t.Helper()
	cfg, err := LoadConfig(name)
	if err != nil {
		t.Fatal(err)
	}
	c := &crossCase{cfg: cfg, dir: filepath.Join(t.TempDir(), name), batchSz: batch,
		before: map[string][]float32{}, grads: map[string][]float32{}, after: map[string][]float32{}, logits: map[string][]float32{}}
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The K = 1 network: what the training loop trains for one seed.
	net, err := NewNetwork(cfg, []uint64{11}, torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	c.names = slices.Clone(net.Params.Names)
	if err := saveModel(filepath.Join(c.dir, "init.safetensors"), net, 0, nil, nil); err != nil {
		t.Fatal(err)
	}
	for i, n := range net.Params.Names {
		v, err := net.Params.Tensors[i].Float32s()
		if err != nil {
			t.Fatal(err)
		}
		c.before[n] = v
	}

	s := torch.NewScope()
	defer s.Close()
	b, inputs := randomBatch(t, s, cfg, rand.New(rand.NewPCG(2024, uint64(len(name)))), batch)
	if err := torch.SaveSafetensors(filepath.Join(c.dir, "inputs.safetensors"), inputs, nil); err != nil {
		t.Fatal(err)
	}

	// Logits in eval mode, without autograd (as evaluate does).
	if err := torch.NoGrad(func() {
		es := torch.NewScope()
		defer es.Close()
		for h, l := range net.Forward(es, b, Mode{}) {
			if c.logits[h], err = l.Float32s(); err != nil {
				return
			}
		}
		if err == nil {
			err = es.Err()
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(c.logits) != len(cfg.Heads) {
		t.Fatalf("%s: %d heads' logits, configuration has %v", name, len(c.logits), cfg.Heads)
	}

	// One Adam step (the flat Adam the loop uses, in its exact CPU form) on
	// the configuration's weighted loss, as the trainer takes it but with
	// dropout off: the two implementations would draw different dropout
	// masks, and masks are not what this test compares.
	opt, err := torch.NewFlatOptimizer(net.Params.Trainable(), 1, torch.OptimizerSpec{Rule: torch.RuleAdam, LR: cfg.LR})
	if err == nil {
		err = opt.Sync()
	}
	if err != nil {
		t.Fatal(err)
	}
	defer opt.Close()
	ss := torch.NewScope()
	defer ss.Close()
	logits := net.Forward(ss, b, Mode{})
	var loss *torch.Tensor
	weights := cfg.HeadWeights(cfg.Loss.WFusion)
	for _, h := range slices.Sorted(maps.Keys(weights)) {
		term := ss.MulScalar(modelCE(ss, logits[h], b.Label, 1, false, torch.ReduceMean), weights[h])
		if loss == nil {
			loss = term
		} else {
			loss = ss.Add(loss, term)
		}
	}
	loss = ss.Sum(loss, false)
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	if c.loss, err = loss.Item(); err != nil {
		t.Fatal(err)
	}
	if err := opt.ZeroGrad(); err != nil {
		t.Fatal(err)
	}
	if err := loss.Backward(); err != nil {
		t.Fatal(err)
	}
	for i, n := range net.Params.Names {
		g := ss.Grad(net.Params.Tensors[i])
		if g == nil {
			t.Fatalf("%s: no gradient", n)
		}
		if c.grads[n], err = g.Float32s(); err != nil {
			t.Fatal(err)
		}
	}
	if err := opt.Step(); err != nil {
		t.Fatal(err)
	}
	for i, n := range net.Params.Names {
		if c.after[n], err = net.Params.Tensors[i].Float32s(); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// randomBatch makes a batch of batch random rows for cfg's dataset (normal
// inputs, spectrogram bytes as unnormalised floats, uniform labels) and the
// same tensors by name ("label" and the modalities), for the Python side.
func randomBatch(t *testing.T, s *torch.Scope, cfg *Config, r *rand.Rand, batch int64) (Batch, map[string]*torch.Tensor) {
	t.Helper()
	normal := func(n int64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		return v
	}
	classes := map[string]int{"avmnist": 10, "mimic": 6}[cfg.Dataset]
	labels := make([]int64, batch)
	for i := range labels {
		labels[i] = int64(r.IntN(classes))
	}
	b := Batch{X: map[string]*torch.Tensor{}, Label: s.From(labels, batch)}
	inputs := map[string]*torch.Tensor{"label": b.Label}
	switch cfg.Dataset {
	case "avmnist":
		b.X["image"] = s.From(normal(batch*28*28), batch, 1, 28, 28)
		aud := make([]float32, batch*112*112)
		for i := range aud {
			aud[i] = float32(r.IntN(256)) // spectrogram bytes as floats, unnormalised
		}
		b.X["audio"] = s.From(aud, batch, 1, 112, 112)
	case "mimic":
		b.X["static"] = s.From(normal(batch*5), batch, 5)
		b.X["time"] = s.From(normal(batch*24*12), batch, 24, 12)
	}
	for name, x := range b.X {
		inputs[name] = x
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return b, inputs
}

// relErr is ||a-b|| / ||b|| (b the reference) and the largest |a_i - b_i|.
func relErr(a, b []float32) (rel, maxAbs float64) {
	var num, den float64
	for i := range b {
		d := float64(a[i]) - float64(b[i])
		num += d * d
		den += float64(b[i]) * float64(b[i])
		maxAbs = math.Max(maxAbs, math.Abs(d))
	}
	if den == 0 {
		if num == 0 {
			return 0, 0
		}
		return math.Inf(1), maxAbs
	}
	return math.Sqrt(num / den), maxAbs
}

// layerNormInvariant names the parameters whose gradient is zero in exact
// arithmetic: a token-mixing MLP's output bias (tok.3.bias) adds one
// constant per token across all hidden channels, and every later use of the
// residual stream goes through a LayerNorm over the channels, which removes
// such a constant. (This holds in the reference architecture as well.)
func layerNormInvariant(name string) bool { return strings.HasSuffix(name, ".tok.3.bias") }

// adamEps is torch.DefaultAdam's eps, the one both sides use.
const adamEps = 1e-8

// checkFirstAdamStep checks the weights after Adam's first step element by
// element. That step is w - lr*g/(|g|+eps) (the bias corrections cancel),
// and PyTorch's weights must be exactly that up to float32 rounding. Ours
// may differ from PyTorch's by what the two gradients' own difference
// explains through that map, which amplifies it where |g| is near eps (so
// a norm-wise tolerance on the weights depends on the libtorch version:
// 5e-6 with 1.13, 1.1e-5 with 2.6 for M2-Mixer_M), plus the same rounding.
// A wrong learning rate, bias correction or eps shows as a difference of
// the order of lr, far beyond both.
func checkFirstAdamStep(before, ours, ref, gOurs, gRef []float32, lr, eps float64) error {
	unit := func(g float32) float64 { return float64(g) / (math.Abs(float64(g)) + eps) }
	for i := range before {
		w := float64(before[i])
		rounding := 8 * 0x1p-24 * (math.Abs(w) + lr) // a few float32 ulps of the weight and of the update
		if d := math.Abs(float64(ref[i]) - (w - lr*unit(gRef[i]))); d > rounding {
			return fmt.Errorf("element %d: PyTorch's weight is %.9g, w - lr*g/(|g|+eps) gives %.9g (off by %.3g)",
				i, ref[i], w-lr*unit(gRef[i]), d)
		}
		explained := lr * math.Abs(unit(gOurs[i])-unit(gRef[i]))
		if d := math.Abs(float64(ours[i]) - float64(ref[i])); d > explained+2*rounding {
			return fmt.Errorf("element %d: ours %.9g, PyTorch %.9g: %.3g apart, the gradients (%.9g vs %.9g) explain %.3g",
				i, ours[i], ref[i], d, gOurs[i], gRef[i], explained)
		}
	}
	return nil
}

func diff(a, b []float32) []float32 {
	out := make([]float32, len(a))
	for i := range a {
		out[i] = a[i] - b[i]
	}
	return out
}

// TestCrossImplementationTorch compares M2-Mixer S, M (AV-MNIST) and H
// (MIMIC-III) with PyTorch: eval-mode logits and the weights after one Adam
// step from identical initial weights and batch must agree per tensor to
// crossTol (norm-wise relative).
func TestCrossImplementationTorch(t *testing.T) {
	requireTorchPython(t)
	// One intra-op thread here and in the script, so the numbers do not
	// depend on the machine's core count. Logits, loss and gradients must
	// agree to crossTol (the worst, M2-Mixer_M's gradients, are ~5e-7);
	// the weights after the step are checked element by element against
	// what those gradients explain (checkFirstAdamStep).
	if err := torch.SetThreads(1); err != nil {
		t.Fatal(err)
	}
	configs := []string{"m2mixer_s", "m2mixer_m", "m2mixer_h"}
	cases := map[string]*crossCase{}
	type jobCase struct {
		Config string `json:"config"`
		Init   string `json:"init"`
		Inputs string `json:"inputs"`
		Out    string `json:"out"`
	}
	var job struct {
		Cases []jobCase `json:"cases"`
	}
	for _, name := range configs {
		c := prepareCrossCase(t, name, 8)
		cases[name] = c
		job.Cases = append(job.Cases, jobCase{Config: name, Init: filepath.Join(c.dir, "init.safetensors"),
			Inputs: filepath.Join(c.dir, "inputs.safetensors"), Out: filepath.Join(c.dir, "torch.safetensors")})
	}
	jobPath := filepath.Join(t.TempDir(), "job.json")
	jb, _ := json.Marshal(job)
	if err := os.WriteFile(jobPath, jb, 0o644); err != nil {
		t.Fatal(err)
	}
	runPython(t, 3*time.Minute, "torch_reference.py", jobPath)

	for _, name := range configs {
		c := cases[name]
		t.Run(name, func(t *testing.T) {
			s := torch.NewScope()
			defer s.Close()
			ref, _, err := torch.LoadSafetensors(s, filepath.Join(c.dir, "torch.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			get := func(key string) []float32 {
				tt, ok := ref[key]
				if !ok {
					t.Fatalf("PyTorch output has no %q", key)
				}
				v, err := tt.Float32s()
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
			// The same parameter set on both sides (load_state_dict(strict) checked the reverse).
			var refNames []string
			for k := range ref {
				if n, ok := strings.CutPrefix(k, "after."); ok {
					refNames = append(refNames, n)
				}
			}
			slices.Sort(refNames)
			ours := slices.Sorted(slices.Values(c.names))
			if !slices.Equal(refNames, ours) {
				t.Fatalf("parameter names differ:\n ours  %v\n torch %v", ours, refNames)
			}

			worstLogit, worstLogitAbs := 0.0, 0.0
			for _, h := range c.cfg.Heads {
				want := get("logits." + h)
				got := c.logits[h]
				if len(got) != len(want) || len(want) != int(c.batchSz)*map[string]int{"avmnist": 10, "mimic": 6}[c.cfg.Dataset] {
					t.Fatalf("head %s: %d logits, PyTorch %d", h, len(got), len(want))
				}
				rel, maxAbs := relErr(got, want)
				worstLogit, worstLogitAbs = math.Max(worstLogit, rel), math.Max(worstLogitAbs, maxAbs)
				if !(rel <= crossTol) {
					t.Errorf("logits of head %s: relative error %.3g > %g (max abs %.3g)", h, rel, crossTol, maxAbs)
				}
			}
			refLoss := float64(get("loss")[0])
			if d := math.Abs(c.loss-refLoss) / math.Abs(refLoss); !(d <= crossTol) {
				t.Errorf("loss %.9g, PyTorch %.9g (relative %.3g)", c.loss, refLoss, d)
			}

			// The largest gradient element, to tell a zero gradient from float noise.
			gScale := 0.0
			for _, n := range c.names {
				_, m := relErr(get("grad."+n), make([]float32, len(c.grads[n])))
				gScale = math.Max(gScale, m)
			}
			lr := c.cfg.LR
			var worstGrad, worstAfter, worstAfterAbs, worstStep float64
			var invariant []string
			for _, n := range c.names {
				gRef, gOurs := get("grad."+n), c.grads[n]
				want, got := get("after."+n), c.after[n]
				refStep, ourStep := diff(want, c.before[n]), diff(got, c.before[n])
				if layerNormInvariant(n) {
					// Zero gradient in exact arithmetic: both sides hold
					// float noise, which Adam's first step (g/(|g|+eps))
					// turns into moves of up to lr with arbitrary sign, so
					// the two weights legitimately differ by up to 2 lr.
					invariant = append(invariant, n)
					_, mo := relErr(gOurs, make([]float32, len(gOurs)))
					_, mr := relErr(gRef, make([]float32, len(gRef)))
					if mo > 1e-5*gScale || mr > 1e-5*gScale {
						t.Errorf("%s: gradient max %.3g (PyTorch %.3g), expected float noise (the largest gradient element is %.3g)", n, mo, mr, gScale)
					}
					_, so := relErr(ourStep, make([]float32, len(ourStep)))
					_, sr := relErr(refStep, make([]float32, len(refStep)))
					if so > lr+1e-6 || sr > lr+1e-6 {
						t.Errorf("%s: Adam's first step moved an element by %.3g (PyTorch %.3g), more than lr %g", n, so, sr, lr)
					}
					continue
				}
				gRel, gAbs := relErr(gOurs, gRef)
				worstGrad = math.Max(worstGrad, gRel)
				if !(gRel <= crossTol) {
					t.Errorf("%s: gradient relative error %.3g > %g (max abs %.3g)", n, gRel, crossTol, gAbs)
				}
				rel, maxAbs := relErr(got, want)
				worstAfter, worstAfterAbs = math.Max(worstAfter, rel), math.Max(worstAfterAbs, maxAbs)
				if err := checkFirstAdamStep(c.before[n], got, want, gOurs, gRef, lr, adamEps); err != nil {
					t.Errorf("%s after the Adam step (relative error %.3g, max abs %.3g): %v", n, rel, maxAbs, err)
				}
				sRel, _ := relErr(ourStep, refStep)
				worstStep = math.Max(worstStep, sRel)
				// The update must be large next to the tolerance, or a wrong
				// update could pass.
				if moved, _ := relErr(want, c.before[n]); moved < 10*crossTol {
					t.Errorf("%s: the PyTorch step moved it by only %.3g (relative): the comparison would not see a wrong update", n, moved)
				}
			}
			if len(invariant) == 0 {
				t.Errorf("no parameter with a LayerNorm-invariant (zero) gradient: is the token-mixing bias still there?")
			}
			t.Logf("%s: logits rel %.2e (max abs %.2e); loss %.9g vs %.9g; %d tensors: gradient rel %.2e, post-step weights rel %.2e (max abs %.2e), step rel %.2e; zero-gradient tensors (moves <= lr checked only): %v",
				name, worstLogit, worstLogitAbs, c.loss, refLoss, len(c.names)-len(invariant), worstGrad, worstAfter, worstAfterAbs, worstStep, invariant)
		})
	}
}
