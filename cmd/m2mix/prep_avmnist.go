package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/features/avmnist"
	"github.com/m2mix/m2mix/progress"
)

func newPrepAVMNISTCmd() *cobra.Command {
	var from, npyDir, pack, variant string
	var seed uint64
	var limit int
	c := &cobra.Command{
		Use:   "avmnist",
		Short: "Build AV-MNIST (generate from <data>/raw, or import the public .npy files) as Arrow datasets",
		Long: `avmnist writes <data>/avmnist/{train,validation,test}.arrow, manifest.json and samples.png.

--from raw (default) generates the dataset from the sources fetched by
"m2mix fetch" (MNIST, FSDD, ESC-50) following the recipe; --from pack does the
same from an inputs pack (--pack, made by "m2mix pack"), with the same bytes
as a result; --from npy imports MultiBench's public AV-MNIST folder given by --npy.

--variant NAME generates a variant of the recipe from manifests/avmnist-variants/
(public-like: estimated to match the public files) into
<data>/variants/NAME/avmnist; the default, clean, is the recipe as written.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.ErrOrStderr()
			start := time.Now()
			var o *avmnist.Output
			switch from {
			case "raw", "pack":
				total := int64(70000)
				if limit > 0 {
					total = int64(2 * limit)
				}
				v, err := avmnist.LoadVariant(variant)
				if err != nil {
					return err
				}
				bar := progress.New(total, "avmnist")
				p := avmnist.Params{Seed: seed, Limit: limit, Progress: bar, Variant: v}
				var res *avmnist.Result
				var out2 *avmnist.Output
				if from == "raw" {
					res, out2, err = avmnist.PrepRaw(dataDir(cmd), p)
				} else if pack == "" {
					err = fmt.Errorf("--from pack needs --pack FILE (see m2mix pack)")
				} else {
					res, out2, err = avmnist.PrepPack(dataDir(cmd), pack, p)
				}
				if err != nil {
					return err
				}
				bar.Finish()
				o = out2
				for _, p := range []struct {
					name string
					info avmnist.PCAInfo
				}{{"train", res.PCATrain}, {"test", res.PCATest}} {
					fmt.Fprintf(out, "PCA %s (%d images): k = %d, variance kept %.4f\n", p.name, p.info.Rows, p.info.K, p.info.Kept)
				}
				if v.Pairing == "pool-race" {
					fmt.Fprintf(out, "pool race: %.1f %% of audio rows hold their own sample's audio\n", 100*res.AudioInPlace)
				}
			case "npy":
				if variant != "" && variant != avmnist.Clean {
					return fmt.Errorf("--variant changes generation; --from npy imports the public files as they are")
				}
				if npyDir == "" {
					return fmt.Errorf("--from npy needs --npy DIR (MultiBench's avmnist folder)")
				}
				_, _, out2, err := avmnist.PrepNPY(dataDir(cmd), npyDir)
				if err != nil {
					return err
				}
				o = out2
			default:
				return fmt.Errorf("--from must be raw, pack or npy, not %q", from)
			}
			for _, f := range []string{avmnist.TrainFile, avmnist.ValidationFile, avmnist.TestFile, avmnist.SheetFile} {
				fmt.Fprintf(out, "%s  %s (%d rows)\n", o.SHA256[f], f, o.Rows[f])
			}
			fmt.Fprintf(out, "wrote %s in %s\n", o.Dir, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	c.Flags().StringVar(&from, "from", "raw", "raw (generate from fetched sources), pack (from an inputs pack) or npy (import the public files)")
	c.Flags().StringVar(&pack, "pack", "", "inputs pack for --from pack")
	c.Flags().StringVar(&npyDir, "npy", "", "MultiBench avmnist folder for --from npy")
	c.Flags().Uint64Var(&seed, "seed", 42, "seed of the noise draw")
	c.Flags().IntVar(&limit, "limit", 0, "use only the first N MNIST rows of each split (0: all; for previews)")
	c.Flags().StringVar(&variant, "variant", avmnist.Clean, "clean (the recipe) or a variant in manifests/avmnist-variants (e.g. public-like)")
	return c
}

func newPackCmd() *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:   "pack --out FILE",
		Short: "Write AV-MNIST's decoded inputs (MNIST, 4 speakers, resampled noise) as one small file",
		Long: `pack reads the sources "m2mix fetch" put in <data>/raw, verifies them, and
writes everything AV-MNIST generation reads into one zstd-compressed file:
MNIST, the four FSDD speakers as 16-bit PCM, and the ESC-50 noise already
resampled to 8 kHz, with the raw files' checksums. "m2mix prep avmnist --from
pack" and "m2mix reproduce --avmnist-pack" generate the same bytes from it as
from the raw files. It is what travels to a machine with neither the internet
nor room for the raw files (scripts/gpu-paper.sh).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in, err := avmnist.LoadRaw(dataDir(cmd))
			if err != nil {
				return err
			}
			if err := avmnist.WritePack(out, in); err != nil {
				return err
			}
			sum, err := artifact.SHA256File(out)
			if err != nil {
				return err
			}
			st, err := os.Stat(out)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s  %s (%.1f MB)\n", sum, out, float64(st.Size())/1e6)
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "avmnist-inputs.pack", "the pack file to write")
	return c
}
