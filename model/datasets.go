package model

import (
	"fmt"
	"slices"
)

// DatasetSpec is everything the networks, the readers and the metrics need
// to know about one dataset. Adding a dataset or a modality is one entry
// here (and its reader in features/, which writes the Arrow columns).
type DatasetSpec struct {
	Name       string
	Classes    int64
	Modalities []ModalitySpec // in fusion order: their tokens are concatenated in this order
}

// ModalitySpec is one input of a dataset: how it is stored, how it is
// encoded, and what its parameters and head are called.
type ModalitySpec struct {
	Name   string  // the head's name in configurations ("image", "static", ...)
	Column string  // Arrow column
	Shape  []int64 // one row's shape, as the encoder reads it
	Bytes  bool    // stored as uint8 (0..255, fed to the network unnormalised), else float32

	Prefix string // its encoder's parameter names' prefix
	Head   string // its head's parameter name
}

// RowSize is the number of values of one row.
func (m ModalitySpec) RowSize() int64 {
	n := int64(1)
	for _, d := range m.Shape {
		n *= d
	}
	return n
}

// datasets is the table of known datasets.
var datasets = []DatasetSpec{
	{Name: "avmnist", Classes: 10, Modalities: []ModalitySpec{
		{Name: "image", Column: "image", Shape: []int64{1, 28, 28}, Prefix: "img", Head: "hi"},
		{Name: "audio", Column: "audio", Shape: []int64{1, 112, 112}, Bytes: true, Prefix: "aud", Head: "ha"},
	}},
	{Name: "mimic", Classes: 6, Modalities: []ModalitySpec{
		{Name: "static", Column: "static", Shape: []int64{5}, Prefix: "static", Head: "hs"},
		{Name: "time", Column: "timeseries", Shape: []int64{24, 12}, Prefix: "time", Head: "ht"},
	}},
}

// fusionHead is the head on the fused tokens, and its parameter name.
const (
	fusionHead      = "fusion"
	fusionHeadParam = "hf"
	fusionPrefix    = "fus"
)

// Dataset returns a dataset's entry.
func Dataset(name string) (*DatasetSpec, error) {
	for i := range datasets {
		if datasets[i].Name == name {
			return &datasets[i], nil
		}
	}
	var known []string
	for _, d := range datasets {
		known = append(known, d.Name)
	}
	return nil, fmt.Errorf("dataset %q: want one of %v", name, known)
}

// Modality returns a modality's entry.
func (d *DatasetSpec) Modality(name string) (*ModalitySpec, bool) {
	for i := range d.Modalities {
		if d.Modalities[i].Name == name {
			return &d.Modalities[i], true
		}
	}
	return nil, false
}

// Heads lists the heads a configuration of this dataset may have.
func (d *DatasetSpec) Heads() []string {
	out := []string{fusionHead}
	for _, m := range d.Modalities {
		out = append(out, m.Name)
	}
	return out
}

// used returns the modalities a configuration encodes: all of them for a
// multimodal model, else its one modality.
func (d *DatasetSpec) used(c *Config) []ModalitySpec {
	if c.Kind == "multimodal" {
		return d.Modalities
	}
	i := slices.IndexFunc(d.Modalities, func(m ModalitySpec) bool { return m.Name == c.Modality })
	if i < 0 {
		return nil
	}
	return d.Modalities[i : i+1]
}
