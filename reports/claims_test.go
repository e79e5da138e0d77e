package reports

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol*math.Max(1, math.Abs(b)) }

// Welch's test on cases whose Student-t values have closed forms: with 2
// and 4 degrees of freedom the CDF and quantile are elementary functions.
func TestWelchByHand(t *testing.T) {
	// a = {1, 2, 3}, b = {2, 3, 4}: diff -1, variances 1, se = sqrt(2/3),
	// df = (2/3)^2 / (2 (1/3)^2 / 2) = 4, t = -sqrt(3/2).
	w, err := WelchTest([]float64{1, 2, 3}, []float64{2, 3, 4}, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	x := math.Sqrt(1.5)
	// nu = 4: F(x) = 1/2 + (3/8) u (1 - u^2/12 ... ) with u = x / sqrt(1 + x^2/4):
	// F(x) = 1/2 + 3/8 · x/sqrt(1+x²/4) · (1 − x²/(12 (1+x²/4))).
	k := 1 + x*x/4
	cdf := 0.5 + 3.0/8*x/math.Sqrt(k)*(1-x*x/(12*k))
	if !near(w.Diff, -1, 1e-15) || !near(w.SE, math.Sqrt(2.0/3), 1e-15) || !near(w.DF, 4, 1e-12) || !near(w.T, -x, 1e-12) || !near(w.P, 2*(1-cdf), 1e-9) {
		t.Errorf("df 4 case: %+v, want diff -1, se %.6f, df 4, t %.6f, p %.6f", w, math.Sqrt(2.0/3), -x, 2*(1-cdf))
	}
	// a = {1, 3}, b = {0, 2}: diff 1, variances 2, se = sqrt 2, df = 2, where
	// the quantile is (2u-1) sqrt(2 / (4u(1-u))): 4.302653 at u = 0.975.
	w, err = WelchTest([]float64{1, 3}, []float64{0, 2}, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	u := 0.975
	q := (2*u - 1) * math.Sqrt(2/(4*u*(1-u)))
	if !near(w.DF, 2, 1e-12) || !near(w.CI.Lo, 1-q*math.Sqrt2, 1e-9) || !near(w.CI.Hi, 1+q*math.Sqrt2, 1e-9) {
		t.Errorf("df 2 case: %+v, want interval 1 ± %.6f", w, q*math.Sqrt2)
	}
	if _, err := WelchTest([]float64{1}, []float64{1, 2}, 0.95); err == nil {
		t.Error("a one-value side was accepted")
	}
	// Equal constant samples: no spread, the difference is exact.
	w, _ = WelchTest([]float64{2, 2}, []float64{1, 1}, 0.95)
	if w.CI != (Interval{1, 1}) || w.P != 0 {
		t.Errorf("constant samples: %+v", w)
	}
}

// The paper's prediction interval for one run, n = 10: t(9, 0.975) =
// 2.262157 (a printed table value).
func TestPredictionIntervalByHand(t *testing.T) {
	iv, err := PredictionInterval(70, 1, 10, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	h := 2.2621571628 * math.Sqrt(1.1)
	if !near(iv.Lo, 70-h, 1e-9) || !near(iv.Hi, 70+h, 1e-9) {
		t.Errorf("interval %+v, want 70 ± %.6f", iv, h)
	}
}

// runNumpy runs the numpy reference with a JSON request.
func runNumpy(t *testing.T, req any) map[string]json.RawMessage {
	t.Helper()
	py := "/usr/bin/python3"
	if out, err := exec.Command(py, "-c", "import numpy").CombinedOutput(); err != nil {
		t.Fatalf("%s cannot import numpy (%v: %s): run `make deps` (it installs python3-numpy)", py, err, out)
	}
	b, _ := json.Marshal(req)
	cmd := exec.Command(py, filepath.Join("testdata", "welch_numpy.py"))
	cmd.Stdin = bytes.NewReader(b)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("welch_numpy.py: %v\n%s", err, stderr.String())
	}
	var res map[string]json.RawMessage
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	return res
}

// Welch's statistics, p-values and intervals against numpy with the t
// distribution integrated numerically; the bootstrap's percentiles against
// numpy.percentile on the same resampled differences.
func TestWelchAndBootstrapAgainstNumpy(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	type sample struct{ A, B []float64 }
	var cases []sample
	for _, sz := range [][2]int{{2, 2}, {3, 10}, {10, 10}, {5, 7}, {10, 4}} {
		var c sample
		for range sz[0] {
			c.A = append(c.A, 72+0.5*rng.NormFloat64())
		}
		for range sz[1] {
			c.B = append(c.B, 71.5+1.5*rng.NormFloat64())
		}
		cases = append(cases, c)
	}
	_, dist, err := BootstrapDiff(cases[2].A, cases[2].B, mean, 999, 3, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	ps := []float64{0.025, 0.5, 0.975, 0.1}
	var req struct {
		Cases []map[string][]float64 `json:"cases"`
		Pct   struct {
			Values []float64 `json:"values"`
			P      []float64 `json:"p"`
		} `json:"percentile"`
	}
	for _, c := range cases {
		req.Cases = append(req.Cases, map[string][]float64{"a": c.A, "b": c.B})
	}
	req.Pct.Values, req.Pct.P = dist, ps
	res := runNumpy(t, req)
	var want []struct{ Diff, SE, DF, T, P, Lo, Hi float64 }
	if err := json.Unmarshal(res["cases"], &want); err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		w, err := WelchTest(c.A, c.B, 0.95)
		if err != nil {
			t.Fatal(err)
		}
		n := want[i]
		if !near(w.Diff, n.Diff, 1e-12) || !near(w.SE, n.SE, 1e-12) || !near(w.DF, n.DF, 1e-10) || !near(w.T, n.T, 1e-10) ||
			!near(w.P, n.P, 1e-7) || !near(w.CI.Lo, n.Lo, 1e-7) || !near(w.CI.Hi, n.Hi, 1e-7) {
			t.Errorf("case %d (n %d, %d): ours %+v, numpy %+v", i, len(c.A), len(c.B), w, n)
		}
	}
	var pct []float64
	if err := json.Unmarshal(res["percentiles"], &pct); err != nil {
		t.Fatal(err)
	}
	sorted := slices.Sorted(slices.Values(dist))
	for i, p := range ps {
		if got := Percentile(sorted, p); !near(got, pct[i], 1e-12) {
			t.Errorf("percentile %v: ours %v, numpy %v", p, got, pct[i])
		}
	}
}

// The bootstrap is seeded (same interval every time, another for another
// seed) and, on large normal samples, agrees with Welch's interval.
func TestBootstrapProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var a, b []float64
	for range 400 {
		a = append(a, 1+rng.NormFloat64())
		b = append(b, 2*rng.NormFloat64())
	}
	i1, _, _ := BootstrapDiff(a, b, mean, 4000, 9, 0.95)
	i2, _, _ := BootstrapDiff(a, b, mean, 4000, 9, 0.95)
	i3, _, _ := BootstrapDiff(a, b, mean, 4000, 10, 0.95)
	if i1 != i2 || i1 == i3 {
		t.Errorf("seeded bootstrap: %v, %v (same seed), %v (another)", i1, i2, i3)
	}
	w, _ := WelchTest(a, b, 0.95)
	width := w.CI.Hi - w.CI.Lo
	if math.Abs(i1.Lo-w.CI.Lo) > 0.1*width || math.Abs(i1.Hi-w.CI.Hi) > 0.1*width {
		t.Errorf("bootstrap %v far from Welch %v", i1, w.CI)
	}
}

func TestClaimsFile(t *testing.T) {
	c, err := LoadClaims("../" + DefaultClaims)
	if err != nil {
		t.Fatal(err)
	}
	// The baselines the project adds are named, so their rows read "not run"
	// until their records exist.
	var named []string
	for _, cl := range c.Claims {
		for _, cp := range cl.Comparisons {
			named = append(named, cp.B.Config)
		}
	}
	for _, b := range []string{"late_fusion", "lrtf", "mi_matrix", "refnet", "cca", "gradblend", "mimic_late_fusion", "mimic_lrtf", "mimic_mi_matrix", "mimic_gradblend"} {
		if !slices.Contains(named, b) {
			t.Errorf("the claims do not compare with %s", b)
		}
	}
	bad := filepath.Join(t.TempDir(), "claims.json")
	os.WriteFile(bad, []byte(`{"confidence": 0.95, "bootstrap": {"resamples": 1000, "seed": 1}, "claims": [{"id": "x", "text": "t", "dataset": "avmnist", "comparisons": [{"a": {"config": "a"}, "b": {"config": "b"}, "metric": "accuracy", "direction": "faster", "paper": 1}]}]}`), 0o644)
	if _, err := LoadClaims(bad); err == nil || !strings.Contains(err.Error(), "faster") {
		t.Errorf("faster on accuracy: %v", err)
	}
}

// Verdicts on fixture records of several seeds.
func TestComparisonVerdicts(t *testing.T) {
	c, err := LoadClaims("../" + DefaultClaims)
	if err != nil {
		t.Fatal(err)
	}
	grp := func(config string, accs []float64, secs []float64) *group {
		g := &group{Config: config}
		for i, a := range accs {
			g.Complete = append(g.Complete, fakeRun{config: config, seed: int64(i), acc: a, train: secs[i],
				heads: map[string]float64{"fusion": a, "image": a - 0.01}}.record())
		}
		return g
	}
	groups := map[string]*group{
		"hi":   grp("hi", []float64{0.73, 0.731, 0.729}, []float64{10, 11, 9}),
		"lo":   grp("lo", []float64{0.71, 0.712, 0.708}, []float64{100, 110, 90}),
		"same": grp("same", []float64{0.70, 0.74, 0.72}, []float64{10, 10, 10}),
		"one":  grp("one", []float64{0.9}, []float64{1}),
	}
	cmp := func(a, b, metric, dir string, margin float64) ComparisonResult {
		return checkComparison(Comparison{A: Side{Config: a}, B: Side{Config: b}, Metric: metric, Direction: dir, Margin: margin}, groups, c)
	}
	for _, tc := range []struct {
		name string
		res  ComparisonResult
		want string
	}{
		{"hi > lo", cmp("hi", "lo", "accuracy", "greater", 0), Holds},
		{"lo > hi", cmp("lo", "hi", "accuracy", "greater", 0), DoesNotHold},
		{"same > hi", cmp("same", "hi", "accuracy", "greater", 0), DoesNotHold},
		{"same >= hi within 3", cmp("same", "hi", "accuracy", "at_least", 3), DoesNotHold}, // -1 ± 5: below -3 possible
		{"hi >= same within 5", cmp("hi", "same", "accuracy", "at_least", 5), Holds},
		{"one > lo", cmp("one", "lo", "accuracy", "greater", 0), NotEnoughSeeds},
		{"hi > missing", cmp("hi", "late_fusion", "accuracy", "greater", 0), NotRun},
		{"hi faster than lo", cmp("hi", "lo", "train_seconds", "faster", 0), Holds},
	} {
		if tc.res.Verdict != tc.want {
			t.Errorf("%s: %s (%s), want %s; %+v", tc.name, tc.res.Verdict, tc.res.Why, tc.want, tc.res)
		}
	}
	// The estimate is the difference of means in points, and the speed-up
	// the ratio of geometric means.
	if r := cmp("hi", "lo", "accuracy", "greater", 0); !near(r.Estimate, 2, 1e-9) {
		t.Errorf("hi - lo = %v, want 2 points", r.Estimate)
	}
	g := math.Cbrt(100.0 * 110 * 90 / (10 * 11 * 9))
	if r := cmp("hi", "lo", "train_seconds", "faster", 0); !near(r.Estimate, g, 1e-12) || !(r.CI.Lo < g && g < r.CI.Hi) {
		t.Errorf("speed-up %v (interval %v), want %v", r.Estimate, r.CI, g)
	}
	// A head's accuracy.
	r := checkComparison(Comparison{A: Side{Config: "hi", Head: "image"}, B: Side{Config: "hi"}, Metric: "accuracy", Direction: "greater"}, groups, c)
	if !near(r.Estimate, -1, 1e-9) {
		t.Errorf("image head - fusion = %v, want -1", r.Estimate)
	}
}

func TestConsistency(t *testing.T) {
	// One seed: inside the prediction interval 70 ± 2.37.
	c, _ := checkConsistency(Stat{N: 1, Mean: 72}, 70, 1, 10, 0.95)
	if !c.Consistent {
		t.Errorf("72 against 70 ± 1: %+v", c)
	}
	c, _ = checkConsistency(Stat{N: 1, Mean: 73}, 70, 1, 10, 0.95)
	if c.Consistent {
		t.Errorf("73 against 70 ± 1: %+v", c)
	}
	// Three seeds, mean 70.2 ± 0.3 against 70 ± 1 (10): consistent; 72 ± 0.3 not.
	c, _ = checkConsistency(Stat{N: 3, Mean: 70.2, Std: 0.3}, 70, 1, 10, 0.95)
	if !c.Consistent {
		t.Errorf("70.2: %+v", c)
	}
	c, _ = checkConsistency(Stat{N: 3, Mean: 72, Std: 0.3}, 70, 1, 10, 0.95)
	if c.Consistent {
		t.Errorf("72: %+v", c)
	}
}

// The report's Claims section from fixture runs of three seeds.
func TestClaimsSection(t *testing.T) {
	runs, out := t.TempDir(), t.TempDir()
	var fs []fakeRun
	for s := int64(1); s <= 3; s++ {
		d := float64(s) * 0.001
		fs = append(fs,
			fakeRun{config: "m2mixer_m", seed: s, acc: 0.73 + d, train: 100, heads: map[string]float64{"fusion": 0.73 + d, "image": 0.66, "audio": 0.40}},
			fakeRun{config: "mmixer", seed: s, acc: 0.71 + d, train: 50},
		)
	}
	fs = append(fs, fakeRun{config: "m2mixer_s", seed: 1, acc: 0.70, train: 10})
	writeRuns(t, runs, fs...)
	if _, err := Generate(runs, out, Options{PaperResults: paperFile, Claims: "../" + DefaultClaims, NoPlots: true}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(out, IndexFile))
	md := string(b)
	for _, want := range []string{
		"## Claims",
		"| M2-Mixer_M beats MMixer on AV-MNIST | `m2mixer_m` > `mmixer` | 3, 3 | +2.00 |",
		"`m2mixer_m` > `m2mixer_s` | 3, 1 | +3.20 | – | – | – | +0.82 | **not enough seeds**",
		"`m2mixer_m` > `late_fusion` | 3, 0 | – | – | – | – | +1.26 | **not run** (no finished record of `late_fusion`)",
		"| MMixer (`mmixer`) | 71.20 ± 0.10 (n=3) | 71.58 ± 0.6 | ours − paper in [-0.82, +0.06] | yes |",
		"| M2-Mixer_S (`m2mixer_s`) | 70.00 (n=1) | 71.99 ± 0.37 | one run in [71.11, 72.87] | **no** |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if !strings.Contains(md, "| M2-Mixer_M beats MMixer on AV-MNIST | `m2mixer_m` > `mmixer` | 3, 3 | +2.00 | [") || !strings.Contains(md, "+1.23 | **holds** |") {
		t.Errorf("the M > MMixer row does not hold")
	}
	if testing.Verbose() {
		t.Log(md[strings.Index(md, "## Claims"):strings.Index(md, "## Table IV")])
	}
}
