package torch

/*
#include <stdlib.h>
#include "shim/m2t_api.h"
*/
import "C"

import (
	"fmt"
	"math"
	"unsafe"
)

// OptimizerSpec chooses a FlatOptimizer's update rule and its
// hyperparameters. A zero field takes PyTorch's default for the rule
// (Adam: betas 0.9 and 0.999, eps 1e-8; RMSprop: alpha 0.99, eps 1e-8;
// weight decay 0); a field the rule does not use must be zero. LR is every
// model's starting learning rate (0 stays 0: SetLR sets them per model).
type OptimizerSpec struct {
	// Rule is "adam", "sgd" (no momentum) or "rmsprop" (no momentum, not
	// centred).
	Rule string
	LR   float64
	// WeightDecay adds WeightDecay * parameter to the gradient before the
	// update (PyTorch's L2 form for all three rules, not AdamW's decoupled one).
	WeightDecay float64
	Alpha       float64 // RMSprop's smoothing constant
	Eps         float64 // Adam and RMSprop
	Beta1       float64 // Adam
	Beta2       float64 // Adam
}

// Update rules.
const (
	RuleAdam    = "adam"
	RuleSGD     = "sgd"
	RuleRMSprop = "rmsprop"
)

// withDefaults fills the zero fields with PyTorch's defaults for the rule
// and checks the result.
func (sp OptimizerSpec) withDefaults() (OptimizerSpec, error) {
	orZero := func(v *float64, def float64) {
		if *v == 0 {
			*v = def
		}
	}
	unused := func(names ...string) error {
		vals := map[string]float64{"alpha": sp.Alpha, "eps": sp.Eps, "beta1": sp.Beta1, "beta2": sp.Beta2}
		for _, n := range names {
			if vals[n] != 0 {
				return fmt.Errorf("optimiser %s takes no %s (have %g)", sp.Rule, n, vals[n])
			}
		}
		return nil
	}
	var err error
	switch sp.Rule {
	case RuleAdam:
		orZero(&sp.Beta1, 0.9)
		orZero(&sp.Beta2, 0.999)
		orZero(&sp.Eps, 1e-8)
		err = unused("alpha")
	case RuleRMSprop:
		orZero(&sp.Alpha, 0.99)
		orZero(&sp.Eps, 1e-8)
		err = unused("beta1", "beta2")
	case RuleSGD:
		err = unused("alpha", "eps", "beta1", "beta2")
	default:
		return sp, fmt.Errorf("optimiser rule %q: want %s, %s or %s", sp.Rule, RuleAdam, RuleSGD, RuleRMSprop)
	}
	if err != nil {
		return sp, err
	}
	switch {
	case sp.LR < 0 || sp.WeightDecay < 0 || sp.Eps < 0:
		return sp, fmt.Errorf("optimiser %s: negative learning rate, weight decay or eps (%g, %g, %g)", sp.Rule, sp.LR, sp.WeightDecay, sp.Eps)
	case sp.Beta1 < 0 || sp.Beta1 >= 1 || sp.Beta2 < 0 || sp.Beta2 >= 1 || sp.Alpha < 0 || sp.Alpha >= 1:
		return sp, fmt.Errorf("optimiser %s: betas and alpha must lie in [0, 1) (have %g, %g, %g)", sp.Rule, sp.Beta1, sp.Beta2, sp.Alpha)
	}
	return sp, nil
}

func (sp OptimizerSpec) ruleCode() C.int {
	switch sp.Rule {
	case RuleSGD:
		return C.M2T_RULE_SGD
	case RuleRMSprop:
		return C.M2T_RULE_RMSPROP
	}
	return C.M2T_RULE_ADAM
}

// FlatOptimizer is an optimiser (Adam, SGD or RMSprop, see OptimizerSpec)
// for K models whose parameters are stacked on a leading model axis. It
// moves every parameter into one flat buffer (parameters become contiguous
// views of it, gradients views of a twin buffer), so one step is a dozen
// operations however many tensors the network has. Each model has its own
// step count and learning rate, an inactive model does not change, and
// gradient-norm clipping (SetClip) applies to each model's gradients on
// their own. Per-model state lives in device tensors, so a step needs no
// values from the host and a CUDA graph can replay it.
//
// State per rule (see Moments and State): Adam keeps exp_avg and
// exp_avg_sq, RMSprop square_avg, SGD nothing; all three count steps.
type FlatOptimizer struct {
	// Exact updates model by model with the operations libtorch's step
	// performs, in its order (CPU only). Otherwise the update is vectorized
	// over the model axis: equal up to rounding, far fewer kernel launches.
	// NewFlatOptimizer sets it for CPU parameters.
	Exact bool
	K     int
	spec  OptimizerSpec
	// maxNorm and clipped: SetClip's arguments; clipErr what was wrong with them.
	maxNorm      float64
	clipped      []C.int
	clipErr      error
	lr           []float64
	active       []bool
	dirty        bool
	per          []C.int64_t // each parameter's per-model element count
	device       Device
	params, grad *Tensor // flat
	m, v         *Tensor // the rule's state buffers, nil where it keeps none
	index        *Tensor // element -> model, for the vectorized form; made when first needed
	steps, lrs   *Tensor // (K) float64
	act          *Tensor
	own          *Scope
}

