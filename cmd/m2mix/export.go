package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/m2mix/m2mix/export"
)

func newExportCmd() *cobra.Command {
	var o export.Options
	c := &cobra.Command{
		Use:   "export",
		Short: "Write a run's best weights as a PyTorch state dict named as the reference implementation",
		Long: `export reads <run>/best.safetensors (checked against its recorded sha256) and
writes its parameters under the state_dict names of the reference
implementation's class (bezirganyan/m2-mixer: AVMnistMixerMultiLoss, AVMnistMixer,
AVMnistImageMixer, AVMnistAudioMixer, MimicMixerMultiLoss), so that
model.load_state_dict(torch.load(FILE), strict=True) works on that class
(--format torch), or safetensors.torch.load_file(FILE) gives the same dict
(--format safetensors). Probes export as the uni-modal classes (an encoder
and a Linear head). A configuration without a reference class is refused
unless --names m2mix asks for our own names. It needs no libtorch.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Run == "" || o.Out == "" {
				return fmt.Errorf("give --run runs/<config>/<seed> and --out FILE")
			}
			r, err := export.Checkpoint(o)
			if err != nil {
				return err
			}
			as := "m2mix's own names"
			if r.Class != "" {
				as = fmt.Sprintf("%s's names (%s)", r.Class, r.Module)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "export: %s seed %d: %d tensors, %d parameters, as %s -> %s (%s, sha256 %s)\n",
				r.Config, r.Seed, r.Tensors, r.Params, as, o.Out, r.Format, r.SHA256)
			return nil
		},
	}
	c.Flags().StringVar(&o.Run, "run", "", "run folder, runs/<config>/<seed>")
	c.Flags().StringVar(&o.Out, "out", "", "file to write (.pt or .safetensors)")
	c.Flags().StringVar(&o.Format, "format", "", "torch or safetensors (default: from --out's extension)")
	c.Flags().StringVar(&o.Names, "names", export.NamesReference, "reference (the reference implementation's state_dict names) or m2mix (ours, for any configuration)")
	return c
}

func newExportNPYCmd() *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:   "export-npy avmnist|mimic",
		Short: "Write a prepared dataset as .npy arrays (MultiBench's AV-MNIST layout), for PyTorch without pyarrow",
		Long: `export-npy reads <data>/<dataset>/{train,validation,test}.arrow (each checked
against the folder's manifest) and writes the same arrays as .npy files, then
<out>/manifest.json with every file's sha256, last. AV-MNIST follows MultiBench's
layout (image/{train,test}_data.npy, audio/{train,test}_data.npy,
{train,test}_labels.npy): train_data holds our train rows then our validation
rows, and the manifest's validation_rows says how many of the last rows are
validation. MIMIC-III: {train,validation,test}_{static,timeseries,labels}.npy.
examples/torch_dataset.py reads either.`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"avmnist", "mimic"},
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := out
			if dir == "" {
				dir = filepath.Join(dataDir(cmd), "npy", args[0])
			}
			r, err := export.NPY(export.NPYOptions{Data: dataDir(cmd), Dataset: args[0], Out: dir})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "export-npy: %s: train %d, validation %d, test %d rows -> %s (%d files and %s)\n",
				args[0], r.Rows["train"], r.Rows["validation"], r.Rows["test"], dir, len(r.Files), export.NPYManifest)
			return nil
		},
	}
	c.Flags().StringVar(&out, "out", "", "folder to write (default <data>/npy/<dataset>)")
	return c
}
