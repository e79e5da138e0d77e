package reports

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/robustness"
)

// loadRobustness reads every <runs>/<config>/<seed>/robustness.json, by
// configuration, sorted by seed.
func loadRobustness(runsDir string) (map[string][]robustness.Result, error) {
	out := map[string][]robustness.Result{}
	if _, err := os.Stat(runsDir); errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	paths, err := filepath.Glob(filepath.Join(runsDir, "*", "*", robustness.FileName))
	if err != nil {
		return nil, fmt.Errorf("list robustness results: %w", err)
	}
	for _, p := range paths {
		var r robustness.Result
		if err := artifact.ReadJSON(p, &r); err != nil {
			return nil, fmt.Errorf("robustness result: %w", err)
		}
		seedDir := filepath.Dir(p)
		if r.Config != filepath.Base(filepath.Dir(seedDir)) || strconv.FormatInt(r.Seed, 10) != filepath.Base(seedDir) {
			return nil, fmt.Errorf("robustness result %s: config %q seed %d do not match its folder", p, r.Config, r.Seed)
		}
		if _, ok := r.Find(robustness.Corruption{Kind: robustness.Clean}); !ok {
			return nil, fmt.Errorf("robustness result %s: no clean accuracy of head %q", p, r.Head)
		}
		for _, c := range r.Conditions {
			for h, a := range c.Accuracy {
				if !(a >= 0 && a <= 1) {
					return nil, fmt.Errorf("robustness result %s: %s, head %s: accuracy %v, want a fraction in [0, 1]", p, c.Name(), h, a)
				}
			}
		}
		out[r.Config] = append(out[r.Config], r)
	}
	for _, rs := range out {
		sort.Slice(rs, func(i, j int) bool { return rs[i].Seed < rs[j].Seed })
	}
	return out, nil
}

// robustDatasets lists the datasets the results cover, AV-MNIST first, and
// each dataset's modalities in the order their missing conditions appear.
func robustDatasets(res map[string][]robustness.Result) ([]string, map[string][]string) {
	mods := map[string][]string{}
	for _, c := range slices.Sorted(maps.Keys(res)) {
		for _, r := range res[c] {
			for _, cond := range r.Conditions {
				if cond.Kind == robustness.Missing && !slices.Contains(mods[r.Dataset], cond.Modality) {
					mods[r.Dataset] = append(mods[r.Dataset], cond.Modality)
				}
			}
		}
	}
	ds := slices.Sorted(maps.Keys(mods))
	slices.SortStableFunc(ds, func(a, b string) int {
		return map[bool]int{true: -1, false: 0}[a == "avmnist" && b != "avmnist"] + map[bool]int{true: 1, false: 0}[b == "avmnist" && a != "avmnist"]
	})
	return ds, mods
}

// robustConfigs lists the configurations with results of a dataset, in
// report order.
func (r *report) robustConfigs(dataset string) []string {
	var out []string
	for _, c := range r.order {
		if rs := r.robust[c]; len(rs) > 0 && rs[0].Dataset == dataset {
			out = append(out, c)
		}
	}
	return out
}

// accStat summarises, in percent, one corruption's accuracy over a
// configuration's seeds.
func accStat(rs []robustness.Result, c robustness.Corruption) Stat {
	var xs []float64
	for _, r := range rs {
		if v, ok := r.Find(c); ok {
			xs = append(xs, 100*v)
		}
	}
	return Summarize(xs)
}

// curveKinds are the curves with levels 0.1..1 that MultiBench's figures
// and the plots use, per modality.
func curveKinds(rs []robustness.Result, modality string) []string {
	kinds := []string{robustness.Gaussian}
	for _, r := range rs {
		if _, ok := r.Find(robustness.Corruption{Kind: robustness.DropSteps, Modality: modality, Level: 0.1}); ok {
			return append(kinds, robustness.DropSteps)
		}
	}
	return kinds
}

func kindLabel(kind string) string {
	return map[string]string{robustness.Gaussian: "Gaussian noise", robustness.DropSteps: "time steps dropped", robustness.NoiseWeight: "ESC-50 noise weight"}[kind]
}

