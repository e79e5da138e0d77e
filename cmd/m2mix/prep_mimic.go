package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/m2mix/m2mix/artifact"
	featmimic "github.com/m2mix/m2mix/features/mimic"
	"github.com/m2mix/m2mix/prep/mimic"
	"github.com/m2mix/m2mix/prep/mimicraw"
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
			if (pk == "") == (raw == "") {
				return errors.New("prep mimic: give exactly one of --pk PATH or --raw DIR")
			}
			out := filepath.Join(dataDir(cmd), featmimic.Dir)
			var (
				arrays *mimic.Arrays
				src    featmimic.Source
				err    error
			)
			if pk != "" {
				src.Kind = "pk"
				if src.SHA256, err = artifact.SHA256File(pk); err != nil {
					return fmt.Errorf("prep mimic: %w", err)
				}
				if arrays, err = mimic.ReadPickle(pk); err != nil {
					return fmt.Errorf("prep mimic: %w", err)
				}
			} else {
				src.Kind = "raw"
				if arrays, src.Meta, err = mimicraw.Build(raw, mimicraw.Options{}); err != nil {
					return fmt.Errorf("prep mimic: %w", err)
				}
				src.SHA256 = src.Meta["sha256"] // set if the raw build fingerprints its inputs
				npyDir := filepath.Join(out, "npy")
				if err := mimicraw.WriteNPY(arrays, npyDir); err != nil {
					return fmt.Errorf("prep mimic: %w", err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "wrote the raw arrays as .npy in %s\n", npyDir)
			}
			rep, err := featmimic.Prepare(arrays, out, src)
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
