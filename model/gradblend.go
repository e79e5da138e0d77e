package model

import (
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/runrecord"
	"github.com/m2mix/m2mix/torch"
)

// Gradient Blending (Wang, Tran and Feiszli, CVPR 2020) as MultiBench
// trains it (training_structures/gradient_blend.py; baselines.md §2.9),
// as configuration of the one loop: the trainer's epochs and evaluations
// serve every sub-step. The first share of the training rows, in file
// order, is held out; the rest is trained on. Each round of RoundEpochs
// epochs
//
//  1. estimates each model's head weights: a copy of each uni-modal branch
//     (its encoder and head) and of the multimodal branch (encoders, fusion,
//     fusion head) trains the round's epochs alone, with the same rule and
//     learning rate and a new optimiser, and its per-sample cross-entropy
//     after them on the trained rows (L_t) and the held-out rows (L_v) gives
//     w = |G / O^2|, G = L_v, O = L_v - L_t (1e-4 when negative), normalised
//     to sum 1 over the heads;
//  2. trains the network (every head) the round's epochs on the blended loss;
//  3. fine-tunes a separate fusion head, copied from the network's once
//     before the first round and kept across rounds, for FinetuneEpochs
//     epochs with its own optimiser on the encoders' codes computed once
//     (no gradient), and after each of its epochs validates the network's
//     encoders with that head: the best of those (by the configuration's
//     selection) is the model saved and tested.
//
// A run resumes at round boundaries: last.safetensors, written after each
// round, holds the network, its optimiser, the fine-tuned head
// ("finetune." names) and its optimiser; a run killed inside a round
// repeats that round from its start, drawing what it drew the first time.

// GradBlendSpec is a configuration's "gradient_blend".
type GradBlendSpec struct {
	RoundEpochs     int     `json:"round_epochs"`     // blended epochs per round, and each estimate's epochs (MultiBench's gb_epoch)
	FinetuneEpochs  int     `json:"finetune_epochs"`  // head fine-tune epochs per round (finetune_epoch)
	EstimationShare float64 `json:"estimation_share"` // the share of the training rows held out, from the first (v_rate)
}

func (g *GradBlendSpec) validate(c *Config) error {
	if g == nil {
		return nil
	}
	ds, _ := Dataset(c.Dataset) // validated
	heads := ds.Heads()
	switch {
	case g.RoundEpochs <= 0 || g.FinetuneEpochs <= 0:
		return fmt.Errorf("gradient_blend: round_epochs and finetune_epochs must be positive")
	case !(g.EstimationShare > 0 && g.EstimationShare < 1):
		return fmt.Errorf("gradient_blend: estimation_share %v: want a share in (0, 1)", g.EstimationShare)
	case c.Kind != "multimodal":
		return fmt.Errorf("gradient_blend: a %s model has no branches to blend", c.Kind)
	case c.Network.Fusion == nil || c.Network.Fusion.Type != "concat":
		return fmt.Errorf("gradient_blend: the head fine-tune trains on the encoders' concatenated codes: the fusion must be concat")
	case len(c.Heads) != len(heads) || c.Heads[0] != fusionHead:
		return fmt.Errorf("gradient_blend: heads %v: want the fusion head first, then one per modality (%v)", c.Heads, heads[1:])
	case len(c.Loss.Aux) > 0 || c.Plateau != nil || c.EarlyStopping != 0:
		return fmt.Errorf("gradient_blend: no auxiliary losses, plateau scheduler or early stopping (the rounds fix the schedule)")
	case c.MaxEpochs < g.RoundEpochs:
		return fmt.Errorf("gradient_blend: max_epochs %d is less than one round of %d", c.MaxEpochs, g.RoundEpochs)
	}
	return nil
}

// blendWeight is one branch's unnormalised weight from its losses after the
// estimate's epochs on the trained rows and on the held-out rows:
// |G / O^2| with G the held-out loss and O the overfitting, the held-out
// loss less the trained rows' (MultiBench's delta = False form), taken as
// 1e-4 when the branch does better on the held-out rows.
func blendWeight(trainLoss, heldOutLoss float64) float64 {
	o := heldOutLoss - trainLoss
	if o < 0 {
		o = 1e-4
	}
	return math.Abs(heldOutLoss / (o * o))
}