// writeRobustness writes Table IV and MultiBench's figures per dataset.
func (r *report) writeRobustness(b *strings.Builder) {
	datasets, mods := robustDatasets(r.robust)
	b.WriteString("## Table IV: accuracy with a modality missing (not in the paper)\n\n")
	if len(datasets) == 0 {
		b.WriteString("**Not run:** no `robustness.json` beside any run record (`m2mix robustness`, or the pipeline's robustness stages).\n\n")
		return
	}
	b.WriteString("Written from each run's `robustness.json` (`m2mix robustness`): the run's best weights on the first test rows it names, ")
	b.WriteString("with one modality replaced by the per-position mean of the training split (**mean** columns: what an absent sensor's best guess is) ")
	b.WriteString("or by zeros (**zeros** columns). Accuracy in % of the configuration's reported head (fusion for the multimodal models), mean ± sample std over seeds. ")
	b.WriteString("A uni-modal model reads one modality; removing the other cannot change it.\n\n")
	for _, ds := range datasets {
		configs := r.robustConfigs(ds)
		rows := set()
		for _, c := range configs {
			for _, res := range r.robust[c] {
				rows.add(strconv.Itoa(res.Rows))
			}
		}
		fmt.Fprintf(b, "### %s (test rows: %s)\n\n", map[string]string{"avmnist": "AV-MNIST", "mimic": "MIMIC-III"}[ds], rows.join())
		head := []string{"Configuration", "n", "Clean"}
		for _, m := range mods[ds] {
			head = append(head, "no "+m+" (mean)", "no "+m+" (zeros)")
		}
		writeRow(b, head...)
		writeRule(b, len(head))
		for _, c := range configs {
			rs := r.robust[c]
			cells := []string{fmt.Sprintf("%s (`%s`)", rs[0].Model, c), strconv.Itoa(len(rs)), fmtStat(accStat(rs, robustness.Corruption{Kind: robustness.Clean}), 2)}
			for _, m := range mods[ds] {
				for _, fill := range []string{robustness.FillMean, robustness.FillZeros} {
					cells = append(cells, fmtStat(accStat(rs, robustness.Corruption{Kind: robustness.Missing, Modality: m, Fill: fill}), 2))
				}
			}
			writeRow(b, cells...)
		}
		b.WriteString("\n")
		r.writeMultiBench(b, ds, configs, mods[ds])
		for _, p := range r.plots["robustness_"+ds] {
			fmt.Fprintf(b, "![%s](%s)\n\n", p.title, linkPath(p.name))
		}
	}
}

// writeMultiBench writes relative and effective robustness of each
// configuration's curves.
func (r *report) writeMultiBench(b *strings.Builder, ds string, configs, mods []string) {
	ref := ""
	if r.claims != nil {
		for _, c := range r.claims.Robustness.EffectiveReference[ds] {
			if len(r.robust[c]) > 0 {
				ref = c
				break
			}
		}
	}
	b.WriteString("MultiBench's robustness figures (Liang et al., 2021) from the same curves (accuracy at level 0 = clean, then 0.1 … 1): ")
	b.WriteString("**relative** robustness is the area under the accuracy curve (trapezoids, in % over the unit interval); ")
	b.WriteString("**effective** robustness is the accuracy summed over the levels above the reference's curve shifted to start at the same clean accuracy (in points; 0 = drops like the reference). ")
	b.WriteString("Unlike MultiBench's tables, neither is min-max normalised across methods. ")
	if ref == "" {
		b.WriteString("Effective robustness needs a reference curve: none of the reference configurations in `manifests/claims.json` has results.\n\n")
	} else {
		fmt.Fprintf(b, "Reference: `%s` (MultiBench uses late fusion; the first of `manifests/claims.json`'s list with results).\n\n", ref)
	}
	head := []string{"Configuration"}
	type curve struct{ kind, mod string }
	var curves []curve
	for _, m := range mods {
		for _, k := range curveKinds(r.robust[configs[0]], m) {
			curves = append(curves, curve{k, m})
		}
	}
	for _, cv := range curves {
		head = append(head, fmt.Sprintf("%s, %s: relative", cv.mod, kindLabel(cv.kind)), "effective")
	}
	writeRow(b, head...)
	writeRule(b, len(head))
	levels := robustness.Levels()
	for _, c := range configs {
		cells := []string{"`" + c + "`"}
		for _, cv := range curves {
			refCurve, refOK := meanCurveOf(r.robust[ref], cv.kind, cv.mod, levels)
			var rel, eff []float64
			for _, res := range r.robust[c] {
				pts, ok := res.Curve(cv.kind, cv.mod, levels)
				if !ok {
					continue
				}
				pct := scale(pts, 100)
				rel = append(rel, robustness.RelativeRobustness(pct))
				if refOK {
					eff = append(eff, robustness.EffectiveRobustness(pct, refCurve))
				}
			}
			cells = append(cells, fmtStat(Summarize(rel), 2), fmtStat(Summarize(eff), 2))
		}
		writeRow(b, cells...)
	}
	b.WriteString("\n")
}

