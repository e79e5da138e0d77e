package reports

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/m2mix/m2mix/runrecord"
)

// plotsDir is the folder, inside the results folder, that holds the PNGs.
const plotsDir = "plots"

// plotFile is one rendered plot.
type plotFile struct {
	name  string // file name inside plotsDir
	title string
	png   []byte
}

// series is one line of a plot.
type series struct {
	label string
	xys   plotter.XYs
}

// meanCurve averages value(epoch) over runs, per epoch number, skipping
// epochs a run did not report (value returns ok = false or NaN). Runs stop
// at different epochs, so later points may average fewer seeds.
func meanCurve(runs []runrecord.Record, value func(runrecord.Epoch) (float64, bool)) plotter.XYs {
	sum, count := map[int]float64{}, map[int]int{}
	for _, r := range runs {
		for _, e := range r.History {
			v, ok := value(e)
			if !ok || math.IsNaN(v) || math.IsInf(v, 0) {
				continue
			}
			sum[e.Epoch] += v
			count[e.Epoch]++
		}
	}
	epochs := make([]int, 0, len(sum))
	for e := range sum {
		epochs = append(epochs, e)
	}
	sort.Ints(epochs)
	xys := make(plotter.XYs, len(epochs))
	for i, e := range epochs {
		xys[i] = plotter.XY{X: float64(e + 1), Y: sum[e] / float64(count[e])} // epochs counted from 1
	}
	return xys
}

// lossPlot draws the mean training and validation loss per epoch.
func lossPlot(config string, runs []runrecord.Record) (*plotFile, error) {
	train := meanCurve(runs, func(e runrecord.Epoch) (float64, bool) { return e.TrainLoss, true })
	val := meanCurve(runs, func(e runrecord.Epoch) (float64, bool) { return e.ValLoss, true })
	title := fmt.Sprintf("%s: loss per epoch (%s)", config, seedsLabel(len(runs)))
	return render("loss_"+config+".png", title, axis{label: "loss", min: 0, max: math.NaN(), legendTop: true, headroom: 0.15}, []series{{"train", train}, {"validation", val}})
}

// headsPlot draws each head's mean validation accuracy per epoch.
func headsPlot(config string, runs []runrecord.Record) (*plotFile, error) {
	heads := map[string]bool{}
	for _, r := range runs {
		for _, e := range r.History {
			for h := range e.HeadAcc {
				heads[h] = true
			}
		}
	}
	if len(heads) == 0 {
		return nil, nil
	}
	var ss []series
	for _, h := range headOrder(heads) {
		xys := meanCurve(runs, func(e runrecord.Epoch) (float64, bool) {
			a, ok := e.HeadAcc[h]
			return 100 * a, ok
		})
		ss = append(ss, series{h, xys})
	}
	title := fmt.Sprintf("%s: validation accuracy per head (%s)", config, seedsLabel(len(runs)))
	return render("heads_"+config+".png", title, axis{label: "accuracy (%)", min: 0, max: 100}, ss)
}

// wFusionPlot draws the fusion-loss weight w_f per epoch for the given
// configurations (the linear-change schedule beside the fixed one).
func wFusionPlot(tableID, tableTitle string, configs []string, runs map[string][]runrecord.Record) (*plotFile, error) {
	var ss []series
	for _, c := range configs {
		if len(runs[c]) == 0 {
			continue
		}
		xys := meanCurve(runs[c], func(e runrecord.Epoch) (float64, bool) { return e.WFusion, true })
		if len(xys) > 0 {
			ss = append(ss, series{c, xys})
		}
	}
	if len(ss) == 0 {
		return nil, nil
	}
	title := fmt.Sprintf("%s: fusion-loss weight w_f per epoch", tableTitle)
	return render("wf_"+tableID+".png", title, axis{label: "w_f", min: 0, max: 1.05}, ss)
}

// axis fixes the y range of a plot and where its legend goes, so that the
// legend sits where the curves usually are not.
type axis struct {
	label     string
	min, max  float64 // NaN: fit the data
	legendTop bool
	headroom  float64 // extra room above the data for the legend, as a fraction of the range
}

// render draws the series as lines and encodes the plot as PNG.
func render(name, title string, y axis, ss []series) (*plotFile, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "epoch"
	p.X.Tick.Marker = epochTicks{}
	p.Y.Label.Text = y.label
	p.Add(plotter.NewGrid())
	p.Legend.Top = y.legendTop
	for i, s := range ss {
		if len(s.xys) == 0 {
			continue
		}
		l, err := plotter.NewLine(s.xys)
		if err != nil {
			return nil, fmt.Errorf("plot %s, line %s: %w", name, s.label, err)
		}
		l.Color = plotutil.Color(i)
		l.Dashes = plotutil.Dashes(i)
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(s.label, l)
		if len(s.xys) == 1 {
			// A single epoch draws no line; mark the point.
			sc, err := plotter.NewScatter(s.xys)
			if err != nil {
				return nil, fmt.Errorf("plot %s, point %s: %w", name, s.label, err)
			}
			sc.Color = l.Color
			p.Add(sc)
		}
	}
	// Fix the range after adding the lines, which widen it to their data.
	if !math.IsNaN(y.min) {
		p.Y.Min = y.min
	}
	if !math.IsNaN(y.max) {
		p.Y.Max = y.max
	}
	p.Y.Max += y.headroom * (p.Y.Max - p.Y.Min)
	w, err := p.WriterTo(16*vg.Centimeter, 10*vg.Centimeter, "png")
	if err != nil {
		return nil, fmt.Errorf("plot %s: %w", name, err)
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("plot %s: encode: %w", name, err)
	}
	return &plotFile{name: name, title: title, png: buf.Bytes()}, nil
}

// headOrder puts the fusion head first, then the others by name.
func headOrder(heads map[string]bool) []string {
	names := slices.Sorted(maps.Keys(heads))
	sort.SliceStable(names, func(i, j int) bool { return names[i] == "fusion" && names[j] != "fusion" })
	return names
}

func seedsLabel(n int) string {
	if n == 1 {
		return "1 seed"
	}
	return fmt.Sprintf("mean over %d seeds", n)
}

// epochTicks marks whole epochs only: every epoch on short runs, otherwise
// the default ticks that fall on whole numbers.
type epochTicks struct{}

func (epochTicks) Ticks(min, max float64) []plot.Tick {
	if max-min <= 12 {
		var ticks []plot.Tick
		for e := math.Ceil(min); e <= max; e++ {
			ticks = append(ticks, plot.Tick{Value: e, Label: strconv.Itoa(int(e))})
		}
		return ticks
	}
	var ticks []plot.Tick
	for _, t := range (plot.DefaultTicks{}).Ticks(min, max) {
		if t.Label != "" && t.Value != math.Trunc(t.Value) {
			continue
		}
		if t.Label != "" {
			t.Label = strconv.Itoa(int(t.Value))
		}
		ticks = append(ticks, t)
	}
	return ticks
}
