package avmnist

import (
	"bytes"
	"fmt"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/dataset"
	"github.com/m2mix/m2mix/features/audio"
	"github.com/m2mix/m2mix/features/spectrogram"
	"github.com/m2mix/m2mix/robustness"
)

// RenderTestAudio renders the audio of the first rows test samples of an
// AV-MNIST generated with seed and limit (Params.Seed, Params.Limit), with
// the ESC-50 noise mixed in at weight gain instead of the recipe's: the same
// pairing of speech to digits and the same noise draw, so at the dataset's
// own weight it gives the test split's audio bytes. It returns the
// spectrograms (rows x AudioSize) and the rows' labels. Rows are rendered
// in parallel; the bytes do not depend on the number of workers.
func RenderTestAudio(in *Inputs, seed uint64, limit, rows int, gain float64) ([]uint8, []int64, error) {
	_, noise, err := DrawNoise(in.Noise, seed)
	if err != nil {
		return nil, nil, err
	}
	n := len(in.Test.Labels)
	if limit > 0 {
		n = min(n, limit)
	}
	if rows > n || rows <= 0 {
		return nil, nil, fmt.Errorf("render test audio: %d rows asked, the test split has %d", rows, n)
	}
	pools, err := Pools(in.Speech, false)
	if err != nil {
		return nil, nil, err
	}
	recs := Pair(in.Test.Labels[:n], pools)[:rows]
	out := make([]uint8, rows*AudioSize)
	labels := make([]int64, rows)
	for i := range labels {
		labels[i] = int64(in.Test.Labels[i])
	}
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var r spectrogram.Renderer
			for {
				i := int(next.Add(1)) - 1
				if i >= rows {
					return
				}
				mix := audio.Mix(recs[i].Samples, noise[i%len(noise)].Samples, gain)
				if _, err := r.Render(mix, out[i*AudioSize:(i+1)*AudioSize]); err != nil {
					once.Do(func() { firstErr = fmt.Errorf("test sample %d (%s): %w", i, recs[i].Name, err) })
					return
				}
			}
		}()
	}
	wg.Wait()
	return out, labels, firstErr
}

// renderCheckRows is how many test rows RenderNoiseWeights re-renders at the
// dataset's own weight and compares with the stored audio before trusting
// the re-rendering.
const renderCheckRows = 32

// RenderNoiseWeights writes, for each weight, the first rows test samples of
// the AV-MNIST in <root>/avmnist re-rendered from the raw inputs (load is
// called only when the files are not there already) with the ESC-50 noise
// at that weight, into robustness.Dir(root, "avmnist"): one Arrow file per weight
// (label and audio columns; metadata naming the weight and the test split's
// sha256), then the manifest that commits them. It first re-renders a few
// rows at the dataset's own weight and requires the stored bytes, so the
// raw inputs must be those the dataset was made from. A pool-race variant
// (audio rows displaced across the whole generation) is refused.
func RenderNoiseWeights(root string, load func() (*Inputs, error), weights []float64, rows int) error {
	dir := Dir(root)
	testPath := filepath.Join(dir, TestFile)
	var man artifact.Manifest
	if err := artifact.ReadJSON(filepath.Join(dir, ManifestFile), &man); err != nil {
		return fmt.Errorf("re-render test audio: %w (prepare AV-MNIST first)", err)
	}
	sum, err := artifact.SHA256File(testPath)
	if err != nil {
		return fmt.Errorf("re-render test audio: %w", err)
	}
	if man.Outputs[TestFile] != sum {
		return fmt.Errorf("re-render test audio: %s has sha256 %s, but its manifest records %q: prepare AV-MNIST again", testPath, sum, man.Outputs[TestFile])
	}
	t, err := dataset.Read(testPath)
	if err != nil {
		return err
	}
	if t.Meta["pairing"] != "" {
		return fmt.Errorf("re-render test audio: %s is a %s variant (%s): its audio rows are displaced across the whole generation, which re-rendering the test split alone cannot reproduce", testPath, t.Meta["variant"], t.Meta["pairing"])
	}
	if t.Meta["source"] != "raw" {
		return fmt.Errorf("re-render test audio: %s was not generated from the raw inputs (source %q): there is no raw audio to re-render", testPath, t.Meta["source"])
	}
	seed, err1 := strconv.ParseUint(t.Meta["seed"], 10, 64)
	limit, err2 := strconv.Atoi(t.Meta["limit"])
	own, err3 := strconv.ParseFloat(t.Meta["noise_gain"], 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return fmt.Errorf("re-render test audio: %s: metadata seed %q, limit %q, noise_gain %q are not numbers", testPath, t.Meta["seed"], t.Meta["limit"], t.Meta["noise_gain"])
	}
	audioCol, err := t.Column("audio")
	if err != nil {
		return fmt.Errorf("re-render test audio: %s: %w", testPath, err)
	}
	rows = min(rows, t.Rows)
	out := robustness.Dir(root, "avmnist")
	if renderedAlready(out, sum, weights, rows) {
		return nil
	}
	in, err := load()
	if err != nil {
		return fmt.Errorf("re-render test audio: %w", err)
	}
	check := min(renderCheckRows, rows)
	got, _, err := RenderTestAudio(in, seed, limit, check, own)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, audioCol.Uint8[:check*AudioSize]) {
		return fmt.Errorf("re-render test audio: the raw inputs do not give %s's audio at its own noise weight %g: they are not the inputs it was made from", testPath, own)
	}
	nm := &artifact.Manifest{Stage: "robustness noise weights", Params: map[string]any{"weights": weights, "rows": rows, "own_weight": own},
		Inputs: map[string]string{"avmnist/" + TestFile: sum}}
	var names []string
	for _, w := range weights {
		a, labels, err := RenderTestAudio(in, seed, limit, rows, w)
		if err != nil {
			return err
		}
		f := robustness.NoiseWeightFile(w)
		meta := map[string]string{"noise_weight": strconv.FormatFloat(w, 'g', -1, 64), "test_sha256": sum, "own_noise_weight": t.Meta["noise_gain"],
			"rows": fmt.Sprintf("the first %d rows of %s, audio re-rendered with the ESC-50 noise at weight %g", rows, TestFile, w)}
		cols := []dataset.Column{{Name: "label", Int64: labels}, {Name: "audio", Width: AudioSize, Uint8: a}}
		if err := dataset.Write(filepath.Join(out, f), cols, meta); err != nil {
			return err
		}
		names = append(names, f)
	}
	if err := nm.HashOutputs(out, names...); err != nil {
		return err
	}
	return artifact.WriteJSON(filepath.Join(out, robustness.NoiseWeightManifest), nm)
}

// renderedAlready reports whether dir holds the re-rendered audio of these
// weights, at least rows of it, for the test split with sha256 testSum,
// each file as its manifest records it.
func renderedAlready(dir, testSum string, weights []float64, rows int) bool {
	var m artifact.Manifest
	if artifact.ReadJSON(filepath.Join(dir, robustness.NoiseWeightManifest), &m) != nil || m.Inputs["avmnist/"+TestFile] != testSum {
		return false
	}
	if r, ok := m.Params["rows"].(float64); !ok || int(r) < rows {
		return false
	}
	for _, w := range weights {
		f := robustness.NoiseWeightFile(w)
		sum, err := artifact.SHA256File(filepath.Join(dir, f))
		if err != nil || m.Outputs[f] != sum {
			return false
		}
	}
	return true
}
