package pipeline

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/features/avmnist"
	"github.com/m2mix/m2mix/model"
	"github.com/m2mix/m2mix/progress"
	"github.com/m2mix/m2mix/robustness"
	"github.com/m2mix/m2mix/runrecord"
)

// codeRobustness versions the robustness stages (inputs and evaluation).
const codeRobustness = "robustness/1"

// DefaultNoiseWeights are the ESC-50 mixing weights AV-MNIST's test audio
// is re-rendered with (the recipe mixes at 0.009).
var DefaultNoiseWeights = []float64{0.02, 0.05, 0.1, 0.2, 0.5}

// RobustnessInputs prepares what the robustness evaluation of a dataset in
// root (<root>/<dataset>) reads besides the test split: the training
// statistics and, for AV-MNIST with in set (the raw inputs), the test audio
// re-rendered at each noise weight. It returns the weights rendered (none
// without inputs, or for a variant whose audio cannot be re-rendered; why is
// logged).
func RobustnessInputs(root, dataset string, in func() (*avmnist.Inputs, error), weights []float64, rows int, log io.Writer) ([]float64, error) {
	if _, err := model.TrainStats(root, dataset); err != nil {
		return nil, err
	}
	if dataset != "avmnist" || in == nil || len(weights) == 0 {
		return nil, nil
	}
	if rows == 0 {
		rows = 1 << 30 // every test row
	}
	if err := avmnist.RenderNoiseWeights(root, in, weights, rows); err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "robustness: test audio at ESC-50 weights %v in %s\n", weights, robustness.Dir(root, dataset))
	return weights, nil
}

// RenderableAudio reports whether the AV-MNIST test audio in root can be
// re-rendered from the raw inputs alone (not a pool-race variant, made
// from the raw inputs), and why not.
func RenderableAudio(v avmnist.Variant) (bool, string) {
	if v.Pairing == "pool-race" {
		return false, "the variant's audio rows are displaced across the whole generation (pool-race), which re-rendering the test split alone cannot reproduce"
	}
	return true, ""
}

// RobustnessOptions say which finished runs to evaluate and how.
type RobustnessOptions struct {
	Data    string // the data folder of the runs' datasets (a variant's: data/variants/<name>)
	Runs    string
	Configs []string // empty: every multimodal and uni-modal configuration with records in Runs
	Seeds   []int64  // empty: every seed with a finished record
	// Robust is the evaluation's settings (Device, Limit, Seed,
	// NoiseWeights...); its DataDir and RunsDir are set from Data and Runs.
	Robust model.RobustOptions
}

