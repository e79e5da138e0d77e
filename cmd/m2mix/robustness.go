package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/m2mix/m2mix/features/avmnist"
	"github.com/m2mix/m2mix/model"
	"github.com/m2mix/m2mix/pipeline"
	"github.com/m2mix/m2mix/prep/sources"
	"github.com/m2mix/m2mix/progress"
	"github.com/m2mix/m2mix/robustness"
	"github.com/m2mix/m2mix/torch"
)

func newRobustnessCmd() *cobra.Command {
	var (
		o          pipeline.RobustnessOptions
		device     string
		weightList string
		raw        string
		pack       string
		variant    string
	)
	c := &cobra.Command{
		Use:   "robustness",
		Short: "Evaluate finished runs' best weights with a modality missing or noisy (writes robustness.json beside each record)",
		Long: `robustness evaluates the best weights of every finished multimodal and
uni-modal run in --runs on the test split under test-time corruptions of
each modality: missing (zeros, and the training mean), additive Gaussian noise
at 10 levels (0.1 to 1 times the modality's training std), for MIMIC-III's
time series time steps replaced by the training mean with probability 0.1 to
1, and for AV-MNIST's audio the ESC-50 noise mixed in at higher weights
(test audio re-rendered from the raw inputs, cached in
<data>/robustness/avmnist). No training, no training rows beyond the cached
training statistics (computed once from train.arrow). Seeded: the same
seed gives the same JSON. m2mix report turns the files into Table IV and
accuracy-against-noise plots.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			start := time.Now()
			w := cmd.OutOrStdout()
			var weights []float64
			for _, f := range strings.Split(weightList, ",") {
				if f = strings.TrimSpace(f); f == "" {
					continue
				}
				v, err := strconv.ParseFloat(f, 64)
				if err != nil || !(v >= 0 && v <= 1) {
					return fmt.Errorf("--noise-weights: %q is not a weight in [0, 1]", f)
				}
				weights = append(weights, v)
			}
			o.Data = dataDir(cmd)
			if variant != "" {
				v, err := avmnist.LoadVariant(variant)
				if err != nil {
					return err
				}
				o.Data = avmnist.Root(o.Data, v)
				if !cmd.Flags().Changed("runs") {
					o.Runs = filepath.Join(o.Runs, "variants", v.Name)
				}
				if ok, why := pipeline.RenderableAudio(v); !ok && len(weights) > 0 {
					fmt.Fprintf(w, "robustness: no re-rendered audio for variant %s: %s\n", v.Name, why)
					weights = nil
				}
			}
			o.Robust.Device, o.Robust.Log = torch.Device(device), w
			o.Robust.Progress = func(desc string, total int) model.ProgressBar {
				return progress.New(int64(total), desc)
			}
			var load func() (*avmnist.Inputs, error)
			switch {
			case pack != "":
				load = func() (*avmnist.Inputs, error) { return avmnist.ReadPack(pack) }
			case raw != "":
				load = func() (*avmnist.Inputs, error) { return avmnist.LoadRaw(raw) }
			default:
				if _, err := os.Stat(sources.RawDir(dataDir(cmd))); err == nil {
					d := dataDir(cmd)
					load = func() (*avmnist.Inputs, error) { return avmnist.LoadRaw(d) }
				}
			}
			for _, ds := range []string{"avmnist", "mimic"} {
				if _, err := os.Stat(filepath.Join(o.Data, ds, model.SplitFiles[2])); err != nil {
					continue
				}
				l := load
				if ds == "avmnist" && l == nil && len(weights) > 0 {
					fmt.Fprintf(w, "robustness: no raw inputs in %s (and no --pack): the ESC-50 noise-weight conditions are left out\n", sources.RawDir(dataDir(cmd)))
				}
				done, err := pipeline.RobustnessInputs(o.Data, ds, l, weights, o.Robust.Limit, w)
				if err != nil {
					return err
				}
				if ds == "avmnist" {
					o.Robust.NoiseWeights = done
				}
			}
			res, err := pipeline.Robustness(o)
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "robustness: %d runs -> %s beside each record, in %s\n", len(res), robustness.FileName, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&o.Runs, "runs", "runs", "folder of run records")
	f.StringSliceVar(&o.Configs, "config", nil, "configurations to evaluate (default: every multimodal and uni-modal one with records)")
	f.Int64SliceVar(&o.Seeds, "seeds", nil, "seeds to evaluate (default: every finished one)")
	f.StringVar(&variant, "avmnist-variant", "", "the runs of an AV-MNIST variant (data/variants/<name>, runs/variants/<name>)")
	f.IntVar(&o.Robust.Limit, "limit", 0, "evaluate on the first N test rows (0: every row the run was tested on)")
	f.IntVar(&o.Robust.Batch, "batch", 500, "test rows per forward pass")
	f.Uint64Var(&o.Robust.Seed, "seed", 0, "seed of the noise and of the dropped time steps")
	f.StringVar(&weightList, "noise-weights", "0.02,0.05,0.1,0.2,0.5", "ESC-50 mixing weights to re-render AV-MNIST's test audio at, comma-separated (\"\": none)")
	f.StringVar(&raw, "raw-data", "", "a data folder whose raw/ holds the AV-MNIST sources (default: --data's)")
	f.StringVar(&pack, "pack", "", "an inputs pack (m2mix pack) instead of the raw sources")
	f.StringVar(&device, "device", "cpu", "cpu, cuda or cuda:N")
	f.IntVar(&o.Robust.Threads, "threads", 0, "libtorch threads (0: all cores)")
	c.MarkFlagsMutuallyExclusive("raw-data", "pack")
	return c
}
