package torch

/*
#include "shim/m2t_api.h"
*/
import "C"

import (
	"fmt"
)

// AdamOptions are torch.optim.Adam's hyper-parameters.
type AdamOptions struct {
	LR, Beta1, Beta2, Eps, WeightDecay float64
}

// DefaultAdam returns PyTorch's defaults with the given learning rate.
func DefaultAdam(lr float64) AdamOptions {
	return AdamOptions{LR: lr, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
}

// Adam is libtorch's own Adam over a fixed list of parameters.
type Adam struct {
	h      C.m2t_adam
	params []*Tensor
}

// NewAdam creates the optimiser. Free it with Close.
func NewAdam(params []*Tensor, o AdamOptions) (*Adam, error) {
	if _, err := Load(); err != nil {
		return nil, err
	}
	hs := make([]C.m2t_tensor, len(params))
	for i, p := range params {
		h, err := p.handle(fmt.Sprintf("adam: parameter %d", i))
		if err != nil {
			return nil, err
		}
		hs[i] = h
	}
	var h C.m2t_adam
	var first *C.m2t_tensor
	if len(hs) > 0 {
		first = &hs[0]
	}
	err := check(C.m2t_adam_new(first, C.int(len(hs)), C.double(o.LR), C.double(o.Beta1), C.double(o.Beta2),
		C.double(o.Eps), C.double(o.WeightDecay), &h))
	if err != nil {
		return nil, fmt.Errorf("adam: %w", err)
	}
	return &Adam{h: h, params: params}, nil
}

func (a *Adam) ok(op string) error {
	if a == nil || a.h == nil {
		return fmt.Errorf("adam %s: optimiser is closed", op)
	}
	return nil
}

// Step applies one update from the parameters' gradients.
func (a *Adam) Step() error {
	if err := a.ok("step"); err != nil {
		return err
	}
	return wrapErr("adam step", C.m2t_adam_step(a.h))
}

// ZeroGrad zeroes every parameter's gradient in place.
func (a *Adam) ZeroGrad() error {
	if err := a.ok("zero_grad"); err != nil {
		return err
	}
	return wrapErr("adam zero_grad", C.m2t_adam_zero_grad(a.h))
}

// SetLR changes the learning rate for the following steps (plateau scheduler).
func (a *Adam) SetLR(lr float64) error {
	if err := a.ok("set_lr"); err != nil {
		return err
	}
	return wrapErr("adam set_lr", C.m2t_adam_set_lr(a.h, C.double(lr)))
}

// State returns parameter i's step count and moment estimates, made in s.
func (a *Adam) State(s *Scope, i int) (step int64, expAvg, expAvgSq *Tensor, err error) {
	if err := a.ok("state"); err != nil {
		return 0, nil, nil, err
	}
	var st C.int64_t
	var m, v C.m2t_tensor
	if err := check(C.m2t_adam_get_state(a.h, C.int(i), &st, &m, &v)); err != nil {
		return 0, nil, nil, fmt.Errorf("adam state: %w", err)
	}
	expAvg, expAvgSq = &Tensor{h: m, scope: s}, &Tensor{h: v, scope: s}
	s.tensors = append(s.tensors, expAvg, expAvgSq)
	return int64(st), expAvg, expAvgSq, nil
}

// SetState restores parameter i's step count and moments (e.g. on resume).
func (a *Adam) SetState(i int, step int64, expAvg, expAvgSq *Tensor) error {
	if err := a.ok("set_state"); err != nil {
		return err
	}
	m, err := expAvg.handle("adam set_state")
	if err != nil {
		return err
	}
	v, err := expAvgSq.handle("adam set_state")
	if err != nil {
		return err
	}
	return wrapErr("adam set_state", C.m2t_adam_set_state(a.h, C.int(i), C.int64_t(step), m, v))
}

// Params returns the parameters in optimiser order.
func (a *Adam) Params() []*Tensor { return a.params }

// Close frees the optimiser (not the parameters).
func (a *Adam) Close() {
	if a == nil || a.h == nil {
		return
	}
	C.m2t_adam_free(a.h)
	a.h = nil
}