// NewFlatOptimizer flattens params (each stacked over k models, trainable
// leaves) and prepares the spec's rule with learning rate spec.LR for
// every model.
func NewFlatOptimizer(params []*Tensor, k int, spec OptimizerSpec) (*FlatOptimizer, error) {
	spec, err := spec.withDefaults()
	if err != nil {
		return nil, err
	}
	if _, err := Load(); err != nil {
		return nil, err
	}
	if len(params) == 0 {
		return nil, fmt.Errorf("flat %s: no parameters", spec.Rule)
	}
	if k < 1 {
		return nil, fmt.Errorf("flat %s: %d models", spec.Rule, k)
	}
	hs := make([]C.m2t_tensor, len(params))
	for i, p := range params {
		h, err := p.handle("flat " + spec.Rule)
		if err != nil {
			return nil, err
		}
		hs[i] = h
	}
	s := NewScope()
	a := &FlatOptimizer{K: k, spec: spec, own: s, dirty: true, per: make([]C.int64_t, len(params))}
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
	if spec.Rule == RuleAdam {
		a.m = s.MulScalar(a.params, 0)
	}
	if spec.Rule != RuleSGD {
		a.v = s.MulScalar(a.params, 0)
	}
	a.steps = s.Full(0, Float64, dev, int64(k))
	a.lrs = s.Full(spec.LR, Float64, dev, int64(k))
	a.act = s.Full(1, Float64, dev, int64(k))
	if err := s.Err(); err != nil {
		s.Close()
		return nil, fmt.Errorf("flat %s: %w", spec.Rule, err)
	}
	for i := 0; i < k; i++ {
		a.lr = append(a.lr, spec.LR)
		a.active = append(a.active, true)
	}
	a.Exact, a.device = dev == CPU, dev
	return a, nil
}

// Spec returns the rule and hyperparameters in use (defaults filled in).
func (a *FlatOptimizer) Spec() OptimizerSpec { return a.spec }

// SetLR sets model i's learning rate from the next Sync.
func (a *FlatOptimizer) SetLR(i int, lr float64) { a.lr[i], a.dirty = lr, true }

// SetActive starts or stops model i from the next Sync.
func (a *FlatOptimizer) SetActive(i int, on bool) { a.active[i], a.dirty = on, true }

// SetClip makes every Step first clip each model's gradients as
// torch.nn.utils.clip_grad_norm_(those parameters, maxNorm) does, model by
// model: over the parameters j with clipped[j] (in the order given to
// NewFlatOptimizer; the others neither count nor change), total is the
// 2-norm of the per-parameter 2-norms, and the gradients are multiplied by
// maxNorm / (total + 1e-6) when that is below 1. maxNorm 0 turns clipping
// off. The clipped gradients stay in the gradient buffer, as PyTorch's do.
// Set it before capturing a step in a CUDA graph (the capture bakes it in).
// Bad arguments (a negative maxNorm, a flag count other than the parameter
// count) make the next Step fail.
func (a *FlatOptimizer) SetClip(maxNorm float64, clipped []bool) {
	a.maxNorm, a.clipped, a.clipErr = maxNorm, nil, nil
	switch {
	case maxNorm < 0 || math.IsNaN(maxNorm):
		a.clipErr = fmt.Errorf("clip: max norm %g (want >= 0)", maxNorm)
	case maxNorm > 0 && len(clipped) != len(a.per):
		a.clipErr = fmt.Errorf("clip: %d flags for %d parameters", len(clipped), len(a.per))
	case maxNorm > 0:
		a.clipped = make([]C.int, len(clipped))
		for j, c := range clipped {
			if c {
				a.clipped[j] = 1
			}
		}
	}
}

// Sync copies learning rates and activity to the device. Call it between
// steps (an epoch boundary), never inside a captured step.
func (a *FlatOptimizer) Sync() error {
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
		return fmt.Errorf("%s learning rates: %w", a.spec.Rule, err)
	}
	if err := a.act.CopyFrom(s.From(act, int64(a.K))); err != nil {
		return fmt.Errorf("%s activity: %w", a.spec.Rule, err)
	}
	a.dirty = false
	return nil
}

// Steps returns each model's step count (it reads the device).
func (a *FlatOptimizer) Steps() ([]float64, error) { return a.steps.Float64s() }

// ZeroGrad zeroes every gradient with one fill.
func (a *FlatOptimizer) ZeroGrad() error { return a.grad.inplace("zero_", C.M2T_ZERO_, nil, 0) }

