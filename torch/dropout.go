package torch

/*
#include "shim/m2t_api.h"
*/
import "C"

import "fmt"

// KeyedDropout draws dropout masks from keys rather than from a generator's
// state: an element's mask is a pure function of its model's key, the step
// counter, the dropout site (the call's ordinal within the step) and the
// element's index. So a resumed run, a model trained in a seed batch and a
// replayed CUDA graph each draw exactly the masks a fresh lone run draws,
// and the step counter lives on the device, where a graph advances it.
type KeyedDropout struct {
	// TensorOps computes masks with integer tensor ops even on the CPU (a
	// device always does); tests use it to check the two forms agree.
	TensorOps bool
	stacked   bool
	site      int64
	keys      *Tensor // (models) int64
	counter   *Tensor // (1) int64: steps taken this epoch
	own       *Scope
}

// NewKeyedDropout prepares dropout for k models on device. stacked: inputs
// carry the model axis first (k models trained as one); else k must be 1.
func NewKeyedDropout(device Device, k int, stacked bool) (*KeyedDropout, error) {
	if !stacked && k != 1 {
		return nil, fmt.Errorf("keyed dropout: %d keys for an unstacked model", k)
	}
	s := NewScope()
	d := &KeyedDropout{stacked: stacked, own: s}
	d.keys = s.Full(0, Int64, device, int64(k))
	d.counter = s.Full(0, Int64, device, 1)
	if err := s.Err(); err != nil {
		s.Close()
		return nil, fmt.Errorf("keyed dropout: %w", err)
	}
	return d, nil
}

// StartEpoch sets each model's key (one per model) and zeroes the step counter.
func (d *KeyedDropout) StartEpoch(keys []uint64) error {
	s := NewScope()
	defer s.Close()
	v := make([]int64, len(keys))
	for i, k := range keys {
		v[i] = int64(k)
	}
	if err := d.keys.CopyFrom(s.From(v, int64(len(v)))); err != nil {
		return fmt.Errorf("dropout keys: %w", err)
	}
	d.site = 0
	return d.counter.Fill(0)
}

// Apply is inverted dropout of x with probability p at the next site.
func (d *KeyedDropout) Apply(s *Scope, x *Tensor, p float64) *Tensor {
	site := d.site
	d.site++
	return s.call("dropout", func(out *C.m2t_tensor) C.m2t_err {
		return C.m2t_dropout_keyed(x.h, C.double(p), d.keys.h, d.counter.h, C.int64_t(site), cBool(d.stacked), cBool(d.TensorOps), out)
	}, x)
}

// EndStep advances the step counter on the device and restarts the sites.
func (d *KeyedDropout) EndStep() error {
	d.site = 0
	return d.counter.inplace("add_", C.M2T_ADD_SCALAR_, nil, 1)
}

// Rewind restarts the sites of a step that did not complete (a failed
// CUDA graph capture), so the step can be taken again.
func (d *KeyedDropout) Rewind() { d.site = 0 }

// Close frees the keys and counter.
func (d *KeyedDropout) Close() { d.own.Close() }
