package model

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/m2mix/m2mix/torch"
)

// Checkpoints are safetensors files, one model each (a seed batch writes
// one per seed, as a lone run would). best.safetensors holds the parameters
// under their PyTorch state_dict names and shapes, loadable into the
// reference model (and buffers such as BatchNorm's running statistics);
// last.safetensors adds the optimiser's state under PyTorch's names,
// "<rule>.<state>.<name>" (Adam: "adam.exp_avg.<name>" and
// "adam.exp_avg_sq.<name>"; RMSprop: "rmsprop.square_avg.<name>"; SGD
// none), its step counts in "<rule>.step", and the loop's state as JSON in
// the metadata, which is what a resumed run continues from.

// BestFile holds a run's lowest-validation-loss weights (what its test and
// probes use); lastFile the latest epoch's state, for resuming.
const (
	BestFile = "best.safetensors"
	lastFile = "last.safetensors"
)

// loopState is what, besides weights and Adam, one model needs to continue.
type loopState struct {
	NextEpoch int        `json:"next_epoch"`
	LR        float64    `json:"lr"`
	WFusion   float64    `json:"w_fusion"`
	Plateau   *Plateau   `json:"plateau,omitempty"`
	Early     *EarlyStop `json:"early_stop"`
	BestEpoch int        `json:"best_epoch"`
	// Diverged says why the model stopped on a non-finite loss ("" if it did not).
	Diverged string `json:"diverged,omitempty"`
}

// stopped reports whether the model trains no more: early stopping ended
// it, or its loss stopped being finite.
func (st *loopState) stopped() bool { return st.Diverged != "" || st.Early.Stopped() }

// modelSlices returns model i's parameters under their names, as views
// (made in s) shaped as one model's.
func modelSlices(s *torch.Scope, net *Network, i int) map[string]*torch.Tensor {
	out := map[string]*torch.Tensor{}
	for j, name := range net.Params.Names {
		p := net.Params.Tensors[j]
		shape, _ := p.Shape()
		out[name] = s.Reshape(s.Narrow(p, 0, int64(i), 1), shape[1:]...)
	}
	return out
}

// ckptPart is a further network of a model kept in its last.safetensors
// beside the main one, with its optimiser, every name prefixed (Gradient
// Blending's fine-tuned head: "finetune.").
type ckptPart struct {
	prefix string
	net    *Network
	opt    *torch.FlatOptimizer
}

// saveModel writes model i's parameters to path and, with opt, its
// optimiser state and loop state st (last.safetensors), and the extra
// parts' parameters and optimiser states under their prefixes.
func saveModel(path string, net *Network, i int, opt *torch.FlatOptimizer, st *loopState, extra ...ckptPart) error {
	s := torch.NewScope()
	defer s.Close()
	ts := map[string]*torch.Tensor{}
	meta := map[string]string{"config": net.Config.Name}
	for _, p := range append([]ckptPart{{"", net, opt}}, extra...) {
		if err := addModelTensors(s, ts, p, i); err != nil {
			return fmt.Errorf("checkpoint %s: %w", path, err)
		}
	}
	if opt != nil {
		b, err := json.Marshal(st)
		if err != nil {
			return err
		}
		meta["state"] = string(b)
	}
	if err := s.Err(); err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return torch.SaveSafetensors(path, ts, meta)
}

// addModelTensors adds model i of part p to ts: its parameters and, with an
// optimiser, the optimiser's state and step counts, every name prefixed.
func addModelTensors(s *torch.Scope, ts map[string]*torch.Tensor, p ckptPart, i int) error {
	params := modelSlices(s, p.net, i)
	for name, t := range params {
		ts[p.prefix+name] = t
	}
	if p.opt == nil {
		return nil
	}
	steps, err := p.opt.Steps()
	if err != nil {
		return err
	}
	names := p.net.Params.TrainableNames()
	rule := p.opt.Spec().Rule
	stepv := make([]int64, len(names))
	for j, name := range names {
		state, err := p.opt.State(s, j, i)
		if err != nil {
			return err
		}
		shape, _ := params[name].Shape()
		for k, sn := range p.opt.StateNames() {
			ts[p.prefix+rule+"."+sn+"."+name] = s.Reshape(state[k], shape...)
		}
		stepv[j] = int64(steps[i])
	}
	ts[p.prefix+rule+".step"] = s.From(stepv, int64(len(stepv)))
	return nil
}

