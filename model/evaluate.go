package model

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/m2mix/m2mix/runrecord"
	"github.com/m2mix/m2mix/torch"
)

// evaluation holds one model's per-head results over a whole split.
type evaluation struct {
	loss  map[string]float64 // mean cross-entropy per head
	acc   map[string]float64
	pred  map[string][]int64
	label []int64
}

func (e *evaluation) weightedLoss(w map[string]float64) float64 {
	v := 0.0
	for _, h := range slices.Sorted(maps.Keys(w)) {
		v += w[h] * e.loss[h]
	}
	return v
}

// modelCE is each model's cross-entropy, (K), summed or averaged over the
// rows, for logits (K, batch, classes) against labels (batch) every model
// shares, or (K, batch) of its own.
func modelCE(s *torch.Scope, logits, labels *torch.Tensor, k int, perModel bool, r torch.Reduction) *torch.Tensor {
	shape, _ := logits.Shape()
	if len(shape) == 0 {
		return failed(s, "cross-entropy", logits, 3)
	}
	target := s.Reshape(labels, -1)
	if !perModel && k > 1 {
		rep := make([]*torch.Tensor, k)
		for i := range rep {
			rep[i] = labels
		}
		target = s.Cat(0, rep...)
	}
	ce := s.CrossEntropy(s.Reshape(logits, -1, shape[len(shape)-1]), target, torch.ReduceNone)
	ce = s.Reshape(ce, int64(k), -1)
	if r == torch.ReduceSum {
		return s.Sum(ce, false, -1)
	}
	return s.Mean(ce, false, -1)
}

// evaluate runs the network's K models with dropout off over a split, in
// the data's order. Losses and predictions stay on the device until the
// split is done, then come back in one read per head.
func evaluate(net *Network, sp *Split, batch int) ([]*evaluation, error) {
	acc := torch.NewScope()
	defer acc.Close()
	dev, err := sp.Label.Device()
	if err != nil {
		return nil, err
	}
	lossSum := map[string]*torch.Tensor{} // head -> (k)
	for _, h := range net.Config.Heads {
		lossSum[h] = acc.Full(0, torch.Float32, dev, int64(net.K))
	}
	preds := map[string][]*torch.Tensor{} // head -> (k, rows) per batch
	var ferr error
	err = torch.NoGrad(func() {
		for lo := int64(0); lo < sp.N && ferr == nil; lo += int64(batch) {
			n := min(int64(batch), sp.N-lo)
			s := torch.NewScope()
			out, err := forwardEval(s, net, sp.rowsAt(s, nil, lo, n).Batch(s), n, lossSum)
			for h, p := range out {
				preds[h] = append(preds[h], acc.Adopt(p))
			}
			ferr = err
			s.Close()
		}
	})
	if err := errors.Join(err, ferr, acc.Err()); err != nil {
		return nil, err
	}
	cat := map[string]*torch.Tensor{}
	for h, ps := range preds {
		cat[h] = acc.Cat(1, ps...)
	}
	return collectEvaluations(sp, net.K, lossSum, cat)
}

// forwardEval runs the K models on batch b of n rows with dropout off:
// each head's summed loss is added, in place, to lossSum[h] (K), and its
// predictions (K, n) are returned, made in s. The evaluation graph records
// exactly this.
func forwardEval(s *torch.Scope, net *Network, b Batch, n int64, lossSum map[string]*torch.Tensor) (map[string]*torch.Tensor, error) {
	out := map[string]*torch.Tensor{}
	for h, l := range net.Forward(s, b, Mode{}) {
		if err := lossSum[h].AddScaled(modelCE(s, l, b.Label, net.K, b.PerModel, torch.ReduceSum), 1); err != nil {
			return nil, fmt.Errorf("evaluation loss of head %s: %w", h, err)
		}
		out[h] = s.Reshape(s.Argmax(l, -1), int64(net.K), n)
	}
	return out, s.Err()
}

// collectEvaluations reads each head's summed losses (K) and predictions
// (K, rows) of a split back from the device, one read each, into per-model
// evaluations.
func collectEvaluations(sp *Split, k int, lossSum, preds map[string]*torch.Tensor) ([]*evaluation, error) {
	evs := make([]*evaluation, k)
	for i := range evs {
		evs[i] = &evaluation{loss: map[string]float64{}, acc: map[string]float64{}, pred: map[string][]int64{}}
	}
	label, err := sp.Label.Int64s()
	if err != nil {
		return nil, err
	}
	for h, sum := range lossSum {
		sums, err := sum.Float64s()
		if err != nil {
			return nil, err
		}
		pred, err := preds[h].Int64s()
		if err != nil {
			return nil, err
		}
		for i, ev := range evs {
			ev.loss[h] = sums[i] / float64(sp.N)
			ev.pred[h] = pred[int64(i)*sp.N : int64(i+1)*sp.N]
			ev.acc[h] = Accuracy(ev.pred[h], label)
			ev.label = label
		}
	}
	return evs, nil
}

// finalMetrics summarises a finished run from its test evaluation.
func finalMetrics(cfg *Config, classes int64, rec *runrecord.Record, ev *evaluation, st *loopState, testSeconds float64) *runrecord.Metrics {
	trainSeconds := 0.0
	for _, e := range rec.History {
		trainSeconds += e.Seconds
	}
	main := cfg.Heads[0]
	return &runrecord.Metrics{
		Accuracy: ev.acc[main], MicroF1: ev.acc[main], MacroF1: MacroF1(ev.pred[main], ev.label, int(classes)),
		HeadAccuracy: ev.acc, TrainSeconds: trainSeconds, TestSeconds: testSeconds,
		BestEpoch: st.BestEpoch, Epochs: len(rec.History), StoppedEarly: st.Early.Stopped(),
		Diverged: st.Diverged,
	}
}
