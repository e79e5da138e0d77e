package model

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/dataset"
	"github.com/m2mix/m2mix/torch"
)

// SplitFiles are the dataset files a run reads from a dataset folder.
var SplitFiles = [3]string{"train.arrow", "validation.arrow", "test.arrow"}

// Split is one dataset split resident on the device, whole: batches are
// views (narrow) of it, not copies from Go each step. X holds each
// modality's rows, (N, shape...), under the modality's name. A split whose
// rows were gathered per model (a shuffled epoch's batch) has PerModel set
// and every tensor carries the model axis first: (K, N, shape...).
type Split struct {
	N        int64
	X        map[string]*torch.Tensor
	Label    *torch.Tensor
	PerModel bool
}

// Batch holds one batch of inputs on the device, float32, per modality
// (the shapes of the dataset's table, with the batch axis first, and the
// model axis before it when PerModel), and int64 labels (B) or (K, B).
type Batch struct {
	X        map[string]*torch.Tensor
	Label    *torch.Tensor
	PerModel bool
}

// loadSplit reads an Arrow dataset file onto device; limit > 0 keeps the
// first limit rows. check sees the file's sha256 before it is parsed. It
// returns the split, the sha256 and the file's metadata.
func loadSplit(s *torch.Scope, path string, ds *DatasetSpec, device torch.Device, limit int, check func(sum string) error) (*Split, string, map[string]string, error) {
	sum, err := artifact.SHA256File(path)
	if err != nil {
		return nil, "", nil, fmt.Errorf("dataset %s: %w (prepare it first: m2mix prep %s)", path, err, ds.Name)
	}
	if err := check(sum); err != nil {
		return nil, "", nil, err
	}
	t, err := dataset.Read(path)
	if err != nil {
		return nil, "", nil, err
	}
	n := int64(t.Rows)
	if limit > 0 && int64(limit) < n {
		n = int64(limit)
	}
	sp := &Split{N: n, X: map[string]*torch.Tensor{}}
	onDevice := func(x *torch.Tensor) *torch.Tensor {
		if device == torch.CPU {
			return x
		}
		return s.To(x, device)
	}
	label, err := t.Column("label")
	if err != nil {
		return nil, "", nil, fmt.Errorf("dataset %s: %w", path, err)
	}
	if label.Width != 0 || label.Int64 == nil {
		return nil, "", nil, fmt.Errorf("dataset %s: column \"label\" must be one int64 per row", path)
	}
	sp.Label = onDevice(s.From(label.Int64[:n], n))
	for _, m := range ds.Modalities {
		c, err := t.Column(m.Column)
		if err != nil {
			return nil, "", nil, fmt.Errorf("dataset %s: %w", path, err)
		}
		if int64(c.Width) != m.RowSize() {
			return nil, "", nil, fmt.Errorf("dataset %s: column %q has width %d, want %d", path, m.Column, c.Width, m.RowSize())
		}
		shape := append([]int64{n}, m.Shape...)
		switch {
		case m.Bytes && c.Uint8 != nil:
			// Bytes stay uint8 on the device (4x less memory) and become
			// float32 per batch.
			sp.X[m.Name] = onDevice(s.From(c.Uint8[:n*m.RowSize()], shape...))
		case !m.Bytes && c.Float32 != nil:
			sp.X[m.Name] = onDevice(s.From(c.Float32[:n*m.RowSize()], shape...))
		default:
			return nil, "", nil, fmt.Errorf("dataset %s: column %q must be %s", path, m.Column, map[bool]string{true: "uint8", false: "float32"}[m.Bytes])
		}
	}
	if err := s.Err(); err != nil {
		return nil, "", nil, fmt.Errorf("dataset %s: %w", path, err)
	}
	return sp, sum, t.Meta, nil
}

// rowsAt returns rows [lo, lo+n) of an epoch, made in s. With no order
// every model reads the data's order and the rows are views; order (K, N)
// gives each model its own order, and the rows are gathered into a
// per-model split (K, n, ...).
func (sp *Split) rowsAt(s *torch.Scope, order *torch.Tensor, lo, n int64) *Split {
	out := &Split{N: n, X: map[string]*torch.Tensor{}, PerModel: order != nil}
	take := func(x *torch.Tensor) *torch.Tensor {
		if order == nil {
			return s.Narrow(x, 0, lo, n)
		}
		idx := s.Narrow(order, 1, lo, n) // (K, n)
		shape, _ := x.Shape()
		rows := s.IndexSelect(x, 0, s.Reshape(idx, -1))
		return s.Reshape(rows, append([]int64{-1, n}, shape[1:]...)...)
	}
	for name, x := range sp.X {
		out.X[name] = take(x)
	}
	out.Label = take(sp.Label)
	return out
}

