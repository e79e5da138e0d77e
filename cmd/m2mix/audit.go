package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/audit"
	"github.com/m2mix/m2mix/features/avmnist"
)

func newAuditCmd() *cobra.Command {
	c := &cobra.Command{Use: "audit", Short: "Measure what a dataset is made of"}
	c.AddCommand(newAuditAVMNISTCmd())
	return c
}

func newAuditAVMNISTCmd() *cobra.Command {
	var npyDir, variant, out string
	c := &cobra.Command{
		Use:   "avmnist [--npy DIR | --variant NAME]",
		Short: "Audit AV-MNIST: image rank (PCA components kept), value ranges, audio/label agreement",
		Long: `avmnist measures an AV-MNIST dataset from its files: per split, the numerical
rank of the image matrix (the PCA components its images keep) and, when the
MNIST sources are in <data>/raw, the share of MNIST's variance that keeps;
value ranges; and groups of byte-identical spectrograms with the share of
their rows carrying the group's majority label, from which it estimates the
share of rows whose audio is their own.

--npy DIR audits MultiBench's public files (image/, audio/, *_labels.npy);
without it, our datasets in <data>/avmnist (--variant NAME: those of a
variant). Writes audit.md and audit.json to --out and prints the table.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data := dataDir(cmd)
			mnistTrain, mnistTest, mnistErr := avmnist.LoadMNIST(data)
			var splits []audit.Split
			var source string
			if npyDir != "" {
				train, test, _, err := avmnist.ImportNPY(npyDir)
				if err != nil {
					return err
				}
				source = "public files in " + npyDir
				for _, p := range []struct {
					name string
					s    *avmnist.Split
					mn   avmnist.MNIST
				}{{"train", train, mnistTrain}, {"test", test, mnistTest}} {
					a := audit.Split{Name: p.name, Label: p.s.Label, Image: p.s.Image, Audio: p.s.Audio}
					if mnistErr == nil && len(p.mn.Labels) == len(p.s.Label) {
						a.MNIST = p.mn.Pixels // the public files keep MNIST's order
					}
					splits = append(splits, a)
				}
			} else {
				v, err := avmnist.LoadVariant(variant)
				if err != nil {
					return err
				}
				dir := avmnist.Dir(avmnist.Root(data, v))
				source = "our datasets in " + dir
				for _, f := range []string{avmnist.TrainFile, avmnist.ValidationFile, avmnist.TestFile} {
					mn := mnistTrain
					if f == avmnist.TestFile {
						mn = mnistTest
					}
					var pix []uint8
					if mnistErr == nil {
						pix = mn.Pixels
					}
					a, err := audit.ReadSplit(filepath.Join(dir, f), pix)
					if err != nil {
						return err
					}
					splits = append(splits, *a)
				}
			}
			rep, err := audit.Audit(source, splits)
			if err != nil {
				return err
			}
			md := rep.Markdown()
			if mnistErr != nil {
				md += fmt.Sprintf("\nMNIST variance shares not computed: %v\n", mnistErr)
			}
			js, err := json.MarshalIndent(rep, "", "  ")
			if err != nil {
				return err
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			if err := artifact.WriteFile(filepath.Join(out, "audit.md"), []byte(md)); err != nil {
				return err
			}
			if err := artifact.WriteFile(filepath.Join(out, "audit.json"), append(js, '\n')); err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), md)
			fmt.Fprintf(cmd.OutOrStdout(), "\nwrote %s and %s\n", filepath.Join(out, "audit.md"), filepath.Join(out, "audit.json"))
			return nil
		},
	}
	c.Flags().StringVar(&npyDir, "npy", "", "MultiBench's public AV-MNIST folder (default: our datasets)")
	c.Flags().StringVar(&variant, "variant", avmnist.Clean, "which of our AV-MNIST variants to audit")
	c.Flags().StringVar(&out, "out", filepath.Join("results", "audit"), "folder for audit.md and audit.json")
	return c
}
