// Package reports turns run records into the paper's Tables I-III, in
// Markdown beside the paper's own numbers, and into PNG plots of the
// learning curves, per-head accuracies and the w_f schedule.
//
// It reads only run records (package runrecord) and the paper's numbers
// (manifests/paper-results.json), never a dataset or libtorch, so a report
// can be regenerated anywhere the runs folder is. Its Markdown depends only
// on those inputs: the same records give the same bytes.
//
// Records hold accuracies and F1 as fractions in [0, 1]; the tables show
// percentages. Spreads are sample standard deviations (see Stat).
package reports

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/runrecord"
)

// IndexFile is the results page inside the output folder.
const IndexFile = "README.md"

// Options adjust Generate.
type Options struct {
	// PaperResults is the paper's numbers; DefaultPaperResults when empty.
	PaperResults string
	// NoPlots skips the PNGs (and leaves any earlier ones alone).
	NoPlots bool
	// Claims is the paper's claims as comparisons; DefaultClaims when empty.
	Claims string
}

// Summary says what Generate found and wrote.
type Summary struct {
	Complete   int           // records with final metrics, used in the tables
	Incomplete int           // records without, left out of the tables
	Configs    []ConfigStats // every configuration the tables name or the runs hold, in report order
	NotRun     []string      // configurations the tables name that have no complete record
	Files      []string      // files written, relative to outDir, sorted
	Variant    string        // the AV-MNIST variant of this page ("" for the recipe)
	Variants   []Summary     // the variants' pages
}

// Generate reads every run record under runsDir (laid out as
// <config>/<seed>/record.json) and writes outDir/README.md with the tables
// and outDir/plots/*.png. An empty runsDir gives every row "not run"; a
// missing one is an error (most likely a wrong path). Plots left from earlier reports that this one does not
// make are removed, so the folder matches the page.
//
// Sweeps (m2mix sweep) lie in <runsDir>/sweeps/<name>/ with their
// sweep.json; each gets a section at the end of the main page (a table of
// mean ± std per grid point and a heat map) and its own page in
// <outDir>/sweeps/<name>/.
//
// Runs of an AV-MNIST generation variant lie in <runsDir>/variants/<name>/
// (as m2mix reproduce --avmnist-variant puts them); each variant gets its
// own page, <outDir>/variants/<name>/README.md with its Tables I and III
// beside the paper and its parameters in the header, linked from the main
// page.
func Generate(runsDir, outDir string, opts Options) (Summary, error) {
	if st, err := os.Stat(runsDir); err != nil || !st.IsDir() {
		return Summary{}, fmt.Errorf("runs folder %s: not a folder of run records (%v): train something first, or point --runs at one", runsDir, err)
	}
	variants, err := listVariants(runsDir)
	if err != nil {
		return Summary{}, err
	}
	sweeps, sweepFiles, err := sweepSections(runsDir, outDir)
	if err != nil {
		return Summary{}, err
	}
	sum, err := generatePage(runsDir, outDir, opts, "", variants, sweeps)
	if err != nil {
		return sum, err
	}
	sum.Files = append(sum.Files, sweepFiles...)
	for _, v := range variants {
		vs, err := generatePage(filepath.Join(runsDir, VariantsDir, v), filepath.Join(outDir, VariantsDir, v), opts, v, nil, "")
		if err != nil {
			return sum, fmt.Errorf("variant %s: %w", v, err)
		}
		for _, f := range vs.Files {
			sum.Files = append(sum.Files, VariantsDir+"/"+v+"/"+f)
		}
		sum.Variants = append(sum.Variants, vs)
	}
	sort.Strings(sum.Files)
	return sum, nil
}

// VariantsDir holds the runs (and report pages) of AV-MNIST variants.
const VariantsDir = "variants"

