package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/m2mix/m2mix/pipeline"
	"github.com/m2mix/m2mix/slurm"
)

func newSweepCmd() *cobra.Command {
	var (
		pf pipelineFlags
		sf slurmFlags
	)
	c := &cobra.Command{
		Use:   "sweep SPEC",
		Short: "Train a base configuration over a grid of parameter values (a sweep file), here or on Slurm",
		Long: `sweep reads SPEC (a file, or a name in manifests/sweeps, e.g.
lc-schedule-avmnist) and trains its base configuration at every point of its
grid for every seed: each point is a derived configuration named
<base>+<field>=<value>+..., with its runs in <runs>/sweeps/<name>/ and its
own stage keys in the lock file, so a sweep is cached and resumed as
reproduce is. It ends with the sweep's page in <results>/sweeps/<name>/ (mean
± std per point and a heat map for a two-parameter grid); m2mix report puts
the same table on the main page. --executor slurm submits it as job arrays.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := pipeline.LoadSweep(args[0])
			if err != nil {
				return err
			}
			o, err := pf.options(cmd)
			if err != nil {
				return err
			}
			if sf.dryRun {
				states, err := pipeline.SweepStatus(context.Background(), s, o, slurm.Client{})
				if err != nil {
					return err
				}
				pipeline.PrintStatus(cmd.OutOrStdout(), states)
				return nil
			}
			if err := sf.apply(cmd, &o, s.Slurm, []string{"sweep", args[0]}); err != nil {
				return err
			}
			return pipeline.RunSweep(context.Background(), s, o)
		},
	}
	pf.register(c.Flags(), false)
	sf.register(c.Flags())
	return c
}
