package reports

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestSummarize(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name           string
		xs             []float64
		mean, std, max float64
	}{
		{"empty", nil, nan, nan, nan},
		{"one value has no spread", []float64{5}, 5, nan, 5},
		{"two", []float64{70, 72}, 71, math.Sqrt2, 72},
		// Population std is 2 here; the sample std is sqrt(32/7).
		{"sample, not population", []float64{2, 4, 4, 4, 5, 5, 7, 9}, 5, math.Sqrt(32.0 / 7), 9},
		{"negative", []float64{-1, -3}, -2, math.Sqrt2, -1},
	}
	same := func(a, b float64) bool { return math.IsNaN(a) && math.IsNaN(b) || math.Abs(a-b) < 1e-12 }
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Summarize(tt.xs)
			if s.N != len(tt.xs) || !same(s.Mean, tt.mean) || !same(s.Std, tt.std) || !same(s.Max, tt.max) {
				t.Errorf("got %+v, want mean %v std %v max %v", s, tt.mean, tt.std, tt.max)
			}
		})
	}
}

// standardRuns is a small set of runs touching every kind of row.
func standardRuns() []fakeRun {
	avHeads := func(f, i, a float64) map[string]float64 {
		return map[string]float64{"fusion": f, "image": i, "audio": a}
	}
	return []fakeRun{
		{config: "mmixer", seed: 42, acc: 0.70, macro: 0.69, train: 100, test: 2},
		{config: "mmixer", seed: 43, acc: 0.72, macro: 0.71, train: 110, test: 2.2},
		{config: "mmixer", seed: 44, incomplete: true}, // must not count
		{config: "m2mixer_m", seed: 42, acc: 0.73, macro: 0.72, train: 100, test: 2, heads: avHeads(0.73, 0.40, 0.66)},
		{config: "m2mixer_m", seed: 43, acc: 0.74, macro: 0.73, train: 100, test: 2, heads: avHeads(0.74, 0.41, 0.64)},
		{config: "m2mixer_s", seed: 42, incomplete: true},
		{config: "unimodal_image", seed: 42, acc: 0.395, macro: 0.38, train: 50, test: 1},
	}
}

