package reports

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/m2mix/m2mix/artifact"
)

// writeSweepRuns lays out a 2 x 2 sweep with two seeds: one point has one
// complete seed and one incomplete, one point has no run at all.
func writeSweepRuns(t *testing.T, runs string) {
	t.Helper()
	dir := filepath.Join(runs, SweepsDir, "lc")
	info := SweepInfo{Name: "lc", Description: "A test grid.", Base: "m2mixer_s", Params: []string{"loss.lc_eta", "loss.lc_k"}, Seeds: []int64{1, 2},
		Points: []SweepPoint{
			{Values: []string{"0", "0"}, Config: "s+lc_eta=0+lc_k=0"},
			{Values: []string{"0", "2"}, Config: "s+lc_eta=0+lc_k=2"},
			{Values: []string{"0.05", "0"}, Config: "s+lc_eta=0.05+lc_k=0"},
			{Values: []string{"0.05", "2"}, Config: "s+lc_eta=0.05+lc_k=2"},
		}}
	if err := artifact.WriteJSON(filepath.Join(dir, SweepFileName), info); err != nil {
		t.Fatal(err)
	}
	writeRuns(t, dir,
		fakeRun{config: "s+lc_eta=0+lc_k=0", seed: 1, acc: 0.90, macro: 0.80},
		fakeRun{config: "s+lc_eta=0+lc_k=0", seed: 2, acc: 0.92, macro: 0.84},
		fakeRun{config: "s+lc_eta=0+lc_k=2", seed: 1, acc: 0.70, macro: 0.60, epochs: 2},
		fakeRun{config: "s+lc_eta=0+lc_k=2", seed: 2, acc: 0.70, macro: 0.60, incomplete: true},
		fakeRun{config: "s+lc_eta=0.05+lc_k=0", seed: 1, acc: 0.50, macro: 0.40},
		fakeRun{config: "s+lc_eta=0.05+lc_k=0", seed: 2, acc: 0.56, macro: 0.46},
	)
}

// TestSweepTable: the sweep's rows are its grid points in order, each with
// mean ± sample std over its complete seeds (hand-computed: 90 and 92 give
// 91.00 ± 1.41), a point without runs shows dashes; the main page carries
// the same table and links the heat map inside the sweep's folder; the
// heat map is a PNG; the same records give the same bytes.
func TestSweepTable(t *testing.T) {
	dir := t.TempDir()
	runs, out := filepath.Join(dir, "runs"), filepath.Join(dir, "results")
	writeSweepRuns(t, runs)
	sum, md := generate(t, runs, out)
	rows := table(t, md, "Sweeps")
	want := [][]string{
		{"`loss.lc_eta`", "`loss.lc_k`", "runs", "accuracy", "macro F1", "epochs", "configuration"},
		{"0", "0", "2", "91.00 ± 1.41", "82.00 ± 2.83", "3.0 ± 0.0", "`s+lc_eta=0+lc_k=0`"},
		{"0", "2", "1 (+1 incomplete)", "70.00", "60.00", "2.0", "`s+lc_eta=0+lc_k=2`"},
		{"0.05", "0", "2", "53.00 ± 4.24", "43.00 ± 4.24", "3.0 ± 0.0", "`s+lc_eta=0.05+lc_k=0`"},
		{"0.05", "2", "0", "–", "–", "–", "`s+lc_eta=0.05+lc_k=2`"},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Fatalf("sweep table:\n%q\nwant\n%q", rows, want)
	}
	if !strings.Contains(md, "](sweeps/lc/heatmap.png)") || !strings.Contains(md, "A test grid.") {
		t.Errorf("main page: no heat map link or description:\n%s", md)
	}
	for _, f := range []string{"sweeps/lc/README.md", "sweeps/lc/heatmap.png"} {
		found := false
		for _, g := range sum.Files {
			found = found || g == f
		}
		if !found {
			t.Errorf("%s not in the summary's files %v", f, sum.Files)
		}
	}
	page, err := os.ReadFile(filepath.Join(out, "sweeps", "lc", IndexFile))
	if err != nil || !strings.Contains(string(page), "](heatmap.png)") || !strings.Contains(string(page), "| 0 | 0 | 2 | 91.00 ± 1.41 |") {
		t.Fatalf("sweep page (%v):\n%s", err, page)
	}
	hm, err := os.ReadFile(filepath.Join(out, "sweeps", "lc", HeatMapFile))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(hm))
	if err != nil || img.Bounds().Dx() < 100 {
		t.Fatalf("heat map: %v %v", err, img)
	}
	// GenerateSweep alone writes the same page and heat map.
	alone := filepath.Join(dir, "alone")
	if _, err := GenerateSweep(filepath.Join(runs, SweepsDir, "lc"), alone); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{IndexFile, HeatMapFile} {
		a, _ := os.ReadFile(filepath.Join(out, "sweeps", "lc", f))
		b, _ := os.ReadFile(filepath.Join(alone, f))
		if !bytes.Equal(a, b) {
			t.Errorf("%s: GenerateSweep and Generate differ", f)
		}
	}
	_, md2 := generate(t, runs, filepath.Join(dir, "again"))
	hm2, _ := os.ReadFile(filepath.Join(dir, "again", "sweeps", "lc", HeatMapFile))
	if md != md2 || !bytes.Equal(hm, hm2) {
		t.Error("the same records gave different bytes")
	}
}

// TestSweepOneParam: a one-parameter grid has a table and says why it has
// no heat map; a sweep.json whose points and parameters disagree is refused.
func TestSweepOneParam(t *testing.T) {
	dir := t.TempDir()
	sw := filepath.Join(dir, "runs", SweepsDir, "drop")
	info := SweepInfo{Name: "drop", Base: "m2mixer_s", Params: []string{"dropout"}, Seeds: []int64{1},
		Points: []SweepPoint{{Values: []string{"0.1"}, Config: "a"}, {Values: []string{"0.2"}, Config: "b"}}}
	if err := artifact.WriteJSON(filepath.Join(sw, SweepFileName), info); err != nil {
		t.Fatal(err)
	}
	writeRuns(t, sw, fakeRun{config: "a", seed: 1, acc: 0.5, macro: 0.5})
	_, md := generate(t, filepath.Join(dir, "runs"), filepath.Join(dir, "results"))
	if !strings.Contains(md, "| 0.1 | 1 | 50.00 |") || !strings.Contains(md, "a heat map needs two") {
		t.Fatalf("one-parameter sweep:\n%s", md)
	}
	if _, err := os.Stat(filepath.Join(dir, "results", SweepsDir, "drop", HeatMapFile)); err == nil {
		t.Error("a one-parameter sweep drew a heat map")
	}
	info.Points[1].Values = []string{"0.2", "3"}
	if err := artifact.WriteJSON(filepath.Join(sw, SweepFileName), info); err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(filepath.Join(dir, "runs"), filepath.Join(dir, "r2"), Options{PaperResults: paperFile}); err == nil || !strings.Contains(err.Error(), "2 values for 1 parameters") {
		t.Errorf("a point with two values for one parameter: %v", err)
	}
}