// normalised divides each weight by their sum.
func normalised(raw map[string]float64) map[string]float64 {
	z := 0.0
	for _, h := range slices.Sorted(maps.Keys(raw)) {
		z += raw[h]
	}
	out := map[string]float64{}
	for h, w := range raw {
		out[h] = w / z
	}
	return out
}

// estimationRows is how many of n training rows are held out: MultiBench's
// int(n * v_rate), truncated.
func estimationRows(n int64, share float64) int64 { return int64(float64(n) * share) }

// Shuffle keys: each sub-step draws its orders from its own stream of
// (seed, key), apart from the blended epochs', which are the plain loop's
// (seed, epoch).
const (
	keyBlended = iota
	keyCache
	keyFinetune
	keyBranch // + the branch's index
)

func phaseKey(phase, n int) int { return phase<<40 + n }

// gradBlend is a Gradient Blending run's networks beside the main one.
type gradBlend struct {
	cfg       *Config
	spec      GradBlendSpec
	seeds     []int64
	useeds    []uint64
	o         Options
	shuffle   bool
	evalBatch int

	main          *Network
	tr            *trainer
	heldOut, rest *Split // views of the training rows: the first share, the others
	val           *Split
	branches      []string // the estimates' heads: the modalities', then the fusion's

	head     *Network // the fine-tuned fusion head, on the encoders' codes
	headTr   *trainer
	tested   *Network // the encoders with the fine-tuned head: validated, saved, tested
	testedTr *trainer
	own      *torch.Scope
}

// newGradBlend prepares a Gradient Blending run of net (trained by tr):
// the held-out split and the fine-tuned head, a copy of net's fusion head.
func newGradBlend(cfg *Config, net *Network, tr *trainer, ds *Datasets, seeds []int64, o Options, shuffle bool, evalBatch int) (*gradBlend, error) {
	g := &gradBlend{cfg: cfg, spec: *cfg.GradBlend, seeds: seeds, o: o, shuffle: shuffle, evalBatch: evalBatch,
		main: net, tr: tr, val: ds.Validation, own: torch.NewScope()}
	for _, s := range seeds {
		g.useeds = append(g.useeds, uint64(s))
	}
	n := ds.Train.N
	held := estimationRows(n, g.spec.EstimationShare)
	if held < 1 || n-held < 1 {
		g.Close()
		return nil, fmt.Errorf("%s: %d training rows leave no held-out or no trained rows at estimation share %v", cfg.Name, n, g.spec.EstimationShare)
	}
	g.heldOut = ds.Train.rowsAt(g.own, nil, 0, held)
	g.rest = ds.Train.rowsAt(g.own, nil, held, n-held)
	for _, m := range net.Modalities {
		g.branches = append(g.branches, m.Name)
	}
	g.branches = append(g.branches, fusionHead)

	var err error
	fail := func(err error) (*gradBlend, error) {
		g.Close()
		return nil, fmt.Errorf("%s: %w", cfg.Name, err)
	}
	headCfg := branchConfig(cfg, fusionHead)
	if g.head, err = newCodeHead(headCfg, net, g.useeds, o.Device); err != nil {
		return fail(err)
	}
	if err := copyParams(g.head, net, isHead); err != nil {
		return fail(err)
	}
	if g.headTr, err = newTrainer(g.head, headCfg, g.rest, o); err != nil {
		return fail(err)
	}
	testedCfg := testedConfig(cfg)
	if g.tested, err = NewNetwork(testedCfg, g.useeds, o.Device); err != nil {
		return fail(err)
	}
	if g.testedTr, err = newTrainer(g.tested, testedCfg, g.rest, o); err != nil {
		return fail(err)
	}
	return g, g.own.Err()
}

// Close frees the run's own networks (not the main one).
func (g *gradBlend) Close() {
	for _, t := range []*trainer{g.headTr, g.testedTr} {
		if t != nil {
			t.Close()
		}
	}
	for _, n := range []*Network{g.head, g.tested} {
		if n != nil {
			n.Close()
		}
	}
	g.own.Close()
}

