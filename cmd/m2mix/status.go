package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/m2mix/m2mix/pipeline"
	"github.com/m2mix/m2mix/slurm"
)

func newStatusCmd() *cobra.Command {
	var (
		pf    pipelineFlags
		sweep string
	)
	c := &cobra.Command{
		Use:   "status",
		Short: "Show which stages are done, queued, running or failed (with their Slurm job ids)",
		Long: `status lists the stages reproduce (or, with --sweep, a sweep) would run, with
the same flags: done (up to date in the lock file), queued or running (its
Slurm job, from squeue), failed (its job ended without making it: sacct, or
scontrol where the cluster keeps no accounting), waiting (its inputs are not
made yet) or to do. It runs nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := pf.options(cmd)
			if err != nil {
				return err
			}
			var states []pipeline.StageState
			if sweep != "" {
				s, err := pipeline.LoadSweep(sweep)
				if err != nil {
					return err
				}
				states, err = pipeline.SweepStatus(context.Background(), s, o, slurm.Client{})
				if err != nil {
					return err
				}
			} else if states, err = pipeline.ReproduceStatus(context.Background(), o, slurm.Client{}); err != nil {
				return err
			}
			pipeline.PrintStatus(cmd.OutOrStdout(), states)
			return nil
		},
	}
	pf.register(c.Flags(), true)
	c.Flags().StringVar(&sweep, "sweep", "", "a sweep file (or a name in manifests/sweeps) instead of the profile's pipeline")
	return c
}
