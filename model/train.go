package model

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"time"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/runrecord"
	"github.com/m2mix/m2mix/torch"
)

// Options are the run-level settings of one (configuration, seed) run.
type Options struct {
	Seed       int64
	Device     torch.Device
	DataDir    string // the data folder; datasets are read from DataDir/<dataset>/
	RunsDir    string // records go to RunsDir/<config>/<seed>/
	MaxEpochs  int    // 0: the configuration's limit
	LimitTrain int    // 0: every training row
	LimitEval  int    // 0: every validation and test row
	EvalBatch  int    // 0: 512
	Shuffle    bool   // shuffle training rows each epoch (the reference does not)
	Threads    int    // libtorch intra-op threads; 0: all cores
	NoGraphs   bool   // seed batches on CUDA: plain steps, no CUDA graph
	Profile    string
	Log        io.Writer // one line per epoch; nil: silent
}

// setup fills in o's defaults, sets libtorch's thread count, and returns
// what libtorch is and the epoch limit in force.
func (o *Options) setup(cfg *Config) (torch.Info, int, error) {
	if o.Device == "" {
		o.Device = torch.CPU
	}
	if o.EvalBatch == 0 {
		o.EvalBatch = 512
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	threads := o.Threads
	if threads == 0 {
		threads = runtime.NumCPU()
	}
	if err := torch.SetThreads(threads); err != nil {
		return torch.Info{}, 0, err
	}
	info, err := torch.GetInfo()
	if err != nil {
		return torch.Info{}, 0, err
	}
	maxEpochs := cfg.MaxEpochs
	if o.MaxEpochs > 0 {
		maxEpochs = o.MaxEpochs
	}
	return info, maxEpochs, nil
}

// RunDir is where a run keeps its record and checkpoints.
func RunDir(runs, config string, seed int64) string {
	return filepath.Join(runs, config, strconv.FormatInt(seed, 10))
}

// epochSeed derives one epoch's dropout key, so a run resumed at an epoch
// boundary draws exactly the masks it would have, and a model trained in a
// seed batch draws exactly what it draws alone.
func epochSeed(seed int64, epoch int) uint64 {
	return uint64(seed)*0x9E3779B97F4A7C15 + uint64(epoch+1)*0xBF58476D1CE4E5B9
}

// Train runs one configuration with one seed to the end (or continues a run
// that was interrupted) and returns its completed record.
func Train(cfg *Config, o Options) (*runrecord.Record, error) {
	// libtorch's OpenMP keeps one thread team per calling OS thread; pinning
	// the run to one thread keeps it to one team instead of one per thread
	// the Go scheduler happens to use.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	info, maxEpochs, err := o.setup(cfg)
	if err != nil {
		return nil, err
	}
	dir := RunDir(o.RunsDir, cfg.Name, o.Seed)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}

	data := torch.NewScope()
	defer data.Close()
	ds, err := LoadDatasets(data, filepath.Join(o.DataDir, cfg.Dataset), cfg.Dataset, o.Device, o.LimitTrain, o.LimitEval)
	if err != nil {
		return nil, err
	}

	net, err := NewNetwork(cfg, uint64(o.Seed), o.Device)
	if err != nil {
		return nil, err
	}
	defer net.Close()
	inputs := ds.SHA256
	if cfg.Kind == "probe" {
		src := filepath.Join(RunDir(o.RunsDir, cfg.ProbeOf, o.Seed), BestFile)
		prefix := encoderPrefix(cfg.Modality)
		s := torch.NewScope()
		_, _, err := loadParams(s, src, net, prefix)
		s.Close()
		if err != nil {
			return nil, fmt.Errorf("probe %s needs a trained %s run of seed %d: %w", cfg.Name, cfg.ProbeOf, o.Seed, err)
		}
		if err := net.Params.Freeze(prefix); err != nil {
			return nil, err
		}
		if inputs[cfg.ProbeOf+"/"+BestFile], err = artifact.SHA256File(src); err != nil {
			return nil, err
		}
	}
	nparams, err := net.Params.Count()
	if err != nil {
		return nil, err
	}
	opt, err := torch.NewAdam(net.Params.Trainable(), torch.DefaultAdam(cfg.LR))
	if err != nil {
		return nil, err
	}
	defer opt.Close()

	rec := &runrecord.Record{
		Config: cfg.Name, Model: cfg.Model, Dataset: cfg.Dataset, Seed: o.Seed, Profile: o.Profile,
		Device: string(o.Device), Libtorch: info.Version, Inputs: inputs, Params: nparams,
		Settings: map[string]any{
			"config": cfg, "max_epochs": maxEpochs, "limit_train": o.LimitTrain, "limit_eval": o.LimitEval,
			"shuffle": o.Shuffle, "eval_batch": o.EvalBatch, "train_rows": ds.Train.N,
			"validation_rows": ds.Validation.N, "test_rows": ds.Test.N,
		},
	}
	st := &loopState{LR: cfg.LR, WFusion: cfg.Loss.WFusion, Early: NewEarlyStop(cfg.EarlyStopping), BestEpoch: -1}
	if cfg.Plateau != nil {
		st.Plateau = NewPlateau(cfg.Plateau.Patience, cfg.Plateau.Factor, cfg.Plateau.Threshold)
	}

	// Resume: record.json is written before last.safetensors at each epoch,
	// so the record's history always reaches the checkpoint's epoch.
	recPath := filepath.Join(dir, runrecord.FileName)
	if _, err := os.Stat(filepath.Join(dir, lastFile)); err == nil {
		var old runrecord.Record
		if err := artifact.ReadJSON(recPath, &old); err == nil && sameRun(&old, rec) {
			if old.Final != nil {
				fmt.Fprintf(o.Log, "%s seed %d: already complete\n", cfg.Name, o.Seed)
				return &old, nil
			}
			if st, err = loadResume(filepath.Join(dir, lastFile), net, opt); err != nil {
				return nil, err
			}
			if err := opt.SetLR(st.LR); err != nil {
				return nil, err
			}
			if len(old.History) < st.NextEpoch {
				return nil, fmt.Errorf("%s: the record has %d epochs but the checkpoint is at epoch %d; delete the run folder to start again",
					dir, len(old.History), st.NextEpoch)
			}
			rec.History = old.History[:st.NextEpoch]
			fmt.Fprintf(o.Log, "%s seed %d: resuming at epoch %d\n", cfg.Name, o.Seed, st.NextEpoch)
		}
	}

	drop, err := torch.NewKeyedDropout(o.Device, 1, false)
	if err != nil {
		return nil, err
	}
	defer drop.Close()

	// A run killed after its early-stopping epoch was saved must not train on.
	stopped := st.Early.Wait >= st.Early.Patience
	for epoch := st.NextEpoch; epoch < maxEpochs && !stopped; epoch++ {
		t0 := time.Now()
		if err := drop.StartEpoch([]uint64{epochSeed(o.Seed, epoch)}); err != nil {
			return nil, err
		}
		trainLoss, err := trainEpoch(net, opt, ds.Train, cfg.HeadWeights(st.WFusion), cfg.BatchSize, o, epoch, drop)
		if err != nil {
			return nil, fmt.Errorf("%s seed %d epoch %d: %w", cfg.Name, o.Seed, epoch, err)
		}
		ev, err := evaluate(net, ds.Validation, o.EvalBatch)
		if err != nil {
			return nil, fmt.Errorf("%s seed %d epoch %d: validation: %w", cfg.Name, o.Seed, epoch, err)
		}
		valLoss := ev.weightedLoss(cfg.HeadWeights(st.WFusion))
		if math.IsNaN(valLoss) || math.IsInf(valLoss, 0) || math.IsNaN(trainLoss) || math.IsInf(trainLoss, 0) {
			return nil, fmt.Errorf("%s seed %d epoch %d: training diverged (train loss %v, validation loss %v)",
				cfg.Name, o.Seed, epoch, trainLoss, valLoss)
		}
		rec.History = append(rec.History, runrecord.Epoch{
			Epoch: epoch, TrainLoss: trainLoss, ValLoss: valLoss, HeadLoss: ev.loss, HeadAcc: ev.acc,
			LR: st.LR, WFusion: st.WFusion, Seconds: time.Since(t0).Seconds(),
		})
		improved, stop := st.Early.Step(valLoss)
		if improved {
			st.BestEpoch = epoch
			if err := saveParams(filepath.Join(dir, BestFile), net, nil, nil); err != nil {
				return nil, err
			}
		}
		if st.Plateau != nil {
			if st.LR = st.Plateau.Step(valLoss, st.LR); true {
				if err := opt.SetLR(st.LR); err != nil {
					return nil, err
				}
			}
		}
		if cfg.Loss.LCEta > 0 {
			st.WFusion = math.Min(1, st.WFusion+cfg.Loss.LCEta)
		}
		st.NextEpoch = epoch + 1
		if err := artifact.WriteJSON(recPath, rec); err != nil {
			return nil, err
		}
		if err := saveParams(filepath.Join(dir, lastFile), net, opt, st); err != nil {
			return nil, err
		}
		fmt.Fprintf(o.Log, "%s seed %d epoch %d/%d: train %.4f val %.4f acc %.4f lr %.2g%s (%.1fs)\n",
			cfg.Name, o.Seed, epoch+1, maxEpochs, trainLoss, valLoss, ev.acc[cfg.Heads[0]], rec.History[len(rec.History)-1].LR,
			map[bool]string{true: " *", false: ""}[improved], rec.History[len(rec.History)-1].Seconds)
		stopped = stop
	}
	if st.BestEpoch < 0 {
		return nil, errors.New("no epoch completed")
	}

	// Test on the weights of the lowest validation loss.
	s := torch.NewScope()
	_, _, err = loadParams(s, filepath.Join(dir, BestFile), net, "")
	s.Close()
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	ev, err := evaluate(net, ds.Test, o.EvalBatch)
	if err != nil {
		return nil, fmt.Errorf("%s seed %d: test: %w", cfg.Name, o.Seed, err)
	}
	rec.Final = finalMetrics(cfg, rec, ev, st.BestEpoch, stopped, time.Since(t0).Seconds())
	if err := artifact.WriteJSON(recPath, rec); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Log, "%s seed %d: test accuracy %.4f, macro F1 %.4f (best epoch %d)\n",
		cfg.Name, o.Seed, rec.Final.Accuracy, rec.Final.MacroF1, st.BestEpoch+1)
	return rec, nil
}

