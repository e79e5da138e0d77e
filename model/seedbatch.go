package model

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/runrecord"
	"github.com/m2mix/m2mix/torch"
)

// TrainSeeds trains one configuration with several seeds in lockstep, as
// one network whose parameters are stacked on a leading model axis: every
// matmul serves all the models at once. Each model keeps its own dropout
// stream, Adam state, learning rate, plateau scheduler, early stopping and
// best checkpoint, and a stopped model stops changing, so each computes what
// it would alone (up to floating-point rounding) and leaves the same run
// record and checkpoints as Train. Epoch times in the records are the
// batch's wall time divided by the number of models.
//
// Seed batches train in the data's order (the reference's); a probe's
// models each load their own seed's trained encoder; an interrupted batch
// restarts.
func TrainSeeds(cfg *Config, seeds []int64, o Options) ([]*runrecord.Record, error) {
	if o.Shuffle {
		return nil, errors.New("seed batches train in the data's order; train shuffled runs one by one")
	}
	if len(seeds) == 0 {
		return nil, errors.New("no seeds")
	}
	runtime.LockOSThread() // one OpenMP thread team (see Train)
	defer runtime.UnlockOSThread()
	info, maxEpochs, err := o.setup(cfg)
	if err != nil {
		return nil, err
	}
	data := torch.NewScope()
	defer data.Close()
	ds, err := LoadDatasets(data, filepath.Join(o.DataDir, cfg.Dataset), cfg.Dataset, o.Device, o.LimitTrain, o.LimitEval)
	if err != nil {
		return nil, err
	}
	k := len(seeds)
	useeds := make([]uint64, k)
	for i, s := range seeds {
		useeds[i] = uint64(s)
	}
	net, err := NewStackedNetwork(cfg, useeds, o.Device)
	if err != nil {
		return nil, err
	}
	defer net.Close()
	nparams, err := CountParams(cfg)
	if err != nil {
		return nil, err
	}
	inputs := make([]map[string]string, k) // per model: the data, and a probe's encoder
	for i, seed := range seeds {
		inputs[i] = maps.Clone(ds.SHA256)
		if cfg.Kind != "probe" {
			continue
		}
		src := filepath.Join(RunDir(o.RunsDir, cfg.ProbeOf, seed), BestFile)
		if err := loadModel(src, net, i, encoderPrefix(cfg.Modality)); err != nil {
			return nil, fmt.Errorf("probe %s needs a trained %s run of seed %d: %w", cfg.Name, cfg.ProbeOf, seed, err)
		}
		if inputs[i][cfg.ProbeOf+"/"+BestFile], err = artifact.SHA256File(src); err != nil {
			return nil, err
		}
	}
	if cfg.Kind == "probe" {
		if err := net.Params.Freeze(encoderPrefix(cfg.Modality)); err != nil {
			return nil, err
		}
	}
	tr, err := newStackedTrainer(net, cfg, k, ds.Train, o)
	if err != nil {
		return nil, err
	}
	defer tr.Close()

	recs := make([]*runrecord.Record, k)
	states := make([]*loopState, k)
	dirs := make([]string, k)
	stopped := make([]bool, k)
	for i, seed := range seeds {
		dirs[i] = RunDir(o.RunsDir, cfg.Name, seed)
		if err := os.MkdirAll(dirs[i], 0o755); err != nil {
			return nil, err
		}
		recs[i] = &runrecord.Record{
			Config: cfg.Name, Model: cfg.Model, Dataset: cfg.Dataset, Seed: seed, Profile: o.Profile,
			Device: string(o.Device), Libtorch: info.Version, Inputs: inputs[i], Params: nparams,
			Settings: map[string]any{
				"config": cfg, "max_epochs": maxEpochs, "limit_train": o.LimitTrain, "limit_eval": o.LimitEval,
				"shuffle": false, "eval_batch": o.EvalBatch, "train_rows": ds.Train.N,
				"validation_rows": ds.Validation.N, "test_rows": ds.Test.N, "seed_batch": seeds,
			},
		}
		states[i] = &loopState{LR: cfg.LR, WFusion: cfg.Loss.WFusion, Early: NewEarlyStop(cfg.EarlyStopping), BestEpoch: -1}
		if cfg.Plateau != nil {
			states[i].Plateau = NewPlateau(cfg.Plateau.Patience, cfg.Plateau.Factor, cfg.Plateau.Threshold)
		}
	}

	for epoch := 0; epoch < maxEpochs; epoch++ {
		active := -1
		for i := range seeds {
			tr.opt.SetActive(i, !stopped[i])
			tr.opt.SetLR(i, states[i].LR)
			if !stopped[i] && active < 0 {
				active = i
			}
		}
		if active < 0 {
			break
		}
		// w_f follows the epoch count alone, so every running model has the same.
		weights := cfg.HeadWeights(states[active].WFusion)
		t0 := time.Now()
		keys := make([]uint64, k)
		for i, seed := range seeds {
			keys[i] = epochSeed(seed, epoch)
		}
		trainLoss, err := tr.epoch(ds.Train, weights, keys)
		if err != nil {
			return nil, fmt.Errorf("%s seeds %v epoch %d: %w", cfg.Name, seeds, epoch, err)
		}
		evs, err := tr.evaluate(ds.Validation, o.EvalBatch)
		if err != nil {
			return nil, fmt.Errorf("%s seeds %v epoch %d: validation: %w", cfg.Name, seeds, epoch, err)
		}
		seconds := time.Since(t0).Seconds() / float64(k)
		for i := range seeds {
			if stopped[i] {
				continue
			}
			st, ev := states[i], evs[i]
			valLoss := ev.weightedLoss(cfg.HeadWeights(st.WFusion))
			if math.IsNaN(valLoss) || math.IsInf(valLoss, 0) {
				return nil, fmt.Errorf("%s seed %d epoch %d: training diverged (validation loss %v)", cfg.Name, seeds[i], epoch, valLoss)
			}
			recs[i].History = append(recs[i].History, runrecord.Epoch{
				Epoch: epoch, TrainLoss: trainLoss[i], ValLoss: valLoss, HeadLoss: ev.loss, HeadAcc: ev.acc,
				LR: st.LR, WFusion: st.WFusion, Seconds: seconds,
			})
			improved, stop := st.Early.Step(valLoss)
			if improved {
				st.BestEpoch = epoch
				if err := saveModel(filepath.Join(dirs[i], BestFile), net, i); err != nil {
					return nil, err
				}
			}
			if st.Plateau != nil {
				st.LR = st.Plateau.Step(valLoss, st.LR)
			}
			if cfg.Loss.LCEta > 0 {
				st.WFusion = math.Min(1, st.WFusion+cfg.Loss.LCEta)
			}
			stopped[i] = stop
			if err := artifact.WriteJSON(filepath.Join(dirs[i], runrecord.FileName), recs[i]); err != nil {
				return nil, err
			}
			fmt.Fprintf(o.Log, "%s seed %d epoch %d/%d: train %.4f val %.4f acc %.4f lr %.2g%s\n", cfg.Name, seeds[i],
				epoch+1, maxEpochs, trainLoss[i], valLoss, ev.acc[cfg.Heads[0]], recs[i].History[len(recs[i].History)-1].LR,
				map[bool]string{true: " *", false: ""}[improved])
		}
		fmt.Fprintf(o.Log, "%s seeds %v epoch %d: %.1fs for %d models\n", cfg.Name, seeds, epoch+1, seconds*float64(k), k)
	}

	// Each model's test uses its own lowest-validation-loss weights.
	for i := range seeds {
		if states[i].BestEpoch < 0 {
			return nil, errors.New("no epoch completed")
		}
		if err := loadModel(filepath.Join(dirs[i], BestFile), net, i, ""); err != nil {
			return nil, err
		}
	}
	t0 := time.Now()
	evs, err := tr.evaluate(ds.Test, o.EvalBatch)
	if err != nil {
		return nil, fmt.Errorf("%s seeds %v: test: %w", cfg.Name, seeds, err)
	}
	testSeconds := time.Since(t0).Seconds() / float64(k)
	for i := range seeds {
		recs[i].Final = finalMetrics(cfg, recs[i], evs[i], states[i].BestEpoch, stopped[i], testSeconds)
		if err := artifact.WriteJSON(filepath.Join(dirs[i], runrecord.FileName), recs[i]); err != nil {
			return nil, err
		}
		fmt.Fprintf(o.Log, "%s seed %d: test accuracy %.4f, macro F1 %.4f (best epoch %d)\n",
			cfg.Name, seeds[i], recs[i].Final.Accuracy, recs[i].Final.MacroF1, states[i].BestEpoch+1)
	}
	return recs, nil
}

