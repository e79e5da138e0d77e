package model

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/dataset"
	"github.com/m2mix/m2mix/robustness"
	"github.com/m2mix/m2mix/runrecord"
	"github.com/m2mix/m2mix/torch"
)

// This file evaluates a finished run's best weights on corrupted test rows
// (package robustness). It reads the run's record and best checkpoint, the
// test split and the training statistics, never the training rows
// themselves once the statistics are cached.

// hostSplit is a dataset split in host memory, as stored: each modality's
// column (float32 or uint8) and the labels.
type hostSplit struct {
	rows   int
	label  []int64
	cols   map[string]*dataset.Column
	sha256 string
	meta   map[string]string
}

// readHostSplit reads dir/file of a dataset after checking its sha256
// against the folder's manifest (the commit point of a preparation), and,
// when want is not empty, against want (what a run recorded). rows > 0
// reads only about the first rows (see dataset.ReadFirst).
func readHostSplit(dir, file string, spec *DatasetSpec, want string, rows int) (*hostSplit, error) {
	path := filepath.Join(dir, file)
	manPath := filepath.Join(dir, "manifest.json")
	var man artifact.Manifest
	if err := artifact.ReadJSON(manPath, &man); err != nil {
		return nil, fmt.Errorf("dataset %s: %w (prepare it with m2mix prep %s)", dir, err, spec.Name)
	}
	sum, err := artifact.SHA256File(path)
	if err != nil {
		return nil, fmt.Errorf("dataset %s: %w", path, err)
	}
	if man.Outputs[file] != sum {
		return nil, fmt.Errorf("dataset %s: sha256 %s, but %s records %q: prepare the dataset again (m2mix prep %s)", path, sum, manPath, man.Outputs[file], spec.Name)
	}
	if want != "" && want != sum {
		return nil, fmt.Errorf("dataset %s: sha256 %s, but the run recorded %s: the run was trained and tested on other data (train it again, or point --data at its data)", path, sum, want)
	}
	t, err := dataset.ReadFirst(path, rows)
	if err != nil {
		return nil, err
	}
	h := &hostSplit{rows: t.Rows, cols: map[string]*dataset.Column{}, sha256: sum, meta: t.Meta}
	label, err := t.Column("label")
	if err != nil || label.Int64 == nil || label.Width != 0 {
		return nil, fmt.Errorf("dataset %s: column \"label\" must be one int64 per row (%v)", path, err)
	}
	h.label = label.Int64
	for _, m := range spec.Modalities {
		c, err := t.Column(m.Column)
		if err != nil {
			return nil, fmt.Errorf("dataset %s: %w", path, err)
		}
		if int64(c.Width) != m.RowSize() || (m.Bytes && c.Uint8 == nil) || (!m.Bytes && c.Float32 == nil) {
			return nil, fmt.Errorf("dataset %s: column %q is not %d %s values per row", path, m.Column, m.RowSize(), map[bool]string{true: "uint8", false: "float32"}[m.Bytes])
		}
		h.cols[m.Name] = c
	}
	return h, nil
}

// rowsFloat32 returns rows [lo, hi) of a column as float32 (bytes as their
// values, as the networks read them).
func rowsFloat32(c *dataset.Column, lo, hi int) []float32 {
	w := c.Width
	if c.Float32 != nil {
		return slices.Clone(c.Float32[lo*w : hi*w])
	}
	out := make([]float32, (hi-lo)*w)
	for i, v := range c.Uint8[lo*w : hi*w] {
		out[i] = float32(v)
	}
	return out
}