// parts is what last.safetensors keeps besides the main network.
func (g *gradBlend) parts() []ckptPart {
	return []ckptPart{{prefix: "finetune.", net: g.head, opt: g.headTr.opt}}
}

func isHead(name string) bool { return strings.HasPrefix(name, fusionHeadParam+".") }

// branchConfig is cfg cut down to one head's branch: a modality's encoder
// and head, or (fusionHead) the encoders, the fusion and the fusion head.
func branchConfig(cfg *Config, head string) *Config {
	b := *cfg
	b.Name, b.Heads, b.GradBlend = cfg.Name+"/"+head, []string{head}, nil
	b.Network = NetworkSpec{Heads: map[string]Part{head: cfg.Network.Heads[head]}, Encoders: cfg.Network.Encoders, Fusion: cfg.Network.Fusion}
	if head != fusionHead {
		b.Kind, b.Modality = "unimodal", head
		b.Network.Encoders, b.Network.Fusion = map[string]Part{head: cfg.Network.Encoders[head]}, nil
	}
	return &b
}

// copyParams copies, for every model, src's parameters and buffers whose
// names keep accepts into dst's of the same names.
func copyParams(dst, src *Network, keep func(name string) bool) error {
	from := src.Params.ByName()
	for j, name := range dst.Params.Names {
		if !keep(name) {
			continue
		}
		t, ok := from[name]
		if !ok {
			return fmt.Errorf("copy %s to %s: %s has no %q", src.Config.Name, dst.Config.Name, src.Config.Name, name)
		}
		if err := dst.Params.Tensors[j].CopyFrom(t); err != nil {
			return fmt.Errorf("copy %s to %s: %q: %w", src.Config.Name, dst.Config.Name, name, err)
		}
	}
	return nil
}

// codesModality is the one input of the fine-tuned head: the encoders'
// codes, (K*N, tokens, width) rows stacked model after model.
const codesModality = "codes"

// newCodeHead builds the K models of cfg's fusion head alone, reading the
// codes net's fusion gives (under the same parameter names as net's head).
func newCodeHead(cfg *Config, net *Network, seeds []uint64, device torch.Device) (*Network, error) {
	in := net.Fused
	m := ModalitySpec{Name: codesModality, Shape: []int64{in.n, in.w}, Prefix: codesModality}
	ds := &DatasetSpec{Name: net.Data.Name + "-codes", Classes: net.Data.Classes, Modalities: []ModalitySpec{m}}
	p := newParams(device, seeds)
	spec := cfg.Network.Heads[fusionHead]
	n := &Network{Config: cfg, Data: ds, Params: p, K: len(seeds), Modalities: ds.Modalities,
		Encoders: []encoder{codesEncoder{}}, Fusion: concat{}, Fused: in,
		Heads: map[string]head{fusionHead: headParts[spec.Type].build(p, fusionHeadParam, in, ds.Classes, spec)}}
	if err := p.Err(); err != nil {
		p.Close()
		return nil, err
	}
	return n, nil
}

// codesEncoder passes cached codes (K, batch, tokens, width) through.
type codesEncoder struct{}

func (codesEncoder) Forward(s *torch.Scope, x *torch.Tensor, perModel bool, mode Mode) *torch.Tensor {
	return x // always per model: the codes split is read in per-model orders
}

// order is each model's order of n rows for a sub-step's key: its own
// shuffle, or the data's order when the run does not shuffle.
func (g *gradBlend) order(s *torch.Scope, key int, n int64) *torch.Tensor {
	if g.shuffle {
		return shuffledOrder(s, g.seeds, key, n, g.o.Device)
	}
	idx := make([]int64, 0, int64(len(g.seeds))*n)
	for range g.seeds {
		for i := int64(0); i < n; i++ {
			idx = append(idx, i)
		}
	}
	order := s.From(idx, int64(len(g.seeds)), n)
	if g.o.Device != torch.CPU {
		order = s.To(order, g.o.Device)
	}
	return order
}

func (g *gradBlend) keys(key int) []uint64 {
	keys := make([]uint64, len(g.seeds))
	for i, seed := range g.seeds {
		keys[i] = epochSeed(seed, key)
	}
	return keys
}