// Robustness evaluates every selected finished run (see RobustnessOptions)
// under the corruptions of package robustness, writing each run's
// robustness.json beside its record.
func Robustness(o RobustnessOptions) ([]*robustness.Result, error) {
	o.Robust.DataDir, o.Robust.RunsDir = o.Data, o.Runs
	configs := o.Configs
	if len(configs) == 0 {
		ents, err := os.ReadDir(o.Runs)
		if err != nil {
			return nil, fmt.Errorf("runs folder %s: %w", o.Runs, err)
		}
		for _, e := range ents {
			if !e.IsDir() || e.Name() == "variants" {
				continue
			}
			cfg, err := model.LoadConfig(e.Name())
			if err != nil {
				continue // a folder of a configuration this binary does not know
			}
			if RobustnessKind(cfg.Kind) {
				configs = append(configs, e.Name())
			}
		}
	}
	var out []*robustness.Result
	for _, name := range configs {
		cfg, err := model.LoadConfig(name)
		if err != nil {
			return out, err
		}
		seeds := o.Seeds
		if len(seeds) == 0 {
			if seeds, err = finishedSeeds(o.Runs, name); err != nil {
				return out, err
			}
		}
		for _, seed := range seeds {
			res, err := model.EvaluateRobustness(cfg, seed, o.Robust)
			if err != nil {
				return out, err
			}
			out = append(out, res)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("robustness: no finished multimodal or uni-modal run in %s", o.Runs)
	}
	return out, nil
}

// RobustnessKind says which kinds of run the robustness stages evaluate:
// every model that classifies from its own inputs (the multimodal ones,
// baselines of whatever kind their configurations name, and the uni-modal
// models as references), not the probes of another model's encoder.
func RobustnessKind(kind string) bool { return kind != "probe" }

// finishedSeeds lists the seeds of a configuration whose record is final.
func finishedSeeds(runs, config string) ([]int64, error) {
	ents, err := os.ReadDir(filepath.Join(runs, config))
	if err != nil {
		return nil, fmt.Errorf("runs of %s: %w", config, err)
	}
	var seeds []int64
	for _, e := range ents {
		seed, err := strconv.ParseInt(e.Name(), 10, 64)
		if err != nil || !e.IsDir() {
			continue
		}
		var rec runrecord.Record
		if err := artifact.ReadJSON(filepath.Join(runs, config, e.Name(), runrecord.FileName), &rec); err == nil && rec.Final != nil {
			seeds = append(seeds, seed)
		}
	}
	slices.Sort(seeds)
	return seeds, nil
}

// robustnessStages returns the robustness stages of one dataset: its
// inputs (training statistics, re-rendered audio), then one stage per
// finished training record of a multimodal or uni-modal configuration.
// records are the training stages' record paths of that dataset, with
// their configuration and seed.
func robustnessStages(root, dataset, runs, suffix string, raw []string, in func() (*avmnist.Inputs, error), renderable bool, records []trainedRun, o ReproduceOptions) []Stage {
	if len(records) == 0 {
		return nil
	}
	dsDir := filepath.Join(root, dataset)
	rdir := robustness.Dir(root, dataset)
	rows := o.Profile.RobustnessRows
	weights := []float64(nil)
	if dataset == "avmnist" && renderable {
		weights = DefaultNoiseWeights
	}
	inputs := []string{filepath.Join(dsDir, model.SplitFiles[0]), filepath.Join(dsDir, model.SplitFiles[2])}
	if weights != nil {
		inputs = append(inputs, raw...)
	}
	stages := []Stage{{
		Name: "robustness-inputs/" + dataset + suffix, Inputs: inputs,
		Params: map[string]any{"weights": weights, "rows": rows}, Outputs: []string{rdir}, Code: codeRobustness,
		Run: func(_ context.Context) error {
			if weights == nil {
				in = nil
			}
			_, err := RobustnessInputs(root, dataset, in, weights, rows, o.Log)
			return err
		},
	}}
	for _, r := range records {
		dir := model.RunDir(runs, r.config.Name, r.seed)
		ro := model.RobustOptions{Device: o.Device, DataDir: root, RunsDir: runs, Limit: rows, Seed: 0, NoiseWeights: weights, Threads: o.Threads, Log: o.Log,
			Progress: func(desc string, total int) model.ProgressBar {
				return progress.New(int64(total), desc)
			}}
		cfg, seed := r.config, r.seed
		stages = append(stages, Stage{
			Name:    "robustness/" + cfg.Name + "/" + strconv.FormatInt(seed, 10) + suffix,
			Inputs:  []string{filepath.Join(dir, runrecord.FileName), filepath.Join(dir, model.BestFile), filepath.Join(dsDir, model.SplitFiles[2]), rdir},
			Params:  map[string]any{"rows": rows, "seed": ro.Seed, "weights": weights, "device": o.Device},
			Outputs: []string{filepath.Join(dir, robustness.FileName)}, Code: codeRobustness,
			Run: func(_ context.Context) error {
				_, err := model.EvaluateRobustness(cfg, seed, ro)
				return err
			},
		})
	}
	return stages
}

// trainedRun is one (configuration, seed) a training stage finishes.
type trainedRun struct {
	config *model.Config
	seed   int64
}
