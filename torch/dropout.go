package torch

/*
#include "shim/m2t_api.h"
*/
import "C"

import "fmt"

// KeyedDropout draws dropout masks from keys rather than from a generator's
// state: an element's mask is a pure function of its model's key, the step
// counter and the element's index within the step (each dropout site takes
// the next indices). So a resumed run, a model trained in a seed batch and
// a replayed CUDA graph each draw exactly the masks a fresh lone run draws,
// and the step counter lives on the device, where a graph advances it.
//
// From the second step on, the first site of a step computes the masks of
// every site of the step at once (the "bank", laid out as the previous step
// was), and each site multiplies by its slice: on a GPU that is one set of
// integer kernels per step instead of one per site. A site that does not fit
// the bank (another dropout rate, a smaller last batch) computes its own
// masks, which are the same values.
type KeyedDropout struct {
	// TensorOps computes masks with integer tensor ops even on the CPU (a
	// device always does); NoBank computes every site on its own. Tests use
	// both to check that every way gives the same masks.
	TensorOps, NoBank bool
	stacked           bool
	k                 int64
	offset            int64   // per-model elements used so far this step
	first             int64   // per-model elements of this step's first site
	lastFirst         int64   // ... and of the last step's first site
	lastTotal         int64   // the last step's offset at its end: the bank's width
	bank              *Tensor // this step's masks (k, lastTotal), made in the step's scope
	bankP             float64
	keys              *Tensor // (models) int64
	counter           *Tensor // (1) int64: steps taken this epoch
	own               *Scope
}

// NewKeyedDropout prepares dropout for k models on device. stacked: inputs
// carry the model axis first (k models trained as one); else k must be 1.
func NewKeyedDropout(device Device, k int, stacked bool) (*KeyedDropout, error) {
	if !stacked && k != 1 {
		return nil, fmt.Errorf("keyed dropout: %d keys for an unstacked model", k)
	}
	s := NewScope()
	d := &KeyedDropout{stacked: stacked, k: int64(k), own: s}
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
	d.Rewind()
	return d.counter.Fill(0)
}

// Apply is inverted dropout of x with probability p at the next site.
func (d *KeyedDropout) Apply(s *Scope, x *Tensor, p float64) *Tensor {
	if s.err != nil {
		return &Tensor{scope: s}
	}
	n, err := x.Numel()
	if err != nil {
		return s.fail("dropout", err)
	}
	if d.k > 0 {
		n /= d.k
	}
	offset := d.offset
	if offset == 0 {
		d.first = n
		if !d.NoBank && d.lastFirst == n {
			dt, err := x.DType()
			if err != nil {
				return s.fail("dropout", err)
			}
			d.bank, d.bankP = s.call("dropout masks", func(out *C.m2t_tensor) C.m2t_err {
				return C.m2t_dropout_bank(d.keys.h, d.counter.h, C.int64_t(d.lastTotal), C.double(p), C.int(dt), cBool(d.TensorOps), out)
			}), p
		}
	}
	d.offset += n
	if bank := d.bank; bank.Valid() && p == d.bankP && offset+n <= d.lastTotal {
		shape, err := x.Shape()
		if err != nil {
			return s.fail("dropout", err)
		}
		return s.Mul(x, s.Reshape(s.Narrow(bank, 1, offset, n), shape...))
	}
	return s.call("dropout", func(out *C.m2t_tensor) C.m2t_err {
		return C.m2t_dropout_keyed(x.h, C.double(p), d.keys.h, d.counter.h, C.int64_t(offset), cBool(d.stacked), cBool(d.TensorOps), out)
	}, x)
}

// EndStep advances the step counter on the device; the next step's sites
// start again at element 0, laid out like this step's.
func (d *KeyedDropout) EndStep() error {
	d.lastFirst, d.lastTotal = d.first, d.offset
	d.Rewind()
	return d.counter.inplace("add_", C.M2T_ADD_SCALAR_, nil, 1)
}

// Rewind restarts a step that did not complete (a failed CUDA graph
// capture), so the step can be taken again.
func (d *KeyedDropout) Rewind() { d.offset, d.first, d.bank = 0, 0, nil }

// Close frees the keys and counter.
func (d *KeyedDropout) Close() { d.own.Close() }
