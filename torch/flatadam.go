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

// FlatAdam is Adam for K models whose parameters are stacked on a leading
// model axis. It moves every parameter into one flat buffer (parameters
// become contiguous views of it, gradients views of a twin buffer), so one
// step is a dozen operations however many tensors the network has. Each model has its
// own step count and learning rate, and an inactive model does not change.
// Per-model state lives in device tensors, so a step needs no values from
// the host and a CUDA graph can replay it.
type FlatAdam struct {
	// Exact updates model by model with the operations libtorch's Adam
	// performs, in its order (CPU only). Otherwise the update is vectorized
	// over the model axis: equal up to rounding, far fewer kernel launches.
	// NewFlatAdam sets it for CPU parameters.
	Exact        bool
	K            int
	Beta1, Beta2 float64
	Eps          float64
	lr           []float64
	active       []bool
	dirty        bool
	per          []C.int64_t // each parameter's per-model element count
	device       Device
	params, grad *Tensor // flat
	m, v         *Tensor
	index        *Tensor // element -> model, for the vectorized form; made when first needed
	steps, lrs   *Tensor // (K) float64
	act          *Tensor
	own          *Scope
}

// NewFlatAdam flattens params (each stacked over k models, trainable
// leaves) and prepares Adam with learning rate lr for every model.
func NewFlatAdam(params []*Tensor, k int, lr float64) (*FlatAdam, error) {
	if _, err := Load(); err != nil {
		return nil, err
	}
	if len(params) == 0 {
		return nil, fmt.Errorf("flat adam: no parameters")
	}
	hs := make([]C.m2t_tensor, len(params))
	for i, p := range params {
		h, err := p.handle("flat adam")
		if err != nil {
			return nil, err
		}
		hs[i] = h
	}
	s := NewScope()
	a := &FlatAdam{K: k, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, own: s, dirty: true, per: make([]C.int64_t, len(params))}
	a.params = s.call("flatten parameters", func(out *C.m2t_tensor) C.m2t_err {
		var g C.m2t_tensor
		e := C.m2t_flatten_params(&hs[0], C.int(len(hs)), C.int64_t(k), &a.per[0], out, &g)
		if e == nil {
			a.grad = &Tensor{h: g, scope: s}
			s.tensors = append(s.tensors, a.grad)
		}
		return e
	})
	dev, err := params[0].Device()
	if err != nil {
		s.Close()
		return nil, err
	}
	a.m = s.MulScalar(a.params, 0)
	a.v = s.MulScalar(a.params, 0)
	a.steps = s.Full(0, Float64, dev, int64(k))
	a.lrs = s.Full(lr, Float64, dev, int64(k))
	a.act = s.Full(1, Float64, dev, int64(k))
	if err := s.Err(); err != nil {
		s.Close()
		return nil, fmt.Errorf("flat adam: %w", err)
	}
	for i := 0; i < k; i++ {
		a.lr = append(a.lr, lr)
		a.active = append(a.active, true)
	}
	a.Exact, a.device = dev == CPU, dev
	return a, nil
}

// SetLR sets model i's learning rate from the next Sync.
func (a *FlatAdam) SetLR(i int, lr float64) { a.lr[i], a.dirty = lr, true }

// SetActive starts or stops model i from the next Sync.
func (a *FlatAdam) SetActive(i int, on bool) { a.active[i], a.dirty = on, true }

// Sync copies learning rates and activity to the device. Call it between
// steps (an epoch boundary), never inside a captured step.
func (a *FlatAdam) Sync() error {
	if !a.dirty {
		return nil
	}
	s := NewScope()
	defer s.Close()
	act := make([]float64, a.K)
	for i, on := range a.active {
		if on {
			act[i] = 1
		}
	}
	if err := a.lrs.CopyFrom(s.From(a.lr, int64(a.K))); err != nil {
		return fmt.Errorf("adam learning rates: %w", err)
	}
	if err := a.act.CopyFrom(s.From(act, int64(a.K))); err != nil {
		return fmt.Errorf("adam activity: %w", err)
	}
	a.dirty = false
	return nil
}

// Steps returns each model's step count (it reads the device).
func (a *FlatAdam) Steps() ([]float64, error) { return a.steps.Float64s() }

// ZeroGrad zeroes every gradient with one fill.
func (a *FlatAdam) ZeroGrad() error { return a.grad.inplace("zero_", C.M2T_ZERO_, nil, 0) }

// Step updates every active model from the gradients.
func (a *FlatAdam) Step() error {
	if a.dirty {
		return fmt.Errorf("adam: learning rates or activity changed without Sync")
	}
	var index C.m2t_tensor
	if !a.Exact {
		if a.index == nil {
			dev := C.CString(string(a.device))
			defer C.free(unsafe.Pointer(dev))
			a.index = a.own.call("adam model index", func(out *C.m2t_tensor) C.m2t_err {
				return C.m2t_flat_model_index(&a.per[0], C.int(len(a.per)), C.int64_t(a.K), dev, out)
			})
			if err := a.own.Err(); err != nil {
				return err
			}
		}
		index = a.index.h
	}
	return wrapErr("adam", C.m2t_adam_flat_step(a.params.h, a.grad.h, a.m.h, a.v.h, index, &a.per[0], C.int(len(a.per)),
		a.steps.h, a.lrs.h, a.act.h, C.double(a.Beta1), C.double(a.Beta2), C.double(a.Eps), cBool(a.Exact)))
}

// Close frees the buffers and state (the parameters keep their storage).
func (a *FlatAdam) Close() { a.own.Close() }

// offset is where model i's block of parameter j starts in the flat buffers.
func (a *FlatAdam) offset(j, i int) int64 {
	off := int64(0)
	for _, n := range a.per[:j] {
		off += int64(n) * int64(a.K)
	}
	return off + int64(i)*int64(a.per[j])
}

// Moments returns views, made in s, of model i's first and second moment
// estimates of parameter j (in the order the parameters were given), flat:
// reshape them to the parameter's per-model shape. Writing into them sets
// the state (a resumed run).
func (a *FlatAdam) Moments(s *Scope, j, i int) (expAvg, expAvgSq *Tensor, err error) {
	if j < 0 || j >= len(a.per) || i < 0 || i >= a.K {
		return nil, nil, fmt.Errorf("flat adam: no parameter %d of model %d (%d parameters, %d models)", j, i, len(a.per), a.K)
	}
	off, n := a.offset(j, i), int64(a.per[j])
	expAvg, expAvgSq = s.Narrow(a.m, 0, off, n), s.Narrow(a.v, 0, off, n)
	return expAvg, expAvgSq, s.Err()
}

// SetStep sets model i's step count (a resumed run).
func (a *FlatAdam) SetStep(i int, step float64) error {
	if i < 0 || i >= a.K {
		return fmt.Errorf("flat adam: no model %d of %d", i, a.K)
	}
	s := NewScope()
	defer s.Close()
	if err := s.Narrow(a.steps, 0, int64(i), 1).Fill(step); err != nil {
		return fmt.Errorf("flat adam: step of model %d: %w", i, err)
	}
	return s.Err()
}