// finalMetrics summarises a finished run from its test evaluation.
func finalMetrics(cfg *Config, rec *runrecord.Record, ev *evaluation, bestEpoch int, stopped bool, testSeconds float64) *runrecord.Metrics {
	trainSeconds := 0.0
	for _, e := range rec.History {
		trainSeconds += e.Seconds
	}
	main := cfg.Heads[0]
	classes := map[string]int{"avmnist": 10, "mimic": 6}[cfg.Dataset]
	return &runrecord.Metrics{
		Accuracy: ev.acc[main], MicroF1: ev.acc[main], MacroF1: MacroF1(ev.pred[main], ev.label, classes),
		HeadAccuracy: ev.acc, TrainSeconds: trainSeconds, TestSeconds: testSeconds,
		BestEpoch: bestEpoch, Epochs: len(rec.History), StoppedEarly: stopped,
	}
}

// modelSlices returns model i's parameters, unstacked, under their names:
// views into the stacked tensors, made in s.
func modelSlices(s *torch.Scope, net *Network, i int) map[string]*torch.Tensor {
	out := map[string]*torch.Tensor{}
	for j, name := range net.Params.Names {
		p := net.Params.Tensors[j]
		shape, _ := p.Shape()
		out[name] = s.Reshape(s.Narrow(p, 0, int64(i), 1), shape[1:]...)
	}
	return out
}