// estimate returns each model's head weights for round r, normalised, and
// for the log each model's measurements: per branch the loss on the
// trained and on the held-out rows after the estimate's epochs.
func (g *gradBlend) estimate(r int) ([]map[string]float64, []string, error) {
	k := len(g.seeds)
	raw := make([]map[string]float64, k)
	notes := make([][]string, k)
	for i := range raw {
		raw[i] = map[string]float64{}
	}
	for b, h := range g.branches {
		trained, heldOut, err := g.estimateBranch(b, h, r)
		if err != nil {
			return nil, nil, fmt.Errorf("round %d: estimate of the %s branch: %w", r, h, err)
		}
		for i := range raw {
			lt, lv := trained[i].loss[h], heldOut[i].loss[h]
			raw[i][h] = blendWeight(lt, lv)
			notes[i] = append(notes[i], fmt.Sprintf("%s %.4f/%.4f", h, lt, lv))
		}
	}
	w := make([]map[string]float64, k)
	measured := make([]string, k)
	for i := range w {
		w[i] = normalised(raw[i])
		measured[i] = strings.Join(notes[i], ", ")
	}
	return w, measured, nil
}

// estimateBranch trains a copy of branch b (head h) of every model for a
// round's epochs on the trained rows, with a new optimiser, and evaluates
// it on the trained and the held-out rows.
func (g *gradBlend) estimateBranch(b int, h string, r int) (trained, heldOut []*evaluation, err error) {
	bcfg := branchConfig(g.cfg, h)
	net, err := NewNetwork(bcfg, g.useeds, g.o.Device)
	if err != nil {
		return nil, nil, err
	}
	defer net.Close()
	if err := copyParams(net, g.main, func(string) bool { return true }); err != nil {
		return nil, nil, err
	}
	tr, err := newTrainer(net, bcfg, g.rest, g.o)
	if err != nil {
		return nil, nil, err
	}
	defer tr.Close()
	w := sameWeights(len(g.seeds), map[string]float64{h: 1})
	for e := 0; e < g.spec.RoundEpochs; e++ {
		key := phaseKey(keyBranch+b, r*g.spec.RoundEpochs+e)
		s := torch.NewScope()
		var order *torch.Tensor
		if g.shuffle {
			order = g.order(s, key, g.rest.N)
		}
		_, err := tr.epoch(g.rest, order, w, g.keys(key))
		s.Close()
		if err != nil {
			return nil, nil, err
		}
	}
	if trained, err = tr.evaluate(g.rest, g.evalBatch); err != nil {
		return nil, nil, err
	}
	heldOut, err = tr.evaluate(g.heldOut, g.evalBatch)
	return trained, heldOut, err
}

