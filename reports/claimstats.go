package reports

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"gonum.org/v1/gonum/stat/distuv"
)

// Interval is a two-sided confidence interval.
type Interval struct{ Lo, Hi float64 }

// Contains reports whether v lies in the closed interval.
func (iv Interval) Contains(v float64) bool { return iv.Lo <= v && v <= iv.Hi }

// Welch is Welch's unequal-variance t-test of mean(a) - mean(b).
type Welch struct {
	Diff float64 // mean(a) - mean(b)
	SE   float64 // sqrt(var(a)/na + var(b)/nb), sample variances
	DF   float64 // Welch-Satterthwaite degrees of freedom
	T    float64 // Diff / SE
	P    float64 // two-sided p-value
	CI   Interval
}

// WelchTest compares two samples of at least two values each; conf is the
// confidence level of the interval (0.95). With both variances zero the
// interval is the difference itself and P is 0 (or 1 when the means agree).
func WelchTest(a, b []float64, conf float64) (Welch, error) {
	if len(a) < 2 || len(b) < 2 {
		return Welch{}, fmt.Errorf("welch: need two or more values on each side, have %d and %d", len(a), len(b))
	}
	sa, sb := Summarize(a), Summarize(b)
	return WelchSummary(sa.Mean, sa.Std, len(a), sb.Mean, sb.Std, len(b), conf)
}

// WelchSummary is WelchTest from each sample's mean, sample std and size,
// as the paper reports them.
func WelchSummary(ma, sa float64, na int, mb, sb float64, nb int, conf float64) (Welch, error) {
	if na < 2 || nb < 2 {
		return Welch{}, fmt.Errorf("welch: need two or more values on each side, have %d and %d", na, nb)
	}
	va, vb := sa*sa/float64(na), sb*sb/float64(nb)
	w := Welch{Diff: ma - mb, SE: math.Sqrt(va + vb)}
	if w.SE == 0 {
		w.DF, w.T, w.CI = math.Inf(1), math.Copysign(math.Inf(1), w.Diff), Interval{w.Diff, w.Diff}
		w.P = 0
		if w.Diff == 0 {
			w.T, w.P = 0, 1
		}
		return w, nil
	}
	w.DF = (va + vb) * (va + vb) / (va*va/float64(na-1) + vb*vb/float64(nb-1))
	w.T = w.Diff / w.SE
	t := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: w.DF}
	w.P = 2 * t.Survival(math.Abs(w.T))
	q := t.Quantile(1 - (1-conf)/2)
	w.CI = Interval{w.Diff - q*w.SE, w.Diff + q*w.SE}
	return w, nil
}

// PredictionInterval is where one new draw from a population known through
// a sample (mean, sample std, n) falls with probability conf, under
// normality: mean ± t(n-1) · std · sqrt(1 + 1/n). It judges a single seed
// of ours against the paper's mean and std.
func PredictionInterval(mean, std float64, n int, conf float64) (Interval, error) {
	if n < 2 {
		return Interval{}, fmt.Errorf("prediction interval: need a sample of two or more, have %d", n)
	}
	q := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(n - 1)}.Quantile(1 - (1-conf)/2)
	h := q * std * math.Sqrt(1+1/float64(n))
	return Interval{mean - h, mean + h}, nil
}

// BootstrapDiff is the percentile bootstrap interval of stat(a) - stat(b)
// (stat: the mean, or any function of a sample): each of the resamples
// draws len(a) values of a and len(b) of b with replacement, from a PCG
// seeded with seed, so the interval is the same on every run. Percentiles
// interpolate linearly between order statistics (numpy's default).
func BootstrapDiff(a, b []float64, stat func([]float64) float64, resamples int, seed uint64, conf float64) (Interval, []float64, error) {
	if len(a) < 2 || len(b) < 2 || resamples < 1 {
		return Interval{}, nil, fmt.Errorf("bootstrap: need two or more values on each side and a resample count, have %d, %d and %d", len(a), len(b), resamples)
	}
	rng := rand.New(rand.NewPCG(seed, 0x626f6f74)) // "boot"
	ra, rb := make([]float64, len(a)), make([]float64, len(b))
	dist := make([]float64, resamples)
	for i := range dist {
		for j := range ra {
			ra[j] = a[rng.IntN(len(a))]
		}
		for j := range rb {
			rb[j] = b[rng.IntN(len(b))]
		}
		dist[i] = stat(ra) - stat(rb)
	}
	sorted := slices.Clone(dist)
	slices.Sort(sorted)
	alpha := (1 - conf) / 2
	return Interval{Percentile(sorted, alpha), Percentile(sorted, 1-alpha)}, dist, nil
}

// Percentile of sorted values at fraction p in [0, 1], interpolating
// linearly between the order statistics at positions p·(n-1) (numpy's
// "linear" method).
func Percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	pos := p * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	if lo >= len(sorted)-1 {
		return sorted[len(sorted)-1]
	}
	f := pos - float64(lo)
	return sorted[lo] + f*(sorted[lo+1]-sorted[lo])
}

func mean(xs []float64) float64 { return Summarize(xs).Mean }
