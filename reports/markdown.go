package reports

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/m2mix/m2mix/robustness"
	"github.com/m2mix/m2mix/runrecord"
)

// report is everything the Markdown needs, gathered once.
type report struct {
	paper      *Paper
	order      []string // configurations in report order
	stats      map[string]ConfigStats
	complete   []runrecord.Record
	incomplete int
	plots      map[string][]plotFile // configuration (or table id) -> its plots
	variant    string                // the AV-MNIST variant of this page; "" for the recipe
	variants   []string              // the recipe's page: the variants that have pages
	groups     map[string]*group     // configuration -> its records
	claims     *Claims
	robust     map[string][]robustness.Result // configuration -> its robustness results, by seed
	sweeps     string                         // the recipe's page: the sweeps' sections (Markdown)
}

// markdown renders the results page. It depends only on its inputs: no
// clock, no paths, no map iteration order.
func (r *report) markdown() string {
	var b strings.Builder
	if r.variant == "" {
		b.WriteString("# M2-Mixer reproduction: results\n\n")
		b.WriteString("Written by `m2mix report` from the run records alone (`runs/<config>/<seed>/record.json`); ")
	} else {
		fmt.Fprintf(&b, "# M2-Mixer reproduction: results on the AV-MNIST variant `%s`\n\n", r.variant)
		fmt.Fprintf(&b, "Written by `m2mix report` from the run records alone (`runs/variants/%s/<config>/<seed>/record.json`); ", r.variant)
	}
	b.WriteString("the same records give the same bytes.\n\n")
	r.writeVariant(&b)
	r.writeHeader(&b)
	for _, t := range r.paper.Tables {
		if r.variant != "" && t.Dataset != "avmnist" {
			continue // a variant changes AV-MNIST only
		}
		r.writeMetricTable(&b, t)
	}
	r.writeFeatureTable(&b)
	r.writeClaims(&b)
	r.writeRobustness(&b)
	r.writeRuns(&b)
	r.writePlots(&b)
	b.WriteString(r.sweeps)
	b.WriteString("## Source\n\n")
	fmt.Fprintf(&b, "Paper rows: %s\n", r.paper.Citation)
	for _, n := range r.paper.Notes {
		fmt.Fprintf(&b, "- %s\n", n)
	}
	return b.String()
}

// writeVariant says which AV-MNIST the page's runs trained on: the
// recipe's page links the variants' pages; a variant's page gives its
// parameters, from its records, and says when they are an estimate.
func (r *report) writeVariant(b *strings.Builder) {
	if r.variant == "" {
		if len(r.variants) == 0 {
			return
		}
		b.WriteString("AV-MNIST here is the recipe as written (`clean`). Runs on other AV-MNIST variants have their own pages:\n\n")
		for _, v := range r.variants {
			fmt.Fprintf(b, "- [`%s`](%s/%s/%s)\n", v, VariantsDir, v, IndexFile)
		}
		b.WriteString("\n")
		return
	}
	params, estimate := set(), false
	for _, rec := range r.complete {
		dv, _ := rec.Settings["data_variant"].(map[string]any)
		if dv == nil {
			params.add("(a record without variant parameters: " + rec.Config + ")")
			continue
		}
		j, _ := json.Marshal(dv["params"])
		params.add("`" + string(j) + "`")
		if p, _ := dv["params"].(map[string]any); p != nil && p["estimate"] == true {
			estimate = true
		}
	}
	fmt.Fprintf(b, "AV-MNIST variant `%s`, generated with %s.\n\n", r.variant, orNone(params.join()))
	if estimate {
		fmt.Fprintf(b, "**These parameters are an estimate**, calibrated on the paper's uni-modal accuracies only "+
			"(see `manifests/avmnist-variants/%s.json`), not measured from the public files; every other number on this "+
			"page is an out-of-sample prediction of the paper's. `m2mix audit avmnist --npy DIR` on the real files replaces them.\n\n", r.variant)
	}
}

