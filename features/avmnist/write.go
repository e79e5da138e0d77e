package avmnist

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/dataset"
)

// File names inside <data>/avmnist.
const (
	TrainFile      = "train.arrow"
	ValidationFile = "validation.arrow"
	TestFile       = "test.arrow"
	ManifestFile   = "manifest.json"
	SheetFile      = "samples.png"
)

// Dir is the AV-MNIST folder inside the data folder.
func Dir(data string) string { return filepath.Join(data, "avmnist") }

// Root is the data folder a variant's datasets live in: data itself for the
// recipe, data/variants/<name> for a variant (so its AV-MNIST is
// data/variants/<name>/avmnist, and training reads it with that folder as
// its data folder).
func Root(data string, v Variant) string {
	if v.IsClean() {
		return data
	}
	return filepath.Join(data, "variants", v.Name)
}

// ValidationRows is how many of the generator's training rows form the
// validation split: the last 5,000 of 60,000 (reproduction.md §2). For a
// subset (Params.Limit) the same one-twelfth is kept.
func ValidationRows(n int) int { return n / 12 }

// columns turns a split into the dataset's columns, in the documented order.
func (s *Split) columns() []dataset.Column {
	return []dataset.Column{
		{Name: "label", Int64: s.Label},
		{Name: "image", Width: ImageSize, Float32: s.Image},
		{Name: "audio", Width: AudioSize, Uint8: s.Audio},
		{Name: "mnist_index", Int64: s.MNISTIndex},
		{Name: "fsdd_file", String: s.FSDDFile},
		{Name: "noise_file", String: s.NoiseFile},
	}
}

// Output is what WriteDatasets produced.
type Output struct {
	Dir      string
	Rows     map[string]int    // file -> rows
	SHA256   map[string]string // file -> sha256
	Manifest *artifact.Manifest
}

// WriteDatasets writes train/validation/test Arrow files, the sample sheet
// and the manifest into dir. meta goes into every file, plus the split's
// name and its rows in the generator's numbering.
func WriteDatasets(dir string, train, test *Split, meta map[string]string, params map[string]any, notes map[string]any) (*Output, error) {
	n := train.Rows()
	nTrain := n - ValidationRows(n)
	parts := []struct {
		file, name string
		s          *Split
		lo, hi     int
	}{
		{TrainFile, "train", train.slice(0, nTrain), 0, nTrain},
		{ValidationFile, "validation", train.slice(nTrain, n), nTrain, n},
		{TestFile, "test", test, 0, test.Rows()},
	}
	out := &Output{Dir: dir, Rows: map[string]int{}, SHA256: map[string]string{}}
	for _, p := range parts {
		m := map[string]string{}
		for k, v := range meta {
			m[k] = v
		}
		m["split"] = p.name
		origin := "train"
		if p.name == "test" {
			origin = "test"
		}
		m["rows"] = fmt.Sprintf("%s rows %d..%d of the generator's %s split", p.name, p.lo, p.hi-1, origin)
		path := filepath.Join(dir, p.file)
		if err := dataset.Write(path, p.s.columns(), m); err != nil {
			return nil, err
		}
		out.Rows[p.file] = p.s.Rows()
	}
	if err := WriteSheet(filepath.Join(dir, SheetFile), parts[0].s, parts[1].s, parts[2].s); err != nil {
		return nil, err
	}
	man := &artifact.Manifest{Stage: "prep avmnist", Params: params, Inputs: map[string]string{}, Notes: notes}
	for k, v := range meta {
		if strings.HasPrefix(k, "source.") || strings.HasPrefix(k, "npy.") {
			man.Inputs[k] = v
		}
	}
	names := []string{TrainFile, ValidationFile, TestFile, SheetFile}
	if err := man.HashOutputs(dir, names...); err != nil {
		return nil, err
	}
	if err := artifact.WriteJSON(filepath.Join(dir, ManifestFile), man); err != nil {
		return nil, err
	}
	out.Manifest = man
	for _, f := range names {
		out.SHA256[f] = man.Outputs[f]
	}
	return out, nil
}
