package model

import (
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/m2mix/m2mix/torch"
)

// trainer takes the optimisation steps of K stacked models, one batch at a
// time. Everything a step reads that changes between steps lives in device
// tensors updated in place (parameters and Adam state in flat buffers,
// per-model learning rates and activity, loss weights, dropout keys and
// step counter, the running loss), so on CUDA the step can be recorded once
// as a CUDA graph and replayed for every full batch; a step then costs one
// launch instead of hundreds. The last, partial batch and any run without
// graphs take the same step as plain calls.
type trainer struct {
	net     *Network
	opt     *torch.FlatOptimizer
	drop    *torch.KeyedDropout
	k       int
	batch   int64
	heads   []string      // sorted, the order of weights
	weights *torch.Tensor // (k, heads) float32: this epoch's loss weights, each model's own
	total   *torch.Tensor // (k): sum over the epoch of rows * loss
	own     *torch.Scope
	log     io.Writer
	device  torch.Device

	// CUDA graph state: graph is nil without graphs; input holds the
	// training step's input rows, copied in before each replay.
	graph    stepGraph
	input    *Split
	warm     int  // plain full-batch steps taken before the capture
	captured bool // the graph holds the training step
	stepID   int  // its capture
	eval     *evalGraph
}

// newTrainer prepares the optimiser (over the trainable parameters: freeze first),
// dropout and, on CUDA, a graph for net's models.
func newTrainer(net *Network, cfg *Config, train *Split, o Options) (*trainer, error) {
	t := &trainer{net: net, k: net.K, batch: int64(cfg.BatchSize), own: torch.NewScope(), log: o.Log, device: o.Device}
	if t.log == nil {
		t.log = io.Discard
	}
	var err error
	if t.opt, err = torch.NewFlatOptimizer(net.Params.Trainable(), t.k, cfg.optimizer()); err != nil {
		t.own.Close()
		return nil, err
	}
	if cfg.ClipGradNorm > 0 {
		// MultiBench clips its model's parameters, not auxiliary modules'.
		var clipped []bool
		for _, name := range net.Params.TrainableNames() {
			clipped = append(clipped, !strings.HasPrefix(name, auxPrefix))
		}
		t.opt.SetClip(cfg.ClipGradNorm, clipped)
	}
	if t.drop, err = torch.NewKeyedDropout(o.Device, t.k, true); err != nil {
		t.Close()
		return nil, err
	}
	t.heads = slices.Clone(cfg.Heads)
	slices.Sort(t.heads)
	t.weights = t.own.Full(0, torch.Float32, o.Device, int64(t.k), int64(len(t.heads)))
	t.total = t.own.Full(0, torch.Float32, o.Device, int64(t.k))
	if err := t.own.Err(); err != nil {
		t.Close()
		return nil, err
	}
	if o.Device != torch.CPU && !o.NoGraphs && train.N >= t.batch {
		if !torch.GraphsAvailable() {
			fmt.Fprintf(t.log, "%s: CUDA graphs unavailable in this shim; plain steps\n", cfg.Name)
		} else if g, err := torch.NewGraph(o.Device); err != nil {
			fmt.Fprintf(t.log, "%s: %v; plain steps\n", cfg.Name, err)
		} else {
			t.graph = g
		}
	}
	return t, nil
}

// Close frees the trainer's buffers and graph.
func (t *trainer) Close() {
	if t.graph != nil {
		t.graph.Close()
	}
	if t.drop != nil {
		t.drop.Close()
	}
	if t.opt != nil {
		t.opt.Close()
	}
	t.own.Close()
}