func (r *report) writeHeader(b *strings.Builder) {
	profiles, devices, libtorch := set(), set(), set()
	seeds := map[int64]bool{}
	inputs := map[string]map[string][]string{} // file -> sha256 -> configs
	for _, rec := range r.complete {
		profiles.add(orNone(rec.Profile))
		devices.add(orNone(rec.Device))
		libtorch.add(orNone(rec.Libtorch))
		seeds[rec.Seed] = true
		for f, sum := range rec.Inputs {
			if inputs[f] == nil {
				inputs[f] = map[string][]string{}
			}
			if !slices.Contains(inputs[f][sum], rec.Config) {
				inputs[f][sum] = append(inputs[f][sum], rec.Config)
			}
		}
	}
	seedList := make([]int64, 0, len(seeds))
	for s := range seeds {
		seedList = append(seedList, s)
	}
	slices.Sort(seedList)

	b.WriteString("| | |\n|---|---|\n")
	fmt.Fprintf(b, "| Profile | %s |\n", profiles.join())
	fmt.Fprintf(b, "| Device | %s |\n", devices.join())
	fmt.Fprintf(b, "| Seeds | %s |\n", joinInts(seedList))
	fmt.Fprintf(b, "| libtorch | %s |\n", libtorch.join())
	fmt.Fprintf(b, "| Run records | %d complete (in the tables), %d incomplete (no final metrics; left out of the tables, plotted) |\n\n",
		len(r.complete), r.incomplete)

	if len(inputs) > 0 {
		b.WriteString("Dataset checksums (sha256, as the runs recorded them):\n\n| file | sha256 |\n|---|---|\n")
		for _, f := range slices.Sorted(maps.Keys(inputs)) {
			sums := slices.Sorted(maps.Keys(inputs[f]))
			for _, s := range sums {
				if len(sums) == 1 {
					fmt.Fprintf(b, "| `%s` | `%s` |\n", f, s)
					continue
				}
				// Runs made from different data: say which used which.
				fmt.Fprintf(b, "| `%s` | `%s` (**differs between runs**: %s) |\n", f, s, strings.Join(inputs[f][s], ", "))
			}
		}
		b.WriteString("\n")
	}

	b.WriteString("How to read the tables:\n\n")
	b.WriteString("- **ours** rows: mean ± sample standard deviation (n − 1 in the denominator) over the n seeds that finished; ")
	b.WriteString("max is the best seed; the ± part is left out when n = 1. Accuracy is the fusion head's, on the test set, ")
	b.WriteString("with the weights of the epoch its configuration selects (the M2-Mixers: lowest validation loss; ")
	b.WriteString("MultiBench's baselines: highest validation accuracy, Gradient Blending: lowest validation loss of its fine-tuned head).\n")
	b.WriteString("- *paper* rows are quoted from the paper (10 runs; times on the authors' RTX 2080 Ti). ")
	b.WriteString("A baseline we run (Late Fusion, LRTF, RefNet, CCA, MI-Matrix, Gradient Blending, as MultiBench's code specifies them) ")
	b.WriteString("has our row beneath the paper's; *paper (quoted)* rows (MFAS, MVAE, MFM) are not run here.\n")
	b.WriteString("- Δ acc. = our accuracy mean − the paper's, in percentage points.\n")
	b.WriteString("- Accuracy and F1 in %, training time (whole run) and test time (one pass over the test set) in seconds, ")
	b.WriteString("trainable parameters in millions.\n\n")
}

func (r *report) writeMetricTable(b *strings.Builder, t MetricTable) {
	fmt.Fprintf(b, "## %s\n\n", t.Title)
	anyRun := false
	for _, row := range t.Rows {
		if row.Config != "" && r.stats[row.Config].Accuracy.N > 0 {
			anyRun = true
		}
	}
	if !anyRun && t.NotRunHint != "" {
		fmt.Fprintf(b, "**Not run:** %s.\n\n", t.NotRunHint)
	}

	head := []string{"Architecture", "Source", "n", "Acc. (%) mean ± std", "Acc. (%) max", "Δ acc."}
	for _, c := range t.F1Columns {
		head = append(head, f1Title(c)+" (%) mean ± std")
	}
	head = append(head, "Training time (s)", "Test time (s)", "Params (M)")
	writeRow(b, head...)
	writeRule(b, len(head))

	for _, row := range t.Rows {
		name := row.Name
		if row.Ref != "" {
			name += " " + row.Ref
		}
		if row.Note != "" {
			name += " (" + row.Note + ")"
		}
		source := "*paper*"
		if row.Config == "" {
			source = "*paper (quoted)*"
		}
		cells := []string{name, source, "10", pm(row.AccMean, row.AccStd), string(row.AccMax), ""}
		for _, c := range t.F1Columns {
			if c == t.PaperF1 {
				cells = append(cells, pm(row.F1Mean, row.F1Std))
			} else {
				cells = append(cells, "–")
			}
		}
		cells = append(cells, pm(row.TrainMean, row.TrainStd), pm(row.TestMean, row.TestStd), string(row.ParamsM))
		writeRow(b, cells...)

		if row.Config == "" {
			continue
		}
		writeRow(b, r.oursRow(row, t.F1Columns)...)
	}
	b.WriteString("\n")
	for _, n := range t.Notes {
		fmt.Fprintf(b, "- %s\n", n)
	}
	if len(t.Notes) > 0 {
		b.WriteString("\n")
	}
}

