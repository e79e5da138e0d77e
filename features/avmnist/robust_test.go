package avmnist

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/dataset"
	"github.com/m2mix/m2mix/features/audio"
	"github.com/m2mix/m2mix/robustness"
)

// Re-rendering the test audio at the recipe's own ESC-50 weight gives the
// test split's bytes; a higher weight gives other audio with the same
// labels; a second call reuses the files; other inputs are refused.
func TestRenderNoiseWeights(t *testing.T) {
	in := fixtureInputs()
	p := Params{Seed: 7}
	res, err := Generate(in, p)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if _, err := res.Write(Dir(root), p, in); err != nil {
		t.Fatal(err)
	}
	loads := 0
	load := func() (*Inputs, error) { loads++; return in, nil }
	weights := []float64{audio.NoiseGain, 0.3}
	if err := RenderNoiseWeights(root, load, weights, 36); err != nil {
		t.Fatal(err)
	}
	test, err := dataset.Read(filepath.Join(Dir(root), TestFile))
	if err != nil {
		t.Fatal(err)
	}
	own, _ := test.Column("audio")
	labels, _ := test.Column("label")
	out := robustness.Dir(root, "avmnist")
	read := func(w float64) (*dataset.Column, *dataset.Column) {
		tab, err := dataset.Read(filepath.Join(out, robustness.NoiseWeightFile(w)))
		if err != nil {
			t.Fatal(err)
		}
		a, _ := tab.Column("audio")
		l, _ := tab.Column("label")
		return a, l
	}
	a, l := read(audio.NoiseGain)
	if !bytes.Equal(a.Uint8, own.Uint8) {
		t.Error("re-rendered at the recipe's weight, the audio differs from the test split's")
	}
	hi, hl := read(0.3)
	if bytes.Equal(hi.Uint8, own.Uint8) {
		t.Error("weight 0.3 gave the recipe's audio")
	}
	for i := range labels.Int64 {
		if l.Int64[i] != labels.Int64[i] || hl.Int64[i] != labels.Int64[i] {
			t.Fatalf("row %d: labels %d, %d, want %d", i, l.Int64[i], hl.Int64[i], labels.Int64[i])
		}
	}
	var man artifact.Manifest
	if err := artifact.ReadJSON(filepath.Join(out, robustness.NoiseWeightManifest), &man); err != nil || len(man.Outputs) != 2 {
		t.Fatalf("manifest %v (%v)", man.Outputs, err)
	}
	if err := RenderNoiseWeights(root, load, weights, 36); err != nil || loads != 1 {
		t.Errorf("second call: %v, inputs loaded %d times", err, loads)
	}
	// Inputs other than the dataset's: the speech played backwards.
	other := fixtureInputs()
	for i := range other.Speech {
		slices.Reverse(other.Speech[i].Samples)
	}
	os.Remove(filepath.Join(out, robustness.NoiseWeightManifest))
	err = RenderNoiseWeights(root, func() (*Inputs, error) { return other, nil }, weights, 36)
	if err == nil || !strings.Contains(err.Error(), "not the inputs") {
		t.Errorf("other inputs: %v", err)
	}
	os.Remove(filepath.Join(out, robustness.NoiseWeightManifest))
	if err := RenderNoiseWeights(root, func() (*Inputs, error) { return nil, errors.New("no raw data") }, weights, 36); err == nil || !strings.Contains(err.Error(), "no raw data") {
		t.Errorf("failed load: %v", err)
	}
}

// A pool-race variant's audio is displaced across the whole generation:
// re-rendering the test split alone is refused.
func TestRenderNoiseWeightsRefusesPoolRace(t *testing.T) {
	in := fixtureInputs()
	p := Params{Seed: 7, Variant: Variant{Name: "race", Pairing: "pool-race", Race: &PoolRace{Workers: 3, BaseMS: 1, PerSecondMS: 1, JitterMS: 1, Seed: 1}}}
	res, err := Generate(in, p)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if _, err := res.Write(Dir(root), p, in); err != nil {
		t.Fatal(err)
	}
	err = RenderNoiseWeights(root, func() (*Inputs, error) { return in, nil }, []float64{0.1}, 36)
	if err == nil || !strings.Contains(err.Error(), "pool-race") {
		t.Errorf("pool-race variant: %v", err)
	}
}