// Step clips (see SetClip) and updates every active model from the gradients.
func (a *FlatOptimizer) Step() error {
	if a.dirty {
		return fmt.Errorf("%s: learning rates or activity changed without Sync", a.spec.Rule)
	}
	if a.clipErr != nil {
		return fmt.Errorf("%s: %w", a.spec.Rule, a.clipErr)
	}
	var index C.m2t_tensor
	if !a.Exact {
		if a.index == nil {
			dev := C.CString(string(a.device))
			defer C.free(unsafe.Pointer(dev))
			a.index = a.own.call(a.spec.Rule+" model index", func(out *C.m2t_tensor) C.m2t_err {
				return C.m2t_flat_model_index(&a.per[0], C.int(len(a.per)), C.int64_t(a.K), dev, out)
			})
			if err := a.own.Err(); err != nil {
				return err
			}
		}
		index = a.index.h
	}
	var hyper [C.M2T_HYPER_N]C.double
	hyper[C.M2T_HYPER_BETA1] = C.double(a.spec.Beta1)
	hyper[C.M2T_HYPER_BETA2] = C.double(a.spec.Beta2)
	hyper[C.M2T_HYPER_ALPHA] = C.double(a.spec.Alpha)
	hyper[C.M2T_HYPER_EPS] = C.double(a.spec.Eps)
	hyper[C.M2T_HYPER_WEIGHT_DECAY] = C.double(a.spec.WeightDecay)
	var clipped *C.int
	if len(a.clipped) > 0 {
		hyper[C.M2T_HYPER_MAX_NORM] = C.double(a.maxNorm)
		clipped = &a.clipped[0]
	}
	return wrapErr(a.spec.Rule, C.m2t_flat_step(a.spec.ruleCode(), a.params.h, a.grad.h, optHandle(a.m), optHandle(a.v), index,
		&a.per[0], C.int(len(a.per)), a.steps.h, a.lrs.h, a.act.h, &hyper[0], clipped, cBool(a.Exact)))
}

// Close frees the buffers and state (the parameters keep their storage).
func (a *FlatOptimizer) Close() { a.own.Close() }

// offset is where model i's block of parameter j starts in the flat buffers.
func (a *FlatOptimizer) offset(j, i int) int64 {
	off := int64(0)
	for _, n := range a.per[:j] {
		off += int64(n) * int64(a.K)
	}
	return off + int64(i)*int64(a.per[j])
}

// StateNames names the per-parameter state the rule keeps, in the order
// State returns it, with PyTorch's names: Adam "exp_avg", "exp_avg_sq";
// RMSprop "square_avg"; SGD none.
func (a *FlatOptimizer) StateNames() []string {
	switch a.spec.Rule {
	case RuleAdam:
		return []string{"exp_avg", "exp_avg_sq"}
	case RuleRMSprop:
		return []string{"square_avg"}
	}
	return nil
}

// State returns views, made in s, of model i's state of parameter j (in the
// order the parameters were given), one per StateNames entry, flat: reshape
// them to the parameter's per-model shape. Writing into them sets the state
// (a resumed run).
func (a *FlatOptimizer) State(s *Scope, j, i int) ([]*Tensor, error) {
	if j < 0 || j >= len(a.per) || i < 0 || i >= a.K {
		return nil, fmt.Errorf("flat %s: no parameter %d of model %d (%d parameters, %d models)", a.spec.Rule, j, i, len(a.per), a.K)
	}
	off, n := a.offset(j, i), int64(a.per[j])
	var out []*Tensor
	for _, buf := range []*Tensor{a.m, a.v} {
		if buf != nil {
			out = append(out, s.Narrow(buf, 0, off, n))
		}
	}
	return out, s.Err()
}

// Moments returns views, made in s, of model i's first and second moment
// estimates of parameter j (in the order the parameters were given), flat:
// reshape them to the parameter's per-model shape. Writing into them sets
// the state (a resumed run). Adam has both (exp_avg, exp_avg_sq); RMSprop
// only the second (square_avg; expAvg is nil); SGD none (an error).
func (a *FlatOptimizer) Moments(s *Scope, j, i int) (expAvg, expAvgSq *Tensor, err error) {
	if a.spec.Rule == RuleSGD {
		return nil, nil, fmt.Errorf("flat sgd: plain SGD keeps no moments")
	}
	st, err := a.State(s, j, i)
	if err != nil {
		return nil, nil, err
	}
	if a.spec.Rule == RuleRMSprop {
		return nil, st[0], nil
	}
	return st[0], st[1], nil
}

// SetStep sets model i's step count (a resumed run).
func (a *FlatOptimizer) SetStep(i int, step float64) error {
	if i < 0 || i >= a.K {
		return fmt.Errorf("flat %s: no model %d of %d", a.spec.Rule, i, a.K)
	}
	s := NewScope()
	defer s.Close()
	if err := s.Narrow(a.steps, 0, int64(i), 1).Fill(step); err != nil {
		return fmt.Errorf("flat %s: step of model %d: %w", a.spec.Rule, i, err)
	}
	return s.Err()
}