// oursRow is the row of our runs beside a paper row.
func (r *report) oursRow(row PaperRow, f1Columns []string) []string {
	cs := r.stats[row.Config]
	cells := []string{fmt.Sprintf("%s (`%s`)", row.Name, row.Config), "**ours**", strconv.Itoa(cs.Accuracy.N)}
	if cs.Accuracy.N == 0 {
		cells = append(cells, notRun(cs))
		for len(cells) < 9+len(f1Columns) {
			cells = append(cells, "")
		}
		return cells
	}
	cells = append(cells, fmtStat(cs.Accuracy, 2), fmtNum(cs.Accuracy.Max, 2), delta(cs.Accuracy.Mean, row.AccMean))
	for _, c := range f1Columns {
		if c == "micro" {
			cells = append(cells, fmtStat(cs.MicroF1, 2))
		} else {
			cells = append(cells, fmtStat(cs.MacroF1, 2))
		}
	}
	cells = append(cells, fmtStat(cs.TrainSec, 1), fmtStat(cs.TestSec, 2), fmtNum(cs.ParamsM.Mean, 3))
	return cells
}

func (r *report) writeFeatureTable(b *strings.Builder) {
	ft := r.paper.FeatureExtractors
	fmt.Fprintf(b, "## %s\n\n", ft.Title)
	head := []string{"Modality", "Source"}
	for _, c := range ft.Columns {
		head = append(head, c.Name)
	}
	writeRow(b, head...)
	writeRule(b, len(head))
	for _, row := range ft.Rows {
		label := row.Modality
		if row.PaperLabel != "" && row.PaperLabel != row.Modality {
			label += fmt.Sprintf(" (paper's table: %q)", row.PaperLabel)
		}
		paper := []string{label, "*paper*"}
		ours := []string{row.Modality, "**ours**"}
		deltas := []string{row.Modality, "Δ ours − paper"}
		for _, c := range row.Cells {
			paper = append(paper, string(c.Paper))
			st, ok := r.cellStat(c)
			switch {
			case ok:
				ours = append(ours, fmtStat(st, 2)+fmt.Sprintf(" (n=%d)", st.N))
				deltas = append(deltas, delta(st.Mean, c.Paper))
			case r.stats[c.Config].Accuracy.N > 0:
				ours = append(ours, fmt.Sprintf("no %q head in `%s` records", c.Head, c.Config))
				deltas = append(deltas, "")
			default:
				ours = append(ours, fmt.Sprintf("`%s`: %s", c.Config, notRun(r.stats[c.Config])))
				deltas = append(deltas, "")
			}
		}
		writeRow(b, paper...)
		writeRow(b, ours...)
		writeRow(b, deltas...)
	}
	b.WriteString("\n")
	for _, c := range ft.Columns {
		fmt.Fprintf(b, "- %s: %s.\n", c.Name, c.What)
	}
	for _, n := range ft.Notes {
		fmt.Fprintf(b, "- %s\n", n)
	}
	b.WriteString("\n")
}

// cellStat returns our number for a Table III cell, if there is one.
func (r *report) cellStat(c FeatureCell) (Stat, bool) {
	cs := r.stats[c.Config]
	if cs.Accuracy.N == 0 {
		return Stat{}, false
	}
	if c.Head == "" {
		return cs.Accuracy, true
	}
	st, ok := cs.Heads[c.Head]
	return st, ok && st.N > 0
}