// saveModel writes model i's parameters as a single model's checkpoint.
func saveModel(path string, net *Network, i int) error {
	s := torch.NewScope()
	defer s.Close()
	ts := modelSlices(s, net, i)
	if err := s.Err(); err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return torch.SaveSafetensors(path, ts, map[string]string{"config": net.Config.Name})
}

// loadModel copies a single model's checkpoint into model i's slice: every
// parameter whose name has the prefix ("" for all).
func loadModel(path string, net *Network, i int, prefix string) error {
	s := torch.NewScope()
	defer s.Close()
	src, _, err := torch.LoadSafetensors(s, path)
	if err != nil {
		return err
	}
	for name, dst := range modelSlices(s, net, i) {
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		t, ok := src[name]
		if !ok {
			return fmt.Errorf("checkpoint %s: no parameter %q", path, name)
		}
		if err := dst.CopyFrom(t); err != nil {
			return fmt.Errorf("checkpoint %s: %q: %w", path, name, err)
		}
	}
	return s.Err()
}

// stackedCE is each model's mean cross-entropy, (models), for logits
// (models, batch, classes) against labels (batch) shared by the models.
func stackedCE(s *torch.Scope, logits, labels *torch.Tensor, k int, r torch.Reduction) *torch.Tensor {
	shape, _ := logits.Shape()
	rep := make([]*torch.Tensor, k)
	for i := range rep {
		rep[i] = labels
	}
	ce := s.CrossEntropy(s.Reshape(logits, -1, shape[len(shape)-1]), s.Cat(0, rep...), torch.ReduceNone)
	ce = s.Reshape(ce, int64(k), -1)
	if r == torch.ReduceSum {
		return s.Sum(ce, false, -1)
	}
	return s.Mean(ce, false, -1)
}

