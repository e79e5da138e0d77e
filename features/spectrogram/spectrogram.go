// Package spectrogram renders a speech clip as the 112 x 112 greyscale
// spectrogram of the AV-MNIST recipe (reproduction.md §5).
//
// The steps: the frame rule picks a segment length i and overlap j that give
// exactly 112 segments; each segment is multiplied by a symmetric Hann window
// (numpy.hanning), zero-padded to 223 points and transformed; the 112
// one-sided bins become a power spectral density (matplotlib's scaling) in dB;
// the clip's dB image is scaled to [0, 1] by its own min and max and mapped
// through matplotlib's 'Greys' colour map, whose red channel is kept as uint8
// (255 = lowest power). Row 0 is the highest frequency, column 0 the first
// segment.
//
// The 223-point transform is computed as a direct DFT of the i non-zero
// samples of each segment (i is ~30 for FSDD clips), with the window folded
// into a precomputed matrix. That is the same transform a 223-point FFT
// computes (the tests check it against github.com/mjibson/go-dsp's FFT), but
// about 100 times faster: 223 is prime, so an FFT needs Bluestein's algorithm
// with three 512-point transforms per segment, and go-dsp additionally starts
// goroutines on every call (~140 µs per 223-point FFT, which would make the
// 7.8 million segments of a full generation take well over 15 minutes).
package spectrogram

import (
	"fmt"
	"math"
)

const (
	// Size is the number of frequency rows and time columns.
	Size = 112
	// NFFT is the zero-padded transform length; 223 gives 112 one-sided bins.
	NFFT = 2*Size - 1
	// Rate is the sample rate the PSD scaling assumes (FSDD's 8 kHz).
	Rate = 8000.0
)

// FrameRule returns the segment length i and overlap j for a clip of n
// samples: starting from i = ceil(n/112) - 1 and j = 0, the first pair (i
// ascending, then j ascending, j < i) with 112*i - 111*j <= n < 113*i - 112*j.
// Segments then start every i - j samples and exactly 112 of them fit.
func FrameRule(n int) (i, j int, err error) {
	if n < Size {
		return 0, 0, fmt.Errorf("clip of %d samples is shorter than %d", n, Size)
	}
	start := max((n+Size-1)/Size-1, 1)
	// i can never need to exceed n: bound the search for safety.
	for i = start; i <= n; i++ {
		for j = 0; j < i; j++ {
			if Size*i-(Size-1)*j <= n && n < (Size+1)*i-Size*j {
				return i, j, nil
			}
		}
	}
	return 0, 0, fmt.Errorf("no segment length gives %d frames for %d samples", Size, n)
}

// Frames is the number of segments of length i at step i-j in n samples
// (matplotlib's rule: no padding at either end).
func Frames(n, i, j int) int {
	if n < i {
		return 0
	}
	return (n-i)/(i-j) + 1
}

// Hann returns numpy.hanning(n): the symmetric Hann window
// 0.5 - 0.5 cos(2 pi k / (n-1)).
func Hann(n int) []float64 {
	w := make([]float64, n)
	if n == 1 {
		w[0] = 1
		return w
	}
	for k := range w {
		w[k] = 0.5 - 0.5*math.Cos(2*math.Pi*float64(k)/float64(n-1))
	}
	return w
}

// kernel is the windowed DFT matrix for one segment length: cos[k*i+n] =
// w[n] cos(2 pi k n / 223), likewise sin, for the 112 bins k.
type kernel struct {
	i        int
	cos, sin []float64
	scale    float64 // 1 / (Fs * sum(w^2))
}

func newKernel(i int) *kernel {
	w := Hann(i)
	k := &kernel{i: i, cos: make([]float64, Size*i), sin: make([]float64, Size*i)}
	ss := 0.0
	for _, v := range w {
		ss += v * v
	}
	k.scale = 1 / (Rate * ss)
	for b := 0; b < Size; b++ {
		for n := 0; n < i; n++ {
			// Reduce k*n modulo 223 first so the angle stays small and exact.
			a := 2 * math.Pi * float64((b*n)%NFFT) / NFFT
			s, c := math.Sincos(a)
			k.cos[b*i+n] = w[n] * c
			k.sin[b*i+n] = w[n] * s
		}
	}
	return k
}

