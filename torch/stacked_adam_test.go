package torch

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestStackedAdam runs K = 3 models stacked on one tensor against three lone
// parameters under libtorch's own Adam, with different learning rates and
// model 1 inactive for the last two steps: slice by slice the stacked update
// must equal libtorch's bit for bit; vectorized, within 1e-6 (relative); an
// inactive model must not move at all, either way.
func TestStackedAdam(t *testing.T) {
	const k, steps = 3, 6
	r := rand.New(rand.NewPCG(1, 2))
	init := make([]float32, k*4*5)
	for i := range init {
		init[i] = float32(r.NormFloat64())
	}
	coef := make([][]float32, steps) // loss at step i: sum(P * coef[i])
	for i := range coef {
		coef[i] = make([]float32, k*4*5)
		for j := range coef[i] {
			coef[i][j] = float32(r.NormFloat64())
		}
	}
	lrs := []float64{0.1, 0.01, 0.05}
	active := func(model, step int) bool { return !(model == 1 && step >= 4) }

	// Reference: three lone parameters, each with libtorch's Adam.
	s := newTestScope(t)
	want := make([][]float32, k)
	for m := 0; m < k; m++ {
		p := s.From(append([]float32(nil), init[m*20:(m+1)*20]...), 4, 5)
		p.SetRequiresGrad(true)
		opt, err := NewAdam([]*Tensor{p}, DefaultAdam(lrs[m]))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < steps; i++ {
			if !active(m, i) {
				continue
			}
			ls := NewScope()
			opt.ZeroGrad()
			if err := ls.Sum(ls.Mul(p, ls.From(coef[i][m*20:(m+1)*20], 4, 5)), false).Backward(); err != nil {
				t.Fatal(err)
			}
			if err := opt.Step(); err != nil {
				t.Fatal(err)
			}
			ls.Close()
		}
		want[m], _ = p.Float32s()
		opt.Close()
	}

	for _, vectorized := range []bool{false, true} {
		p := s.From(append([]float32(nil), init...), k, 4, 5)
		p.SetRequiresGrad(true)
		opt, err := NewStackedAdam([]*Tensor{p}, k, 0)
		if err != nil {
			t.Fatal(err)
		}
		opt.Vectorized = vectorized
		copy(opt.LR, lrs)
		var frozen []float32
		for i := 0; i < steps; i++ {
			for m := range opt.Active {
				opt.Active[m] = active(m, i)
			}
			if i == 4 {
				frozen, _ = p.Float32s()
			}
			ls := NewScope()
			opt.ZeroGrad()
			if err := ls.Sum(ls.Mul(p, ls.From(coef[i], k, 4, 5)), false).Backward(); err != nil {
				t.Fatal(err)
			}
			if err := opt.Step(); err != nil {
				t.Fatal(err)
			}
			ls.Close()
		}
		got, _ := p.Float32s()
		for m := 0; m < k; m++ {
			var diff, norm float64
			for j := 0; j < 20; j++ {
				a, b := got[m*20+j], want[m][j]
				if !vectorized && math.Float32bits(a) != math.Float32bits(b) {
					t.Fatalf("exact: model %d element %d: %v, libtorch %v", m, j, a, b)
				}
				diff += float64(a-b) * float64(a-b)
				norm += float64(b) * float64(b)
			}
			if rel := math.Sqrt(diff / norm); rel > 1e-6 {
				t.Errorf("vectorized %v: model %d differs from libtorch by %.3g (relative)", vectorized, m, rel)
			}
		}
		for j := 20; j < 40; j++ { // model 1 after it stopped
			if math.Float32bits(got[j]) != math.Float32bits(frozen[j]) {
				t.Fatalf("vectorized %v: inactive model moved at element %d", vectorized, j-20)
			}
		}
		if opt.Steps[1] != 4 || opt.Steps[0] != steps {
			t.Fatalf("step counts %v", opt.Steps)
		}
		opt.Close()
	}
}
