package model

import (
	"fmt"
	"path/filepath"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/dataset"
	"github.com/m2mix/m2mix/torch"
)

// SplitFiles are the dataset files a run reads from a dataset folder.
var SplitFiles = [3]string{"train.arrow", "validation.arrow", "test.arrow"}

// Split is one dataset split resident on the device, whole: batches are
// views (narrow) of it, not copies from Go each step.
type Split struct {
	N                                 int64
	Image, Audio, Static, Time, Label *torch.Tensor
}

// LoadSplit reads an Arrow dataset file onto device. limit > 0 keeps the
// first limit rows. It returns the split and the file's sha256.
func LoadSplit(s *torch.Scope, path, kind string, device torch.Device, limit int) (*Split, string, error) {
	sum, err := artifact.SHA256File(path)
	if err != nil {
		return nil, "", fmt.Errorf("dataset %s: %w (prepare it first: m2mix prep %s)", path, err, kind)
	}
	t, err := dataset.Read(path)
	if err != nil {
		return nil, "", err
	}
	n := t.Rows
	if limit > 0 && limit < n {
		n = limit
	}
	sp := &Split{N: int64(n)}
	col := func(name string, width int) (*dataset.Column, error) {
		c, err := t.Column(name)
		if err != nil {
			return nil, fmt.Errorf("dataset %s: %w", path, err)
		}
		if c.Width != width {
			return nil, fmt.Errorf("dataset %s: column %q has width %d, want %d", path, name, c.Width, width)
		}
		return c, nil
	}
	onDevice := func(x *torch.Tensor) *torch.Tensor {
		if device == torch.CPU {
			return x
		}
		return s.To(x, device)
	}
	label, err := col("label", 0)
	if err != nil {
		return nil, "", err
	}
	if label.Int64 == nil {
		return nil, "", fmt.Errorf("dataset %s: column \"label\" is not int64", path)
	}
	sp.Label = onDevice(s.From(label.Int64[:n], int64(n)))
	switch kind {
	case "avmnist":
		img, err := col("image", 784)
		if err != nil {
			return nil, "", err
		}
		aud, err := col("audio", 112*112)
		if err != nil {
			return nil, "", err
		}
		if img.Float32 == nil || aud.Uint8 == nil {
			return nil, "", fmt.Errorf("dataset %s: image must be float32 and audio uint8", path)
		}
		sp.Image = onDevice(s.From(img.Float32[:n*784], int64(n), 1, 28, 28))
		// Spectrograms stay uint8 on the device (4x less memory) and become
		// float32 per batch; the models see 0..255 unnormalised, as the reference.
		sp.Audio = onDevice(s.From(aud.Uint8[:n*112*112], int64(n), 1, 112, 112))
	case "mimic":
		st, err := col("static", 5)
		if err != nil {
			return nil, "", err
		}
		ts, err := col("timeseries", 24*12)
		if err != nil {
			return nil, "", err
		}
		if st.Float32 == nil || ts.Float32 == nil {
			return nil, "", fmt.Errorf("dataset %s: static and timeseries must be float32", path)
		}
		sp.Static = onDevice(s.From(st.Float32[:n*5], int64(n), 5))
		sp.Time = onDevice(s.From(ts.Float32[:n*288], int64(n), 24, 12))
	default:
		return nil, "", fmt.Errorf("unknown dataset kind %q", kind)
	}
	if err := s.Err(); err != nil {
		return nil, "", fmt.Errorf("dataset %s: %w", path, err)
	}
	return sp, sum, nil
}

// Batch returns rows [lo, lo+n) as views, or the rows of index (an int64
// tensor) when it is not nil (a shuffled order).
func (sp *Split) Batch(s *torch.Scope, lo, n int64, index *torch.Tensor) Batch {
	take := func(x *torch.Tensor) *torch.Tensor {
		if x == nil {
			return nil
		}
		if index != nil {
			return s.IndexSelect(x, 0, s.Narrow(index, 0, lo, n))
		}
		return s.Narrow(x, 0, lo, n)
	}
	b := Batch{Image: take(sp.Image), Static: take(sp.Static), Time: take(sp.Time), Label: take(sp.Label)}
	if sp.Audio != nil {
		b.Audio = s.ToDType(take(sp.Audio), torch.Float32)
	}
	return b
}

// rows makes a split of its own first n rows, copies rather than views: the
// fixed input buffers a CUDA graph reads.
func (sp *Split) rows(s *torch.Scope, n int64) *Split {
	own := func(x *torch.Tensor) *torch.Tensor {
		if x == nil {
			return nil
		}
		return s.Clone(s.Narrow(x, 0, 0, n))
	}
	return &Split{N: n, Image: own(sp.Image), Audio: own(sp.Audio), Static: own(sp.Static), Time: own(sp.Time), Label: own(sp.Label)}
}

// copyRows overwrites in's rows, in place, with src's rows [lo, lo+in.N).
func (in *Split) copyRows(src *Split, lo int64) error {
	s := torch.NewScope()
	defer s.Close()
	pairs := [][2]*torch.Tensor{{in.Image, src.Image}, {in.Audio, src.Audio}, {in.Static, src.Static}, {in.Time, src.Time}, {in.Label, src.Label}}
	for _, p := range pairs {
		if p[0] == nil {
			continue
		}
		if err := p[0].CopyFrom(s.Narrow(p[1], 0, lo, in.N)); err != nil {
			return fmt.Errorf("graph input rows %d..%d: %w", lo, lo+in.N, err)
		}
	}
	return s.Err()
}

// Datasets are the three splits of one dataset.
type Datasets struct {
	Train, Validation, Test *Split
	SHA256                  map[string]string // file name -> sha256
}

// LoadDatasets reads dir/{train,validation,test}.arrow onto device.
// limitTrain and limitEval cap the rows used (0: all).
func LoadDatasets(s *torch.Scope, dir, kind string, device torch.Device, limitTrain, limitEval int) (*Datasets, error) {
	d := &Datasets{SHA256: map[string]string{}}
	limits := [3]int{limitTrain, limitEval, limitEval}
	splits := [3]**Split{&d.Train, &d.Validation, &d.Test}
	for i, f := range SplitFiles {
		sp, sum, err := LoadSplit(s, filepath.Join(dir, f), kind, device, limits[i])
		if err != nil {
			return nil, err
		}
		*splits[i] = sp
		d.SHA256[kind+"/"+f] = sum
	}
	return d, nil
}