// stackedTrainer trains K stacked models one batch at a time. Everything a
// step reads that changes between steps lives in device tensors updated in
// place (parameters and Adam state in flat buffers, per-model learning
// rates and activity, loss weights, dropout keys and step counter, the
// running loss), so on CUDA the step can be recorded once as a CUDA graph
// and replayed for every full batch; a step then costs one launch instead of
// hundreds. The last, partial batch and any run without graphs take the same
// step as plain calls.
type stackedTrainer struct {
	net     *Network
	opt     *torch.FlatAdam
	drop    *torch.KeyedDropout
	k       int
	batch   int64
	heads   []string      // sorted, the order of weights
	weights *torch.Tensor // (heads) float32: this epoch's loss weights
	total   *torch.Tensor // (k): sum over the epoch of rows * loss
	own     *torch.Scope
	log     io.Writer

	// CUDA graph state: graph is nil without graphs; input holds the
	// training step's input rows, copied in before each replay.
	graph    stepGraph
	input    *Split
	warm     int  // plain full-batch steps taken before the capture
	captured bool // the graph holds the training step
	stepID   int  // its capture
	eval     *evalGraph
	device   torch.Device
}

func newStackedTrainer(net *Network, cfg *Config, k int, train *Split, o Options) (*stackedTrainer, error) {
	t := &stackedTrainer{net: net, k: k, batch: int64(cfg.BatchSize), own: torch.NewScope(), log: o.Log, device: o.Device}
	if t.log == nil {
		t.log = io.Discard
	}
	var err error
	if t.opt, err = torch.NewFlatAdam(net.Params.Trainable(), k, cfg.LR); err != nil {
		t.own.Close()
		return nil, err
	}
	if t.drop, err = torch.NewKeyedDropout(o.Device, k, true); err != nil {
		t.Close()
		return nil, err
	}
	t.heads = slices.Clone(cfg.Heads)
	slices.Sort(t.heads)
	t.weights = t.own.Full(0, torch.Float32, o.Device, int64(len(t.heads)))
	t.total = t.own.Full(0, torch.Float32, o.Device, int64(k))
	if err := t.own.Err(); err != nil {
		t.Close()
		return nil, err
	}
	if o.Device != torch.CPU && !o.NoGraphs && train.N >= t.batch {
		if !torch.GraphsAvailable() {
			fmt.Fprintf(o.Log, "%s: CUDA graphs unavailable in this shim; plain steps\n", cfg.Name)
		} else if g, err := torch.NewGraph(o.Device); err != nil {
			fmt.Fprintf(o.Log, "%s: %v; plain steps\n", cfg.Name, err)
		} else {
			t.graph = g
			t.input = train.rows(t.own, t.batch)
			if err := t.own.Err(); err != nil {
				t.Close()
				return nil, err
			}
		}
	}
	return t, nil
}

