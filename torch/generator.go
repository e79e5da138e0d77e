package torch

/*
#include <stdlib.h>
#include "shim/m2t_api.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// Generators are random streams for dropout, one per model: K models
// trained in lockstep each draw from their own stream exactly what they
// would draw alone.
type Generators struct {
	hs []C.m2t_gen
}

// NewGenerators makes one generator per seed on device.
func NewGenerators(device Device, seeds ...uint64) (*Generators, error) {
	if _, err := Load(); err != nil {
		return nil, err
	}
	dev := C.CString(string(device))
	defer C.free(unsafe.Pointer(dev))
	g := &Generators{}
	for _, seed := range seeds {
		var h C.m2t_gen
		if err := check(C.m2t_generator_new(C.uint64_t(seed), dev, &h)); err != nil {
			g.Close()
			return nil, fmt.Errorf("generator: %w", err)
		}
		g.hs = append(g.hs, h)
	}
	return g, nil
}

// Len is the number of generators.
func (g *Generators) Len() int { return len(g.hs) }

// Close frees the generators.
func (g *Generators) Close() {
	for _, h := range g.hs {
		C.m2t_generator_free(h)
	}
	g.hs = nil
}

// DropoutGen is inverted dropout (keep with probability 1-p, scale by
// 1/(1-p)) with masks from g: one generator for a plain tensor, or one per
// slice of x's first dimension (the model axis).
func (s *Scope) DropoutGen(x *Tensor, p float64, g *Generators) *Tensor {
	if g == nil || len(g.hs) == 0 {
		return s.fail("dropout", fmt.Errorf("no generators"))
	}
	return s.call("dropout", func(out *C.m2t_tensor) C.m2t_err {
		return C.m2t_dropout_gen(x.h, C.double(p), &g.hs[0], C.int(len(g.hs)), out)
	}, x)
}

// StackedLinear applies K linear layers (w (K,out,in), b (K,out)) to
// x (K,rows,in) in one batched matmul, the bias accumulated as addmm does.
func (s *Scope) StackedLinear(x, w, b *Tensor) *Tensor {
	return s.call("stacked linear", func(out *C.m2t_tensor) C.m2t_err { return C.m2t_stacked_linear(x.h, w.h, b.h, out) }, x, w, b)
}

// StackedLayerNorm normalises the last dimension of x (K, ..., D) with model
// k's affine w[k], b[k] (w and b are (K, D)).
func (s *Scope) StackedLayerNorm(x, w, b *Tensor, eps float64) *Tensor {
	return s.call("stacked layer_norm", func(out *C.m2t_tensor) C.m2t_err {
		return C.m2t_stacked_layer_norm(x.h, w.h, b.h, C.double(eps), out)
	}, x, w, b)
}

// StackedAdam is Adam for parameters stacked on a leading model axis: each
// of the K models has its own step count and learning rate, and a model
// marked inactive is not changed at all. Per model it performs the same
// operations as libtorch's Adam.
type StackedAdam struct {
	// Vectorized updates all models with a few operations per tensor instead
	// of libtorch's exact sequence per model: equal up to rounding, and far
	// fewer kernel launches (NewStackedAdam turns it on for CUDA parameters).
	Vectorized   bool
	K            int
	Beta1, Beta2 float64
	Eps          float64
	LR           []float64
	Steps        []int64
	Active       []bool
	params, m, v []*Tensor
	moments      *Scope
}

// NewStackedAdam prepares moments (zeros like each parameter) for k models.
func NewStackedAdam(params []*Tensor, k int, lr float64) (*StackedAdam, error) {
	a := &StackedAdam{K: k, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, params: params, moments: NewScope()}
	for i := 0; i < k; i++ {
		a.LR = append(a.LR, lr)
		a.Steps = append(a.Steps, 0)
		a.Active = append(a.Active, true)
	}
	for _, p := range params {
		a.m = append(a.m, a.moments.MulScalar(a.moments.Detach(p), 0))
		a.v = append(a.v, a.moments.MulScalar(a.moments.Detach(p), 0))
	}
	if err := a.moments.Err(); err != nil {
		a.moments.Close()
		return nil, fmt.Errorf("stacked adam: %w", err)
	}
	if len(params) > 0 {
		dev, err := params[0].Device()
		if err != nil {
			a.moments.Close()
			return nil, fmt.Errorf("stacked adam: %w", err)
		}
		a.Vectorized = dev != CPU
	}
	return a, nil
}

// Step updates every active model from the parameters' gradients.
func (a *StackedAdam) Step() error {
	hs := func(ts []*Tensor) []C.m2t_tensor {
		out := make([]C.m2t_tensor, len(ts))
		for i, t := range ts {
			out[i] = t.h
		}
		return out
	}
	ps, ms, vs := hs(a.params), hs(a.m), hs(a.v)
	steps := make([]C.int64_t, a.K)
	lrs := make([]C.double, a.K)
	act := make([]C.int, a.K)
	for i := 0; i < a.K; i++ {
		if a.Active[i] {
			a.Steps[i]++
			act[i] = 1
		}
		steps[i], lrs[i] = C.int64_t(a.Steps[i]), C.double(a.LR[i])
	}
	if len(ps) == 0 {
		return nil
	}
	return wrapErr("stacked adam", C.m2t_adam_stacked_step(&ps[0], &ms[0], &vs[0], C.int(len(ps)),
		&steps[0], &lrs[0], &act[0], C.int(a.K), C.double(a.Beta1), C.double(a.Beta2), C.double(a.Eps), cBool(a.Vectorized)))
}

// ZeroGrad zeroes every parameter's gradient.
func (a *StackedAdam) ZeroGrad() error {
	for _, p := range a.params {
		if err := p.ZeroGrad(); err != nil {
			return err
		}
	}
	return nil
}

// Close frees the moments.
func (a *StackedAdam) Close() { a.moments.Close() }