// sameRun reports whether an existing record was made with the same
// configuration, data and limits, so that resuming it is legitimate.
func sameRun(old, cur *runrecord.Record) bool {
	return fmt.Sprint(old.Inputs) == fmt.Sprint(cur.Inputs) && old.Device == cur.Device &&
		settingsKey(old.Settings) == settingsKey(cur.Settings)
}

func settingsKey(m map[string]any) string {
	b, _ := jsonCanonical(m)
	return string(b)
}

// encoderPrefix names a modality encoder's parameters.
func encoderPrefix(modality string) string {
	if modality == "audio" {
		return "aud."
	}
	return "img."
}

// trainEpoch runs one pass over the training rows and returns the mean loss.
func trainEpoch(net *Network, opt *torch.Adam, sp *Split, weights map[string]float64, batch int, o Options, epoch int, drop *torch.KeyedDropout) (float64, error) {
	epochScope := torch.NewScope()
	defer epochScope.Close()
	var order *torch.Tensor
	if o.Shuffle {
		perm := make([]int64, sp.N)
		for i := range perm {
			perm[i] = int64(i)
		}
		r := rand.New(rand.NewPCG(uint64(o.Seed), uint64(epoch)))
		r.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		order = epochScope.From(perm, sp.N)
		if o.Device != torch.CPU {
			order = epochScope.To(order, o.Device)
		}
	}
	var total *torch.Tensor // summed on the device: no host sync per batch
	for lo := int64(0); lo < sp.N; lo += int64(batch) {
		n := min(int64(batch), sp.N-lo)
		s := torch.NewScope()
		b := sp.Batch(s, lo, n, order)
		loss := weightedLoss(s, net.Forward(s, b, Mode{Train: true, Drop: drop}), b.Label, weights)
		if err := optimise(s, loss, opt, drop); err != nil {
			s.Close()
			return 0, err
		}
		total = accumulate(epochScope, total, s, loss, n)
		s.Close()
	}
	if err := epochScope.Err(); err != nil {
		return 0, err
	}
	sum, err := total.Item()
	return sum / float64(sp.N), err
}