// loadModel copies the parameters whose names start with prefix ("" for
// all) from the one-model checkpoint at path into model i. Every such
// parameter must be in the file with its shape, and at least one must
// match. It returns the file's tensors (owned by s) and metadata.
func loadModel(s *torch.Scope, path string, net *Network, i int, prefix string) (map[string]*torch.Tensor, map[string]string, error) {
	src, meta, err := torch.LoadSafetensors(s, path)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (delete it, or its run folder, to train that run again)", err)
	}
	if meta[torch.ChecksumKey] == "" {
		return nil, nil, fmt.Errorf("checkpoint %s has no checksum (m2mix records one in every checkpoint it writes; this one was made elsewhere or by an older version): delete it, or its run folder, to train that run again", path)
	}
	dst := modelSlices(s, net, i)
	copied := 0
	for _, name := range net.Params.Names {
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		t, ok := src[name]
		if !ok {
			return nil, nil, fmt.Errorf("checkpoint %s: no parameter %q", path, name)
		}
		want, _ := dst[name].Shape()
		got, _ := t.Shape()
		if fmt.Sprint(want) != fmt.Sprint(got) {
			return nil, nil, fmt.Errorf("checkpoint %s: parameter %q has shape %v, want %v", path, name, got, want)
		}
		if err := dst[name].CopyFrom(t); err != nil {
			return nil, nil, fmt.Errorf("checkpoint %s: %q: %w", path, name, err)
		}
		copied++
	}
	if copied == 0 {
		return nil, nil, fmt.Errorf("checkpoint %s: no parameter starts with %q", path, prefix)
	}
	return src, meta, s.Err()
}

// loadResume restores model i's weights, optimiser state and loop state
// from its last.safetensors, and the extra parts' weights and optimiser
// states from their prefixed names.
func loadResume(path string, net *Network, i int, opt *torch.FlatOptimizer, extra ...ckptPart) (*loopState, error) {
	s := torch.NewScope()
	defer s.Close()
	ts, meta, err := loadModel(s, path, net, i, "")
	if err != nil {
		return nil, err
	}
	var st loopState
	if err := json.Unmarshal([]byte(meta["state"]), &st); err != nil || st.Early == nil {
		return nil, fmt.Errorf("checkpoint %s: no loop state (%v): not a last.safetensors", path, err)
	}
	for _, p := range append([]ckptPart{{"", net, opt}}, extra...) {
		if p.prefix != "" {
			dst := modelSlices(s, p.net, i)
			for _, name := range p.net.Params.Names {
				src := ts[p.prefix+name]
				if src == nil {
					return nil, fmt.Errorf("checkpoint %s: no parameter %q", path, p.prefix+name)
				}
				want, _ := dst[name].Shape()
				got, _ := src.Shape()
				if fmt.Sprint(want) != fmt.Sprint(got) {
					return nil, fmt.Errorf("checkpoint %s: parameter %q has shape %v, want %v", path, p.prefix+name, got, want)
				}
				if err := dst[name].CopyFrom(src); err != nil {
					return nil, fmt.Errorf("checkpoint %s: %q: %w", path, p.prefix+name, err)
				}
			}
		}
		if err := restoreOptimizer(s, path, ts, p, i); err != nil {
			return nil, err
		}
	}
	return &st, s.Err()
}

// restoreOptimizer copies part p's optimiser state of model i from a
// checkpoint's tensors ts (read from path).
func restoreOptimizer(s *torch.Scope, path string, ts map[string]*torch.Tensor, p ckptPart, i int) error {
	opt := p.opt
	rule := opt.Spec().Rule
	steps, ok := ts[p.prefix+rule+".step"]
	if !ok {
		return fmt.Errorf("checkpoint %s: no %s%s.step (not written by a %s run)", path, p.prefix, rule, rule)
	}
	stepv, err := steps.Int64s()
	if err != nil {
		return err
	}
	names := p.net.Params.TrainableNames()
	if len(stepv) != len(names) {
		return fmt.Errorf("checkpoint %s: %d optimiser steps for %d parameters", path, len(stepv), len(names))
	}
	for j, name := range names {
		if stepv[j] != stepv[0] {
			return fmt.Errorf("checkpoint %s: step %d for %q, %d for %q: one model's parameters step together", path, stepv[j], name, stepv[0], names[0])
		}
		dst, err := opt.State(s, j, i)
		if err != nil {
			return err
		}
		for k, sn := range opt.StateNames() {
			src := ts[p.prefix+rule+"."+sn+"."+name]
			if src == nil {
				return fmt.Errorf("checkpoint %s: no %s %s of %q", path, rule, sn, p.prefix+name)
			}
			want, _ := dst[k].Numel()
			got, _ := src.Numel()
			if want != got {
				return fmt.Errorf("checkpoint %s: %s %s of %q has %d values, want %d", path, rule, sn, p.prefix+name, got, want)
			}
			if err := dst[k].CopyFrom(s.Reshape(src, -1)); err != nil {
				return fmt.Errorf("checkpoint %s: %s %s of %q: %w", path, rule, sn, p.prefix+name, err)
			}
		}
	}
	if len(stepv) > 0 {
		if err := opt.SetStep(i, float64(stepv[0])); err != nil {
			return fmt.Errorf("checkpoint %s: %w", path, err)
		}
	}
	return nil
}
