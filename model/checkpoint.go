package model

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/m2mix/m2mix/torch"
)

// Checkpoints are safetensors files. best.safetensors holds the parameters
// under their PyTorch state_dict names, loadable into the reference model;
// last.safetensors adds Adam's moments ("adam.exp_avg.<name>",
// "adam.exp_avg_sq.<name>", steps in "adam.step") and the loop's state as
// JSON in the metadata, which is what a resumed run continues from.

// BestFile holds a run's lowest-validation-loss weights (what its test and
// probes use); lastFile the latest epoch's state, for resuming.
const (
	BestFile = "best.safetensors"
	lastFile = "last.safetensors"
)

// loopState is what, besides weights and Adam, a run needs to continue.
type loopState struct {
	NextEpoch int        `json:"next_epoch"`
	LR        float64    `json:"lr"`
	WFusion   float64    `json:"w_fusion"`
	Plateau   *Plateau   `json:"plateau,omitempty"`
	Early     *EarlyStop `json:"early_stop"`
	BestEpoch int        `json:"best_epoch"`
}

// saveParams writes the parameters (and, with opt, Adam's state and the loop
// state) to path.
func saveParams(path string, n *Network, opt *torch.Adam, st *loopState) error {
	s := torch.NewScope()
	defer s.Close()
	ts := n.Params.ByName()
	meta := map[string]string{"config": n.Config.Name}
	if opt != nil {
		names := n.Params.TrainableNames()
		steps := make([]int64, len(names))
		for i, name := range names {
			step, m, v, err := opt.State(s, i)
			if err != nil {
				return fmt.Errorf("checkpoint %s: %w", path, err)
			}
			steps[i] = step
			ts["adam.exp_avg."+name] = m
			ts["adam.exp_avg_sq."+name] = v
		}
		ts["adam.step"] = s.From(steps, int64(len(steps)))
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

// loadParams copies the parameters named with prefix from the checkpoint at
// path into n (all of them for prefix ""). It returns the file's tensors
// (owned by s) and metadata for callers that need more.
func loadParams(s *torch.Scope, path string, n *Network, prefix string) (map[string]*torch.Tensor, map[string]string, error) {
	ts, meta, err := torch.LoadSafetensors(s, path)
	if err != nil {
		return nil, nil, err
	}
	copied := 0
	for i, name := range n.Params.Names {
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		src, ok := ts[name]
		if !ok {
			return nil, nil, fmt.Errorf("checkpoint %s: no parameter %q", path, name)
		}
		dst := n.Params.Tensors[i]
		want, _ := dst.Shape()
		got, _ := src.Shape()
		if fmt.Sprint(want) != fmt.Sprint(got) {
			return nil, nil, fmt.Errorf("checkpoint %s: parameter %q has shape %v, want %v", path, name, got, want)
		}
		if err := dst.CopyFrom(src); err != nil {
			return nil, nil, fmt.Errorf("checkpoint %s: %q: %w", path, name, err)
		}
		copied++
	}
	if copied == 0 {
		return nil, nil, fmt.Errorf("checkpoint %s: no parameter starts with %q", path, prefix)
	}
	return ts, meta, nil
}

// loadResume restores weights, Adam's state and the loop state from last.safetensors.
func loadResume(path string, n *Network, opt *torch.Adam) (*loopState, error) {
	s := torch.NewScope()
	defer s.Close()
	ts, meta, err := loadParams(s, path, n, "")
	if err != nil {
		return nil, err
	}
	var st loopState
	if err := json.Unmarshal([]byte(meta["state"]), &st); err != nil {
		return nil, fmt.Errorf("checkpoint %s: loop state: %w", path, err)
	}
	steps, ok := ts["adam.step"]
	if !ok {
		return nil, fmt.Errorf("checkpoint %s: no adam.step", path)
	}
	stepv, err := steps.Int64s()
	if err != nil {
		return nil, err
	}
	names := n.Params.TrainableNames()
	if len(stepv) != len(names) {
		return nil, fmt.Errorf("checkpoint %s: %d Adam steps for %d parameters", path, len(stepv), len(names))
	}
	for i, name := range names {
		m, v := ts["adam.exp_avg."+name], ts["adam.exp_avg_sq."+name]
		if m == nil || v == nil {
			return nil, fmt.Errorf("checkpoint %s: no Adam moments for %q", path, name)
		}
		if err := opt.SetState(i, stepv[i], m, v); err != nil {
			return nil, fmt.Errorf("checkpoint %s: %w", path, err)
		}
	}
	return &st, nil
}
