package model

import (
	"errors"
	"fmt"

	"github.com/m2mix/m2mix/torch"
)

// CUDA graphs for the stacked trainer: the training step and the
// evaluation step are each recorded once and replayed for every full batch.
// Everything a replay reads that changes lives in device tensors updated in
// place (see trainer); inputs are copied into fixed buffers first.

// stepGraph is what the trainer needs of a CUDA graph (*torch.Graph); tests
// on machines without CUDA stand in for it.
type stepGraph interface {
	Begin() error
	End() (int, error)
	Replay(id int) error
	Close() error
}

// graphWarmup is how many plain full-batch training steps run before the
// capture: libraries initialise lazily (cuBLAS handles, autograd's device
// threads, allocator pools), and none of that may happen while recording.
// Evaluation, a forward pass only, warms up with one batch.
const graphWarmup = 3

// graphStep takes a full-batch step through the CUDA graph: copy the rows
// into the graph's input, then warm up, capture or replay.
func (t *trainer) graphStep(rows *Split) error {
	if t.input == nil {
		t.input = rows.clone(t.own)
		if err := t.own.Err(); err != nil {
			return err
		}
	} else if err := t.input.copyFrom(rows); err != nil {
		return err
	}
	s := torch.NewScope()
	defer s.Close()
	if t.captured {
		return t.graph.Replay(t.stepID)
	}
	if t.warm < graphWarmup {
		t.warm++
		return t.step(t.input.Batch(s), t.batch)
	}
	// Recorded, not run: the replay right after the capture takes this step.
	if err := t.graph.Begin(); err != nil {
		return t.noGraph(err, rows)
	}
	err := t.step(t.input.Batch(s), t.batch)
	id, endErr := t.graph.End()
	if err == nil {
		err = endErr
	}
	if err != nil {
		return t.noGraph(err, rows)
	}
	t.captured, t.stepID = true, id
	fmt.Fprintf(t.log, "CUDA graph of the training step captured after %d warm-up steps\n", t.warm)
	return t.graph.Replay(id)
}

// noGraph takes plainly the training step whose capture failed (nothing
// recorded ran), after giving up on graphs.
func (t *trainer) noGraph(cause error, rows *Split) error {
	t.drop.Rewind()
	if err := t.dropGraph("training step", cause); err != nil {
		return err
	}
	s := torch.NewScope()
	defer s.Close()
	return t.step(rows.Batch(s), t.batch)
}

// dropGraph gives up on graphs after a failed capture: training and
// evaluation run plainly from here, on the default stream.
func (t *trainer) dropGraph(what string, cause error) error {
	fmt.Fprintf(t.log, "CUDA graph capture of the %s failed (%v); plain steps from here\n", what, cause)
	err := t.graph.Close()
	t.graph = nil
	return err
}

// evalGraph is the evaluation step's graph state: its input rows, the
// per-head loss sums it adds into, and the predictions its capture writes.
type evalGraph struct {
	input    *Split
	batch    int64
	lossSum  map[string]*torch.Tensor // head -> (k), in place
	pred     map[string]*torch.Tensor // head -> (k, batch): the capture's output
	warm     bool
	captured bool
	id       int
}

// evaluate runs every model with dropout off over a split: through the
// evaluation graph when the trainer has graphs, else plainly.
func (t *trainer) evaluate(sp *Split, batch int) ([]*evaluation, error) {
	if t.graph == nil || sp.N < int64(batch) {
		return evaluate(t.net, sp, batch)
	}
	if t.eval == nil {
		first := torch.NewScope()
		t.eval = &evalGraph{input: sp.rowsAt(first, nil, 0, int64(batch)).clone(t.own), batch: int64(batch), lossSum: map[string]*torch.Tensor{}}
		first.Close()
		for _, h := range t.heads {
			t.eval.lossSum[h] = t.own.Full(0, torch.Float32, t.device, int64(t.k))
		}
		if err := t.own.Err(); err != nil {
			return nil, err
		}
	}
	e := t.eval
	for _, sum := range e.lossSum {
		if err := sum.Fill(0); err != nil {
			return nil, err
		}
	}
	acc := torch.NewScope()
	defer acc.Close()
	preds := map[string]*torch.Tensor{}
	for _, h := range t.heads {
		preds[h] = acc.Full(0, torch.Int64, t.device, int64(t.k), sp.N)
	}
	var ferr error
	err := torch.NoGrad(func() {
		for lo := int64(0); lo < sp.N && ferr == nil; lo += e.batch {
			ferr = t.evalBatch(sp, lo, min(e.batch, sp.N-lo), preds)
		}
	})
	if err := errors.Join(err, ferr, acc.Err()); err != nil {
		return nil, err
	}
	return collectEvaluations(sp, t.k, e.lossSum, preds)
}

// evalBatch evaluates rows [lo, lo+n): warm-up, capture or replay for a
// full batch, a plain step for the last, partial one; the predictions go to
// their columns of preds.
func (t *trainer) evalBatch(sp *Split, lo, n int64, preds map[string]*torch.Tensor) error {
	e := t.eval
	s := torch.NewScope()
	defer s.Close()
	var out map[string]*torch.Tensor
	var err error
	switch {
	case n < e.batch || t.graph == nil:
		out, err = t.evalStep(s, sp.rowsAt(s, nil, lo, n).Batch(s), n)
	default:
		if err := e.input.copyFrom(sp.rowsAt(s, nil, lo, n)); err != nil {
			return err
		}
		switch {
		case e.captured:
			out, err = e.pred, t.graph.Replay(e.id)
		case !e.warm:
			e.warm = true
			out, err = t.evalStep(s, e.input.Batch(s), n)
		default:
			out, err = t.captureEval(s)
		}
	}
	if err != nil {
		return err
	}
	for h, p := range out {
		if err := s.Narrow(preds[h], 1, lo, n).CopyFrom(p); err != nil {
			return fmt.Errorf("evaluation rows %d..%d: %w", lo, lo+n, err)
		}
	}
	return s.Err()
}

// captureEval records the evaluation step on the graph's input rows, then
// replays it once (recording does not run it). On a failed capture it
// evaluates the batch plainly, into s, and leaves graphs off.
func (t *trainer) captureEval(s *torch.Scope) (map[string]*torch.Tensor, error) {
	e := t.eval
	if err := t.graph.Begin(); err != nil {
		return nil, err
	}
	rec := torch.NewScope()
	out, err := t.evalStep(rec, e.input.Batch(rec), e.batch)
	if err == nil { // the capture's outputs outlive it: every replay writes them
		e.pred = map[string]*torch.Tensor{}
		for h, p := range out {
			e.pred[h] = t.own.Adopt(p)
		}
	}
	rec.Close()
	id, endErr := t.graph.End()
	if err == nil {
		err = endErr
	}
	if err != nil {
		e.pred = nil
		if err := t.dropGraph("evaluation step", err); err != nil {
			return nil, err
		}
		return t.evalStep(s, e.input.Batch(s), e.batch)
	}
	e.captured, e.id = true, id
	fmt.Fprintf(t.log, "CUDA graph of the evaluation step captured\n")
	return e.pred, t.graph.Replay(id)
}

// evalStep is forwardEval for the trainer's models, into the evaluation's sums.
func (t *trainer) evalStep(s *torch.Scope, b Batch, n int64) (map[string]*torch.Tensor, error) {
	return forwardEval(s, t.net, b, n, t.eval.lossSum)
}