// listVariants names the variant folders under runsDir/variants.
func listVariants(runsDir string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(runsDir, VariantsDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("variant runs: %w", err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// generatePage writes one page: the recipe's runs (variant "", linking to the
// variants' pages) or one variant's.
// sweeps (the sweeps' sections) goes at the end of the page.
func generatePage(runsDir, outDir string, opts Options, variant string, variants []string, sweeps string) (Summary, error) {
	paperPath := opts.PaperResults
	if paperPath == "" {
		paperPath = DefaultPaperResults
	}
	paper, err := LoadPaper(paperPath)
	if err != nil {
		return Summary{}, err
	}
	recs, err := loadRecords(runsDir)
	if err != nil {
		return Summary{}, err
	}

	claimsPath := opts.Claims
	if claimsPath == "" {
		claimsPath = DefaultClaims
	}
	claims, err := LoadClaims(claimsPath)
	if err != nil {
		return Summary{}, err
	}
	robust, err := loadRobustness(runsDir)
	if err != nil {
		return Summary{}, err
	}

	groups := groupRecords(recs)
	r := &report{paper: paper, stats: map[string]ConfigStats{}, plots: map[string][]plotFile{}, variant: variant, variants: variants,
		groups: groups, claims: claims, robust: robust, sweeps: sweeps}
	r.order = paper.configs()
	var extra []string
	for c := range groups {
		if !slices.Contains(r.order, c) {
			extra = append(extra, c)
		}
	}
	for c := range robust {
		if !slices.Contains(r.order, c) && groups[c] == nil {
			extra = append(extra, c)
		}
	}
	sort.Strings(extra)
	r.order = append(r.order, extra...)

	sum := Summary{Variant: variant}
	for _, c := range r.order {
		g := groups[c]
		if g == nil {
			g = &group{Config: c}
		}
		cs := configStats(g)
		r.stats[c] = cs
		sum.Configs = append(sum.Configs, cs)
		r.complete = append(r.complete, g.Complete...)
		r.incomplete += len(g.Incomplete)
		if cs.Accuracy.N == 0 && !slices.Contains(extra, c) {
			sum.NotRun = append(sum.NotRun, c)
		}
	}
	sum.Complete, sum.Incomplete = len(r.complete), r.incomplete

	if !opts.NoPlots {
		if err := r.makePlots(groups); err != nil {
			return sum, err
		}
		if err := writePlots(outDir, r.plots, &sum); err != nil {
			return sum, err
		}
	}
	if err := artifact.WriteFile(filepath.Join(outDir, IndexFile), []byte(r.markdown())); err != nil {
		return sum, fmt.Errorf("report: %w", err)
	}
	sum.Files = append(sum.Files, IndexFile)
	sort.Strings(sum.Files)
	return sum, nil
}

// makePlots renders every plot into memory, keyed by configuration or, for
// the w_f plots, by table id.
func (r *report) makePlots(groups map[string]*group) error {
	if err := r.robustnessPlots(); err != nil {
		return err
	}
	runs := map[string][]runrecord.Record{}
	for _, c := range r.order {
		if g := groups[c]; g != nil {
			runs[c] = withHistory(g.all())
		}
	}
	for _, t := range r.paper.Tables {
		if !t.PlotWFusion {
			continue
		}
		var configs []string
		for _, row := range t.Rows {
			if row.Config != "" {
				configs = append(configs, row.Config)
			}
		}
		p, err := wFusionPlot(t.ID, t.Title, configs, runs)
		if err != nil {
			return err
		}
		if p != nil {
			r.plots[t.ID] = append(r.plots[t.ID], *p)
		}
	}
	for _, c := range r.order {
		if len(runs[c]) == 0 {
			continue
		}
		loss, err := lossPlot(c, runs[c])
		if err != nil {
			return err
		}
		r.plots[c] = append(r.plots[c], *loss)
		heads, err := headsPlot(c, runs[c])
		if err != nil {
			return err
		}
		if heads != nil {
			r.plots[c] = append(r.plots[c], *heads)
		}
	}
	return nil
}

// writePlots writes the PNGs and removes those an earlier report left that
// this one did not make.
func writePlots(outDir string, plots map[string][]plotFile, sum *Summary) error {
	dir := filepath.Join(outDir, plotsDir)
	keep := map[string]bool{}
	for _, k := range slices.Sorted(maps.Keys(plots)) {
		for _, p := range plots[k] {
			if err := artifact.WriteFile(filepath.Join(dir, p.name), p.png); err != nil {
				return fmt.Errorf("plot: %w", err)
			}
			keep[p.name] = true
			sum.Files = append(sum.Files, plotsDir+"/"+p.name)
		}
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("plots folder: %w", err)
	}
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".png") && !keep[e.Name()] {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("remove stale plot: %w", err)
			}
		}
	}
	return nil
}

func withHistory(recs []runrecord.Record) []runrecord.Record {
	var out []runrecord.Record
	for _, r := range recs {
		if len(r.History) > 0 {
			out = append(out, r)
		}
	}
	return out
}
