// Package audio resamples and mixes the AV-MNIST audio (reproduction.md §5).
//
// Resampling is polyphase filtering with a Kaiser-windowed sinc low-pass,
// defined exactly as scipy.signal.resample_poly(x, up, down) with its
// defaults: the rate ratio is reduced to up/down (44.1 kHz -> 8 kHz is
// 80/441), the filter has 2*10*max(up,down)+1 taps, cutoff 1/max(up,down)
// of the Nyquist rate, Kaiser beta 5.0, unit DC gain times up, and it is
// centred so the output is not delayed; the output has ceil(n*up/down)
// samples. This is band-limited (what librosa/scipy-style loaders do) rather
// than linear interpolation, which would alias the noise's high frequencies
// into the speech band.
package audio

import (
	"fmt"
	"math"
)

// Resampler converts between two fixed rates. It is immutable once made
// and safe for concurrent use.
type Resampler struct {
	Up, Down int
	h        []float64 // filter taps, length 2*half+1
	half     int
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// NewResampler builds the filter for converting from rate `from` to `to`.
func NewResampler(from, to int) (*Resampler, error) {
	if from <= 0 || to <= 0 {
		return nil, fmt.Errorf("resample %d Hz -> %d Hz: rates must be positive", from, to)
	}
	g := gcd(from, to)
	up, down := to/g, from/g
	r := &Resampler{Up: up, Down: down}
	if up == 1 && down == 1 {
		return r, nil
	}
	maxRate := max(up, down)
	r.half = 10 * maxRate
	n := 2*r.half + 1
	cutoff := 1 / float64(maxRate) // fraction of the Nyquist rate
	r.h = make([]float64, n)
	sum := 0.0
	alpha := float64(n-1) / 2
	for k := range r.h {
		m := float64(k) - alpha
		r.h[k] = cutoff * sinc(cutoff*m) * kaiser(k, n, 5.0)
		sum += r.h[k]
	}
	// firwin scales for unit gain at DC; resample_poly then multiplies by up
	// because zero-stuffing divides the signal's level by up.
	for k := range r.h {
		r.h[k] *= float64(up) / sum
	}
	return r, nil
}

func sinc(x float64) float64 {
	if x == 0 {
		return 1
	}
	return math.Sin(math.Pi*x) / (math.Pi * x)
}

// kaiser is the k-th value of numpy.kaiser(n, beta).
func kaiser(k, n int, beta float64) float64 {
	if n == 1 {
		return 1
	}
	r := 2*float64(k)/float64(n-1) - 1
	return besselI0(beta*math.Sqrt(max(0, 1-r*r))) / besselI0(beta)
}

// besselI0 is the modified Bessel function of the first kind, order 0, by
// its power series (converges quickly for the small arguments used here).
func besselI0(x float64) float64 {
	sum, term := 1.0, 1.0
	q := x * x / 4
	for k := 1; k < 500; k++ {
		term *= q / float64(k*k)
		sum += term
		if term < sum*1e-17 {
			break
		}
	}
	return sum
}

// Len is the number of output samples for n input samples.
func (r *Resampler) Len(n int) int {
	return (n*r.Up + r.Down - 1) / r.Down
}

// Resample returns x at the new rate: y[m] = sum_n x[n] h[half + m*down - n*up],
// the zero-stuffed signal filtered and kept at every down-th sample, with the
// filter's centre aligned to the output (zero delay, as resample_poly).
func (r *Resampler) Resample(x []float64) []float64 {
	if r.h == nil {
		return append([]float64(nil), x...)
	}
	out := make([]float64, r.Len(len(x)))
	L := len(r.h)
	for m := range out {
		t := r.half + m*r.Down // index into h for n = 0
		// n ranges where 0 <= t - n*up < L.
		nLo := 0
		if t >= L {
			nLo = (t - L + r.Up) / r.Up
		}
		nHi := min(t/r.Up, len(x)-1)
		acc := 0.0
		for n := nLo; n <= nHi; n++ {
			acc += x[n] * r.h[t-n*r.Up]
		}
		out[m] = acc
	}
	return out
}

// NoiseGain is the recipe's mixing weight of the noise.
const NoiseGain = 0.009

// Mix returns speech + gain*noise over the speech's length; noise shorter
// than the speech is zero-padded, longer noise is cropped.
func Mix(speech, noise []float64, gain float64) []float64 {
	out := make([]float64, len(speech))
	for i, s := range speech {
		if i < len(noise) {
			out[i] = s + gain*noise[i]
		} else {
			out[i] = s
		}
	}
	return out
}
