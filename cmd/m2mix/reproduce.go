package main

import (
	"context"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/m2mix/m2mix/features/avmnist"
	"github.com/m2mix/m2mix/pipeline"
	"github.com/m2mix/m2mix/torch"
)

func newReproduceCmd() *cobra.Command {
	var (
		profile, device, mirror, variant string
		o                                pipeline.ReproduceOptions
	)
	c := &cobra.Command{
		Use:   "reproduce",
		Short: "Run the whole pipeline: fetch, prepare, train every configuration and seed, report",
		Long: `reproduce runs every stage in order. Each stage is keyed by the sha256 of its
inputs, its parameters and its code version, recorded in the lock file
(m2mix.lock); an up-to-date stage is skipped, so running it again does no
work, and an interrupted run continues where it stopped. --force STAGE redoes
one stage (e.g. --force report, --force train/m2mixer_m/42).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := pipeline.LoadProfile(filepath.Join("manifests", "profiles", profile+".json"))
			if err != nil {
				return err
			}
			if mirror == "" {
				if st, err := os.Stat(defaultMirror); err == nil && st.IsDir() {
					mirror = defaultMirror
				}
			}
			if o.AVVariant, err = avmnist.LoadVariant(variant); err != nil {
				return err
			}
			o.Profile, o.Data, o.Mirror, o.MNISTDir = p, dataDir(cmd), mirror, findGoMNIST()
			o.Device, o.Log = torch.Device(device), cmd.OutOrStdout()
			return pipeline.Reproduce(context.Background(), o)
		},
	}
	f := c.Flags()
	f.StringVar(&profile, "profile", "quick", "quick (CPU, minutes) or paper (10 seeds, full training; meant for a GPU)")
	f.StringVar(&device, "device", "cpu", "cpu, cuda or cuda:N")
	f.StringVar(&mirror, "mirror", "", "local mirror of the raw sources (default "+defaultMirror+" when it exists)")
	f.StringVar(&o.PK, "pk", "", "MultiBench's im.pk for MIMIC-III (skipped when absent)")
	f.StringVar(&o.RawMIMIC, "mimic-raw", "", "folder of the raw MIMIC-III tables, instead of --pk")
	f.StringVar(&o.Runs, "runs", "runs", "folder of run records")
	f.StringVar(&o.Results, "results", "results", "folder for tables and plots")
	f.Uint64Var(&o.NoiseSeed, "avmnist-seed", 42, "seed of AV-MNIST's noise draw")
	f.StringVar(&o.AVPack, "avmnist-pack", "", "generate AV-MNIST from this inputs pack (m2mix pack) instead of fetching the raw sources")
	f.StringVar(&variant, "avmnist-variant", avmnist.Clean, "AV-MNIST as the recipe says (clean) or a variant in manifests/avmnist-variants (public-like); each variant keeps its own datasets, runs and lock entries")
	f.IntVar(&o.AVLimit, "avmnist-limit", 0, "generate AV-MNIST from the first N MNIST rows of each split only (previews)")
	f.IntVar(&o.Threads, "threads", 0, "libtorch threads (0: all cores)")
	f.BoolVar(&o.NoGraphs, "no-graphs", false, "seed batches on CUDA: plain steps instead of a replayed CUDA graph")
	f.IntVar(&o.Jobs, "jobs", 0, "stages to run at once (0: the profile's gpu_jobs on a GPU, 1 on the CPU)")
	f.StringSliceVar(&o.Force, "force", nil, "stages to redo even when up to date")
	f.StringVar(&o.LockPath, "lock", pipeline.DefaultLockPath, "lock file")
	return c
}
