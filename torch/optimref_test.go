package torch

import (
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
)

// optimRefSpec is OptimizerSpec as testdata/optim_reference.py reads it.
type optimRefSpec struct {
	Rule        string  `json:"rule"`
	WeightDecay float64 `json:"weight_decay"`
	Alpha       float64 `json:"alpha"`
	Eps         float64 `json:"eps"`
	Beta1       float64 `json:"beta1"`
	Beta2       float64 `json:"beta2"`
}

type optimRefStep struct {
	C [][][]float32 `json:"c"` // parameter -> model -> values
	D [][][]float32 `json:"d"`
}

type optimRefRequest struct {
	Spec    optimRefSpec   `json:"spec"`
	Shapes  [][]int64      `json:"shapes"`
	Init    [][][]float32  `json:"init"` // model -> parameter -> values
	LRs     []float64      `json:"lrs"`
	Steps   []optimRefStep `json:"steps"`
	Active  [][]bool       `json:"active"` // step -> model
	MaxNorm float64        `json:"max_norm"`
	Clipped []bool         `json:"clipped"`
}

type optimRefModel struct {
	Params [][]float64            `json:"params"`
	Grads  [][]float64            `json:"grads"`
	State  []map[string][]float64 `json:"state"`
	Steps  int                    `json:"steps"`
	// ClippedSteps counts the steps at which clipping scaled the gradients.
	ClippedSteps int `json:"clipped_steps"`
}

