package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/runrecord"
	"github.com/m2mix/m2mix/torch"
)

// Options are the run-level settings of a training run of one or more seeds.
type Options struct {
	Device     torch.Device
	DataDir    string // the data folder; datasets are read from DataDir/<dataset>/
	RunsDir    string // records go to RunsDir/<config>/<seed>/
	MaxEpochs  int    // 0: the configuration's limit
	LimitTrain int    // 0: every training row
	LimitEval  int    // 0: every validation and test row
	EvalBatch  int    // 0: 512
	Shuffle    *bool  // nil: the configuration's choice
	Threads    int    // libtorch intra-op threads; 0: all cores
	// GradBlendRound and GradBlendFinetune shorten Gradient Blending's
	// schedule (epochs per round, head fine-tune epochs per round) for a
	// short profile; 0: the configuration's. The run's record holds the
	// configuration with them applied.
	GradBlendRound, GradBlendFinetune int
	NoGraphs                          bool // on CUDA: plain steps, no CUDA graph
	Profile                           string
	Log                               io.Writer // one line per epoch and model; nil: silent
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
	o.Threads = threads
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

// waiting lists the models of k that are not in active.
func waiting(k int, active []int) []int {
	var out []int
	for i := 0; i < k; i++ {
		if !slices.Contains(active, i) {
			out = append(out, i)
		}
	}
	return out
}

// schedule applies the Gradient Blending overrides to a copy of cfg.
func (o *Options) schedule(cfg *Config) (*Config, error) {
	if o.GradBlendRound == 0 && o.GradBlendFinetune == 0 {
		return cfg, nil
	}
	if cfg.GradBlend == nil {
		return nil, fmt.Errorf("%s: Gradient Blending's schedule given for a configuration without one", cfg.Name)
	}
	if o.GradBlendRound < 0 || o.GradBlendFinetune < 0 {
		return nil, fmt.Errorf("%s: Gradient Blending's round and fine-tune epochs must be positive", cfg.Name)
	}
	c, gb := *cfg, *cfg.GradBlend
	if o.GradBlendRound > 0 {
		gb.RoundEpochs = o.GradBlendRound
	}
	if o.GradBlendFinetune > 0 {
		gb.FinetuneEpochs = o.GradBlendFinetune
	}
	c.GradBlend = &gb
	return &c, nil
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

// member is one model of a run: its seed's record, folder and loop state.
type member struct {
	seed int64
	dir  string
	rec  *runrecord.Record
	st   *loopState
	done bool // complete before this run started: left as it is
}

// Train trains one configuration with one or more seeds, as K stacked
// models in lockstep (K = 1 for a lone seed): every matmul serves all the
// models at once, while each model keeps its own dropout stream, Adam
// state, learning rate, plateau scheduler, early stopping and best
// checkpoint, and a stopped model stops changing. So each model computes
// what it would alone (up to floating-point rounding) and each seed leaves
// its own record and checkpoints in RunDir(runs, config, seed). Epoch times
// in the records are the batch's wall time divided by K.
//
// Run again after an interruption, it continues every model from its last
// completed epoch: a model whose last checkpoint is ahead of the others
// (a kill between two models' writes) waits, unchanged, while the others
// catch up. A probe's models each start from their own seed's trained
// encoder. A model whose loss stops being finite stops, and is tested on
// its best weights before that, which its record says.
func Train(cfg *Config, seeds []int64, o Options) ([]*runrecord.Record, error) {
	if len(seeds) == 0 {
		return nil, errors.New("no seeds")
	}
	for i, s := range seeds {
		if slices.Contains(seeds[:i], s) {
			return nil, fmt.Errorf("seed %d given twice", s)
		}
	}
	// libtorch's OpenMP keeps one thread team per calling OS thread; pinning
	// the run to one thread keeps it to one team instead of one per thread
	// the Go scheduler happens to use.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cfg, err := o.schedule(cfg)
	if err != nil {
		return nil, err
	}
	info, maxEpochs, err := o.setup(cfg)
	if err != nil {
		return nil, err
	}
	shuffle := cfg.Shuffle
	if o.Shuffle != nil {
		shuffle = *o.Shuffle
	}
	evalBatch := cfg.evalBatch(o.EvalBatch)
	if gb := cfg.GradBlend; gb != nil && maxEpochs < gb.RoundEpochs {
		return nil, fmt.Errorf("%s: %d epochs are less than one Gradient Blending round (%d epochs)", cfg.Name, maxEpochs, gb.RoundEpochs)
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
	net, err := NewNetwork(cfg, useeds, o.Device)
	if err != nil {
		return nil, err
	}
	defer net.Close()

	models := make([]*member, k)
	for i, seed := range seeds {
		m := &member{seed: seed, dir: RunDir(o.RunsDir, cfg.Name, seed)}
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return nil, err
		}
		inputs := maps.Clone(ds.SHA256) // the data, and a probe's encoder
		if cfg.Kind == "probe" {
			src := filepath.Join(RunDir(o.RunsDir, cfg.ProbeOf, seed), BestFile)
			s := torch.NewScope()
			_, _, err := loadModel(s, src, net, i, cfg.encoderPrefix())
			s.Close()
			if err != nil {
				return nil, fmt.Errorf("probe %s needs a trained %s run of seed %d: %w", cfg.Name, cfg.ProbeOf, seed, err)
			}
			if inputs[cfg.ProbeOf+"/"+BestFile], err = artifact.SHA256File(src); err != nil {
				return nil, err
			}
		}
		settings := map[string]any{
			"config": cfg, "max_epochs": maxEpochs, "limit_train": o.LimitTrain, "limit_eval": o.LimitEval,
			"shuffle": shuffle, "eval_batch": evalBatch, "train_rows": ds.Train.N,
			"validation_rows": ds.Validation.N, "test_rows": ds.Test.N,
		}
		if k > 1 {
			settings["seed_batch"] = seeds
		}
		if ds.Variant != "" {
			var params any
			if err := json.Unmarshal([]byte(ds.VariantParams), &params); err != nil {
				return nil, fmt.Errorf("dataset %s: variant parameters: %w", cfg.Dataset, err)
			}
			settings["data_variant"] = map[string]any{"name": ds.Variant, "params": params}
		}
		m.rec = &runrecord.Record{
			Config: cfg.Name, Model: cfg.Model, Dataset: cfg.Dataset, Seed: seed, Profile: o.Profile,
			Device: string(o.Device), Libtorch: info.Version, Threads: o.Threads, Inputs: inputs, Settings: settings,
		}
		m.st = &loopState{LR: cfg.LR, WFusion: cfg.Loss.WFusion, Early: NewEarlyStop(cfg.EarlyStopping), BestEpoch: -1}
		if cfg.Plateau != nil {
			m.st.Plateau = NewPlateau(cfg.Plateau.Patience, cfg.Plateau.Factor, cfg.Plateau.Threshold)
		}
		models[i] = m
	}
	if cfg.Kind == "probe" {
		if err := net.Params.Freeze(cfg.encoderPrefix()); err != nil {
			return nil, err
		}
	}
	nparams, err := net.Params.Count()
	if err != nil {
		return nil, err
	}
	tr, err := newTrainer(net, cfg, ds.Train, o)
	if err != nil {
		return nil, err
	}
	defer tr.Close()
	var gb *gradBlend
	var extra []ckptPart
	if cfg.GradBlend != nil {
		if gb, err = newGradBlend(cfg, net, tr, ds, seeds, o, shuffle, evalBatch); err != nil {
			return nil, err
		}
		defer gb.Close()
		extra = gb.parts()
	}
	for i, m := range models {
		m.rec.Params = nparams
		if err := m.resume(cfg, net, i, tr.opt, o.Log, extra...); err != nil {
			return nil, err
		}
	}

	start := maxEpochs
	for _, m := range models {
		if !m.done && !m.st.stopped() {
			start = min(start, m.st.NextEpoch)
		}
	}
	if gb != nil {
		// Gradient Blending's rounds take the epochs (gradblend.go).
		if err := gb.rounds(models, start, maxEpochs); err != nil {
			return nil, err
		}
		start = maxEpochs
	}
	for epoch := start; epoch < maxEpochs; epoch++ {
		var active []int
		for i, m := range models {
			// A model ahead of the others (resumed from a later epoch) waits.
			on := !m.done && !m.st.stopped() && m.st.NextEpoch == epoch
			tr.opt.SetActive(i, on)
			tr.opt.SetLR(i, m.st.LR)
			if on {
				active = append(active, i)
			}
		}
		if len(active) == 0 {
			break
		}
		weights := make([]map[string]float64, k)
		for i, m := range models {
			weights[i] = cfg.HeadWeights(m.st.WFusion)
		}
		t0 := time.Now()
		keys := make([]uint64, k)
		for i, seed := range seeds {
			keys[i] = epochSeed(seed, epoch)
		}
		es := torch.NewScope()
		var order *torch.Tensor
		if shuffle {
			order = shuffledOrder(es, seeds, epoch, ds.Train.N, o.Device)
		}
		// The optimiser leaves a waiting or stopped model alone, but a
		// training-mode pass updates every model's BatchNorm statistics.
		held, err := net.Params.holdBuffers(es, waiting(k, active))
		var trainLoss []float64
		if err == nil {
			trainLoss, err = tr.epoch(ds.Train, order, weights, keys)
		}
		if err == nil {
			err = held()
		}
		es.Close()
		if err != nil {
			return nil, fmt.Errorf("%s seeds %v epoch %d: %w", cfg.Name, seeds, epoch, err)
		}
		evs, err := tr.evaluate(ds.Validation, evalBatch)
		if err != nil {
			return nil, fmt.Errorf("%s seeds %v epoch %d: validation: %w", cfg.Name, seeds, epoch, err)
		}
		seconds := time.Since(t0).Seconds() / float64(k)
		for _, i := range active {
			if err := models[i].endEpoch(cfg, net, i, tr.opt, epoch, maxEpochs, trainLoss[i], evs[i], seconds, o.Log); err != nil {
				return nil, err
			}
		}
		if k > 1 {
			fmt.Fprintf(o.Log, "%s seeds %v epoch %d: %.1fs for %d models\n", cfg.Name, seeds, epoch+1, seconds*float64(k), k)
		}
	}

	// Each model's test uses its own best weights: of the network, or of
	// Gradient Blending's encoders and fine-tuned head.
	testNet, testTr := net, tr
	if gb != nil {
		testNet, testTr = gb.tested, gb.testedTr
	}
	var testing []int
	var failed []string
	for i, m := range models {
		switch {
		case m.done:
		case m.st.BestEpoch < 0:
			failed = append(failed, fmt.Sprintf("seed %d has no completed epoch (%s)", m.seed, m.st.Diverged))
		default:
			s := torch.NewScope()
			_, _, err := loadModel(s, filepath.Join(m.dir, BestFile), testNet, i, "")
			s.Close()
			if err != nil {
				return nil, err
			}
			testing = append(testing, i)
		}
	}
	if len(testing) > 0 {
		t0 := time.Now()
		evs, err := testTr.evaluate(ds.Test, evalBatch)
		if err != nil {
			return nil, fmt.Errorf("%s seeds %v: test: %w", cfg.Name, seeds, err)
		}
		testSeconds := time.Since(t0).Seconds() / float64(k)
		for _, i := range testing {
			m := models[i]
			m.rec.Final = finalMetrics(cfg, ds.Spec.Classes, m.rec, evs[i], m.st, testSeconds)
			if gb != nil {
				m.rec.Final.Epochs = m.st.NextEpoch // the history has a line per round
			}
			if err := artifact.WriteJSON(filepath.Join(m.dir, runrecord.FileName), m.rec); err != nil {
				return nil, err
			}
			fmt.Fprintf(o.Log, "%s seed %d: test accuracy %.4f, macro F1 %.4f (best epoch %d)\n",
				cfg.Name, m.seed, m.rec.Final.Accuracy, m.rec.Final.MacroF1, m.st.BestEpoch+1)
		}
	}
	recs := make([]*runrecord.Record, k)
	for i, m := range models {
		recs[i] = m.rec
	}
	if len(failed) > 0 {
		return recs, fmt.Errorf("%s: %s", cfg.Name, strings.Join(failed, "; "))
	}
	return recs, nil
}

// resume continues model i from its folder: a complete run is left as it
// is; an interrupted one restores its weights, Adam state and loop state
// from last.safetensors and its history from record.json. A folder of
// another run (other data, settings or device) is started afresh.
//
// record.json is written before last.safetensors at each epoch, so the
// record's history always reaches the checkpoint's epoch.
func (m *member) resume(cfg *Config, net *Network, i int, opt *torch.FlatOptimizer, log io.Writer, extra ...ckptPart) error {
	last := filepath.Join(m.dir, lastFile)
	if _, err := os.Stat(last); err != nil {
		return nil
	}
	var old runrecord.Record
	if err := artifact.ReadJSON(filepath.Join(m.dir, runrecord.FileName), &old); err != nil || !sameRun(&old, m.rec) {
		return nil
	}
	if old.Final != nil {
		fmt.Fprintf(log, "%s seed %d: already complete\n", m.rec.Config, m.seed)
		m.rec, m.done = &old, true
		return nil
	}
	st, err := loadResume(last, net, i, opt, extra...)
	if err != nil {
		return err
	}
	lines := st.NextEpoch
	if cfg.GradBlend != nil {
		lines = st.NextEpoch / cfg.GradBlend.RoundEpochs // a line per round
	}
	if len(old.History) < lines {
		return fmt.Errorf("%s: the record has %d lines but the checkpoint is at epoch %d; delete the run folder to start again",
			m.dir, len(old.History), st.NextEpoch)
	}
	m.st, m.rec.History = st, old.History[:lines]
	fmt.Fprintf(log, "%s seed %d: resuming at epoch %d\n", m.rec.Config, m.seed, st.NextEpoch)
	return nil
}

// evalBatch is the evaluation batch size: the training batch's when an
// encoder's BatchNorm normalises with batch statistics at test (so the
// statistics are of batches as MultiBench's evaluation forms them), else
// the run's.
func (c *Config) evalBatch(runs int) int {
	for _, e := range c.Network.Encoders {
		if e.BatchStatsAtTest {
			return c.BatchSize
		}
	}
	return runs
}

// endEpoch does model i's bookkeeping after an epoch it trained in: the
// record, early stopping and the best checkpoint, the plateau scheduler,
// the LC schedule, then record.json and last.safetensors, in that order.
// A non-finite loss stops the model instead, saying so in its state.
func (m *member) endEpoch(cfg *Config, net *Network, i int, opt *torch.FlatOptimizer, epoch, maxEpochs int, trainLoss float64, ev *evaluation, seconds float64, log io.Writer) error {
	st := m.st
	valLoss := ev.weightedLoss(cfg.HeadWeights(st.WFusion))
	recPath, lastPath := filepath.Join(m.dir, runrecord.FileName), filepath.Join(m.dir, lastFile)
	if !finite(trainLoss) || !finite(valLoss) {
		st.Diverged = fmt.Sprintf("epoch %d: training loss %v, validation loss %v", epoch, trainLoss, valLoss)
		fmt.Fprintf(log, "%s seed %d: training diverged at epoch %d (train loss %v, validation loss %v); stopped\n",
			cfg.Name, m.seed, epoch+1, trainLoss, valLoss)
		if err := artifact.WriteJSON(recPath, m.rec); err != nil {
			return err
		}
		return saveModel(lastPath, net, i, opt, st)
	}
	m.rec.History = append(m.rec.History, runrecord.Epoch{
		Epoch: epoch, TrainLoss: trainLoss, ValLoss: valLoss, HeadLoss: ev.loss, HeadAcc: ev.acc,
		LR: st.LR, WFusion: st.WFusion, Seconds: seconds,
	})
	improved, _ := st.Early.Step(cfg.selectionScore(valLoss, ev))
	if improved {
		st.BestEpoch = epoch
		if err := saveModel(filepath.Join(m.dir, BestFile), net, i, nil, nil); err != nil {
			return err
		}
	}
	lr := st.LR
	if st.Plateau != nil {
		st.LR = st.Plateau.Step(valLoss, st.LR)
	}
	if cfg.Loss.LCEta > 0 && epoch >= cfg.Loss.LCK {
		st.WFusion = math.Min(1, st.WFusion+cfg.Loss.LCEta)
	}
	st.NextEpoch = epoch + 1
	if err := artifact.WriteJSON(recPath, m.rec); err != nil {
		return err
	}
	if err := saveModel(lastPath, net, i, opt, st); err != nil {
		return err
	}
	fmt.Fprintf(log, "%s seed %d epoch %d/%d: train %.4f val %.4f acc %.4f lr %.2g%s (%.1fs)\n",
		cfg.Name, m.seed, epoch+1, maxEpochs, trainLoss, valLoss, ev.acc[cfg.Heads[0]], lr,
		map[bool]string{true: " *", false: ""}[improved], seconds)
	return nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

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
