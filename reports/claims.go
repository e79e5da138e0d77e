package reports

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/m2mix/m2mix/manifests"
	"github.com/m2mix/m2mix/runrecord"
)

// DefaultClaims is where the paper's claims live, relative to the
// repository root.
const DefaultClaims = "manifests/claims.json"

// Claims is manifests/claims.json: the paper's claims as comparisons of
// configurations (which rows, which direction), so that a claim is a few
// lines of data.
type Claims struct {
	Notes      []string `json:"notes"`
	Confidence float64  `json:"confidence"`
	Bootstrap  struct {
		Resamples int    `json:"resamples"`
		Seed      uint64 `json:"seed"`
	} `json:"bootstrap"`
	Claims     []Claim `json:"claims"`
	Robustness struct {
		// EffectiveReference lists, per dataset, the configurations whose
		// curve effective robustness is measured against, in order of
		// preference (MultiBench uses late fusion).
		EffectiveReference map[string][]string `json:"effective_reference"`
	} `json:"robustness"`
}

// Claim is one statement of the paper, checked by one or more comparisons.
type Claim struct {
	ID          string       `json:"id"`
	Text        string       `json:"text"`
	Dataset     string       `json:"dataset"`
	Comparisons []Comparison `json:"comparisons"`
}

// Comparison is a against b on one metric.
type Comparison struct {
	A         Side        `json:"a"`
	B         Side        `json:"b"`
	Metric    string      `json:"metric"`    // "accuracy" (in %; a head's with Side.Head) or "train_seconds"
	Direction string      `json:"direction"` // "greater", "at_least" (with Margin) or "faster"
	Margin    float64     `json:"margin,omitempty"`
	Paper     json.Number `json:"paper"` // the paper's figure: a - b in points, or the speed-up
	Note      string      `json:"note,omitempty"`
}

// Side is one configuration's metric: its fusion (first) head's accuracy,
// or Head's.
type Side struct {
	Config string `json:"config"`
	Head   string `json:"head,omitempty"`
}

func (s Side) label() string {
	if s.Head != "" {
		return fmt.Sprintf("`%s` %s head", s.Config, s.Head)
	}
	return "`" + s.Config + "`"
}

