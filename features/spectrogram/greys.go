package spectrogram

import "math"

// greysHex are ColorBrewer's 9 greys, the colours of matplotlib's 'Greys'.
var greysHex = [9]float64{0xff, 0xf0, 0xd9, 0xbd, 0x96, 0x73, 0x52, 0x25, 0x00}

// lutSize is matplotlib's default colour-map resolution.
const lutSize = 256

// greysLUT returns the red channel of matplotlib's 256-entry 'Greys' lookup
// table as bytes. It follows matplotlib's _create_lookup_table step by step
// in float64 (numpy's linspace and the same operation order), then the
// bytes=True conversion, which truncates lut*255. The explicit float64
// conversions stop the compiler from fusing multiply-adds, which would
// change roundings that truncation then exposes.
func greysLUT() [lutSize]uint8 {
	var x, y [9]float64
	for m := range x {
		x[m] = float64(float64(m)*0.125) * (lutSize - 1) // linspace(0,1,9) * (N-1)
		y[m] = greysHex[m] / 255
	}
	var out [lutSize]uint8
	step := 1.0 / (lutSize - 1)
	for k := 0; k < lutSize; k++ {
		var v float64
		switch k {
		case 0:
			v = y[0]
		case lutSize - 1:
			v = y[8]
		default:
			xi := (lutSize - 1) * float64(float64(k)*step)
			ind := 0
			for ind < 9 && x[ind] < xi { // searchsorted, side='left'
				ind++
			}
			d := float64(xi-x[ind-1]) / float64(x[ind]-x[ind-1])
			v = float64(d*float64(y[ind]-y[ind-1])) + y[ind-1]
		}
		v = min(max(v, 0), 1)
		out[k] = uint8(float64(v * 255)) // astype(uint8) truncates
	}
	return out
}

// greys is computed once per call site that needs it; it is small and
// immutable, so a package-level table built at init is not mutable state.
var greys = greysLUT()

// Greys maps v in [0, 1] to the 'Greys' red channel: index int(v*256),
// with v == 1 mapped to the last entry, as matplotlib's Colormap does.
func Greys(v float64) uint8 {
	xa := v * lutSize
	if xa == lutSize {
		xa = lutSize - 1
	}
	if xa < 0 || math.IsNaN(xa) {
		return greys[0]
	}
	i := int(xa)
	if i >= lutSize {
		i = lutSize - 1
	}
	return greys[i]
}
