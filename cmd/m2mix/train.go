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
		config  string
		seed    int64
		seeds   []int64
		shuffle bool
		device  string
		o       model.Options
	)
	c := &cobra.Command{
		Use:   "train --config NAME (--seed N | --seeds N,N,...)",
		Short: "Train one configuration with one seed or several in lockstep (resumes an interrupted run)",
		Long: `train runs a configuration to the end for one seed (--seed) or several
(--seeds 42,43,...): Adam, the plateau scheduler, early stopping, and a test
on the lowest-validation-loss weights. Several seeds train as one stacked
model, each leaving the record and checkpoints it would leave alone, in
<runs>/<config>/<seed>/. Run the same command again after an interruption
(even kill -9) and every seed continues from its last completed epoch.
Training rows are shuffled each epoch when the configuration says so
(MIMIC-III, as the reference's loader); --shuffle=true|false overrides it.
On CUDA the training and evaluation steps are recorded as CUDA graphs after a
few warm-up steps and replayed (--no-graphs: plain steps).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := model.LoadConfig(config)
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("seeds") {
				seeds = []int64{seed}
			}
			if cmd.Flags().Changed("shuffle") {
				o.Shuffle = &shuffle
			}
			o.Device, o.DataDir, o.Log = torch.Device(device), dataDir(cmd), cmd.OutOrStdout()
			recs, err := model.Train(cfg, seeds, o)
			for _, r := range recs {
				if r.Final != nil {
					fmt.Fprintf(cmd.OutOrStdout(), "record: %s\n", model.RunDir(o.RunsDir, cfg.Name, r.Seed))
				}
			}
			return err
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
	f.BoolVar(&shuffle, "shuffle", false, "override the configuration's shuffling of the training rows each epoch")
	f.IntVar(&o.Threads, "threads", 0, "libtorch threads (0: all cores)")
	f.BoolVar(&o.NoGraphs, "no-graphs", false, "on CUDA: plain steps instead of replayed CUDA graphs")
	f.IntVar(&o.GradBlendRound, "gb-round-epochs", 0, "Gradient Blending: epochs per round (0: the configuration's)")
	f.IntVar(&o.GradBlendFinetune, "gb-finetune-epochs", 0, "Gradient Blending: head fine-tune epochs per round (0: the configuration's)")
	c.MarkFlagRequired("config")
	c.MarkFlagsMutuallyExclusive("seed", "seeds")
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