// TestFlatOptimizerAgainstPyTorch trains K = 2 models, three parameters
// each, for six steps under each rule with weight decay and gradient-norm
// clipping over the first two parameters only (the third stands for an
// auxiliary module), model 1 with another learning rate and stopped for the
// last two steps, and compares every model with the same model trained
// alone by torch.optim.{Adam,SGD,RMSprop} after clip_grad_norm_. The loss
// sum(P*C + D*P^2/2) makes the gradients depend on the parameters; its
// scale makes the clipping bite at some steps and not at others. The exact
// form must match PyTorch to 1e-6 (relative, per tensor), the vectorized
// form to 1e-5; both must leave the stopped model untouched even though
// its gradients are NaN, and keep PyTorch's state (moments, step counts)
// and clipped gradients.
func TestFlatOptimizerAgainstPyTorch(t *testing.T) {
	specs := []OptimizerSpec{
		{Rule: RuleAdam, WeightDecay: 0.01},
		{Rule: RuleAdam, WeightDecay: 0, Beta1: 0.8, Beta2: 0.99, Eps: 1e-6},
		{Rule: RuleSGD, WeightDecay: 0.05},
		{Rule: RuleRMSprop, WeightDecay: 0.01},
		{Rule: RuleRMSprop, WeightDecay: 0.001, Alpha: 0.9, Eps: 1e-5},
	}
	const k, nsteps = 2, 6
	shapes := [][]int64{{4, 5}, {7}, {3, 2}}
	sizes := []int{20, 7, 6}
	clipped := []bool{true, true, false}
	lrs := []float64{0.05, 0.01}
	active := func(m, i int) bool { return !(m == 1 && i >= 4) }
	reqs := make([]optimRefRequest, len(specs))
	inits := make([][][]float32, len(specs))
	for si, spec := range specs {
		r := rand.New(rand.NewPCG(16, uint64(si)))
		normals := func(n int, scale float64) []float32 {
			v := make([]float32, n)
			for i := range v {
				v[i] = float32(scale * r.NormFloat64())
			}
			return v
		}
		req := optimRefRequest{Shapes: shapes, LRs: lrs, MaxNorm: 4, Clipped: clipped}
		full, err := spec.withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		req.Spec = optimRefSpec{Rule: full.Rule, WeightDecay: full.WeightDecay, Alpha: full.Alpha, Eps: full.Eps, Beta1: full.Beta1, Beta2: full.Beta2}
		init := make([][]float32, len(shapes)) // parameter -> stacked values
		for j, n := range sizes {
			init[j] = normals(k*n, 1)
		}
		for m := 0; m < k; m++ {
			var ps [][]float32
			for j, n := range sizes {
				ps = append(ps, init[j][m*n:(m+1)*n])
			}
			req.Init = append(req.Init, ps)
		}
		for i := 0; i < nsteps; i++ {
			var st optimRefStep
			scale := 0.1 + 0.5*float64(i) // gradient norms from about 3 to 14: clipped at the later steps only
			for _, n := range sizes {
				var cs, ds [][]float32
				for m := 0; m < k; m++ {
					cs, ds = append(cs, normals(n, scale)), append(ds, normals(n, 0.5))
				}
				st.C, st.D = append(st.C, cs), append(st.D, ds)
			}
			req.Steps = append(req.Steps, st)
			req.Active = append(req.Active, []bool{active(0, i), active(1, i)})
		}
		reqs[si], inits[si] = req, init
	}
	var wants [][]optimRefModel
	runTorchRef(t, "optim_reference.py", reqs, &wants)
	if len(wants) != len(specs) {
		t.Fatalf("PyTorch answered %d requests of %d", len(wants), len(specs))
	}
	for si, spec := range specs {
		req, init, want := reqs[si], inits[si], wants[si]
		if c := want[0].ClippedSteps; c == 0 || c == want[0].Steps {
			t.Fatalf("%s: clipping scaled at %d of %d steps: the test must see both cases", spec.Rule, c, want[0].Steps)
		}
		t.Logf("%s: PyTorch clipped model 0 at %d of %d steps, model 1 at %d of %d", spec.Rule, want[0].ClippedSteps, want[0].Steps, want[1].ClippedSteps, want[1].Steps)
		for _, exact := range []bool{true, false} {
			s := NewScope()
			var ps []*Tensor
			for j := range shapes {
				p := s.From(append([]float32(nil), init[j]...), append([]int64{k}, shapes[j]...)...)
				p.SetRequiresGrad(true)
				ps = append(ps, p)
			}
			opt, err := NewFlatOptimizer(ps, k, spec)
			if err != nil {
				t.Fatal(err)
			}
			opt.Exact = exact
			opt.SetClip(req.MaxNorm, clipped)
			for m, lr := range lrs {
				opt.SetLR(m, lr)
			}
			var frozen [][]float32
			for i, st := range req.Steps {
				for m := 0; m < k; m++ {
					opt.SetActive(m, active(m, i))
				}
				if err := opt.Sync(); err != nil {
					t.Fatal(err)
				}
				if i == 4 {
					frozen = nil
					for _, p := range ps {
						v, _ := p.Float32s()
						frozen = append(frozen, v)
					}
				}
				if err := opt.ZeroGrad(); err != nil {
					t.Fatal(err)
				}
				ls := NewScope()
				var loss *Tensor
				for j, p := range ps {
					var c, d []float32
					for m := 0; m < k; m++ {
						cm := st.C[j][m]
						if !active(m, i) { // a stopped model's gradient must not matter, even NaN
							cm = make([]float32, len(cm))
							for e := range cm {
								cm[e] = float32(math.NaN())
							}
						}
						c, d = append(c, cm...), append(d, st.D[j][m]...)
					}
					sh := append([]int64{k}, shapes[j]...)
					// the same expression, in the same order, as the Python side
					term := ls.Sum(ls.Add(ls.Mul(p, ls.From(c, sh...)), ls.Mul(ls.Mul(ls.MulScalar(ls.From(d, sh...), 0.5), p), p)), false)
					if loss == nil {
						loss = term
					} else {
						loss = ls.Add(loss, term)
					}
				}
				if err := loss.Backward(); err != nil {
					t.Fatal(err)
				}
				if err := opt.Step(); err != nil {
					t.Fatal(err)
				}
				ls.Close()
			}
			tol := 1e-6
			if !exact {
				tol = 1e-5
			}
			worst := 0.0
			compare := func(what string, m int, got []float32, ref []float64) {
				t.Helper()
				g := make([]float64, len(got))
				for e, v := range got {
					g[e] = float64(v)
				}
				d, err := relDiff(g, ref)
				worst = math.Max(worst, d)
				if err != nil || d > tol {
					t.Errorf("%s %+v exact=%v: model %d %s differs from PyTorch by %.3g (%v)", spec.Rule, spec, exact, m, what, d, err)
				}
			}
			for j, p := range ps {
				got, _ := p.Float32s()
				for m := 0; m < k; m++ {
					compare("parameter "+string(rune('0'+j)), m, got[m*sizes[j]:(m+1)*sizes[j]], want[m].Params[j])
				}
				if !equalFloats(got[sizes[j]:2*sizes[j]], frozen[j][sizes[j]:2*sizes[j]]) {
					t.Errorf("%s exact=%v: the stopped model moved (parameter %d)", spec.Rule, exact, j)
				}
				// Model 0 took the last step: its gradients are the clipped ones PyTorch keeps.
				g, _ := s.Grad(p).Float32s()
				compare("gradient "+string(rune('0'+j)), 0, g[:sizes[j]], want[0].Grads[j])
				st, err := opt.State(s, j, 0)
				if err != nil {
					t.Fatal(err)
				}
				names := opt.StateNames()
				if len(st) != len(names) || len(want[0].State[j]) != len(names) {
					t.Fatalf("%s: state %d tensors, names %v, PyTorch's %v", spec.Rule, len(st), names, want[0].State[j])
				}
				for e, name := range names {
					v, _ := st[e].Float32s()
					compare(name+" of parameter "+string(rune('0'+j)), 0, v, want[0].State[j][name])
				}
			}
			steps, err := opt.Steps()
			if err != nil || steps[0] != float64(want[0].Steps) || steps[1] != float64(want[1].Steps) {
				t.Errorf("%s: step counts %v (%v), PyTorch %d and %d", spec.Rule, steps, err, want[0].Steps, want[1].Steps)
			}
			t.Logf("%s %+v exact=%v: largest relative difference from PyTorch %.3g", spec.Rule, spec, exact, worst)
			opt.Close()
			s.Close()
		}
	}
}