// loss is each model's training loss on batch b, (K): the heads'
// cross-entropies weighted by weights (K, heads: each model's weight of
// each head, in heads' order) plus the auxiliary terms.
func (n *Network) loss(s *torch.Scope, b Batch, mode Mode, heads []string, weights *torch.Tensor) *torch.Tensor {
	r := n.forward(s, b, mode)
	var perModel *torch.Tensor
	add := func(term *torch.Tensor) {
		if perModel == nil {
			perModel = term
		} else {
			perModel = s.Add(perModel, term)
		}
	}
	for i, h := range heads {
		add(s.Mul(modelCE(s, r.logits[h], b.Label, n.K, b.PerModel, torch.ReduceMean), s.Reshape(s.Narrow(weights, 1, int64(i), 1), -1)))
	}
	for _, a := range n.Aux {
		add(a.Loss(s, r, b, n.K))
	}
	return perModel
}

// shuffledOrder is each model's order of the n training rows in an epoch,
// (K, n) int64 on device, made in s: model i's is the permutation a lone
// run of seeds[i] draws, from (seed, epoch) alone.
func shuffledOrder(s *torch.Scope, seeds []int64, epoch int, n int64, device torch.Device) *torch.Tensor {
	perm := make([]int64, 0, int64(len(seeds))*n)
	for _, seed := range seeds {
		p := make([]int64, n)
		for i := range p {
			p[i] = int64(i)
		}
		r := rand.New(rand.NewPCG(uint64(seed), uint64(epoch)))
		r.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
		perm = append(perm, p...)
	}
	order := s.From(perm, int64(len(seeds)), n)
	if device != torch.CPU {
		order = s.To(order, device)
	}
	return order
}

// epoch runs one pass over the training rows for every model at once, in
// the data's order, or in each model's own order (K, N) when order is not
// nil, with model i's heads weighted by weights[i], and returns each
// model's mean training loss, read from the device once.
func (t *trainer) epoch(sp *Split, order *torch.Tensor, weights []map[string]float64, keys []uint64) ([]float64, error) {
	if len(weights) != t.k {
		return nil, fmt.Errorf("loss weights for %d models, want %d", len(weights), t.k)
	}
	w := make([]float32, 0, t.k*len(t.heads))
	for _, mw := range weights {
		for _, h := range t.heads {
			w = append(w, float32(mw[h]))
		}
	}
	s := torch.NewScope()
	err := t.weights.CopyFrom(s.From(w, int64(t.k), int64(len(t.heads))))
	s.Close()
	if err == nil {
		err = t.total.Fill(0)
	}
	if err == nil {
		err = t.drop.StartEpoch(keys)
	}
	if err == nil {
		err = t.opt.Sync()
	}
	if err != nil {
		return nil, err
	}
	for lo := int64(0); lo < sp.N; lo += t.batch {
		n := min(t.batch, sp.N-lo)
		s := torch.NewScope()
		rows := sp.rowsAt(s, order, lo, n)
		if t.graph != nil && n == t.batch {
			err = t.graphStep(rows)
		} else {
			err = t.step(rows.Batch(s), n)
		}
		s.Close()
		if err != nil {
			return nil, err
		}
	}
	sums, err := t.total.Float64s()
	for i := range sums {
		sums[i] /= float64(sp.N)
	}
	return sums, err
}

// sameWeights is every one of k models weighted by w.
func sameWeights(k int, w map[string]float64) []map[string]float64 {
	out := make([]map[string]float64, k)
	for i := range out {
		out[i] = w
	}
	return out
}

// step is one optimisation step of every model on batch b of n rows. The
// summed loss gives each model's parameters exactly its own loss's gradient.
func (t *trainer) step(b Batch, n int64) error {
	s := torch.NewScope()
	defer s.Close()
	perModel := t.net.loss(s, b, Mode{Train: true, Drop: t.drop}, t.heads, t.weights)
	if err := s.Err(); err != nil {
		return err
	}
	if err := t.opt.ZeroGrad(); err != nil {
		return err
	}
	if err := s.Sum(perModel, false).Backward(); err != nil {
		return err
	}
	if err := t.opt.Step(); err != nil {
		return err
	}
	if err := t.drop.EndStep(); err != nil {
		return err
	}
	return t.total.AddScaled(s.Detach(perModel), float64(n))
}