// Batch is the whole split as a batch: bytes become float32.
func (sp *Split) Batch(s *torch.Scope) Batch {
	b := Batch{X: map[string]*torch.Tensor{}, Label: sp.Label, PerModel: sp.PerModel}
	for name, x := range sp.X {
		if dt, _ := x.DType(); dt == torch.Uint8 {
			x = s.ToDType(x, torch.Float32)
		}
		b.X[name] = x
	}
	return b
}

// clone copies a split (rows of its own, not views): the fixed input
// buffers a CUDA graph reads.
func (sp *Split) clone(s *torch.Scope) *Split {
	out := &Split{N: sp.N, X: map[string]*torch.Tensor{}, Label: s.Clone(sp.Label), PerModel: sp.PerModel}
	for name, x := range sp.X {
		out.X[name] = s.Clone(x)
	}
	return out
}

// copyFrom overwrites in's rows, in place, with src's (same shapes).
func (in *Split) copyFrom(src *Split) error {
	for name, x := range in.X {
		if err := x.CopyFrom(src.X[name]); err != nil {
			return fmt.Errorf("graph input %s: %w", name, err)
		}
	}
	if err := in.Label.CopyFrom(src.Label); err != nil {
		return fmt.Errorf("graph input labels: %w", err)
	}
	return nil
}

// Datasets are the three splits of one dataset.
type Datasets struct {
	Spec                    *DatasetSpec
	Train, Validation, Test *Split
	SHA256                  map[string]string // "<dataset>/<file>" -> sha256
	// Variant names the generation variant the files say they are
	// ("variant" in their metadata; "" for the recipe), VariantParams its
	// parameters as JSON.
	Variant, VariantParams string
}

// LoadDatasets reads dir/{train,validation,test}.arrow of a dataset onto
// device. limitTrain and limitEval cap the rows used (0: all).
func LoadDatasets(s *torch.Scope, dir, name string, device torch.Device, limitTrain, limitEval int) (*Datasets, error) {
	spec, err := Dataset(name)
	if err != nil {
		return nil, err
	}
	d := &Datasets{Spec: spec, SHA256: map[string]string{}}
	// The manifest is written last: it is the commit point of a
	// preparation. Files it does not list, or lists with another sha256, are
	// from an interrupted or later-changed preparation.
	manPath := filepath.Join(dir, "manifest.json")
	var man artifact.Manifest
	if err := artifact.ReadJSON(manPath, &man); err != nil {
		return nil, fmt.Errorf("dataset %s: %w (prepare it with m2mix prep %s; a folder without its manifest is not a finished preparation)", dir, err, name)
	}
	limits := [3]int{limitTrain, limitEval, limitEval}
	splits := [3]**Split{&d.Train, &d.Validation, &d.Test}
	variants := map[string]bool{}
	for i, f := range SplitFiles {
		check := func(sum string) error {
			if want, ok := man.Outputs[f]; !ok {
				return fmt.Errorf("dataset %s: %s does not list %s: prepare the dataset again (m2mix prep %s)", dir, manPath, f, name)
			} else if want != sum {
				return fmt.Errorf("dataset %s: %s has sha256 %s, but %s records %s: the file changed after its preparation, or a preparation was interrupted; prepare the dataset again (m2mix prep %s)",
					dir, f, sum, manPath, want, name)
			}
			return nil
		}
		sp, sum, meta, err := loadSplit(s, filepath.Join(dir, f), spec, device, limits[i], check)
		if err != nil {
			return nil, err
		}
		*splits[i] = sp
		d.SHA256[name+"/"+f] = sum
		variants[meta["variant"]] = true
		d.Variant, d.VariantParams = meta["variant"], meta["variant_params"]
	}
	if len(variants) > 1 {
		return nil, fmt.Errorf("dataset %s: the split files are of different variants %v: prepare the folder again", dir, slices.Sorted(maps.Keys(variants)))
	}
	return d, nil
}