// TestFlatOptimizerClipOff: clipping with maxNorm 0, or over no parameter,
// changes nothing: the parameters come out bit for bit as without SetClip.
func TestFlatOptimizerClipOff(t *testing.T) {
	run := func(exact bool, clip func(o *FlatOptimizer)) []float32 {
		s := newTestScope(t)
		init := make([]float32, 2*6)
		for i := range init {
			init[i] = float32(math.Cos(float64(i)))
		}
		p := s.From(init, 2, 6)
		p.SetRequiresGrad(true)
		opt, err := NewFlatOptimizer([]*Tensor{p}, 2, OptimizerSpec{Rule: RuleSGD, LR: 0.1})
		if err != nil {
			t.Fatal(err)
		}
		defer opt.Close()
		opt.Exact = exact
		clip(opt)
		for i := 0; i < 3; i++ {
			opt.Sync()
			opt.ZeroGrad()
			ls := NewScope()
			ls.Sum(ls.MulScalar(ls.Mul(p, p), 50), false).Backward() // gradient norms far above 1
			if err := opt.Step(); err != nil {
				t.Fatal(err)
			}
			ls.Close()
		}
		v, _ := p.Float32s()
		return v
	}
	for _, exact := range []bool{true, false} {
		base := run(exact, func(*FlatOptimizer) {})
		if !equalFloats(base, run(exact, func(o *FlatOptimizer) { o.SetClip(0, nil) })) {
			t.Errorf("exact=%v: SetClip(0, nil) changed the result", exact)
		}
		if !equalFloats(base, run(exact, func(o *FlatOptimizer) { o.SetClip(1, []bool{false}) })) {
			t.Errorf("exact=%v: clipping over no parameter changed the result", exact)
		}
		if equalFloats(base, run(exact, func(o *FlatOptimizer) { o.SetClip(1, []bool{true}) })) {
			t.Errorf("exact=%v: clipping at 1 changed nothing", exact)
		}
	}
}

// TestOptimizerSpecDefaults: zero fields take PyTorch's defaults per rule.
func TestOptimizerSpecDefaults(t *testing.T) {
	cases := []struct{ in, want OptimizerSpec }{
		{OptimizerSpec{Rule: RuleAdam, LR: 1e-3}, OptimizerSpec{Rule: RuleAdam, LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}},
		{OptimizerSpec{Rule: RuleAdam, Beta2: 0.98, WeightDecay: 0.1}, OptimizerSpec{Rule: RuleAdam, Beta1: 0.9, Beta2: 0.98, Eps: 1e-8, WeightDecay: 0.1}},
		{OptimizerSpec{Rule: RuleRMSprop, LR: 0.01}, OptimizerSpec{Rule: RuleRMSprop, LR: 0.01, Alpha: 0.99, Eps: 1e-8}},
		{OptimizerSpec{Rule: RuleSGD, LR: 0.1, WeightDecay: 1e-4}, OptimizerSpec{Rule: RuleSGD, LR: 0.1, WeightDecay: 1e-4}},
	}
	for _, c := range cases {
		got, err := c.in.withDefaults()
		if err != nil || got != c.want {
			t.Errorf("%+v: %+v (%v), want %+v", c.in, got, err, c.want)
		}
	}
}

