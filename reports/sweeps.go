package reports

import (
	"bytes"
	"errors"
	"fmt"
	"image/color"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/m2mix/m2mix/artifact"
)

// SweepsDir holds the runs (and report pages) of sweeps: <runs>/sweeps/<name>/.
const SweepsDir = "sweeps"

// SweepFileName is the description of a sweep in its runs folder.
const SweepFileName = "sweep.json"

// SweepInfo describes a sweep's grid to the report: which parameters it
// varies and the derived configuration of each grid point. m2mix sweep
// writes it into <runs>/sweeps/<name>/sweep.json.
type SweepInfo struct {
	Name        string       `json:"name"`
	Description string       `json:"description"`
	Base        string       `json:"base"`   // the configuration the grid varies
	Params      []string     `json:"params"` // e.g. loss.lc_eta, loss.lc_k
	Seeds       []int64      `json:"seeds"`
	Points      []SweepPoint `json:"points"` // in grid order, the last parameter varying fastest
}

// SweepPoint is one grid point: its values (as written in the sweep file,
// one per parameter) and the derived configuration's name.
type SweepPoint struct {
	Values []string `json:"values"`
	Config string   `json:"config"`
}

// HeatMapFile is a sweep's heat map inside its page's folder.
const HeatMapFile = "heatmap.png"

// sweepResult is one sweep's table and heat map.
type sweepResult struct {
	info    SweepInfo
	stats   []ConfigStats // per point
	heatmap []byte        // nil without exactly two parameters
}

// GenerateSweep reads the sweep in sweepRuns (its sweep.json and the run
// records <config>/<seed>/record.json beside it) and writes outDir/README.md
// (a table of mean ± std per grid point) and, for a two-parameter grid,
// outDir/heatmap.png (mean test accuracy per point).
func GenerateSweep(sweepRuns, outDir string) (Summary, error) {
	res, err := readSweep(sweepRuns)
	if err != nil {
		return Summary{}, err
	}
	return writeSweep(res, outDir)
}

func writeSweep(res *sweepResult, outDir string) (Summary, error) {
	var sum Summary
	if res.heatmap != nil {
		if err := artifact.WriteFile(filepath.Join(outDir, HeatMapFile), res.heatmap); err != nil {
			return sum, fmt.Errorf("sweep %s: %w", res.info.Name, err)
		}
		sum.Files = append(sum.Files, HeatMapFile)
	}
	page := "# Sweep " + res.info.Name + "\n\n" + res.markdown("")
	if err := artifact.WriteFile(filepath.Join(outDir, IndexFile), []byte(page)); err != nil {
		return sum, fmt.Errorf("sweep %s: %w", res.info.Name, err)
	}
	sum.Files = append(sum.Files, IndexFile)
	for _, cs := range res.stats {
		sum.Complete += len(cs.Seeds)
		sum.Incomplete += len(cs.Incomplete)
	}
	return sum, nil
}

