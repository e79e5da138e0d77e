// Command m2mix reproduces the M2-Mixer paper from raw data to its tables.
//
// This file only wires commands together; each stage's logic lives in its
// package (prep, features, model, pipeline, reports).
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "m2mix:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "m2mix",
		Short:         "Reproduce M2-Mixer (IEEE BigData 2023) from raw data to the paper's tables",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().String("data", "data", "data folder shared by every stage")
	root.AddCommand(
		newEnvCmd(),
		newFetchCmd(),
		newPrepCmd(),
		newPackCmd(),
		newTrainCmd(),
		newReproduceCmd(),
		newConfigsCmd(),
		newReportCmd(),
		newAuditCmd(),
	)
	return root
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