// Renderer computes spectrograms. It caches one kernel per segment length,
// so give each goroutine its own Renderer; the zero value is ready to use.
type Renderer struct {
	kernels map[int]*kernel
	db      []float64
}

// PSD returns the power spectral density in dB as a [bin][frame] matrix
// (Size*Size values, bin 0 = DC first, as numpy computes it).
func (r *Renderer) PSD(x []float64) ([]float64, error) {
	i, j, err := FrameRule(len(x))
	if err != nil {
		return nil, err
	}
	if r.kernels == nil {
		r.kernels = map[int]*kernel{}
	}
	k := r.kernels[i]
	if k == nil {
		k = newKernel(i)
		r.kernels[i] = k
	}
	if cap(r.db) < Size*Size {
		r.db = make([]float64, Size*Size)
	}
	db := r.db[:Size*Size]
	step := i - j
	// Four frames per pass share each kernel load and give eight independent
	// accumulator chains, which keeps the CPU's pipelines full (3x faster
	// than one frame at a time). 112 is a multiple of 4.
	for f := 0; f < Size; f += 4 {
		s0 := x[f*step : f*step+i]
		s1 := x[(f+1)*step : (f+1)*step+i]
		s2 := x[(f+2)*step : (f+2)*step+i]
		s3 := x[(f+3)*step : (f+3)*step+i]
		for b := 0; b < Size; b++ {
			c := k.cos[b*i : b*i+i]
			s := k.sin[b*i : b*i+i]
			var r0, r1, r2, r3, m0, m1, m2, m3 float64
			for n := range c {
				cv, sv := c[n], s[n]
				r0 += s0[n] * cv
				m0 += s0[n] * sv
				r1 += s1[n] * cv
				m1 += s1[n] * sv
				r2 += s2[n] * cv
				m2 += s2[n] * sv
				r3 += s3[n] * cv
				m3 += s3[n] * sv
			}
			// One-sided PSD: every bin but DC stands for two (223 is odd,
			// so there is no Nyquist bin to leave alone).
			sc := k.scale
			if b > 0 {
				sc *= 2
			}
			row := db[b*Size+f : b*Size+f+4]
			row[0] = 10 * math.Log10((r0*r0+m0*m0)*sc)
			row[1] = 10 * math.Log10((r1*r1+m1*m1)*sc)
			row[2] = 10 * math.Log10((r2*r2+m2*m2)*sc)
			row[3] = 10 * math.Log10((r3*r3+m3*m3)*sc)
		}
	}
	return db, nil
}

// Render returns the 112 x 112 uint8 image (row-major, row 0 = highest
// frequency) for the clip x, sampled at 8 kHz. A clip with a segment of pure
// digital silence has -inf dB there; those cells are set to the clip's lowest
// finite dB value, so they render as the lowest power (255) instead of
// breaking the min-max scaling; Render returns how many cells that was.
func (r *Renderer) Render(x []float64, out []uint8) (silent int, err error) {
	if len(out) != Size*Size {
		return 0, fmt.Errorf("output has %d values, want %d", len(out), Size*Size)
	}
	db, err := r.PSD(x)
	if err != nil {
		return 0, err
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range db {
		if !math.IsInf(v, 0) && !math.IsNaN(v) {
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	if math.IsInf(lo, 1) {
		return 0, fmt.Errorf("clip of %d samples is silent", len(x))
	}
	for b := 0; b < Size; b++ {
		row := Size - 1 - b // highest frequency at the top
		for f := 0; f < Size; f++ {
			v := db[b*Size+f]
			if math.IsInf(v, 0) || math.IsNaN(v) {
				v = lo
				silent++
			}
			out[row*Size+f] = Greys(Normalize(v, lo, hi))
		}
	}
	return silent, nil
}

// Normalize maps v to [0, 1] by the clip's min and max, as matplotlib's
// Normalize does (a flat image maps to 0).
func Normalize(v, lo, hi float64) float64 {
	if hi == lo {
		return 0
	}
	return (v - lo) / (hi - lo)
}
