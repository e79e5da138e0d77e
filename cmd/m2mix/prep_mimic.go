package main

import (
	"fmt"

	"github.com/spf13/cobra"

	featmimic "github.com/m2mix/m2mix/features/mimic"
	"github.com/m2mix/m2mix/pipeline"
	"github.com/m2mix/m2mix/prep/mimic"
)

// newPrepMIMICCmd is `m2mix prep mimic --pk PATH | --raw DIR`: read the
// arrays (prep/mimic or prep/mimicraw) and prepare the datasets
// (features/mimic) under <data>/mimic.
func newPrepMIMICCmd() *cobra.Command {
	var pk, raw string
	c := &cobra.Command{
		Use:   "mimic (--pk PATH | --raw DIR)",
		Short: "Prepare MIMIC-III from MultiBench's im.pk or the raw tables as Arrow datasets",
		Long: "Reads MIMIC-III from MultiBench's im.pk (--pk) or builds the same arrays from the\n" +
			"MIMIC-III v1.4 tables (--raw), then writes <data>/mimic/{train,validation,test}.arrow\n" +
			"and manifest.json: NaN/Inf set to 0, z-scored over the whole dataset, 6-class labels,\n" +
			"and CPython's random.seed(10) split. With --raw the four arrays are also written as\n" +
			".npy files under <data>/mimic/npy.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := pipeline.PrepareMIMIC(dataDir(cmd), pk, raw, cmd.OutOrStdout())
			if err != nil {
				return err
			}
			printMIMICReport(cmd, rep)
			return nil
		},
	}
	c.Flags().StringVar(&pk, "pk", "", "MultiBench's im.pk")
	c.Flags().StringVar(&raw, "raw", "", "folder of the MIMIC-III v1.4 tables (CSV or CSV.gz)")
	return c
}

func printMIMICReport(cmd *cobra.Command, rep *featmimic.Report) {
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "MIMIC-III: %d samples from %s", rep.N, rep.SourceKind)
	if rep.SourceSHA256 != "" {
		fmt.Fprintf(w, " (sha256 %s)", rep.SourceSHA256)
	}
	fmt.Fprintln(w)
	for _, k := range []string{mimic.TimeSeriesKey, mimic.StaticKey, mimic.LabelsKey} {
		c := rep.NonFinite[k]
		action := "set to 0"
		if k == mimic.LabelsKey {
			action = "left as is (NaN counts as 0)"
		}
		fmt.Fprintf(w, "  %-17s NaN %d, +Inf %d, -Inf %d: %s\n", k, c.NaN, c.PosInf, c.NegInf, action)
	}
	if len(rep.ZeroStd) > 0 {
		fmt.Fprintf(w, "  constant features (std 0, left at 0): %v\n", rep.ZeroStd)
	}
	fmt.Fprintf(w, "  split (seed %d): train %d, validation %d, test %d\n", featmimic.SplitSeed, rep.Train, rep.Validation, rep.Test)
	fmt.Fprintf(w, "  wrote %s, %s, %s and %s in %s\n", featmimic.TrainFile, featmimic.ValidationFile, featmimic.TestFile, featmimic.ManifestFile, rep.Dir)
}