// cacheCodes runs the main network's encoders and fusion, without
// gradients, over the trained rows in batches of the training batch size,
// each model in its own order, and returns the codes as a stacked split:
// N rows per model, X and labels (K*N, ...) model after model, to be read
// through stackedOrder.
func (g *gradBlend) cacheCodes(s *torch.Scope, r int) (*Split, error) {
	k := int64(len(g.seeds))
	n := g.rest.N
	order := g.order(s, phaseKey(keyCache, r), n)
	var codes, labels []*torch.Tensor
	batch := int64(g.cfg.BatchSize)
	var ferr error
	err := torch.NoGrad(func() {
		for lo := int64(0); lo < n && ferr == nil; lo += batch {
			bs := torch.NewScope()
			rows := g.rest.rowsAt(bs, order, lo, min(batch, n-lo))
			res := g.main.forward(bs, rows.Batch(bs), Mode{})
			ferr = bs.Err()
			if ferr == nil {
				codes = append(codes, s.Adopt(res.fused))
				labels = append(labels, s.Adopt(rows.Label))
			}
			bs.Close()
		}
	})
	if ferr != nil || err != nil {
		return nil, fmt.Errorf("round %d: the encoders' codes: %w", r, firstErr(ferr, err))
	}
	x := s.Cat(1, codes...) // (K, N, tokens, width)
	shape, _ := x.Shape()
	sp := &Split{N: n, X: map[string]*torch.Tensor{codesModality: s.Reshape(x, append([]int64{k * n}, shape[2:]...)...)},
		Label: s.Reshape(s.Cat(1, labels...), -1)}
	return sp, s.Err()
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// stackedOrder turns each model's order of n rows (K, n) into rows of a
// stacked split: model i's row j is row i*n + j.
func stackedOrder(s *torch.Scope, order *torch.Tensor, k, n int64, device torch.Device) *torch.Tensor {
	off := make([]int64, k)
	for i := range off {
		off[i] = int64(i) * n
	}
	offsets := s.From(off, k, 1)
	if device != torch.CPU {
		offsets = s.To(offsets, device)
	}
	return s.Add(order, offsets)
}

// testedConfig is the network a Gradient Blending run validates, saves and
// tests: its encoders with the fusion head (the fine-tuned one), under the
// run's name (its checkpoints are the run's).
func testedConfig(cfg *Config) *Config {
	c := *branchConfig(cfg, fusionHead)
	c.Name = cfg.Name
	return &c
}

// rounds trains the rounds from the one at epoch start to the last whole
// one before maxEpochs, doing each model's bookkeeping after each round.
func (g *gradBlend) rounds(models []*member, start, maxEpochs int) error {
	R := g.spec.RoundEpochs
	for r := start / R; r < maxEpochs/R; r++ {
		var active []int
		for i, m := range models {
			// A model ahead of the others (resumed from a later round) waits.
			on := !m.done && !m.st.stopped() && m.st.NextEpoch == r*R
			g.tr.opt.SetActive(i, on)
			g.headTr.opt.SetActive(i, on)
			g.tr.opt.SetLR(i, m.st.LR)
			g.headTr.opt.SetLR(i, m.st.LR)
			if on {
				active = append(active, i)
			}
		}
		if len(active) == 0 {
			return nil
		}
		if err := g.round(models, active, r, maxEpochs); err != nil {
			return fmt.Errorf("%s seeds %v round %d: %w", g.cfg.Name, g.seeds, r, err)
		}
	}
	return nil
}

// round runs round r's three steps for every model and the bookkeeping of
// the active ones.
func (g *gradBlend) round(models []*member, active []int, r, maxEpochs int) error {
	t0 := time.Now()
	k := len(g.seeds)
	R, F := g.spec.RoundEpochs, g.spec.FinetuneEpochs
	weights, measured, err := g.estimate(r)
	if err != nil {
		return err
	}
	// A waiting model keeps its BatchNorm statistics, which the blended
	// epochs and the validations in training mode update for every model.
	hs := torch.NewScope()
	defer hs.Close()
	held, err := g.main.Params.holdBuffers(hs, waiting(k, active))
	if err != nil {
		return err
	}
	for _, i := range active {
		fmt.Fprintf(g.o.Log, "%s seed %d round %d: blend weights %s (losses on trained/held-out rows: %s)\n",
			g.cfg.Name, g.seeds[i], r+1, formatWeights(weights[i]), measured[i])
	}
	var trainLoss []float64
	for e := 0; e < R; e++ {
		epoch := r*R + e
		s := torch.NewScope()
		var order *torch.Tensor
		if g.shuffle {
			order = shuffledOrder(s, g.seeds, phaseKey(keyBlended, epoch), g.rest.N, g.o.Device)
		}
		trainLoss, err = g.tr.epoch(g.rest, order, weights, g.keys(epoch))
		s.Close()
		if err != nil {
			return fmt.Errorf("blended epoch %d: %w", epoch, err)
		}
	}

	cs := torch.NewScope()
	defer cs.Close()
	codes, err := g.cacheCodes(cs, r)
	if err != nil {
		return err
	}
	if err := copyParams(g.tested, g.main, func(name string) bool { return !isHead(name) }); err != nil {
		return err
	}
	last := r*R + R - 1
	ftLoss := make([][]float64, k)
	var ev []*evaluation
	for f := 0; f < F; f++ {
		key := phaseKey(keyFinetune, r*F+f)
		s := torch.NewScope()
		order := stackedOrder(s, g.order(s, key, codes.N), int64(k), codes.N, g.o.Device)
		_, err := g.headTr.epoch(codes, order, sameWeights(k, map[string]float64{fusionHead: 1}), g.keys(key))
		s.Close()
		if err != nil {
			return fmt.Errorf("head fine-tune epoch %d: %w", f, err)
		}
		if err := copyParams(g.tested, g.head, isHead); err != nil {
			return err
		}
		if ev, err = g.testedTr.evaluate(g.val, g.evalBatch); err != nil {
			return fmt.Errorf("head fine-tune epoch %d: validation: %w", f, err)
		}
		for _, i := range active {
			m := models[i]
			valLoss := ev[i].loss[fusionHead]
			ftLoss[i] = append(ftLoss[i], valLoss)
			if !finite(valLoss) {
				continue
			}
			if improved, _ := m.st.Early.Step(g.cfg.selectionScore(valLoss, ev[i])); improved {
				m.st.BestEpoch = last
				if err := saveModel(filepath.Join(m.dir, BestFile), g.tested, i, nil, nil); err != nil {
					return err
				}
			}
		}
	}
	// The validations updated the BatchNorm statistics of the encoders they
	// ran (MultiBench's, in training mode, are the network's own): the
	// network keeps them.
	encoders := g.tested.Params.ByName()
	if err := copyParams(g.main, g.tested, func(name string) bool { return encoders[name] != nil && !isHead(name) }); err != nil {
		return err
	}
	if err := held(); err != nil {
		return err
	}
	seconds := time.Since(t0).Seconds() / float64(k)
	for _, i := range active {
		if err := models[i].endRound(g, i, r, maxEpochs, trainLoss[i], ev[i], weights[i], ftLoss[i], seconds); err != nil {
			return err
		}
	}
	return nil
}

// endRound is endEpoch for a Gradient Blending round: model i's record
// gains the round (at its last blended epoch), then record.json and
// last.safetensors are written, in that order. A non-finite loss stops the
// model instead, saying so in its state.
func (m *member) endRound(g *gradBlend, i, r, maxEpochs int, trainLoss float64, ev *evaluation, weights map[string]float64, ftLoss []float64, seconds float64) error {
	st, cfg := m.st, g.cfg
	R := g.spec.RoundEpochs
	valLoss := ev.loss[fusionHead]
	recPath, lastPath := filepath.Join(m.dir, runrecord.FileName), filepath.Join(m.dir, lastFile)
	if !finite(trainLoss) || !finite(valLoss) {
		st.Diverged = fmt.Sprintf("round %d: training loss %v, validation loss %v", r, trainLoss, valLoss)
		fmt.Fprintf(g.o.Log, "%s seed %d: training diverged in round %d (train loss %v, validation loss %v); stopped\n",
			cfg.Name, m.seed, r+1, trainLoss, valLoss)
		if err := artifact.WriteJSON(recPath, m.rec); err != nil {
			return err
		}
		return saveModel(lastPath, g.main, i, g.tr.opt, st, g.parts()...)
	}
	m.rec.History = append(m.rec.History, runrecord.Epoch{
		Epoch: r*R + R - 1, TrainLoss: trainLoss, ValLoss: valLoss, HeadLoss: ev.loss, HeadAcc: ev.acc,
		LR: st.LR, WFusion: weights[fusionHead], Seconds: seconds, BlendWeights: weights, FinetuneValLoss: ftLoss,
	})
	st.NextEpoch = (r + 1) * R
	if err := artifact.WriteJSON(recPath, m.rec); err != nil {
		return err
	}
	if err := saveModel(lastPath, g.main, i, g.tr.opt, st, g.parts()...); err != nil {
		return err
	}
	fmt.Fprintf(g.o.Log, "%s seed %d round %d/%d (epoch %d/%d): train %.4f val %.4f acc %.4f (%.1fs)\n",
		cfg.Name, m.seed, r+1, maxEpochs/R, st.NextEpoch, maxEpochs, trainLoss, valLoss, ev.acc[fusionHead], seconds)
	return nil
}

func formatWeights(w map[string]float64) string {
	var parts []string
	for _, h := range slices.Sorted(maps.Keys(w)) {
		parts = append(parts, fmt.Sprintf("%s %.4f", h, w[h]))
	}
	return strings.Join(parts, ", ")
}