// TestFlatOptimizerErrors: what cannot work is refused with a reason.
func TestFlatOptimizerErrors(t *testing.T) {
	s := newTestScope(t)
	param := func() *Tensor {
		p := s.Full(0, Float32, CPU, 2, 3)
		p.SetRequiresGrad(true)
		return p
	}
	for _, c := range []struct {
		spec OptimizerSpec
		want string
	}{
		{OptimizerSpec{Rule: "adamw"}, "rule"},
		{OptimizerSpec{}, "rule"},
		{OptimizerSpec{Rule: RuleSGD, Beta1: 0.9}, "beta1"},
		{OptimizerSpec{Rule: RuleSGD, Eps: 1e-8}, "eps"},
		{OptimizerSpec{Rule: RuleAdam, Alpha: 0.9}, "alpha"},
		{OptimizerSpec{Rule: RuleRMSprop, Beta2: 0.9}, "beta2"},
		{OptimizerSpec{Rule: RuleAdam, LR: -1}, "negative"},
		{OptimizerSpec{Rule: RuleAdam, Beta1: 1}, "[0, 1)"},
		{OptimizerSpec{Rule: RuleRMSprop, Alpha: 1.5}, "[0, 1)"},
	} {
		if _, err := NewFlatOptimizer([]*Tensor{param()}, 2, c.spec); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one mentioning %q", c.spec, err, c.want)
		}
	}
	if _, err := NewFlatOptimizer([]*Tensor{param()}, 0, OptimizerSpec{Rule: RuleSGD}); err == nil {
		t.Error("0 models: no error")
	}
	opt, err := NewFlatOptimizer([]*Tensor{param(), s.Full(0, Float32, CPU, 2)}, 2, OptimizerSpec{Rule: RuleSGD, LR: 0.1})
	if err == nil {
		t.Fatal("a parameter that is not a trainable leaf was accepted")
	}
	q := s.Full(0, Float32, CPU, 2)
	q.SetRequiresGrad(true)
	if opt, err = NewFlatOptimizer([]*Tensor{param(), q}, 2, OptimizerSpec{Rule: RuleSGD, LR: 0.1}); err != nil {
		t.Fatal(err)
	}
	defer opt.Close()
	if err := opt.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := opt.Moments(s, 0, 0); err == nil || !strings.Contains(err.Error(), "no moments") {
		t.Errorf("sgd moments: %v", err)
	}
	if st, err := opt.State(s, 1, 1); err != nil || len(st) != 0 || len(opt.StateNames()) != 0 {
		t.Errorf("sgd state: %v, %v", st, err)
	}
	if _, err := opt.State(s, 2, 0); err == nil {
		t.Error("state of parameter 2 of 2: no error")
	}
	for _, c := range []struct {
		max     float64
		clipped []bool
		want    string
	}{{8, []bool{true}, "1 flags for 2 parameters"}, {-1, nil, "max norm"}, {math.NaN(), nil, "max norm"}} {
		opt.SetClip(c.max, c.clipped)
		if err := opt.Step(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("SetClip(%v, %v): step error %v, want %q", c.max, c.clipped, err, c.want)
		}
	}
	opt.SetClip(8, []bool{true, false})
	if err := opt.Step(); err != nil {
		t.Errorf("a good clip after bad ones: %v", err)
	}
	opt.SetLR(0, 1)
	if err := opt.Step(); err == nil || !strings.Contains(err.Error(), "without Sync") {
		t.Errorf("step after SetLR without Sync: %v", err)
	}
}