// accumulate adds n times a batch's (detached) loss, made in batch scope s,
// to the running total kept in epoch scope e, on the device: the epoch's
// loss is read once, at its end, not once per batch.
func accumulate(e *torch.Scope, total *torch.Tensor, s *torch.Scope, loss *torch.Tensor, n int64) *torch.Tensor {
	part := e.Adopt(s.MulScalar(s.Detach(loss), float64(n)))
	if total == nil {
		return part
	}
	return e.Add(total, part)
}

// optimiser is what optimise needs of libtorch's Adam and the stacked one.
type optimiser interface {
	ZeroGrad() error
	Step() error
}

// optimise takes one step on loss: zero the gradients, backpropagate,
// update, and move dropout on to the next step's masks.
func optimise(s *torch.Scope, loss *torch.Tensor, opt optimiser, drop *torch.KeyedDropout) error {
	if err := s.Err(); err != nil {
		return err
	}
	if err := opt.ZeroGrad(); err != nil {
		return err
	}
	if err := loss.Backward(); err != nil {
		return err
	}
	if err := opt.Step(); err != nil {
		return err
	}
	return drop.EndStep()
}

// weightedLoss is sum over heads of weight * mean cross-entropy.
func weightedLoss(s *torch.Scope, logits map[string]*torch.Tensor, label *torch.Tensor, weights map[string]float64) *torch.Tensor {
	var loss *torch.Tensor
	for _, h := range slices.Sorted(maps.Keys(weights)) {
		term := s.MulScalar(s.CrossEntropy(logits[h], label, torch.ReduceMean), weights[h])
		if loss == nil {
			loss = term
		} else {
			loss = s.Add(loss, term)
		}
	}
	return loss
}

// evaluation holds per-head results over a whole split.
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

// evaluate runs one (unstacked) network with dropout off over a split.
func evaluate(net *Network, sp *Split, batch int) (*evaluation, error) {
	evs, err := evaluateModels(net, sp, batch, 1, false)
	if err != nil {
		return nil, err
	}
	return evs[0], nil
}
