package torch

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestFlatOptimizerAdam runs K = 3 models, each with two parameters of different
// shapes, stacked and flattened, against three lone models under
// libtorch's own Adam, with different learning rates and model 1 stopped
// for the last two steps. Exact, the flat update must equal libtorch's bit
// for bit; vectorized, within 1e-6 (relative). A stopped model must not move
// at all, and its step count must stop.
func TestFlatOptimizerAdam(t *testing.T) {
	const k, steps = 3, 6
	shapes := [][]int64{{4, 5}, {7}}
	sizes := []int{20, 7}
	r := rand.New(rand.NewPCG(1, 2))
	normals := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		return v
	}
	init := [][]float32{normals(k * 20), normals(k * 7)}
	coef := make([][][]float32, steps) // loss at step i: sum over params of sum(P * coef)
	for i := range coef {
		coef[i] = [][]float32{normals(k * 20), normals(k * 7)}
	}
	lrs := []float64{0.1, 0.01, 0.05}
	active := func(model, step int) bool { return !(model == 1 && step >= 4) }
	model := func(v []float32, j, m int) []float32 { return v[m*sizes[j] : (m+1)*sizes[j]] }

	s := newTestScope(t)
	want := make([][][]float32, k) // model -> param -> values
	for m := 0; m < k; m++ {
		var ps []*Tensor
		for j := range shapes {
			p := s.From(append([]float32(nil), model(init[j], j, m)...), shapes[j]...)
			p.SetRequiresGrad(true)
			ps = append(ps, p)
		}
		opt, err := NewAdam(ps, DefaultAdam(lrs[m]))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < steps; i++ {
			if !active(m, i) {
				continue
			}
			ls := NewScope()
			opt.ZeroGrad()
			loss := ls.Add(ls.Sum(ls.Mul(ps[0], ls.From(model(coef[i][0], 0, m), shapes[0]...)), false),
				ls.Sum(ls.Mul(ps[1], ls.From(model(coef[i][1], 1, m), shapes[1]...)), false))
			if err := loss.Backward(); err != nil {
				t.Fatal(err)
			}
			if err := opt.Step(); err != nil {
				t.Fatal(err)
			}
			ls.Close()
		}
		for _, p := range ps {
			v, _ := p.Float32s()
			want[m] = append(want[m], v)
		}
		opt.Close()
	}

	for _, exact := range []bool{true, false} {
		var ps []*Tensor
		for j := range shapes {
			p := s.From(append([]float32(nil), init[j]...), append([]int64{k}, shapes[j]...)...)
			p.SetRequiresGrad(true)
			ps = append(ps, p)
		}
		opt, err := NewFlatOptimizer(ps, k, OptimizerSpec{Rule: RuleAdam, LR: 0})
		if err != nil {
			t.Fatal(err)
		}
		if !opt.Exact {
			t.Fatal("CPU parameters: Exact should default on")
		}
		opt.Exact = exact
		for m, lr := range lrs {
			opt.SetLR(m, lr)
		}
		var frozen [][]float32
		for i := 0; i < steps; i++ {
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
			ls := NewScope()
			if err := opt.ZeroGrad(); err != nil {
				t.Fatal(err)
			}
			c0 := append([]float32(nil), coef[i][0]...)
			if !active(1, i) { // a stopped model's gradient must not matter, even NaN
				for j := 20; j < 40; j++ {
					c0[j] = float32(math.NaN())
				}
			}
			loss := ls.Add(ls.Sum(ls.Mul(ps[0], ls.From(c0, k, 4, 5)), false),
				ls.Sum(ls.Mul(ps[1], ls.From(coef[i][1], k, 7)), false))
			if err := loss.Backward(); err != nil {
				t.Fatal(err)
			}
			if i == 0 { // the gradient buffer holds what autograd computed: d loss / dP = coef
				g, _ := ls.Grad(ps[1]).Float32s()
				if !equalFloats(g, coef[0][1]) {
					t.Fatalf("gradient view %v, want %v", g, coef[0][1])
				}
			}
			if err := opt.Step(); err != nil {
				t.Fatal(err)
			}
			ls.Close()
		}
		for j, p := range ps {
			got, _ := p.Float32s()
			for m := 0; m < k; m++ {
				var diff, norm float64
				for e, a := range model(got, j, m) {
					b := want[m][j][e]
					if exact && math.Float32bits(a) != math.Float32bits(b) {
						t.Fatalf("exact: model %d param %d element %d: %v, libtorch %v", m, j, e, a, b)
					}
					diff += float64(a-b) * float64(a-b)
					norm += float64(b) * float64(b)
				}
				if rel := math.Sqrt(diff / norm); rel > 1e-6 {
					t.Errorf("exact %v: model %d param %d differs from libtorch by %.3g (relative)", exact, m, j, rel)
				}
			}
			if !equalFloats(model(got, j, 1), model(frozen[j], j, 1)) {
				t.Fatalf("exact %v: the stopped model moved (param %d)", exact, j)
			}
		}
		st, err := opt.Steps()
		if err != nil || st[0] != steps || st[1] != 4 || st[2] != steps {
			t.Fatalf("step counts %v (%v)", st, err)
		}
		opt.Close()
	}
}

// TestFlatOptimizerAdamErrors: what cannot be flattened is refused with a reason.
func TestFlatOptimizerAdamErrors(t *testing.T) {
	s := newTestScope(t)
	p := s.Full(0, Float32, CPU, 2, 3)
	p.SetRequiresGrad(true)
	if _, err := NewFlatOptimizer([]*Tensor{p}, 3, OptimizerSpec{Rule: RuleAdam, LR: 0.1}); err == nil {
		t.Fatal("a (2,3) parameter flattened over 3 models")
	} else {
		t.Logf("as expected: %v", err)
	}
	q := s.Full(0, Float32, CPU, 3, 3)
	if _, err := NewFlatOptimizer([]*Tensor{q}, 3, OptimizerSpec{Rule: RuleAdam, LR: 0.1}); err == nil {
		t.Fatal("a tensor without requires_grad flattened")
	}
	if _, err := NewFlatOptimizer(nil, 3, OptimizerSpec{Rule: RuleAdam, LR: 0.1}); err == nil {
		t.Fatal("no parameters: no error")
	}
}

func equalFloats(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
