package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/m2mix/m2mix/features/avmnist"
	"github.com/m2mix/m2mix/progress"
)

func newPrepAVMNISTCmd() *cobra.Command {
	var from, npyDir string
	var seed uint64
	var limit int
	c := &cobra.Command{
		Use:   "avmnist",
		Short: "Build AV-MNIST (generate from <data>/raw, or import the public .npy files) as Arrow datasets",
		Long: `avmnist writes <data>/avmnist/{train,validation,test}.arrow, manifest.json and samples.png.

--from raw (default) generates the dataset from the sources fetched by
"m2mix fetch" (MNIST, FSDD, ESC-50) following the recipe; --from npy imports
MultiBench's public AV-MNIST folder given by --npy.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.ErrOrStderr()
			start := time.Now()
			var o *avmnist.Output
			switch from {
			case "raw":
				total := int64(70000)
				if limit > 0 {
					total = int64(2 * limit)
				}
				bar := progress.New(total, "avmnist")
				res, out2, err := avmnist.PrepRaw(dataDir(cmd), avmnist.Params{Seed: seed, Limit: limit, Progress: bar})
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
			case "npy":
				if npyDir == "" {
					return fmt.Errorf("--from npy needs --npy DIR (MultiBench's avmnist folder)")
				}
				_, _, out2, err := avmnist.PrepNPY(dataDir(cmd), npyDir)
				if err != nil {
					return err
				}
				o = out2
			default:
				return fmt.Errorf("--from must be raw or npy, not %q", from)
			}
			for _, f := range []string{avmnist.TrainFile, avmnist.ValidationFile, avmnist.TestFile, avmnist.SheetFile} {
				fmt.Fprintf(out, "%s  %s (%d rows)\n", o.SHA256[f], f, o.Rows[f])
			}
			fmt.Fprintf(out, "wrote %s in %s\n", o.Dir, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	c.Flags().StringVar(&from, "from", "raw", "raw (generate from fetched sources) or npy (import the public files)")
	c.Flags().StringVar(&npyDir, "npy", "", "MultiBench avmnist folder for --from npy")
	c.Flags().Uint64Var(&seed, "seed", 42, "seed of the noise draw")
	c.Flags().IntVar(&limit, "limit", 0, "use only the first N MNIST rows of each split (0: all; for previews)")
	return c
}
