// Package export hands our results to PyTorch users: a run's best weights
// as a state dict named as the reference implementation (bezirganyan/m2-mixer)
// names its modules, written as torch.save's file or as safetensors
// (Checkpoint), and our Arrow datasets as .npy arrays in MultiBench's
// AV-MNIST layout, for examples/torch_dataset.py where pyarrow is missing
// (NPY). It reads checkpoints and datasets as bytes and needs no libtorch.
package export

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/runrecord"
	"github.com/m2mix/m2mix/torch"
)

// Output formats.
const (
	FormatTorch       = "torch"       // torch.save's zip file: torch.load(FILE) gives the state dict
	FormatSafetensors = "safetensors" // safetensors.torch.load_file(FILE) gives it
)

// Naming schemes.
const (
	NamesReference = "reference" // the reference implementation's state_dict names
	NamesM2mix     = "m2mix"     // our checkpoint's own names, for configurations the reference lacks
)

// bestFile is the run folder's lowest-validation-loss checkpoint (model.BestFile).
const bestFile = "best.safetensors"

// Options says what to export where.
type Options struct {
	Run    string // a run folder, runs/<config>/<seed>
	Out    string // the file to write
	Format string // FormatTorch or FormatSafetensors; "" infers it from Out's extension
	Names  string // NamesReference (default) or NamesM2mix
}

// Result describes a written export.
type Result struct {
	Config string
	Seed   int64
	Class  string // the reference class the names are those of ("" with NamesM2mix)
	Module string // the reference file that defines it
	Format string
	// Tensors and Params count what was written; Source is the sha256 of
	// the checkpoint it came from, SHA256 that of the file written.
	Tensors int
	Params  int64
	Source  string
	SHA256  string
}

// FormatOf infers the format from a file name: .pt, .pth or .bin is
// torch.save's, .safetensors safetensors.
func FormatOf(path string) (string, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".pt", ".pth", ".bin":
		return FormatTorch, nil
	case ".safetensors":
		return FormatSafetensors, nil
	}
	return "", fmt.Errorf("cannot tell the format from %s: give --format %s or %s (or name the file .pt or .safetensors)", path, FormatTorch, FormatSafetensors)
}

// Checkpoint exports the best weights of the finished run in o.Run.
func Checkpoint(o Options) (*Result, error) {
	format := o.Format
	if format == "" {
		var err error
		if format, err = FormatOf(o.Out); err != nil {
			return nil, err
		}
	}
	if format != FormatTorch && format != FormatSafetensors {
		return nil, fmt.Errorf("format %q: want %s or %s", format, FormatTorch, FormatSafetensors)
	}
	names := o.Names
	if names == "" {
		names = NamesReference
	}
	if names != NamesReference && names != NamesM2mix {
		return nil, fmt.Errorf("names %q: want %s or %s", names, NamesReference, NamesM2mix)
	}

	recPath := filepath.Join(o.Run, runrecord.FileName)
	var rec runrecord.Record
	if err := artifact.ReadJSON(recPath, &rec); err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("%s has no %s: give a run folder, runs/<config>/<seed>", o.Run, runrecord.FileName)
		}
		return nil, fmt.Errorf("run %s: %w", o.Run, err)
	}
	if rec.Config == "" {
		return nil, fmt.Errorf("%s names no configuration", recPath)
	}
	if rec.Final == nil {
		return nil, fmt.Errorf("run %s (%s, seed %d) is not finished (%s has no final results): its best weights may still change; finish it with m2mix train first",
			o.Run, rec.Config, rec.Seed, recPath)
	}
	res := &Result{Config: rec.Config, Seed: rec.Seed, Format: format}
	var arch *Architecture
	if names == NamesReference {
		var err error
		if arch, err = ReferenceArchitecture(rec.Config); err != nil {
			return nil, fmt.Errorf("run %s: %w", o.Run, err)
		}
		res.Class, res.Module = arch.Class, arch.Module
	}

	ckpt := filepath.Join(o.Run, bestFile)
	if same, _ := sameFile(o.Out, ckpt); same {
		return nil, fmt.Errorf("--out %s is the checkpoint itself: write the export elsewhere", o.Out)
	}
	tensors, meta, err := torch.ReadSafetensors(ckpt)
	if err != nil {
		return nil, fmt.Errorf("%w (train that run again to replace it)", err)
	}
	if meta[torch.ChecksumKey] == "" {
		return nil, fmt.Errorf("checkpoint %s has no checksum (m2mix records one in every checkpoint it writes; this one was made elsewhere or by an older version): train that run again", ckpt)
	}
	if c := meta["config"]; c != rec.Config {
		return nil, fmt.Errorf("checkpoint %s is of configuration %q, but %s says %q: the run folder is mixed up; train that run again", ckpt, c, recPath, rec.Config)
	}
	if res.Source, err = artifact.SHA256File(ckpt); err != nil {
		return nil, err
	}

	ours := slices.Sorted(maps.Keys(tensors))
	out := map[string]torch.RawTensor{}
	var order []string
	if arch != nil {
		rename, err := arch.Rename(ours)
		if err != nil {
			return nil, fmt.Errorf("checkpoint %s (%s): %w", ckpt, rec.Config, err)
		}
		for _, n := range ours {
			out[rename[n]] = tensors[n]
			order = append(order, rename[n])
		}
	} else {
		for _, n := range ours {
			out[n] = tensors[n]
			order = append(order, n)
		}
	}
	slices.Sort(order) // the same bytes for the same checkpoint
	for _, n := range order {
		t := out[n]
		if t.DType != torch.Float32 {
			return nil, fmt.Errorf("checkpoint %s: tensor %q is %v, not float32: not a parameter of ours", ckpt, n, t.DType)
		}
		numel := int64(1)
		for _, d := range t.Shape {
			numel *= d
		}
		res.Params += numel
	}
	res.Tensors = len(order)

	switch format {
	case FormatTorch:
		err = WriteStateDict(o.Out, order, out)
	case FormatSafetensors:
		m := map[string]string{
			"format":              "pt", // what safetensors' own torch writer records
			"m2mix.config":        rec.Config,
			"m2mix.seed":          fmt.Sprint(rec.Seed),
			"m2mix.names":         names,
			"m2mix.source":        bestFile,
			"m2mix.source_sha256": res.Source,
		}
		if arch != nil {
			m["m2mix.reference_class"] = arch.Module + ":" + arch.Class
		}
		err = torch.WriteSafetensors(o.Out, out, m)
	}
	if err != nil {
		return nil, err
	}
	if res.SHA256, err = artifact.SHA256File(o.Out); err != nil {
		return nil, err
	}
	return res, nil
}

// sameFile reports whether a and b name the same existing file.
func sameFile(a, b string) (bool, error) {
	sa, err := os.Stat(a)
	if err != nil {
		return false, err
	}
	sb, err := os.Stat(b)
	if err != nil {
		return false, err
	}
	return os.SameFile(sa, sb), nil
}
