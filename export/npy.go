package export

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/dataset"
	"github.com/m2mix/m2mix/prep/npy"
	"github.com/m2mix/m2mix/progress"
)

// The .npy export writes a prepared dataset's arrays for readers without
// pyarrow (examples/torch_dataset.py falls back to them).
//
// AV-MNIST uses MultiBench's layout, the one the public avmnist folder has
// and `m2mix prep avmnist --from npy` reads:
//
//	image/train_data.npy  float32 (N, 784)       image/test_data.npy
//	audio/train_data.npy  uint8   (N, 112, 112)  audio/test_data.npy
//	train_labels.npy      int64   (N,)           test_labels.npy
//
// That layout has no validation split: MultiBench and the reference take the
// last rows of train as validation. Ours is the last 1/12 of the generator's
// training rows (5,000 of 60,000), so train_data holds our train rows then
// our validation rows, in order, and the last validation_rows of them (the
// manifest records how many) are our validation split: the reference's
// train 0..55000 and validation 55000..60000 for the full dataset.
//
// MIMIC-III has no public .npy layout; ours is one file per split and input:
//
//	{train,validation,test}_static.npy      float32 (N, 5)
//	{train,validation,test}_timeseries.npy  float32 (N, 24, 12)
//	{train,validation,test}_labels.npy      int64   (N,)
//
// Each file is written atomically, and manifest.json, listing every file's
// sha256, last: it is the set's commit point (an earlier manifest is removed
// first), so a reader that checks it never takes a half-written set.

// NPYManifest is the manifest's name in the output folder.
const NPYManifest = "manifest.json"

// NPYOptions says which dataset to export where.
type NPYOptions struct {
	Data    string // the data folder (the dataset is Data/<Dataset>)
	Dataset string // "avmnist" or "mimic"
	Out     string // the folder to write
	// Progress receives progress lines; nil: stderr (a bar on a terminal).
	Progress io.Writer
}

// NPYResult describes a written export.
type NPYResult struct {
	Dir   string
	Files map[string]string // file (relative to Dir) -> sha256
	Rows  map[string]int    // our split -> rows
}

// npyFile is one array to write.
type npyFile struct {
	name  string
	array *npy.Array
}

// NPY exports a prepared dataset as .npy files.
func NPY(o NPYOptions) (*NPYResult, error) {
	dir := filepath.Join(o.Data, o.Dataset)
	var layout string
	switch o.Dataset {
	case "avmnist":
		layout = "MultiBench avmnist: image/{train,test}_data.npy (N,784) float32, audio/{train,test}_data.npy (N,112,112) uint8, {train,test}_labels.npy (N,) int64; train_data = our train then validation rows, the last validation_rows being validation"
	case "mimic":
		layout = "{train,validation,test}_{static,timeseries,labels}.npy: (N,5) float32, (N,24,12) float32, (N,) int64"
	default:
		return nil, fmt.Errorf("dataset %q: want avmnist or mimic", o.Dataset)
	}
	var man artifact.Manifest
	manPath := filepath.Join(dir, "manifest.json")
	if err := artifact.ReadJSON(manPath, &man); err != nil {
		return nil, fmt.Errorf("dataset %s: %w (prepare it with m2mix prep %s; a folder without its manifest is not a finished preparation)", dir, err, o.Dataset)
	}
	if err := artifact.CheckWritable(o.Out); err != nil {
		return nil, err
	}
	inputs := map[string]string{}
	read := func(file string) (*dataset.Table, error) {
		path := filepath.Join(dir, file)
		sum, err := artifact.SHA256File(path)
		if err != nil {
			return nil, fmt.Errorf("dataset %s: %w (prepare it first: m2mix prep %s)", path, err, o.Dataset)
		}
		if want, ok := man.Outputs[file]; !ok {
			return nil, fmt.Errorf("dataset %s: %s does not list %s: prepare the dataset again (m2mix prep %s)", dir, manPath, file, o.Dataset)
		} else if want != sum {
			return nil, fmt.Errorf("dataset %s: %s has sha256 %s, but %s records %s: the file changed after its preparation, or a preparation was interrupted; prepare the dataset again (m2mix prep %s)",
				dir, file, sum, manPath, want, o.Dataset)
		}
		inputs[o.Dataset+"/"+file] = sum
		return dataset.Read(path)
	}

	res := &NPYResult{Dir: o.Out, Files: map[string]string{}, Rows: map[string]int{}}
	// The old set stops being a committed set before any of its files changes.
	if err := os.Remove(filepath.Join(o.Out, NPYManifest)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("export-npy: %w", err)
	}
	var bar *progress.Bar
	if o.Progress != nil {
		bar = progress.NewTo(o.Progress, 3, "export-npy "+o.Dataset)
	} else {
		bar = progress.New(3, "export-npy "+o.Dataset+" (splits)")
	}
	write := func(files []npyFile) error {
		for _, f := range files {
			path := filepath.Join(o.Out, f.name)
			if err := npy.Write(path, f.array); err != nil {
				return err
			}
			sum, err := artifact.SHA256File(path)
			if err != nil {
				return err
			}
			res.Files[f.name] = sum
		}
		return nil
	}

	var err error
	switch o.Dataset {
	case "avmnist":
		err = avmnistNPY(read, write, res, bar)
	case "mimic":
		err = mimicNPY(read, write, res, bar)
	}
	if err != nil {
		return nil, err
	}
	bar.Finish()
	out := artifact.Manifest{
		Stage:   "export-npy " + o.Dataset,
		Params:  map[string]any{"dataset": o.Dataset},
		Inputs:  inputs,
		Outputs: res.Files,
		Notes: map[string]any{
			"layout":          layout,
			"train_rows":      res.Rows["train"],
			"validation_rows": res.Rows["validation"],
			"test_rows":       res.Rows["test"],
		},
	}
	if err := artifact.WriteJSON(filepath.Join(o.Out, NPYManifest), out); err != nil {
		return nil, err
	}
	return res, nil
}