// Close frees the trainer's buffers and graph.
func (t *stackedTrainer) Close() {
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

// epoch runs one pass over the training rows for every model at once and
// returns each model's mean training loss, read from the device once.
func (t *stackedTrainer) epoch(sp *Split, weights map[string]float64, keys []uint64) ([]float64, error) {
	w := make([]float32, len(t.heads))
	for i, h := range t.heads {
		w[i] = float32(weights[h])
	}
	s := torch.NewScope()
	err := t.weights.CopyFrom(s.From(w, int64(len(w))))
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
		if t.graph != nil && n == t.batch {
			err = t.graphStep(sp, lo)
		} else {
			s := torch.NewScope()
			err = t.step(sp.Batch(s, lo, n, nil), n)
			s.Close()
		}
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

// step is one optimisation step of every model on batch b of n rows. The
// summed loss gives each model's parameters exactly its own loss's gradient.
func (t *stackedTrainer) step(b Batch, n int64) error {
	s := torch.NewScope()
	defer s.Close()
	logits := t.net.Forward(s, b, Mode{Train: true, Drop: t.drop})
	var perModel *torch.Tensor
	for i, h := range t.heads {
		term := s.Mul(stackedCE(s, logits[h], b.Label, t.k, torch.ReduceMean), s.Narrow(t.weights, 0, int64(i), 1))
		if perModel == nil {
			perModel = term
		} else {
			perModel = s.Add(perModel, term)
		}
	}
	if err := optimise(s, s.Sum(perModel, false), t.opt, t.drop); err != nil {
		return err
	}
	return t.total.AddScaled(s.Detach(perModel), float64(n))
}

// evaluateStacked runs every model of a stacked network with dropout off
// over a split.
func evaluateStacked(net *Network, sp *Split, batch int, k int) ([]*evaluation, error) {
	return evaluateModels(net, sp, batch, k, true)
}

// evaluateModels runs k models (stacked, or one unstacked network) with
// dropout off over a split. Losses and predictions stay on the device until
// the split is done, then come back in one read per head.
func evaluateModels(net *Network, sp *Split, batch int, k int, stacked bool) ([]*evaluation, error) {
	acc := torch.NewScope()
	defer acc.Close()
	dev, err := sp.Label.Device()
	if err != nil {
		return nil, err
	}
	lossSum := map[string]*torch.Tensor{} // head -> (k)
	for _, h := range net.Config.Heads {
		lossSum[h] = acc.Full(0, torch.Float32, dev, int64(k))
	}
	preds := map[string][]*torch.Tensor{} // head -> (k, rows) per batch
	var ferr error
	err = torch.NoGrad(func() {
		for lo := int64(0); lo < sp.N && ferr == nil; lo += int64(batch) {
			n := min(int64(batch), sp.N-lo)
			s := torch.NewScope()
			out, err := forwardEval(s, net, sp.Batch(s, lo, n, nil), n, k, stacked, lossSum)
			for h, p := range out {
				preds[h] = append(preds[h], acc.Adopt(p))
			}
			ferr = err
			s.Close()
		}
	})
	if err == nil {
		err = ferr
	}
	if err == nil {
		err = acc.Err()
	}
	if err != nil {
		return nil, err
	}
	cat := map[string]*torch.Tensor{}
	for h, ps := range preds {
		cat[h] = acc.Cat(1, ps...)
	}
	return collectEvaluations(sp, k, lossSum, cat)
}

// forwardEval runs k models (stacked, or one unstacked network) on batch b
// of n rows with dropout off: each head's summed loss is added, in place,
// to lossSum[h] (k), and its predictions (k, n) are returned, made in s.
// The evaluation graph records exactly this.
func forwardEval(s *torch.Scope, net *Network, b Batch, n int64, k int, stacked bool, lossSum map[string]*torch.Tensor) (map[string]*torch.Tensor, error) {
	out := map[string]*torch.Tensor{}
	for h, l := range net.Forward(s, b, Mode{}) {
		var sum *torch.Tensor
		if stacked {
			sum = stackedCE(s, l, b.Label, k, torch.ReduceSum)
		} else {
			sum = s.Reshape(s.CrossEntropy(l, b.Label, torch.ReduceSum), 1)
		}
		if err := lossSum[h].AddScaled(sum, 1); err != nil {
			return nil, fmt.Errorf("evaluation loss of head %s: %w", h, err)
		}
		out[h] = s.Reshape(s.Argmax(l, -1), int64(k), n)
	}
	return out, s.Err()
}

// collectEvaluations reads each head's summed losses (k) and predictions
// (k, rows) of a split back from the device, one read each, into per-model
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