func generate(t *testing.T, runs, out string) (Summary, string) {
	t.Helper()
	sum, err := Generate(runs, out, Options{PaperResults: paperFile})
	if err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(out, IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	return sum, string(md)
}

// table returns the cells of the first Markdown table after the heading
// that starts with title, header row first, rule row dropped.
func table(t *testing.T, md, title string) [][]string {
	t.Helper()
	i := strings.Index(md, "\n## "+title)
	if i < 0 {
		t.Fatalf("no section %q", title)
	}
	var rows [][]string
	for _, line := range strings.Split(md[i+1:], "\n")[1:] {
		if !strings.HasPrefix(line, "|") {
			if len(rows) > 0 {
				break
			}
			continue
		}
		if strings.HasPrefix(line, "|---") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		for j := range cells {
			cells[j] = strings.TrimSpace(cells[j])
		}
		rows = append(rows, cells)
	}
	return rows
}

// row returns the table row whose first two cells are name and source.
func row(t *testing.T, rows [][]string, name, source string) []string {
	t.Helper()
	for _, r := range rows {
		if r[0] == name && r[1] == source {
			return r
		}
	}
	t.Fatalf("no row %q / %q", name, source)
	return nil
}

func TestTables(t *testing.T) {
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	writeRuns(t, runs, standardRuns()...)
	sum, md := generate(t, runs, filepath.Join(dir, "results"))

	if sum.Complete != 5 || sum.Incomplete != 2 {
		t.Errorf("summary counts %d complete, %d incomplete; want 5, 2", sum.Complete, sum.Incomplete)
	}
	wantNotRun := []string{"m2mixer_b", "m2mixer_s", "m2mixer_h", "m2mixer_lc", "unimodal_audio", "probe_image", "probe_audio",
		"late_fusion", "lrtf", "refnet", "cca", "mi_matrix", "gradblend", "mimic_late_fusion", "mimic_lrtf", "mimic_mi_matrix", "mimic_gradblend"}
	if !sameSet(sum.NotRun, wantNotRun) {
		t.Errorf("not run %v, want %v", sum.NotRun, wantNotRun)
	}
	if !strings.Contains(md, "| Run records | 5 complete (in the tables), 2 incomplete") {
		t.Error("header does not count the incomplete records")
	}
	if !strings.Contains(md, "sample standard deviation (n − 1 in the denominator)") {
		t.Error("header does not state the std convention")
	}

	t1 := table(t, md, "Table I")
	wantHead := []string{"Architecture", "Source", "n", "Acc. (%) mean ± std", "Acc. (%) max", "Δ acc.",
		"Macro F1 (%) mean ± std", "Training time (s)", "Test time (s)", "Params (M)"}
	if !slices.Equal(t1[0], wantHead) {
		t.Errorf("Table I columns %q, want %q", t1[0], wantHead)
	}
	for _, r := range t1 {
		if len(r) != len(wantHead) {
			t.Errorf("Table I row %q has %d cells, want %d", r[0], len(r), len(wantHead))
		}
	}
	// Baselines we do not run are quoted; those we run have the paper's row
	// and ours beneath it.
	for _, b := range []string{"MVAE [27]", "MFM [24]"} {
		row(t, t1, b, "*paper (quoted)*")
	}
	for b, cfg := range map[string]string{"Simple Late Fusion": "late_fusion", "LRTF": "lrtf", "RefNet": "refnet", "CCA": "cca",
		"MI-Matrix": "mi_matrix", "GradBlend": "gradblend"} {
		row(t, t1, b+" "+map[string]string{"late_fusion": "[10]", "lrtf": "[15]", "refnet": "[20]", "cca": "[22]", "mi_matrix": "[6]", "gradblend": "[26]"}[cfg], "*paper*")
		if r := row(t, t1, b+" (`"+cfg+"`)", "**ours**"); !strings.Contains(r[3], "not run") {
			t.Errorf("%s: our row %q, want it marked not run", cfg, r)
		}
	}
	if r := row(t, t1, "GradBlend [26]", "*paper*"); r[3] != "68.71 ± 0.7" || r[4] != "69.51" || r[7] != "43768 ± 5554" {
		t.Errorf("GradBlend row %q does not quote the paper", r)
	}
	// Paper numbers keep the paper's own precision.
	if r := row(t, t1, "M2-Mixer_S", "*paper*"); r[3] != "71.99 ± 0.37" || r[8] != "4.516 ± 0.34" {
		t.Errorf("M2-Mixer_S paper row %q", r)
	}

	// mmixer: accuracies 70 and 72 (the incomplete seed 44 left out).
	mm := row(t, t1, "MMixer (`mmixer`)", "**ours**")
	want := []string{"MMixer (`mmixer`)", "**ours**", "2", "71.00 ± 1.41", "72.00", "-0.58", "70.00 ± 1.41", "105.0 ± 7.1", "2.10 ± 0.14", "0.877"}
	if !slices.Equal(mm, want) {
		t.Errorf("mmixer row\n got %q\nwant %q", mm, want)
	}
	if r := row(t, t1, "M2-Mixer_M (`m2mixer_m`)", "**ours**"); r[3] != "73.50 ± 0.71" || r[5] != "+0.69" {
		t.Errorf("m2mixer_m row %q", r)
	}
	if r := row(t, t1, "M2-Mixer_B (`m2mixer_b`)", "**ours**"); r[2] != "0" || r[3] != "not run" {
		t.Errorf("m2mixer_b row %q, want not run", r)
	}
	if r := row(t, t1, "M2-Mixer_S (`m2mixer_s`)", "**ours**"); r[3] != "not run to the end (1 incomplete)" {
		t.Errorf("m2mixer_s row %q", r)
	}

	// Table II: no MIMIC-III records at all.
	if !strings.Contains(md, "**Not run:** no MIMIC-III records: it needs MultiBench's im.pk") {
		t.Error("Table II does not say why it is empty")
	}
	t2 := table(t, md, "Table II")
	if !slices.Contains(t2[0], "Micro F1 (%) mean ± std") || !slices.Contains(t2[0], "Macro F1 (%) mean ± std") {
		t.Errorf("Table II columns %q", t2[0])
	}
	for _, name := range []string{"M2-Mixer_H (`m2mixer_h`)", "M2-Mixer_LC (`m2mixer_lc`)"} {
		if r := row(t, t2, name, "**ours**"); r[3] != "not run" {
			t.Errorf("%s: %q", name, r)
		}
	}
	if r := row(t, t2, "M2-Mixer_LC", "*paper*"); r[3] != "78.43 ± 0.3" {
		t.Errorf("LC paper row %q", r)
	}

	// Table III: rows as the paper's table labels them (audio 39.93, image 66.10).
	t3 := table(t, md, "Table III")
	if !slices.Equal(t3[0], []string{"Modality", "Source", "Uni-modal models", "MMixer", "M2-Mixer_M"}) {
		t.Errorf("Table III columns %q", t3[0])
	}
	if r := row(t, t3, "Audio", "*paper*"); !slices.Equal(r[2:], []string{"39.93", "35.58", "39.90"}) {
		t.Errorf("Table III paper audio row %q", r)
	}
	if r := row(t, t3, "Image", "*paper*"); !slices.Equal(r[2:], []string{"66.10", "63.95", "66.10"}) {
		t.Errorf("Table III paper image row %q", r)
	}
	if r := row(t, t3, "Image", "**ours**"); r[2] != "39.50 (n=1)" || r[3] != "`probe_image`: not run" || r[4] != "40.50 ± 0.71 (n=2)" {
		t.Errorf("Table III our image row %q", r)
	}
	if r := row(t, t3, "Image", "Δ ours − paper"); r[2] != "-26.60" || r[4] != "-25.60" {
		t.Errorf("Table III image deltas %q", r)
	}
	if r := row(t, t3, "Audio", "**ours**"); r[4] != "65.00 ± 1.41 (n=2)" {
		t.Errorf("Table III our audio row %q", r)
	}
	if r := row(t, t3, "Audio", "Δ ours − paper"); r[4] != "+25.10" {
		t.Errorf("Table III audio deltas %q", r)
	}

	// Plots: one per configuration with a history, and the w_f plot only
	// when a MIMIC-III run exists.
	for _, f := range []string{"README.md", "plots/loss_mmixer.png", "plots/heads_m2mixer_m.png", "plots/loss_m2mixer_s.png"} {
		if !slices.Contains(sum.Files, f) {
			t.Errorf("%s not written; files %v", f, sum.Files)
		}
	}
	if slices.Contains(sum.Files, "plots/wf_table2.png") {
		t.Error("w_f plot drawn without MIMIC-III runs")
	}
	if !strings.Contains(md, "![mmixer: loss per epoch (mean over 3 seeds)](plots/loss_mmixer.png)") {
		t.Error("the page does not show the mmixer loss plot (over all three seeds, incomplete included)")
	}
}

func TestByteIdentical(t *testing.T) {
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	writeRuns(t, runs, standardRuns()...)
	writeRuns(t, runs,
		fakeRun{config: "m2mixer_lc", dataset: "mimic", seed: 42, acc: 0.78, macro: 0.4, train: 10, test: 0.3, epochs: 20, wfStep: 0.05,
			heads: map[string]float64{"fusion": 0.78, "static": 0.7, "time": 0.76}},
		fakeRun{config: "m2mixer_lc", dataset: "mimic", seed: 43, acc: 0.77, macro: 0.41, train: 11, test: 0.3, epochs: 15, wfStep: 0.05,
			heads: map[string]float64{"fusion": 0.77, "static": 0.69, "time": 0.75}},
	)
	sumA, mdA := generate(t, runs, filepath.Join(dir, "a"))
	sumB, mdB := generate(t, runs, filepath.Join(dir, "b"))
	if mdA != mdB {
		t.Fatal("two generations from the same records differ")
	}
	if !slices.Equal(sumA.Files, sumB.Files) || !slices.Contains(sumA.Files, "plots/wf_table2.png") {
		t.Fatalf("files %v and %v", sumA.Files, sumB.Files)
	}
	for _, f := range sumA.Files {
		a, errA := os.ReadFile(filepath.Join(dir, "a", f))
		b, errB := os.ReadFile(filepath.Join(dir, "b", f))
		if errA != nil || errB != nil {
			t.Fatal(errA, errB)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between two generations", f)
		}
	}
	// Regenerating in place gives the same page too.
	if _, md := generate(t, runs, filepath.Join(dir, "a")); md != mdA {
		t.Error("regenerating in place changed the page")
	}
}

func TestNoRuns(t *testing.T) {
	dir := t.TempDir()
	if _, err := Generate(filepath.Join(dir, "no-such-runs"), filepath.Join(dir, "results"), Options{PaperResults: paperFile}); err == nil || !strings.Contains(err.Error(), "no-such-runs") {
		t.Fatalf("a runs folder that does not exist: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "results")); err == nil {
		t.Fatal("a refused report wrote its folder")
	}
	empty := filepath.Join(dir, "runs")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	sum, md := generate(t, empty, filepath.Join(dir, "results"))
	if sum.Complete != 0 || len(sum.NotRun) != 20 || !slices.Equal(sum.Files, []string{"README.md"}) {
		t.Errorf("summary %+v", sum)
	}
	if !strings.Contains(md, "No run has a learning curve yet.") {
		t.Error("empty report does not say there are no plots")
	}
	if r := row(t, table(t, md, "Table I"), "MMixer (`mmixer`)", "**ours**"); r[3] != "not run" {
		t.Errorf("row %q", r)
	}
}

func TestStalePlotsRemoved(t *testing.T) {
	dir := t.TempDir()
	runs, out := filepath.Join(dir, "runs"), filepath.Join(dir, "results")
	writeRuns(t, runs, standardRuns()...)
	generate(t, runs, out)
	stale := filepath.Join(out, plotsDir, "loss_m2mixer_s.png")
	if _, err := os.Stat(stale); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(runs, "m2mixer_s")); err != nil {
		t.Fatal(err)
	}
	generate(t, runs, out)
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("plot of a configuration without records left behind: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, plotsDir, "loss_mmixer.png")); err != nil {
		t.Errorf("current plot removed: %v", err)
	}
}

func TestBadRecords(t *testing.T) {
	tests := []struct {
		name  string
		write func(t *testing.T, runs string)
		want  string
	}{
		{"percent instead of fraction", func(t *testing.T, runs string) {
			writeRuns(t, runs, fakeRun{config: "mmixer", seed: 1, acc: 71.5, macro: 0.7})
		}, "accuracy = 71.5, want a fraction"},
		{"head in percent", func(t *testing.T, runs string) {
			writeRuns(t, runs, fakeRun{config: "mmixer", seed: 1, acc: 0.7, macro: 0.7, heads: map[string]float64{"fusion": 0.7, "image": 40}})
		}, "head_accuracy.image = 40"},
		{"record in the wrong folder", func(t *testing.T, runs string) {
			writeRuns(t, runs, fakeRun{config: "mmixer", seed: 1, acc: 0.7})
			if err := os.Rename(filepath.Join(runs, "mmixer"), filepath.Join(runs, "m2mixer_m")); err != nil {
				t.Fatal(err)
			}
		}, `config "mmixer" does not match its folder`},
		{"wrong seed folder", func(t *testing.T, runs string) {
			writeRuns(t, runs, fakeRun{config: "mmixer", seed: 1, acc: 0.7})
			if err := os.Rename(filepath.Join(runs, "mmixer", "1"), filepath.Join(runs, "mmixer", "2")); err != nil {
				t.Fatal(err)
			}
		}, "seed 1 does not match its folder"},
		{"not JSON", func(t *testing.T, runs string) {
			p := filepath.Join(runs, "mmixer", "1", "record.json")
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.WriteFile(p, []byte("{"), 0o644)
		}, "decode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			runs := filepath.Join(dir, "runs")
			tt.write(t, runs)
			_, err := Generate(runs, filepath.Join(dir, "out"), Options{PaperResults: paperFile})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestPaperFile(t *testing.T) {
	p, err := LoadPaper(paperFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Tables) != 2 || len(p.Tables[0].Rows) != 13 || len(p.Tables[1].Rows) != 9 {
		t.Fatalf("want Table I with 13 rows and Table II with 9")
	}
	want := []string{"late_fusion", "lrtf", "refnet", "cca", "mi_matrix", "gradblend", "mmixer", "m2mixer_b", "m2mixer_m", "m2mixer_s",
		"mimic_late_fusion", "mimic_lrtf", "mimic_mi_matrix", "mimic_gradblend", "m2mixer_h", "m2mixer_lc",
		"unimodal_audio", "unimodal_image", "probe_audio", "probe_image"} // Table III in the paper's order: audio, then image
	if got := p.configs(); !slices.Equal(got, want) {
		t.Errorf("configurations %v, want %v", got, want)
	}
}

func TestPaperFileErrors(t *testing.T) {
	base := `{"tables":[{"id":"t1","title":"T","dataset":"d","paper_f1":"macro","f1_columns":["macro"],
		"rows":[{"name":"A","acc_mean":1}]}],
		"feature_extractors":{"id":"t3","title":"T3","columns":[{"name":"c","what":"w"}],
		"rows":[{"modality":"Image","cells":[{"paper":1,"config":"x"}]}]}}`
	tests := []struct {
		name, old, new, want string
	}{
		{"valid", "", "", ""},
		{"bad f1 kind", `"paper_f1":"macro"`, `"paper_f1":"weighted"`, `paper_f1 "weighted"`},
		{"repeated id", `"id":"t3"`, `"id":"t1"`, "repeated id"},
		{"cells do not match columns", `[{"paper":1,"config":"x"}]`, `[]`, "0 cells for 1 columns"},
		{"unknown field", `"dataset":"d"`, `"datset":"d"`, "unknown field"},
		{"number as text", `"acc_mean":1`, `"acc_mean":"x"`, "invalid number literal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "p.json")
			if err := os.WriteFile(path, []byte(strings.Replace(base, tt.old, tt.new, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadPaper(path)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestVariantPages: runs of an AV-MNIST variant, under runs/variants/<name>,
// get their own page with Tables I and III (no MIMIC-III table), the
// variant's parameters and the estimate notice, linked from the main page;
// the main page's tables hold the recipe's runs only.
func TestVariantPages(t *testing.T) {
	dir := t.TempDir()
	runs, out := filepath.Join(dir, "runs"), filepath.Join(dir, "results")
	writeRuns(t, runs, standardRuns()...)
	v := map[string]any{"name": "public-like", "estimate": true, "pca_k": 5.0, "pairing": "pool-race"}
	writeRuns(t, filepath.Join(runs, VariantsDir, "public-like"),
		fakeRun{config: "unimodal_audio", seed: 42, acc: 0.40, macro: 0.39, train: 50, test: 1, variant: v},
		fakeRun{config: "mmixer", seed: 42, acc: 0.66, macro: 0.65, train: 50, test: 1, variant: v})
	sum, md := generate(t, runs, out)
	if !strings.Contains(md, "[`public-like`](variants/public-like/README.md)") {
		t.Errorf("the main page does not link the variant's page")
	}
	if r := row(t, table(t, md, "Table I"), "MMixer (`mmixer`)", "**ours**"); r[2] != "2" {
		t.Errorf("the main page's MMixer row holds variant runs: %q", r)
	}
	if len(sum.Variants) != 1 || sum.Variants[0].Complete != 2 || !slices.Contains(sum.Files, "variants/public-like/README.md") {
		t.Fatalf("summary: %+v", sum)
	}
	b, err := os.ReadFile(filepath.Join(out, VariantsDir, "public-like", IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	vmd := string(b)
	for _, want := range []string{"variant `public-like`", `"pca_k":5`, "**These parameters are an estimate**", "## Table I", "## Table III"} {
		if !strings.Contains(vmd, want) {
			t.Errorf("variant page lacks %q", want)
		}
	}
	if strings.Contains(vmd, "## Table II:") {
		t.Error("the variant page shows the MIMIC-III table")
	}
	if r := row(t, table(t, vmd, "Table III"), "Audio", "**ours**"); r[2] != "40.00 (n=1)" {
		t.Errorf("variant Table III audio row %q", r)
	}
}