func (r *report) writeRuns(b *strings.Builder) {
	b.WriteString("## Runs\n\n")
	head := []string{"Configuration", "Model", "Dataset", "Profile", "Device", "Seeds (complete)", "Incomplete", "Epochs run (mean)", "Stopped early", "Final head accuracies (%)"}
	writeRow(b, head...)
	writeRule(b, len(head))
	for _, c := range r.order {
		cs := r.stats[c]
		profiles, devices := set(), set()
		for _, rec := range r.complete {
			if rec.Config == c {
				profiles.add(orNone(rec.Profile))
				devices.add(orNone(rec.Device))
			}
		}
		var heads []string
		for _, h := range slices.Sorted(maps.Keys(cs.Heads)) {
			heads = append(heads, h+" "+fmtStat(cs.Heads[h], 2))
		}
		epochs, stopped := "", ""
		if cs.Accuracy.N > 0 {
			epochs = fmtNum(cs.Epochs.Mean, 1)
			stopped = fmt.Sprintf("%d of %d", cs.Stopped, cs.Accuracy.N)
		}
		writeRow(b, "`"+c+"`", cs.Model, cs.Dataset, profiles.join(), devices.join(),
			joinInts(cs.Seeds), joinInts(cs.Incomplete), epochs, stopped, strings.Join(heads, "; "))
	}
	b.WriteString("\n")
}

func (r *report) writePlots(b *strings.Builder) {
	b.WriteString("## Plots\n\n")
	b.WriteString("Curves are means over the seeds that reached each epoch (incomplete runs included); validation metrics are per epoch.\n\n")
	wrote := false
	for _, t := range r.paper.Tables {
		for _, p := range r.plots[t.ID] {
			fmt.Fprintf(b, "### %s\n\n![%s](%s)\n\n", p.title, p.title, linkPath(p.name))
			wrote = true
		}
	}
	for _, c := range r.order {
		ps := r.plots[c]
		if len(ps) == 0 {
			continue
		}
		fmt.Fprintf(b, "### `%s`\n\n", c)
		for _, p := range ps {
			fmt.Fprintf(b, "![%s](%s)\n", p.title, linkPath(p.name))
		}
		b.WriteString("\n")
		wrote = true
	}
	if !wrote {
		b.WriteString("No run has a learning curve yet.\n\n")
	}
}

// notRun says why a configuration has no numbers.
func notRun(cs ConfigStats) string {
	if n := len(cs.Incomplete); n > 0 {
		return fmt.Sprintf("not run to the end (%d incomplete)", n)
	}
	return "not run"
}

func f1Title(kind string) string {
	if kind == "micro" {
		return "Micro F1"
	}
	return "Macro F1"
}

// pm prints a paper number with its std as the paper prints them.
func pm(mean, std json.Number) string {
	switch {
	case mean == "":
		return "–"
	case std == "":
		return string(mean)
	}
	return string(mean) + " ± " + string(std)
}

func fmtStat(s Stat, prec int) string {
	if s.N == 0 {
		return "–"
	}
	if s.N == 1 || math.IsNaN(s.Std) {
		return fmtNum(s.Mean, prec)
	}
	return fmtNum(s.Mean, prec) + " ± " + fmtNum(s.Std, prec)
}

func fmtNum(v float64, prec int) string {
	if math.IsNaN(v) {
		return "–"
	}
	s := strconv.FormatFloat(v, 'f', prec, 64)
	if strings.TrimLeft(s, "-0.") == "" {
		s = strings.TrimPrefix(s, "-") // no "-0.00"
	}
	return s
}

// delta is ours − paper, in percentage points, with its sign.
func delta(ours float64, paper json.Number) string {
	p, err := paper.Float64()
	if err != nil || math.IsNaN(ours) {
		return ""
	}
	s := fmtNum(ours-p, 2)
	if !strings.HasPrefix(s, "-") {
		s = "+" + s
	}
	return s
}

func writeRow(b *strings.Builder, cells ...string) {
	b.WriteString("|")
	for _, c := range cells {
		b.WriteString(" " + strings.ReplaceAll(c, "|", `\|`) + " |")
	}
	b.WriteString("\n")
}

func writeRule(b *strings.Builder, n int) {
	b.WriteString("|" + strings.Repeat("---|", n) + "\n")
}

func linkPath(name string) string {
	return plotsDir + "/" + url.PathEscape(name)
}

// joinInts lists xs, or "–" when there are none.
func joinInts(xs []int64) string {
	if len(xs) == 0 {
		return "–"
	}
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.FormatInt(x, 10)
	}
	return strings.Join(s, ", ")
}

func orNone(s string) string {
	if s == "" {
		return "(none recorded)"
	}
	return s
}

// stringSet collects distinct strings and prints them sorted.
type stringSet map[string]bool

func set() stringSet             { return stringSet{} }
func (s stringSet) add(v string) { s[v] = true }
func (s stringSet) join() string {
	if len(s) == 0 {
		return "–"
	}
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}