// meanCurveOf is a configuration's curve averaged over its seeds, in %.
func meanCurveOf(rs []robustness.Result, kind, mod string, levels []float64) ([]float64, bool) {
	var sum []float64
	n := 0
	for _, res := range rs {
		pts, ok := res.Curve(kind, mod, levels)
		if !ok {
			continue
		}
		if sum == nil {
			sum = make([]float64, len(pts))
		}
		for i, v := range pts {
			sum[i] += 100 * v
		}
		n++
	}
	if n == 0 {
		return nil, false
	}
	return scale(sum, 1/float64(n)), true
}

func scale(xs []float64, f float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = f * x
	}
	return out
}

// robustnessPlots draws one PNG per dataset: a panel per curve (a kind of
// corruption of a modality), a line per configuration (mean over seeds).
func (r *report) robustnessPlots() error {
	datasets, mods := robustDatasets(r.robust)
	for _, ds := range datasets {
		configs := r.robustConfigs(ds)
		var panels []*plot.Plot
		for _, m := range mods[ds] {
			kinds := curveKinds(r.robust[configs[0]], m)
			if m == "audio" {
				kinds = append(kinds, robustness.NoiseWeight)
			}
			for _, k := range kinds {
				p, err := r.robustnessPanel(configs, k, m)
				if err != nil {
					return err
				}
				if p != nil {
					panels = append(panels, p)
				}
			}
		}
		if len(panels) == 0 {
			continue
		}
		cols := 2
		rows := (len(panels) + cols - 1) / cols
		w, h := 28*vg.Centimeter, vg.Length(rows)*11*vg.Centimeter
		img := vgimg.New(w, h)
		dc := draw.New(img)
		tiles := draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Centimeter, PadY: vg.Centimeter, PadTop: vg.Centimeter / 2, PadBottom: vg.Centimeter / 2, PadLeft: vg.Centimeter / 2, PadRight: vg.Centimeter / 2}
		for i, p := range panels {
			p.Draw(tiles.At(dc, i%cols, i/cols))
		}
		var buf bytes.Buffer
		if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
			return fmt.Errorf("robustness plot %s: %w", ds, err)
		}
		name := "robustness_" + ds + ".png"
		title := fmt.Sprintf("%s: test accuracy against corruption level", map[string]string{"avmnist": "AV-MNIST", "mimic": "MIMIC-III"}[ds])
		r.plots["robustness_"+ds] = append(r.plots["robustness_"+ds], plotFile{name: name, title: title, png: buf.Bytes()})
	}
	return nil
}

// robustnessPanel is one panel: accuracy (%) against the level of one
// corruption of one modality, a line per configuration.
func (r *report) robustnessPanel(configs []string, kind, mod string) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s on %s", kindLabel(kind), mod)
	p.X.Label.Text = map[string]string{robustness.Gaussian: "noise std / training std", robustness.DropSteps: "probability a step is dropped", robustness.NoiseWeight: "ESC-50 mixing weight"}[kind]
	p.Y.Label.Text = "accuracy (%)"
	p.Add(plotter.NewGrid())
	p.Legend.Top = false
	drawn := 0
	for i, c := range configs {
		xys := r.panelPoints(c, kind, mod)
		if len(xys) == 0 {
			continue
		}
		l, s, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, fmt.Errorf("robustness plot, %s: %w", c, err)
		}
		l.Color, s.Color = plotutil.Color(i), plotutil.Color(i)
		l.Dashes = plotutil.Dashes(i)
		l.Width = vg.Points(1.5)
		s.Radius = vg.Points(2)
		p.Add(l, s)
		p.Legend.Add(c, l)
		drawn++
	}
	if drawn == 0 {
		return nil, nil
	}
	p.Y.Min = 0
	p.Y.Max = math.Max(100, p.Y.Max)
	return p, nil
}

// panelPoints are a configuration's mean accuracy (%) per level: clean at
// 0, then levels 0.1..1; for the noise weight, the weights it has.
func (r *report) panelPoints(c, kind, mod string) plotter.XYs {
	rs := r.robust[c]
	if kind != robustness.NoiseWeight {
		pts, ok := meanCurveOf(rs, kind, mod, robustness.Levels())
		if !ok {
			return nil
		}
		xys := make(plotter.XYs, len(pts))
		for i, v := range pts {
			xys[i] = plotter.XY{X: float64(i) / 10, Y: v}
		}
		return xys
	}
	weights := map[float64]bool{}
	for _, res := range rs {
		for _, cond := range res.Conditions {
			if cond.Kind == robustness.NoiseWeight && cond.Modality == mod {
				weights[cond.Level] = true
			}
		}
	}
	var xys plotter.XYs
	for _, w := range slices.Sorted(maps.Keys(weights)) {
		st := accStat(rs, robustness.Corruption{Kind: robustness.NoiseWeight, Modality: mod, Level: w})
		if st.N > 0 {
			xys = append(xys, plotter.XY{X: w, Y: st.Mean})
		}
	}
	return xys
}