// LoadClaims reads and checks the claims file.
func LoadClaims(path string) (*Claims, error) {
	b, err := manifests.Read(path)
	if err != nil {
		return nil, fmt.Errorf("claims: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	var c Claims
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("claims %s: %w", path, err)
	}
	if !(c.Confidence > 0 && c.Confidence < 1) || c.Bootstrap.Resamples < 100 {
		return nil, fmt.Errorf("claims %s: confidence %v must be in (0, 1) and bootstrap.resamples %d at least 100", path, c.Confidence, c.Bootstrap.Resamples)
	}
	seen := map[string]bool{}
	for i := range c.Claims {
		cl := &c.Claims[i]
		if cl.ID == "" || seen[cl.ID] || cl.Text == "" || len(cl.Comparisons) == 0 {
			return nil, fmt.Errorf("claims %s: claim %d (%q) needs a unique id, a text and comparisons", path, i, cl.ID)
		}
		seen[cl.ID] = true
		if cl.Dataset != "avmnist" && cl.Dataset != "mimic" {
			return nil, fmt.Errorf("claims %s, %s: dataset %q, want avmnist or mimic", path, cl.ID, cl.Dataset)
		}
		for j := range cl.Comparisons {
			cp := &cl.Comparisons[j]
			switch {
			case cp.A.Config == "" || cp.B.Config == "":
				return nil, fmt.Errorf("claims %s, %s: comparison %d needs configurations a and b", path, cl.ID, j)
			case cp.Metric != "accuracy" && cp.Metric != "train_seconds":
				return nil, fmt.Errorf("claims %s, %s: metric %q, want accuracy or train_seconds", path, cl.ID, cp.Metric)
			case cp.Direction != "greater" && cp.Direction != "at_least" && cp.Direction != "faster":
				return nil, fmt.Errorf("claims %s, %s: direction %q, want greater, at_least or faster", path, cl.ID, cp.Direction)
			case (cp.Direction == "faster") != (cp.Metric == "train_seconds"):
				return nil, fmt.Errorf("claims %s, %s: direction faster goes with train_seconds, and only it", path, cl.ID)
			case cp.Margin < 0:
				return nil, fmt.Errorf("claims %s, %s: negative margin", path, cl.ID)
			}
			if _, err := cp.Paper.Float64(); err != nil {
				return nil, fmt.Errorf("claims %s, %s: paper figure %q: %w", path, cl.ID, cp.Paper, err)
			}
		}
	}
	return &c, nil
}

// Verdicts.
const (
	Holds          = "holds"
	DoesNotHold    = "does not hold"
	NotEnoughSeeds = "not enough seeds"
	NotRun         = "not run"
)

// ComparisonResult is one comparison checked against our records.
type ComparisonResult struct {
	NA, NB    int
	Estimate  float64 // a - b (points), or b / a (speed-up, ratio of geometric means)
	Welch     Welch   // on a - b, or on log b - log a for a speed-up
	CI        Interval
	Bootstrap Interval
	Verdict   string
	Why       string
}

// values returns the per-seed metric of a side.
func (s Side) values(metric string, g *group) []float64 {
	if g == nil {
		return nil
	}
	var out []float64
	for _, r := range g.Complete {
		out = append(out, sideValue(s, metric, r))
	}
	return out
}

func sideValue(s Side, metric string, r runrecord.Record) float64 {
	switch {
	case metric == "train_seconds":
		return r.Final.TrainSeconds
	case s.Head != "":
		a, ok := r.Final.HeadAccuracy[s.Head]
		if !ok {
			return math.NaN()
		}
		return 100 * a
	}
	return 100 * r.Final.Accuracy
}

// checkComparison computes one comparison's statistics and verdict.
func checkComparison(cp Comparison, groups map[string]*group, cl *Claims) ComparisonResult {
	a, b := cp.A.values(cp.Metric, groups[cp.A.Config]), cp.B.values(cp.Metric, groups[cp.B.Config])
	res := ComparisonResult{NA: len(a), NB: len(b), Estimate: math.NaN(), CI: Interval{math.NaN(), math.NaN()}, Bootstrap: Interval{math.NaN(), math.NaN()}}
	var missing []string
	for _, side := range []struct {
		s Side
		v []float64
	}{{cp.A, a}, {cp.B, b}} {
		if len(side.v) == 0 {
			missing = append(missing, side.s.label())
		}
		for _, v := range side.v {
			if math.IsNaN(v) || (cp.Metric == "train_seconds" && !(v > 0)) {
				res.Verdict, res.Why = NotRun, fmt.Sprintf("%s records have no usable %s", side.s.label(), cp.Metric)
				return res
			}
		}
	}
	if len(missing) > 0 {
		res.Verdict, res.Why = NotRun, "no finished record of "+strings.Join(missing, " and ")
		return res
	}
	// The test compares x with y: a with b, or for a speed-up the logs of
	// b's times with those of a's (b's time over a's, geometric means).
	x, y := a, b
	if cp.Direction == "faster" {
		x, y = logs(b), logs(a)
		res.Estimate = math.Exp(mean(x) - mean(y))
	} else {
		res.Estimate = mean(a) - mean(b)
	}
	if len(a) < 2 || len(b) < 2 {
		res.Verdict, res.Why = NotEnoughSeeds, fmt.Sprintf("n = %d and %d; an interval needs two or more on each side", len(a), len(b))
		return res
	}
	w, err := WelchTest(x, y, cl.Confidence)
	if err != nil {
		res.Verdict, res.Why = NotEnoughSeeds, err.Error()
		return res
	}
	boot, _, err := BootstrapDiff(x, y, mean, cl.Bootstrap.Resamples, cl.Bootstrap.Seed, cl.Confidence)
	if err != nil {
		res.Verdict, res.Why = NotEnoughSeeds, err.Error()
		return res
	}
	res.Welch, res.CI, res.Bootstrap = w, w.CI, boot
	threshold := 0.0
	if cp.Direction == "faster" {
		res.CI = Interval{math.Exp(w.CI.Lo), math.Exp(w.CI.Hi)}
		res.Bootstrap = Interval{math.Exp(boot.Lo), math.Exp(boot.Hi)}
	}
	if cp.Direction == "at_least" {
		threshold = -cp.Margin
	}
	switch {
	case w.CI.Lo > threshold:
		res.Verdict = Holds
	case w.CI.Hi < threshold:
		res.Verdict, res.Why = DoesNotHold, "the interval lies below the threshold"
	default:
		res.Verdict, res.Why = DoesNotHold, "the interval includes the threshold: the difference is not significant"
	}
	return res
}

// writeClaims writes the Claims section: one row per comparison.
func (r *report) writeClaims(b *strings.Builder) {
	if r.claims == nil {
		return
	}
	b.WriteString("## Claims\n\n")
	if r.variant != "" {
		fmt.Fprintf(b, "The paper's AV-MNIST claims, checked on the runs of the variant `%s`.\n\n", r.variant)
	}
	for _, n := range r.claims.Notes {
		fmt.Fprintf(b, "- %s\n", n)
	}
	b.WriteString("\n")
	conf := fmtNum(100*r.claims.Confidence, 0)
	head := []string{"Claim", "a vs b", "n (a, b)", "Ours", "Welch " + conf + " % CI", "p", "Bootstrap " + conf + " % CI", "Paper", "Verdict"}
	writeRow(b, head...)
	writeRule(b, len(head))
	for _, cl := range r.claims.Claims {
		if r.variant != "" && cl.Dataset != "avmnist" {
			continue
		}
		for i, cp := range cl.Comparisons {
			res := checkComparison(cp, r.groups, r.claims)
			text := ""
			if i == 0 {
				text = cl.Text
			}
			rel := map[string]string{"greater": ">", "at_least": fmt.Sprintf("≥ (margin %s)", fmtNum(cp.Margin, 2)), "faster": "faster than"}[cp.Direction]
			pair := fmt.Sprintf("%s %s %s", cp.A.label(), rel, cp.B.label())
			ours, ci, boot, p := "–", "–", "–", "–"
			unit := func(v float64) string { return signed(v, 2) }
			if cp.Direction == "faster" {
				unit = func(v float64) string { return fmtNum(v, 2) + "x" }
			}
			if !math.IsNaN(res.Estimate) {
				ours = unit(res.Estimate)
			}
			if res.Verdict == Holds || res.Verdict == DoesNotHold {
				ci = "[" + unit(res.CI.Lo) + ", " + unit(res.CI.Hi) + "]"
				boot = "[" + unit(res.Bootstrap.Lo) + ", " + unit(res.Bootstrap.Hi) + "]"
				p = fmtP(res.Welch.P)
			}
			paperFig := string(cp.Paper)
			if cp.Direction == "faster" {
				paperFig += "x"
			} else if !strings.HasPrefix(paperFig, "-") {
				paperFig = "+" + paperFig
			}
			verdict := "**" + res.Verdict + "**"
			if res.Why != "" {
				verdict += " (" + res.Why + ")"
			}
			if cp.Note != "" {
				verdict += "; " + cp.Note
			}
			writeRow(b, text, pair, fmt.Sprintf("%d, %d", res.NA, res.NB), ours, ci, p, boot, paperFig, verdict)
		}
	}
	b.WriteString("\n")
	r.writeConsistency(b)
}

// Consistency is whether our mean agrees with the paper's mean and std.
type Consistency struct {
	Interval   Interval // where the paper's numbers put ours (see checkConsistency)
	Consistent bool
	Method     string
}

// checkConsistency asks whether our accuracies (mean, sample std, n) agree
// with the paper's (mean, std, 10 runs): with n >= 2, whether Welch's
// interval of ours - paper's contains 0; with one seed, whether it lies in
// the paper's prediction interval for a single run. The interval returned
// is for our mean (paper's mean + the difference interval's offsets).
func checkConsistency(ours Stat, paperMean, paperStd float64, paperN int, conf float64) (Consistency, error) {
	if ours.N == 1 {
		iv, err := PredictionInterval(paperMean, paperStd, paperN, conf)
		if err != nil {
			return Consistency{}, err
		}
		return Consistency{Interval: iv, Consistent: iv.Contains(ours.Mean), Method: "one seed: the paper's prediction interval for one run"}, nil
	}
	w, err := WelchSummary(ours.Mean, ours.Std, ours.N, paperMean, paperStd, paperN, conf)
	if err != nil {
		return Consistency{}, err
	}
	return Consistency{Interval: w.CI, Consistent: w.CI.Contains(0), Method: "Welch's interval of ours − paper's"}, nil
}

// paperRuns is how many runs each of the paper's numbers averages.
const paperRuns = 10

// writeConsistency writes, per configuration of the page's tables, whether
// our accuracy is consistent with the paper's mean and std.
func (r *report) writeConsistency(b *strings.Builder) {
	b.WriteString("### Our accuracy against the paper's mean and std\n\n")
	b.WriteString("With n ≥ 2 seeds: consistent when Welch's " + fmtNum(100*r.claims.Confidence, 0) + " % interval of our mean − the paper's (10 runs) contains 0. ")
	b.WriteString("With one seed: consistent when our accuracy lies in the paper's prediction interval for a single run (mean ± t(9) · std · √(1 + 1/10)).\n\n")
	head := []string{"Configuration", "Ours (%)", "Paper (%)", "Interval", "Consistent"}
	writeRow(b, head...)
	writeRule(b, len(head))
	for _, t := range r.paper.Tables {
		if r.variant != "" && t.Dataset != "avmnist" {
			continue
		}
		for _, row := range t.Rows {
			if row.Config == "" {
				continue
			}
			cs := r.stats[row.Config]
			pm, _ := row.AccMean.Float64()
			ps, _ := row.AccStd.Float64()
			name := fmt.Sprintf("%s (`%s`)", row.Name, row.Config)
			paper := fmt.Sprintf("%s ± %s", row.AccMean, row.AccStd)
			if cs.Accuracy.N == 0 {
				writeRow(b, name, notRun(cs), paper, "–", "–")
				continue
			}
			c, err := checkConsistency(cs.Accuracy, pm, ps, paperRuns, r.claims.Confidence)
			if err != nil {
				writeRow(b, name, fmtStat(cs.Accuracy, 2), paper, "–", err.Error())
				continue
			}
			iv := "[" + fmtNum(c.Interval.Lo, 2) + ", " + fmtNum(c.Interval.Hi, 2) + "]"
			if cs.Accuracy.N > 1 {
				iv = "ours − paper in [" + signed(c.Interval.Lo, 2) + ", " + signed(c.Interval.Hi, 2) + "]"
			} else {
				iv = "one run in " + iv
			}
			verdict := map[bool]string{true: "yes", false: "**no**"}[c.Consistent]
			writeRow(b, name, fmtStat(cs.Accuracy, 2)+fmt.Sprintf(" (n=%d)", cs.Accuracy.N), paper, iv, verdict)
		}
	}
	b.WriteString("\n")
}

func logs(v []float64) []float64 {
	out := make([]float64, len(v))
	for i := range v {
		out[i] = math.Log(v[i])
	}
	return out
}

// signed prints v with its sign.
func signed(v float64, prec int) string {
	s := fmtNum(v, prec)
	if !strings.HasPrefix(s, "-") && s != "–" {
		s = "+" + s
	}
	return s
}

func fmtP(p float64) string {
	if p < 0.001 {
		return "< 0.001"
	}
	return fmtNum(p, 3)
}