// readSweep loads a sweep, its statistics and its heat map.
func readSweep(sweepRuns string) (*sweepResult, error) {
	var info SweepInfo
	if err := artifact.ReadJSON(filepath.Join(sweepRuns, SweepFileName), &info); err != nil {
		return nil, fmt.Errorf("sweep: %w", err)
	}
	if len(info.Params) == 0 || len(info.Points) == 0 {
		return nil, fmt.Errorf("sweep %s: %s has no parameters or no points", sweepRuns, SweepFileName)
	}
	for _, p := range info.Points {
		if len(p.Values) != len(info.Params) {
			return nil, fmt.Errorf("sweep %s: point %s has %d values for %d parameters", sweepRuns, p.Config, len(p.Values), len(info.Params))
		}
	}
	recs, err := loadRecords(sweepRuns)
	if err != nil {
		return nil, err
	}
	groups := groupRecords(recs)
	res := &sweepResult{info: info}
	for _, p := range info.Points {
		g := groups[p.Config]
		if g == nil {
			g = &group{Config: p.Config}
		}
		res.stats = append(res.stats, configStats(g))
	}
	if len(info.Params) == 2 {
		if res.heatmap, err = heatMap(info, res.stats); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// markdown is the sweep's description, table and heat map; linkPrefix goes
// before the heat map's file name (the main page links into the sweep's
// folder).
func (res *sweepResult) markdown(linkPrefix string) string {
	info := res.info
	var b strings.Builder
	if info.Description != "" {
		b.WriteString(info.Description + "\n\n")
	}
	fmt.Fprintf(&b, "Base configuration `%s`; seeds %s. Test accuracy and macro F1 of the reported head in %%, mean ± sample std over the seeds that completed.\n\n",
		info.Base, joinInts(info.Seeds))
	var head []string
	for _, p := range info.Params {
		head = append(head, "`"+p+"`")
	}
	head = append(head, "runs", "accuracy", "macro F1", "epochs", "configuration")
	writeRow(&b, head...)
	writeRule(&b, len(head))
	for i, p := range info.Points {
		cs := res.stats[i]
		cells := append([]string{}, p.Values...)
		runs := fmt.Sprint(len(cs.Seeds))
		if len(cs.Incomplete) > 0 {
			runs += fmt.Sprintf(" (+%d incomplete)", len(cs.Incomplete))
		}
		cells = append(cells, runs, fmtStat(cs.Accuracy, 2), fmtStat(cs.MacroF1, 2), fmtStat(cs.Epochs, 1), "`"+p.Config+"`")
		writeRow(&b, cells...)
	}
	b.WriteString("\n")
	if res.heatmap != nil {
		fmt.Fprintf(&b, "![%s: mean test accuracy](%s)\n\n", info.Name, linkPrefix+HeatMapFile)
	} else {
		fmt.Fprintf(&b, "(No heat map: the grid has %d parameters; a heat map needs two.)\n\n", len(info.Params))
	}
	return b.String()
}

// listSweeps names the sweeps under runsDir/sweeps that hold a sweep.json.
func listSweeps(runsDir string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(runsDir, SweepsDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sweep runs: %w", err)
	}
	var out []string
	for _, e := range ents {
		if _, err := os.Stat(filepath.Join(runsDir, SweepsDir, e.Name(), SweepFileName)); e.IsDir() && err == nil {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// sweepGrid is a two-parameter sweep's mean accuracies: columns are the
// second parameter's values, rows the first's.
type sweepGrid struct {
	rows, cols []string
	z          [][]float64 // [row][col], NaN where no run completed
}

func (g sweepGrid) Dims() (c, r int)   { return len(g.cols), len(g.rows) }
func (g sweepGrid) Z(c, r int) float64 { return g.z[r][c] }
func (g sweepGrid) X(c int) float64    { return float64(c) }
func (g sweepGrid) Y(r int) float64    { return float64(r) }

// heatMap draws mean test accuracy over a two-parameter grid, each cell
// labelled with its value; cells without a complete run are left blank.
func heatMap(info SweepInfo, stats []ConfigStats) ([]byte, error) {
	var g sweepGrid
	index := func(xs *[]string, v string) int {
		for i, x := range *xs {
			if x == v {
				return i
			}
		}
		*xs = append(*xs, v)
		return len(*xs) - 1
	}
	type cell struct{ r, c int }
	cells := map[cell]float64{}
	for i, p := range info.Points {
		r, c := index(&g.rows, p.Values[0]), index(&g.cols, p.Values[1])
		if stats[i].Accuracy.N > 0 {
			cells[cell{r, c}] = stats[i].Accuracy.Mean
		}
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	g.z = make([][]float64, len(g.rows))
	for r := range g.rows {
		g.z[r] = make([]float64, len(g.cols))
		for c := range g.cols {
			v, ok := cells[cell{r, c}]
			if !ok {
				v = math.NaN()
			} else {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
			g.z[r][c] = v
		}
	}
	p := plot.New()
	p.Title.Text = info.Name + ": mean test accuracy (%)"
	if !math.IsInf(lo, 0) {
		p.Title.Text += "\nblue " + fmtNum(lo, 2) + ", red " + fmtNum(hi, 2)
	}
	p.X.Label.Text = info.Params[1]
	p.Y.Label.Text = info.Params[0]
	pal := moreland.SmoothBlueRed().Palette(64)
	hm := plotter.NewHeatMap(g, pal)
	hm.NaN = color.Transparent
	if !math.IsInf(lo, 0) {
		if hi == lo {
			lo, hi = lo-0.5, hi+0.5
		}
		hm.Min, hm.Max = lo, hi
	}
	p.Add(hm)
	var xys []plotter.XY
	var labels []string
	for r := range g.rows {
		for c := range g.cols {
			if !math.IsNaN(g.z[r][c]) {
				xys = append(xys, plotter.XY{X: float64(c), Y: float64(r)})
				labels = append(labels, fmtNum(g.z[r][c], 2))
			}
		}
	}
	if len(xys) > 0 {
		l, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
		if err != nil {
			return nil, fmt.Errorf("heat map %s: %w", info.Name, err)
		}
		for i := range l.TextStyle {
			l.TextStyle[i].XAlign, l.TextStyle[i].YAlign = -0.5, -0.5
		}
		p.Add(l)
	}
	p.X.Tick.Marker = indexTicks(g.cols)
	p.Y.Tick.Marker = indexTicks(g.rows)
	p.X.Min, p.X.Max = -0.5, float64(len(g.cols))-0.5
	p.Y.Min, p.Y.Max = -0.5, float64(len(g.rows))-0.5
	w, err := p.WriterTo(12*vg.Centimeter, 10*vg.Centimeter, "png")
	if err != nil {
		return nil, fmt.Errorf("heat map %s: %w", info.Name, err)
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("heat map %s: encode: %w", info.Name, err)
	}
	return buf.Bytes(), nil
}

// indexTicks labels positions 0, 1, ... with the grid's values.
type indexTicks []string

func (t indexTicks) Ticks(min, max float64) []plot.Tick {
	var out []plot.Tick
	for i, s := range t {
		out = append(out, plot.Tick{Value: float64(i), Label: s})
	}
	return out
}

// sweepSections renders every sweep under runsDir for the main page (links
// into <out>/sweeps/<name>/) and writes each sweep's own page.
func sweepSections(runsDir, outDir string) (string, []string, error) {
	names, err := listSweeps(runsDir)
	if err != nil || len(names) == 0 {
		return "", nil, err
	}
	var b strings.Builder
	var files []string
	b.WriteString("## Sweeps\n\n")
	for _, n := range names {
		res, err := readSweep(filepath.Join(runsDir, SweepsDir, n))
		if err != nil {
			return "", nil, err
		}
		fmt.Fprintf(&b, "### %s\n\n%s", n, res.markdown(SweepsDir+"/"+n+"/"))
		sum, err := writeSweep(res, filepath.Join(outDir, SweepsDir, n))
		if err != nil {
			return "", nil, err
		}
		for _, f := range sum.Files {
			files = append(files, SweepsDir+"/"+n+"/"+f)
		}
	}
	return b.String(), files, nil
}
