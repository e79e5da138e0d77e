package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/m2mix/m2mix/model"
	"github.com/m2mix/m2mix/torch"
)

func newTrainCmd() *cobra.Command {
	var (
		config string
		seed   int64
		seeds  []int64
		device string
		o      model.Options
	)
	c := &cobra.Command{
		Use:   "train --config NAME --seed N",
		Short: "Train one configuration with one seed (resumes an interrupted run)",
		Long: `train runs one (configuration, seed) to the end: Adam, the plateau scheduler,
early stopping, and a test on the lowest-validation-loss weights. The record
and checkpoints go to <runs>/<config>/<seed>/. Run the same command again
after an interruption and it continues from the last completed epoch.
--seeds 42,43,... trains several seeds at once as one stacked model; each
leaves the record it would leave alone (a seed batch restarts if interrupted).
On CUDA a seed batch records its training step as a CUDA graph after a few
warm-up steps and replays it (--no-graphs: plain steps).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := model.LoadConfig(config)
			if err != nil {
				return err
			}
			o.Seed, o.Device, o.DataDir, o.Log = seed, torch.Device(device), dataDir(cmd), cmd.OutOrStdout()
			if len(seeds) > 0 {
				recs, err := model.TrainSeeds(cfg, seeds, o)
				if err != nil {
					return err
				}
				for _, r := range recs {
					fmt.Fprintf(cmd.OutOrStdout(), "record: %s\n", model.RunDir(o.RunsDir, cfg.Name, r.Seed))
				}
				return nil
			}
			rec, err := model.Train(cfg, o)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "record: %s\n", model.RunDir(o.RunsDir, cfg.Name, rec.Seed))
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&config, "config", "", "configuration name (see m2mix configs)")
	f.Int64Var(&seed, "seed", 42, "seed for initialisation, dropout and shuffling")
	f.Int64SliceVar(&seeds, "seeds", nil, "train these seeds in lockstep as one stacked model (instead of --seed)")
	f.StringVar(&device, "device", "cpu", "cpu, cuda or cuda:N")
	f.StringVar(&o.RunsDir, "runs", "runs", "folder of run records")
	f.IntVar(&o.MaxEpochs, "max-epochs", 0, "stop after this many epochs (0: the configuration's limit)")
	f.IntVar(&o.LimitTrain, "limit-train", 0, "train on the first N rows only (0: all)")
	f.IntVar(&o.LimitEval, "limit-eval", 0, "validate and test on the first N rows only (0: all)")
	f.BoolVar(&o.Shuffle, "shuffle", false, "shuffle training rows each epoch (the reference does not)")
	f.IntVar(&o.Threads, "threads", 0, "libtorch threads (0: all cores)")
	f.BoolVar(&o.NoGraphs, "no-graphs", false, "seed batches on CUDA: plain steps instead of a replayed CUDA graph")
	c.MarkFlagRequired("config")
	return c
}

func newConfigsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "configs",
		Short: "List every configuration with its dataset and trainable parameter count",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			names, err := model.ConfigNames()
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(w, "config\tpaper row\tdataset\ttrainable params\t")
			for _, n := range names {
				cfg, err := model.LoadConfig(n)
				if err != nil {
					return err
				}
				count, err := model.CountParams(cfg)
				if err != nil {
					return err
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%d\t\n", n, cfg.Model, cfg.Dataset, count)
			}
			return w.Flush()
		},
	}
}
