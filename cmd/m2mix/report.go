package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/m2mix/m2mix/reports"
)

func newReportCmd() *cobra.Command {
	var runs, out, paper, claims string
	var noPlots bool
	c := &cobra.Command{
		Use:   "report",
		Short: "Write Tables I-IV, the paper's claims checked, and plots from the run records",
		Long: `report reads every run record <runs>/<config>/<seed>/record.json (and the
robustness.json beside it, from m2mix robustness) and writes <out>/README.md:
Tables I-III with the paper's rows, a header naming profile, devices, seeds,
libtorch and dataset checksums, the Claims section (each claim of
manifests/claims.json with Welch and bootstrap intervals over seeds and a
verdict), Table IV (accuracy with a modality missing) with MultiBench's
robustness figures, and <out>/plots/*.png. It needs neither the datasets nor
libtorch; the same records give the same Markdown.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			start := time.Now()
			sum, err := reports.Generate(runs, out, reports.Options{PaperResults: paper, Claims: claims, NoPlots: noPlots})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "report: %d complete and %d incomplete run records -> %s (%d files) in %s\n",
				sum.Complete, sum.Incomplete, filepath.Join(out, reports.IndexFile), len(sum.Files), time.Since(start).Round(time.Millisecond))
			if len(sum.NotRun) > 0 {
				fmt.Fprintf(w, "report: not run: %s\n", strings.Join(sum.NotRun, ", "))
			}
			return nil
		},
	}
	c.Flags().StringVar(&runs, "runs", "runs", "folder of run records (<config>/<seed>/record.json)")
	c.Flags().StringVar(&out, "out", "results", "folder to write the tables and plots into")
	c.Flags().StringVar(&paper, "paper", reports.DefaultPaperResults, "the paper's numbers")
	c.Flags().StringVar(&claims, "claims", reports.DefaultClaims, "the paper's claims as comparisons")
	c.Flags().BoolVar(&noPlots, "no-plots", false, "write the tables only")
	return c
}
