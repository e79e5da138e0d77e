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

// saveModel writes model i's parameters to path and, with opt, its Adam
// state and loop state st (last.safetensors).
func saveModel(path string, net *Network, i int, opt *torch.FlatOptimizer, st *loopState) error {
	s := torch.NewScope()
	defer s.Close()
	ts := modelSlices(s, net, i)
	meta := map[string]string{"config": net.Config.Name}
	if opt != nil {
		steps, err := opt.Steps()
		if err != nil {
			return fmt.Errorf("checkpoint %s: %w", path, err)
		}
		names := net.Params.TrainableNames()
		rule := opt.Spec().Rule
		stepv := make([]int64, len(names))
		for j, name := range names {
			state, err := opt.State(s, j, i)
			if err != nil {
				return fmt.Errorf("checkpoint %s: %w", path, err)
			}
			shape, _ := ts[name].Shape()
			for k, sn := range opt.StateNames() {
				ts[rule+"."+sn+"."+name] = s.Reshape(state[k], shape...)
			}
			stepv[j] = int64(steps[i])
		}
		ts[rule+".step"] = s.From(stepv, int64(len(stepv)))
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

// loadResume restores model i's weights, optimiser state and loop state from its
// last.safetensors.
func loadResume(path string, net *Network, i int, opt *torch.FlatOptimizer) (*loopState, error) {
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
	rule := opt.Spec().Rule
	steps, ok := ts[rule+".step"]
	if !ok {
		return nil, fmt.Errorf("checkpoint %s: no %s.step (not written by a %s run)", path, rule, rule)
	}
	stepv, err := steps.Int64s()
	if err != nil {
		return nil, err
	}
	names := net.Params.TrainableNames()
	if len(stepv) != len(names) {
		return nil, fmt.Errorf("checkpoint %s: %d optimiser steps for %d parameters", path, len(stepv), len(names))
	}
	for j, name := range names {
		if stepv[j] != stepv[0] {
			return nil, fmt.Errorf("checkpoint %s: step %d for %q, %d for %q: one model's parameters step together", path, stepv[j], name, stepv[0], names[0])
		}
		dst, err := opt.State(s, j, i)
		if err != nil {
			return nil, err
		}
		for k, sn := range opt.StateNames() {
			src := ts[rule+"."+sn+"."+name]
			if src == nil {
				return nil, fmt.Errorf("checkpoint %s: no %s %s of %q", path, rule, sn, name)
			}
			want, _ := dst[k].Numel()
			got, _ := src.Numel()
			if want != got {
				return nil, fmt.Errorf("checkpoint %s: %s %s of %q has %d values, want %d", path, rule, sn, name, got, want)
			}
			if err := dst[k].CopyFrom(s.Reshape(src, -1)); err != nil {
				return nil, fmt.Errorf("checkpoint %s: %s %s of %q: %w", path, rule, sn, name, err)
			}
		}
	}
	if len(stepv) > 0 {
		if err := opt.SetStep(i, float64(stepv[0])); err != nil {
			return nil, fmt.Errorf("checkpoint %s: %w", path, err)
		}
	}
	return &st, s.Err()
}
