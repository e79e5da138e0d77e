// Command m2mix reproduces the M2-Mixer paper from raw data to its tables.
//
// This file only wires commands together; each stage's logic lives in its
// package (prep, features, model, pipeline, reports).
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/m2mix/m2mix/torch"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "m2mix:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:               "m2mix",
		Short:             "Reproduce M2-Mixer (IEEE BigData 2023) from raw data to the paper's tables",
		SilenceUsage:      true,
		SilenceErrors:     true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return checkFlags(cmd) },
	}
	root.PersistentFlags().String("data", "data", "data folder shared by every stage")
	root.AddCommand(
		newEnvCmd(),
		newFetchCmd(),
		newPrepCmd(),
		newPackCmd(),
		newTrainCmd(),
		newReproduceCmd(),
		newSweepCmd(),
		newStatusCmd(),
		newConfigsCmd(),
		newReportCmd(),
		newAuditCmd(),
		newExportCmd(),
		newExportNPYCmd(),
		newRobustnessCmd(),
	)
	return root
}

// checkFlags validates every flag the user set before a command does any
// work, naming the flag: counts and limits (every integer flag but the
// seeds) are 0 or more, and --device is a device name.
func checkFlags(cmd *cobra.Command) error {
	var err error
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if err != nil {
			return
		}
		switch {
		case f.Name == "device":
			if _, e := torch.ParseDevice(f.Value.String()); e != nil {
				err = fmt.Errorf("--device: %w", e)
			}
		case f.Value.Type() == "int" || f.Value.Type() == "int64":
			if !strings.Contains(f.Name, "seed") && strings.HasPrefix(f.Value.String(), "-") {
				err = fmt.Errorf("--%s: must be 0 or more, not %s", f.Name, f.Value.String())
			}
		}
	})
	return err
}

// dataDir returns the --data flag's value.
func dataDir(cmd *cobra.Command) string {
	d, _ := cmd.Flags().GetString("data")
	return d
}

func newPrepCmd() *cobra.Command {
	c := &cobra.Command{Use: "prep", Short: "Prepare a dataset (AV-MNIST or MIMIC-III) as Arrow files"}
	c.AddCommand(newPrepAVMNISTCmd(), newPrepMIMICCmd())
	return c
}
