package avmnist

import (
	"fmt"
	"math"
	"path/filepath"
	"sync"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/prep/npy"
)

// PrepRaw generates AV-MNIST from the fetched raw sources in <data>/raw and
// writes the datasets into <data>/avmnist (a variant's into
// <data>/variants/<name>/avmnist).
func PrepRaw(data string, p Params) (*Result, *Output, error) {
	return prep(data, p, func() (*Inputs, error) { return LoadRaw(data) })
}

// prep loads the inputs, generates, and writes into <data>/avmnist.
func prep(data string, p Params, load func() (*Inputs, error)) (*Result, *Output, error) {
	in, err := load()
	if err != nil {
		return nil, nil, err
	}
	res, err := Generate(in, p)
	if err != nil {
		return nil, nil, err
	}
	out, err := res.Write(Dir(Root(data, p.Variant)), p, in)
	return res, out, err
}

// Write stores a generation's datasets, sheet and manifest in dir.
func (res *Result) Write(dir string, p Params, in *Inputs) (*Output, error) {
	params := map[string]any{"source": "raw", "seed": p.Seed, "limit": p.Limit}
	if !p.Variant.IsClean() {
		params["variant"] = p.Variant.Params()
	}
	notes := map[string]any{
		"pca_train":    res.PCATrain,
		"pca_test":     res.PCATest,
		"noise_train":  res.NoiseTrain,
		"noise_test":   res.NoiseTest,
		"silent_cells": res.SilentCells,
	}
	if !p.Variant.IsClean() {
		notes["audio_in_place"] = res.AudioInPlace
	}
	return WriteDatasets(dir, res.Train, res.Test, res.meta(p, in), params, notes)
}

// NPY file locations inside MultiBench's avmnist folder.
var npyFiles = [...]string{
	"image/train_data.npy", "image/test_data.npy",
	"audio/train_data.npy", "audio/test_data.npy",
	"train_labels.npy", "test_labels.npy",
}

// ImportNPY reads the public AV-MNIST .npy files from dir. Provenance
// columns hold the row index in the .npy files and empty file names.
func ImportNPY(dir string) (train, test *Split, checksums map[string]string, err error) {
	checksums = map[string]string{}
	var mu sync.Mutex
	// Hash while the next file is read; the audio files are large.
	var wg sync.WaitGroup
	var hashErr error
	for _, f := range npyFiles {
		wg.Add(1)
		go func(f string) {
			defer wg.Done()
			s, err := artifact.SHA256File(filepath.Join(dir, f))
			mu.Lock()
			defer mu.Unlock()
			if err != nil && hashErr == nil {
				hashErr = fmt.Errorf("AV-MNIST npy: %w", err)
			}
			checksums["npy."+f] = s
		}(f)
	}
	train, err = importSplit(dir, "train")
	if err == nil && ValidationRows(train.Rows()) == 0 {
		err = fmt.Errorf("%s: %d rows is too few: the validation split (the last 1/12 of train) would be empty; at least 12 are needed",
			filepath.Join(dir, "train_labels.npy"), train.Rows())
	}
	if err == nil {
		test, err = importSplit(dir, "test")
	}
	wg.Wait()
	if err != nil {
		return nil, nil, nil, err
	}
	if hashErr != nil {
		return nil, nil, nil, hashErr
	}
	return train, test, checksums, nil
}

func importSplit(dir, split string) (*Split, error) {
	imgPath := filepath.Join(dir, "image", split+"_data.npy")
	audPath := filepath.Join(dir, "audio", split+"_data.npy")
	labPath := filepath.Join(dir, split+"_labels.npy")
	lab, err := npy.Read(labPath)
	if err != nil {
		return nil, err
	}
	if len(lab.Shape) == 0 || lab.Len() != lab.Shape[0] {
		return nil, fmt.Errorf("%s: labels have shape %v, want (N,)", labPath, lab.Shape)
	}
	n := lab.Shape[0]
	if n == 0 {
		return nil, fmt.Errorf("%s: no rows (labels of shape %v): nothing to import", labPath, lab.Shape)
	}
	labels, err := lab.AsInt64()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", labPath, err)
	}
	for i, l := range labels {
		if l < 0 || l > 9 {
			return nil, fmt.Errorf("%s: label %d is %d, not a digit", labPath, i, l)
		}
	}
	img, err := npy.Read(imgPath)
	if err != nil {
		return nil, err
	}
	if err := checkRows(imgPath, labPath, img, n, ImageSize); err != nil {
		return nil, err
	}
	s := &Split{Label: labels, Image: make([]float32, n*ImageSize)}
	// Values are checked as the file holds them: a float64 beyond float32's
	// range would otherwise become an Inf that the file does not contain.
	nonFinite := func(i int, v float64) error {
		return fmt.Errorf("%s: image %d, pixel %d is %v: not a finite float32 value", imgPath, i/ImageSize, i%ImageSize, v)
	}
	switch img.Kind {
	case npy.Float32:
		for i, v := range img.Float32 {
			if f := float64(v); math.IsNaN(f) || math.IsInf(f, 0) {
				return nil, nonFinite(i, f)
			}
		}
		copy(s.Image, img.Float32)
	case npy.Float64:
		for i, v := range img.Float64 {
			f := float32(v)
			if math.IsNaN(v) || math.IsInf(float64(f), 0) {
				return nil, nonFinite(i, v)
			}
			s.Image[i] = f
		}
	default:
		return nil, fmt.Errorf("%s: image values are %v, want float32 or float64", imgPath, img.Kind)
	}
	img = nil
	aud, err := npy.Read(audPath)
	if err != nil {
		return nil, err
	}
	if err := checkRows(audPath, labPath, aud, n, AudioSize); err != nil {
		return nil, err
	}
	if aud.Kind != npy.Uint8 {
		return nil, fmt.Errorf("%s: spectrogram values are %v, want uint8", audPath, aud.Kind)
	}
	s.Audio = aud.Uint8
	s.MNISTIndex = make([]int64, n)
	s.FSDDFile = make([]string, n)
	s.NoiseFile = make([]string, n)
	for i := range s.MNISTIndex {
		s.MNISTIndex[i] = int64(i)
	}
	return s, nil
}

// checkRows requires n rows of width values (any shape (n, ...) whose
// trailing dimensions multiply to width), n being the labels file's rows.
func checkRows(path, labels string, a *npy.Array, n, width int) error {
	if len(a.Shape) < 2 || a.Shape[0] != n || a.Len() != n*width {
		return fmt.Errorf("%s: shape %v, want %d rows of %d values: %s has %d labels", path, a.Shape, n, width, labels, n)
	}
	return nil
}

// PrepNPY imports the public files from npyDir into <data>/avmnist.
func PrepNPY(data, npyDir string) (train, test *Split, out *Output, err error) {
	train, test, sums, err := ImportNPY(npyDir)
	if err != nil {
		return nil, nil, nil, err
	}
	meta := map[string]string{
		"source":     "npy",
		"npy_dir":    "MultiBench avmnist folder (image/, audio/, *_labels.npy)",
		"provenance": "mnist_index = row in the .npy file; fsdd_file and noise_file are unknown (empty)",
	}
	for k, v := range sums {
		meta[k] = v
	}
	out, err = WriteDatasets(Dir(data), train, test, meta, map[string]any{"source": "npy"}, nil)
	return train, test, out, err
}