// TrainStats returns the training statistics of the dataset in
// <data>/<dataset>: from RobustDir's cached file when it was computed from
// the training file the manifest lists, else computed from train.arrow and
// cached (written atomically).
func TrainStats(data, name string) (*robustness.TrainStats, error) {
	spec, err := Dataset(name)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(data, name)
	var man artifact.Manifest
	if err := artifact.ReadJSON(filepath.Join(dir, "manifest.json"), &man); err != nil {
		return nil, fmt.Errorf("dataset %s: %w (prepare it with m2mix prep %s)", dir, err, name)
	}
	trainFile := SplitFiles[0]
	cache := filepath.Join(robustness.Dir(data, name), robustness.StatsFile)
	var st robustness.TrainStats
	if err := artifact.ReadJSON(cache, &st); err == nil && st.TrainSHA256 == man.Outputs[trainFile] && st.Dataset == name && len(st.Modalities) == len(spec.Modalities) {
		return &st, nil
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("training statistics %s: %w (delete it to compute it again)", cache, err)
	}
	h, err := readHostSplit(dir, trainFile, spec, "", 0)
	if err != nil {
		return nil, err
	}
	st = robustness.TrainStats{Dataset: name, TrainFile: trainFile, TrainSHA256: h.sha256, Rows: h.rows, Modalities: map[string]robustness.ModalityStats{}}
	for _, m := range spec.Modalities {
		c := h.cols[m.Name]
		var ms robustness.ModalityStats
		if c.Uint8 != nil {
			ms, err = robustness.ComputeStats(c.Uint8, h.rows, m.Shape)
		} else {
			ms, err = robustness.ComputeStats(c.Float32, h.rows, m.Shape)
		}
		if err != nil {
			return nil, fmt.Errorf("dataset %s, %s: %w", dir, m.Name, err)
		}
		st.Modalities[m.Name] = ms
	}
	if err := artifact.WriteJSON(cache, &st); err != nil {
		return nil, fmt.Errorf("training statistics: %w", err)
	}
	return &st, nil
}

// RobustOptions are the settings of a robustness evaluation.
type RobustOptions struct {
	Device  torch.Device
	DataDir string // the run's data folder: <DataDir>/<dataset>/test.arrow, robustness.Dir(DataDir, dataset)
	RunsDir string
	Limit   int    // > 0: the first Limit test rows
	Batch   int    // rows per forward pass; 0: 500
	Seed    uint64 // the corruptions' seed
	// NoiseWeights are the ESC-50 mixing weights whose re-rendered test
	// audio to use (NoiseWeightFile in RobustDir); none: no such condition.
	NoiseWeights []float64
	Threads      int       // libtorch threads; 0: all cores
	Log          io.Writer // nil: silent
	// Progress, when set, is given each run's number of conditions and
	// told of every condition evaluated.
	Progress func(desc string, total int) ProgressBar
}

// ProgressBar is what RobustOptions.Progress makes (a *progress.Bar).
type ProgressBar interface {
	Add(int64)
	Finish()
}

