package reports

import "math"

// Stat summarises one metric over seeds.
//
// Std is the sample standard deviation (n-1 in the denominator): the runs
// are a sample of the seeds one could have drawn, and the paper does not
// say which it used. Std is NaN when N < 2, where it is undefined.
type Stat struct {
	N    int
	Mean float64
	Std  float64
	Max  float64
}

// Summarize returns the mean, sample standard deviation and maximum of xs.
// Each value enters the mean once, in order, so equal inputs give equal bits.
func Summarize(xs []float64) Stat {
	s := Stat{N: len(xs), Mean: math.NaN(), Std: math.NaN(), Max: math.NaN()}
	if len(xs) == 0 {
		return s
	}
	sum, maxv := 0.0, math.Inf(-1)
	for _, x := range xs {
		sum += x
		maxv = math.Max(maxv, x)
	}
	s.Mean, s.Max = sum/float64(len(xs)), maxv
	if len(xs) > 1 {
		ss := 0.0
		for _, x := range xs {
			d := x - s.Mean
			ss += d * d
		}
		s.Std = math.Sqrt(ss / float64(len(xs)-1))
	}
	return s
}
