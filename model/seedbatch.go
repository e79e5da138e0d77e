package model

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
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
// Seed batches train in the data's order (the reference's); probes train one
// by one (each loads its own seed's encoder); an interrupted batch restarts.
func TrainSeeds(cfg *Config, seeds []int64, o Options) ([]*runrecord.Record, error) {
	if o.Shuffle {
		return nil, errors.New("seed batches train in the data's order; train shuffled runs one by one")
	}
	if cfg.Kind == "probe" {
		return nil, fmt.Errorf("%s: probes load one seed's encoder each; train them one by one", cfg.Name)
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
	opt, err := torch.NewStackedAdam(net.Params.Trainable(), k, cfg.LR)
	if err != nil {
		return nil, err
	}
	defer opt.Close()

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
			Device: string(o.Device), Libtorch: info.Version, Inputs: ds.SHA256, Params: nparams,
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
			opt.Active[i], opt.LR[i] = !stopped[i], states[i].LR
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
		epochSeeds := make([]uint64, k)
		for i, seed := range seeds {
			epochSeeds[i] = epochSeed(seed, epoch)
		}
		gens, err := torch.NewGenerators(o.Device, epochSeeds...)
		if err != nil {
			return nil, err
		}
		trainLoss, err := trainEpochStacked(net, opt, ds.Train, weights, cfg.BatchSize, gens, k)
		gens.Close()
		if err != nil {
			return nil, fmt.Errorf("%s seeds %v epoch %d: %w", cfg.Name, seeds, epoch, err)
		}
		evs, err := evaluateStacked(net, ds.Validation, o.EvalBatch, k)
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
				if err := saveModel(filepath.Join(dirs[i], bestFile), net, i); err != nil {
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
		if err := loadModel(filepath.Join(dirs[i], bestFile), net, i); err != nil {
			return nil, err
		}
	}
	t0 := time.Now()
	evs, err := evaluateStacked(net, ds.Test, o.EvalBatch, k)
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

// loadModel copies a single model's checkpoint into model i's slice.
func loadModel(path string, net *Network, i int) error {
	s := torch.NewScope()
	defer s.Close()
	src, _, err := torch.LoadSafetensors(s, path)
	if err != nil {
		return err
	}
	for name, dst := range modelSlices(s, net, i) {
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

// trainEpochStacked runs one pass over the training rows for every model at
// once and returns each model's mean training loss. The summed loss gives
// each model's parameters exactly its own loss's gradient.
func trainEpochStacked(net *Network, opt *torch.StackedAdam, sp *Split, weights map[string]float64, batch int, gens *torch.Generators, k int) ([]float64, error) {
	epochScope := torch.NewScope()
	defer epochScope.Close()
	var total *torch.Tensor // (models), summed on the device
	for lo := int64(0); lo < sp.N; lo += int64(batch) {
		n := min(int64(batch), sp.N-lo)
		s := torch.NewScope()
		b := sp.Batch(s, lo, n, nil)
		logits := net.Forward(s, b, Mode{Train: true, Gens: gens})
		var perModel *torch.Tensor
		for _, h := range slices.Sorted(maps.Keys(weights)) {
			term := s.MulScalar(stackedCE(s, logits[h], b.Label, k, torch.ReduceMean), weights[h])
			if perModel == nil {
				perModel = term
			} else {
				perModel = s.Add(perModel, term)
			}
		}
		if err := optimise(s, s.Sum(perModel, false), opt); err != nil {
			s.Close()
			return nil, err
		}
		total = accumulate(epochScope, total, s, perModel, n)
		s.Close()
	}
	if err := epochScope.Err(); err != nil {
		return nil, err
	}
	sums, err := total.Float64s()
	for i := range sums {
		sums[i] /= float64(sp.N)
	}
	return sums, err
}

// evaluateStacked runs every model with dropout off over a split.
func evaluateStacked(net *Network, sp *Split, batch int, k int) ([]*evaluation, error) {
	evs := make([]*evaluation, k)
	for i := range evs {
		evs[i] = &evaluation{loss: map[string]float64{}, acc: map[string]float64{}, pred: map[string][]int64{}}
	}
	var ferr error
	err := torch.NoGrad(func() {
		for lo := int64(0); lo < sp.N && ferr == nil; lo += int64(batch) {
			n := min(int64(batch), sp.N-lo)
			s := torch.NewScope()
			b := sp.Batch(s, lo, n, nil)
			for h, l := range net.Forward(s, b, Mode{}) {
				sums, err := stackedCE(s, l, b.Label, k, torch.ReduceSum).Float64s()
				if err != nil {
					ferr = err
					break
				}
				pred, err := s.Argmax(l, -1).Int64s()
				if err != nil {
					ferr = err
					break
				}
				for i := range evs {
					evs[i].loss[h] += sums[i]
					evs[i].pred[h] = append(evs[i].pred[h], pred[int64(i)*n:int64(i+1)*n]...)
				}
			}
			lab, err := b.Label.Int64s()
			if err == nil {
				err = s.Err()
			}
			s.Close()
			if err != nil && ferr == nil {
				ferr = err
			}
			for i := range evs {
				evs[i].label = append(evs[i].label, lab...)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	if ferr != nil {
		return nil, ferr
	}
	for _, ev := range evs {
		for h := range ev.loss {
			ev.loss[h] /= float64(sp.N)
			ev.acc[h] = Accuracy(ev.pred[h], ev.label)
		}
	}
	return evs, nil
}