// EvaluateRobustness evaluates the best weights of the finished run (cfg,
// seed) under every corruption of robustness.Plan and writes the result to
// the run folder as robustness.json. Every head is evaluated; the result
// names the head the tables show. The file depends only on the inputs and
// the seed (no times, no paths), so the same inputs give the same bytes.
func EvaluateRobustness(cfg *Config, seed int64, o RobustOptions) (*robustness.Result, error) {
	start := time.Now()
	if o.Batch == 0 {
		o.Batch = 500
	}
	// BatchNorm on batch statistics at test (Gradient Blending, as
	// MultiBench tests it) makes a row's prediction depend on its batch:
	// evaluate in the batches the run's own test used.
	o.Batch = cfg.evalBatch(o.Batch)
	if cfg.GradBlend != nil {
		cfg = testedConfig(cfg) // what its best checkpoint holds: encoders and the fine-tuned head
	}
	if o.Device == "" {
		o.Device = torch.CPU
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	threads := o.Threads
	if threads == 0 {
		threads = runtime.NumCPU()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := torch.SetThreads(threads); err != nil {
		return nil, err
	}
	dir := RunDir(o.RunsDir, cfg.Name, seed)
	var rec runrecord.Record
	if err := artifact.ReadJSON(filepath.Join(dir, runrecord.FileName), &rec); err != nil {
		return nil, fmt.Errorf("robustness of %s seed %d: %w (train it first)", cfg.Name, seed, err)
	}
	if rec.Final == nil {
		return nil, fmt.Errorf("robustness of %s seed %d: %s is not finished (no final metrics): train it to the end first", cfg.Name, seed, filepath.Join(dir, runrecord.FileName))
	}
	spec, err := Dataset(cfg.Dataset)
	if err != nil {
		return nil, err
	}
	dataDir := filepath.Join(o.DataDir, cfg.Dataset)
	rows := 0 // the rows the run was tested on, or fewer
	if lim, ok := rec.Settings["limit_eval"].(float64); ok && lim > 0 {
		rows = int(lim)
	}
	if o.Limit > 0 && (rows == 0 || o.Limit < rows) {
		rows = o.Limit
	}
	test, err := readHostSplit(dataDir, SplitFiles[2], spec, rec.Inputs[cfg.Dataset+"/"+SplitFiles[2]], rows)
	if err != nil {
		return nil, err
	}
	if rows == 0 || rows > test.rows {
		rows = test.rows
	}
	readSeconds := time.Since(start).Seconds()
	stats, err := TrainStats(o.DataDir, cfg.Dataset)
	if err != nil {
		return nil, err
	}
	if want := rec.Inputs[cfg.Dataset+"/"+SplitFiles[0]]; want != "" && want != stats.TrainSHA256 {
		return nil, fmt.Errorf("robustness of %s seed %d: the training statistics come from %s with sha256 %s, but the run trained on %s", cfg.Name, seed, stats.TrainFile, stats.TrainSHA256, want)
	}
	res := &robustness.Result{
		Config: cfg.Name, Model: cfg.Model, Dataset: cfg.Dataset, Kind: cfg.Kind, Seed: seed, Head: cfg.Heads[0],
		Rows: rows, NoiseSeed: o.Seed, Inputs: map[string]string{cfg.Dataset + "/" + SplitFiles[2]: test.sha256, cfg.Dataset + "/" + SplitFiles[0] + " (training statistics)": stats.TrainSHA256},
	}
	if dv, ok := rec.Settings["data_variant"].(map[string]any); ok {
		res.Variant, _ = dv["name"].(string)
	}
	weighted, err := readNoiseWeights(o, cfg.Dataset, spec, test, rows, res.Inputs)
	if err != nil {
		return nil, err
	}

	net, err := NewNetwork(cfg, []uint64{uint64(seed)}, o.Device)
	if err != nil {
		return nil, err
	}
	defer net.Close()
	best := filepath.Join(dir, BestFile)
	ls := torch.NewScope()
	_, _, err = loadModel(ls, best, net, 0, "")
	ls.Close()
	if err != nil {
		return nil, err
	}
	if res.Inputs[BestFile], err = artifact.SHA256File(best); err != nil {
		return nil, err
	}
	for _, m := range net.Modalities {
		res.Modalities = append(res.Modalities, m.Name)
	}
	var names []string
	shapes := map[string][]int64{}
	for _, m := range spec.Modalities {
		names = append(names, m.Name)
		shapes[m.Name] = m.Shape
	}
	var nws []float64
	for _, w := range o.NoiseWeights {
		if weighted[w] != nil {
			nws = append(nws, w)
		}
	}
	plan := robustness.Plan(names, shapes, nws)
	var bar ProgressBar
	if o.Progress != nil {
		bar = o.Progress(fmt.Sprintf("robustness %s/%d", cfg.Name, seed), len(plan))
		defer bar.Finish()
	}
	for _, c := range plan {
		acc, err := evaluateCorrupted(net, spec, test, rows, c, stats, o, weighted[c.Level])
		if err != nil {
			return nil, fmt.Errorf("robustness of %s seed %d, %s: %w", cfg.Name, seed, c.Name(), err)
		}
		res.Conditions = append(res.Conditions, robustness.Condition{Corruption: c, Accuracy: acc})
		if bar != nil {
			bar.Add(1)
		}
	}
	if err := artifact.WriteJSON(filepath.Join(dir, robustness.FileName), res); err != nil {
		return nil, err
	}
	clean, _ := res.Find(robustness.Corruption{Kind: robustness.Clean})
	fmt.Fprintf(o.Log, "%s seed %d: robustness over %d conditions, %d test rows, clean accuracy %.4f (%.1fs, %.1fs of it reading)\n",
		cfg.Name, seed, len(res.Conditions), rows, clean, time.Since(start).Seconds(), readSeconds)
	return res, nil
}

// readNoiseWeights reads the re-rendered test audio of each of o's noise
// weights, checked against the folder's manifest and against the test
// split they were rendered for; it adds their sha256 to inputs.
func readNoiseWeights(o RobustOptions, name string, spec *DatasetSpec, test *hostSplit, rows int, inputs map[string]string) (map[float64]*dataset.Column, error) {
	out := map[float64]*dataset.Column{}
	if len(o.NoiseWeights) == 0 {
		return out, nil
	}
	audio, ok := spec.Modality("audio")
	if !ok {
		return out, nil
	}
	dir := robustness.Dir(o.DataDir, name)
	manPath := filepath.Join(dir, robustness.NoiseWeightManifest)
	var man artifact.Manifest
	if err := artifact.ReadJSON(manPath, &man); err != nil {
		return nil, fmt.Errorf("re-rendered test audio: %w (m2mix robustness renders it from the raw inputs)", err)
	}
	for _, w := range o.NoiseWeights {
		f := robustness.NoiseWeightFile(w)
		path := filepath.Join(dir, f)
		sum, err := artifact.SHA256File(path)
		if err != nil {
			return nil, fmt.Errorf("re-rendered test audio: %w", err)
		}
		if man.Outputs[f] != sum {
			return nil, fmt.Errorf("re-rendered test audio %s: sha256 %s, but %s records %q: render it again", path, sum, manPath, man.Outputs[f])
		}
		t, err := dataset.ReadFirst(path, rows)
		if err != nil {
			return nil, err
		}
		if t.Meta["test_sha256"] != test.sha256 {
			return nil, fmt.Errorf("re-rendered test audio %s: rendered for the test split with sha256 %s, not %s: render it again", path, t.Meta["test_sha256"], test.sha256)
		}
		c, err := t.Column(audio.Column)
		if err != nil || c.Uint8 == nil || int64(c.Width) != audio.RowSize() {
			return nil, fmt.Errorf("re-rendered test audio %s: no uint8 %q column of %d values (%v)", path, audio.Column, audio.RowSize(), err)
		}
		label, err := t.Column("label")
		if err != nil || t.Rows < rows || !slices.Equal(label.Int64[:rows], test.label[:rows]) {
			return nil, fmt.Errorf("re-rendered test audio %s: its first %d labels are not the test split's (%v)", path, rows, err)
		}
		out[w] = c
		inputs[f] = sum
	}
	return out, nil
}

// evaluateCorrupted returns each head's accuracy on the first rows of the
// test split with corruption c applied, batch by batch on the host.
func evaluateCorrupted(net *Network, spec *DatasetSpec, test *hostSplit, rows int, c robustness.Corruption, stats *robustness.TrainStats, o RobustOptions, weighted *dataset.Column) (map[string]float64, error) {
	correct := map[string]int{}
	var ferr error
	err := torch.NoGrad(func() {
		for lo := 0; lo < rows && ferr == nil; lo += o.Batch {
			hi := min(lo+o.Batch, rows)
			s := torch.NewScope()
			ferr = func() error {
				defer s.Close()
				b := Batch{X: map[string]*torch.Tensor{}}
				for _, m := range net.Modalities {
					src := test.cols[m.Name]
					if c.Kind == robustness.NoiseWeight && c.Modality == m.Name {
						src = weighted
					}
					x := rowsFloat32(src, lo, hi)
					if c.Modality == m.Name {
						if err := c.Apply(x, lo, hi-lo, stats.Modalities[m.Name], o.Seed); err != nil {
							return err
						}
					}
					t := s.From(x, append([]int64{int64(hi - lo)}, m.Shape...)...)
					if o.Device != torch.CPU {
						t = s.To(t, o.Device)
					}
					b.X[m.Name] = t
				}
				for h, logits := range net.Forward(s, b, Mode{}) {
					pred, err := s.Reshape(s.Argmax(logits, -1), -1).Int64s()
					if err != nil {
						return err
					}
					for i, p := range pred {
						if p == test.label[lo+i] {
							correct[h]++
						}
					}
				}
				return s.Err()
			}()
		}
	})
	if err := errors.Join(err, ferr); err != nil {
		return nil, err
	}
	acc := map[string]float64{}
	for _, h := range net.Config.Heads {
		acc[h] = float64(correct[h]) / float64(rows)
	}
	return acc, nil
}