// stepRules runs three steps of every rule, with weight decay and clipping
// over the first of two parameters, for K = 2 models with different
// learning rates, model 1 stopped at the last step, on dev: vectorized off
// the CPU, exact on it unless vectorized. With graph (CUDA only) the step
// is captured once, after one eager step, and replayed. It returns each
// rule's final parameters.
func stepRules(t *testing.T, dev Device, vectorized, graph bool) map[string][]float32 {
	t.Helper()
	out := map[string][]float32{}
	for _, rule := range []string{RuleAdam, RuleSGD, RuleRMSprop} {
		s := NewScope()
		init := make([]float32, 2*3*5)
		for i := range init {
			init[i] = float32(math.Sin(float64(i)))
		}
		p := s.From(init, 2, 3, 5)
		q := s.From([]float32{0.5, -1, 2, 0.25}, 2, 2)
		if dev != CPU {
			p, q = s.To(p, dev), s.To(q, dev)
		}
		p.SetRequiresGrad(true)
		q.SetRequiresGrad(true)
		opt, err := NewFlatOptimizer([]*Tensor{p, q}, 2, OptimizerSpec{Rule: rule, LR: 0.01, WeightDecay: 0.1})
		if err != nil {
			t.Fatal(err)
		}
		if vectorized {
			opt.Exact = false
		}
		opt.SetLR(1, 0.05)
		opt.SetClip(1, []bool{true, false})
		var g *Graph
		id := -1
		for i := 0; i < 3; i++ {
			opt.SetActive(1, i < 2)
			if err := opt.Sync(); err != nil {
				t.Fatal(err)
			}
			ls := NewScope()
			opt.ZeroGrad()
			ls.Add(ls.Sum(ls.Mul(p, ls.Mul(p, p)), false), ls.Sum(ls.Mul(q, q), false)).Backward()
			switch {
			case graph && i == 1:
				if g, err = NewGraph(dev); err != nil {
					t.Fatal(err)
				}
				if err := g.Begin(); err != nil {
					t.Fatal(err)
				}
				err = opt.Step()
				var endErr error
				id, endErr = g.End()
				if err == nil {
					err = endErr
				}
				if err == nil {
					err = g.Replay(id) // capturing does not run the work
				}
			case graph && i > 1:
				err = g.Replay(id)
			default:
				err = opt.Step()
			}
			if err != nil {
				t.Fatalf("%s step %d: %v", rule, i, err)
			}
			ls.Close()
		}
		if g != nil {
			if err := g.Close(); err != nil {
				t.Fatal(err)
			}
		}
		v, err := s.To(s.Detach(p), CPU).Float32s()
		if err != nil {
			t.Fatal(err)
		}
		out[rule] = v
		opt.Close()
		s.Close()
	}
	return out
}

// TestFlatOptimizerRulesCUDA: every rule's vectorized step on the GPU,
// eager and replayed from a CUDA graph, against the exact CPU step.
func TestFlatOptimizerRulesCUDA(t *testing.T) {
	dev := cudaTestDevice(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	want := stepRules(t, CPU, false, false)
	for _, graph := range []bool{false, true} {
		if graph && !GraphsAvailable() {
			t.Fatal("the shim on a CUDA machine was built without CUDA graphs")
		}
		got := stepRules(t, dev, true, graph)
		for rule, w := range want {
			for i := range w {
				if math.Abs(float64(got[rule][i]-w[i])) > 1e-6*(1+math.Abs(float64(w[i]))) {
					t.Fatalf("%s graph=%v element %d: CUDA %v, CPU %v", rule, graph, i, got[rule][i], w[i])
				}
			}
		}
	}
}

// TestFlatOptimizerStepNoHostTransfers: the vectorized step of every rule,
// clipping included, reads nothing from the host and copies nothing to it
// (what a CUDA graph capture needs), checked on the CPU with the guard a
// capture sets; and it agrees with the exact form up to rounding.
func TestFlatOptimizerStepNoHostTransfers(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	exact := stepRules(t, CPU, false, false)
	s := newTestScope(t)
	p := s.From([]float32{1, -2, 3, 0.5, 4, -1}, 2, 3)
	p.SetRequiresGrad(true)
	for _, rule := range []string{RuleAdam, RuleSGD, RuleRMSprop} {
		opt, err := NewFlatOptimizer([]*Tensor{p}, 2, OptimizerSpec{Rule: rule, LR: 0.1, WeightDecay: 0.01})
		if err != nil {
			t.Fatal(err)
		}
		opt.Exact = false
		opt.SetClip(1, []bool{true})
		opt.SetActive(1, false)
		if err := opt.Sync(); err != nil {
			t.Fatal(err)
		}
		ls := NewScope()
		ls.Sum(ls.Mul(p, p), false).Backward()
		ls.Close()
		if err := opt.Step(); err != nil { // the first step makes the model index
			t.Fatal(err)
		}
		if err := ForbidHostTransfers(true); err != nil {
			t.Fatal(err)
		}
		mid, _ := HostTransfers()
		stepErr := opt.Step()
		after, _ := HostTransfers()
		if err := ForbidHostTransfers(false); err != nil {
			t.Fatal(err)
		}
		if stepErr != nil || after != mid {
			t.Errorf("%s: vectorized step under the capture guard: %v, %d host transfers", rule, stepErr, after-mid)
		}
		opt.Close()
	}
	vec := stepRules(t, CPU, true, false)
	for rule, w := range exact {
		for i := range w {
			if math.Abs(float64(vec[rule][i]-w[i])) > 1e-6*(1+math.Abs(float64(w[i]))) {
				t.Fatalf("%s element %d: vectorized %v, exact %v", rule, i, vec[rule][i], w[i])
			}
		}
	}
}