// column returns a table's column, checked to be of the kind and width
// wanted (width 0: a scalar int64 column).
func column(t *dataset.Table, path, name string, width int, kind npy.Kind) (*dataset.Column, error) {
	c, err := t.Column(name)
	if err != nil {
		return nil, fmt.Errorf("dataset %s: %w", path, err)
	}
	ok := c.Width == width
	switch kind {
	case npy.Float32:
		ok = ok && c.Float32 != nil
	case npy.Uint8:
		ok = ok && c.Uint8 != nil
	case npy.Int64:
		ok = ok && c.Int64 != nil
	}
	if !ok {
		return nil, fmt.Errorf("dataset %s: column %q is not %v of width %d", path, name, kind, width)
	}
	return c, nil
}

const (
	imageSize = 28 * 28
	audioSide = 112
	staticLen = 5
	hours     = 24
	features  = 12
)

func avmnistNPY(read func(string) (*dataset.Table, error), write func([]npyFile) error, res *NPYResult, bar *progress.Bar) error {
	type arrays struct {
		image []float32
		audio []uint8
		label []int64
	}
	load := func(file string) (*arrays, error) {
		t, err := read(file)
		if err != nil {
			return nil, err
		}
		img, err := column(t, file, "image", imageSize, npy.Float32)
		if err != nil {
			return nil, err
		}
		aud, err := column(t, file, "audio", audioSide*audioSide, npy.Uint8)
		if err != nil {
			return nil, err
		}
		lab, err := column(t, file, "label", 0, npy.Int64)
		if err != nil {
			return nil, err
		}
		return &arrays{image: img.Float32, audio: aud.Uint8, label: lab.Int64}, nil
	}
	files := func(split string, a *arrays) []npyFile {
		n := len(a.label)
		return []npyFile{
			{"image/" + split + "_data.npy", &npy.Array{Kind: npy.Float32, Shape: []int{n, imageSize}, Float32: a.image}},
			{"audio/" + split + "_data.npy", &npy.Array{Kind: npy.Uint8, Shape: []int{n, audioSide, audioSide}, Uint8: a.audio}},
			{split + "_labels.npy", &npy.Array{Kind: npy.Int64, Shape: []int{n}, Int64: a.label}},
		}
	}
	train, err := load("train.arrow")
	if err != nil {
		return err
	}
	bar.Add(1)
	val, err := load("validation.arrow")
	if err != nil {
		return err
	}
	res.Rows["train"], res.Rows["validation"] = len(train.label), len(val.label)
	joined := &arrays{
		image: append(train.image, val.image...),
		audio: append(train.audio, val.audio...),
		label: append(train.label, val.label...),
	}
	train, val = nil, nil
	if err := write(files("train", joined)); err != nil {
		return err
	}
	joined = nil
	bar.Add(1)
	test, err := load("test.arrow")
	if err != nil {
		return err
	}
	res.Rows["test"] = len(test.label)
	if err := write(files("test", test)); err != nil {
		return err
	}
	bar.Add(1)
	return nil
}

func mimicNPY(read func(string) (*dataset.Table, error), write func([]npyFile) error, res *NPYResult, bar *progress.Bar) error {
	for _, split := range []string{"train", "validation", "test"} {
		file := split + ".arrow"
		t, err := read(file)
		if err != nil {
			return err
		}
		st, err := column(t, file, "static", staticLen, npy.Float32)
		if err != nil {
			return err
		}
		ts, err := column(t, file, "timeseries", hours*features, npy.Float32)
		if err != nil {
			return err
		}
		lab, err := column(t, file, "label", 0, npy.Int64)
		if err != nil {
			return err
		}
		n := len(lab.Int64)
		res.Rows[split] = n
		if err := write([]npyFile{
			{split + "_static.npy", &npy.Array{Kind: npy.Float32, Shape: []int{n, staticLen}, Float32: st.Float32}},
			{split + "_timeseries.npy", &npy.Array{Kind: npy.Float32, Shape: []int{n, hours, features}, Float32: ts.Float32}},
			{split + "_labels.npy", &npy.Array{Kind: npy.Int64, Shape: []int{n}, Int64: lab.Int64}},
		}); err != nil {
			return err
		}
		bar.Add(1)
	}
	return nil
}
