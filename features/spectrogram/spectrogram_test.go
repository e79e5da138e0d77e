package spectrogram

import (
	"math"
	"math/cmplx"
	"path/filepath"
	"testing"

	"github.com/mjibson/go-dsp/fft"

	"github.com/m2mix/m2mix/prep/npy"
	"github.com/m2mix/m2mix/prep/wav"
)

func TestFrameRuleEveryLength(t *testing.T) {
	for n := 1000; n <= 20000; n++ {
		i, j, err := FrameRule(n)
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if j < 0 || j >= i {
			t.Fatalf("n=%d: overlap %d not in [0,%d)", n, j, i)
		}
		if !(112*i-111*j <= n && n < 113*i-112*j) {
			t.Fatalf("n=%d: (i,j)=(%d,%d) breaks the inequality", n, i, j)
		}
		// Count the segments independently: starts 0, s, 2s, ... while the
		// segment still fits.
		s, frames := i-j, 0
		for start := 0; start+i <= n; start += s {
			frames++
		}
		if frames != 112 || Frames(n, i, j) != 112 {
			t.Fatalf("n=%d: %d frames", n, frames)
		}
		// "First pair": no smaller i (from ceil(n/112)-1) works with any j.
		for ii := max((n+111)/112-1, 1); ii < i; ii++ {
			for jj := 0; jj < ii; jj++ {
				if 112*ii-111*jj <= n && n < 113*ii-112*jj {
					t.Fatalf("n=%d: (%d,%d) comes before (%d,%d)", n, ii, jj, i, j)
				}
			}
		}
	}
	if _, _, err := FrameRule(50); err == nil {
		t.Fatal("a 50-sample clip was accepted")
	}
}

func TestHannMatchesNumpy(t *testing.T) {
	// numpy.hanning(5) = [0, 0.5, 1, 0.5, 0]; hanning(4) = [0, .75, .75, 0].
	cases := map[int][]float64{5: {0, 0.5, 1, 0.5, 0}, 4: {0, 0.75, 0.75, 0}, 1: {1}}
	for n, want := range cases {
		got := Hann(n)
		for k := range want {
			if math.Abs(got[k]-want[k]) > 1e-15 {
				t.Fatalf("Hann(%d) = %v, want %v", n, got, want)
			}
		}
	}
}

// TestDFTMatchesGoDSPFFT checks the direct windowed DFT against a 223-point
// FFT from github.com/mjibson/go-dsp on zero-padded windowed segments.
func TestDFTMatchesGoDSPFFT(t *testing.T) {
	for _, i := range []int{10, 29, 111, 163} {
		k := newKernel(i)
		w := Hann(i)
		x := make([]complex128, NFFT)
		seg := make([]float64, i)
		for n := range seg {
			seg[n] = math.Sin(0.37*float64(n)) + 0.1*float64(n%5)
			x[n] = complex(seg[n]*w[n], 0)
		}
		X := fft.FFT(x)
		for b := 0; b < Size; b++ {
			var re, im float64
			for n, v := range seg {
				re += v * k.cos[b*i+n]
				im += v * k.sin[b*i+n]
			}
			// Our sin has the opposite sign convention; power is what matters,
			// but check the complex value too.
			got := complex(re, -im)
			if cmplx.Abs(got-X[b]) > 1e-9*(1+cmplx.Abs(X[b])) {
				t.Fatalf("i=%d bin %d: %v, FFT %v", i, b, got, X[b])
			}
		}
	}
}

func TestPureToneRow(t *testing.T) {
	// A tone at bin frequency b*8000/223 must peak in row 111-b in every frame.
	var r Renderer
	for _, b := range []int{5, 30, 56, 100} {
		f := float64(b) * Rate / NFFT
		x := make([]float64, 4000)
		for n := range x {
			x[n] = math.Sin(2 * math.Pi * f * float64(n) / Rate)
		}
		img := make([]uint8, Size*Size)
		if _, err := r.Render(x, img); err != nil {
			t.Fatal(err)
		}
		for col := 0; col < Size; col += 13 {
			best, row := uint8(255), -1
			for rr := 0; rr < Size; rr++ {
				if v := img[rr*Size+col]; v < best { // dark = high power
					best, row = v, rr
				}
			}
			if row != Size-1-b {
				t.Fatalf("tone at bin %d: column %d peaks in row %d, want %d", b, col, row, Size-1-b)
			}
		}
	}
}

func TestGreysLUTEnds(t *testing.T) {
	// White for the lowest power, black for the highest; monotone between.
	if Greys(0) != 255 || Greys(1) != 0 {
		t.Fatalf("ends: %d %d", Greys(0), Greys(1))
	}
	for k := 1; k < lutSize; k++ {
		if greys[k] > greys[k-1] {
			t.Fatalf("LUT not monotone at %d", k)
		}
	}
	// Hand-computed: entry 32 lies at x=32 between knots 31.875 (0xf0) and
	// 63.75 (0xd9): 240 + (32-31.875)/31.875*(217-240) = 239.9098 -> 239.
	if greys[32] != 239 {
		t.Fatalf("greys[32] = %d, want 239", greys[32])
	}
}

// compareFixture checks our dB values and image against numpy's.
func compareFixture(t *testing.T, name string, x []float64) {
	t.Helper()
	dbRef, err := npy.Read(filepath.Join("testdata", name+"_db.npy"))
	if err != nil {
		t.Fatal(err)
	}
	imgRef, err := npy.Read(filepath.Join("testdata", name+"_img.npy"))
	if err != nil {
		t.Fatal(err)
	}
	var r Renderer
	db, err := r.PSD(x)
	if err != nil {
		t.Fatal(err)
	}
	for b := 0; b < Size; b++ {
		for f := 0; f < 8; f++ {
			want := dbRef.Float64[b*8+f]
			if got := db[b*Size+f]; math.Abs(got-want) > 1e-8*(1+math.Abs(want)) {
				t.Fatalf("%s: dB[bin %d, frame %d] = %.12g, numpy %.12g", name, b, f, got, want)
			}
		}
	}
	img := make([]uint8, Size*Size)
	if _, err := r.Render(x, img); err != nil {
		t.Fatal(err)
	}
	// Values that fall within ~1e-12 of a colour-map step may round either
	// way between libm implementations; allow a handful off by one, no more.
	off := 0
	for k, v := range img {
		d := int(v) - int(imgRef.Uint8[k])
		if d < -1 || d > 1 {
			t.Fatalf("%s: pixel %d = %d, numpy %d", name, k, v, imgRef.Uint8[k])
		}
		if d != 0 {
			off++
		}
	}
	if off > 5 {
		t.Fatalf("%s: %d pixels differ by one from numpy", name, off)
	}
	t.Logf("%s: %d of %d pixels differ by one", name, off, len(img))
}

func TestAgainstNumpySynthetic(t *testing.T) {
	x := make([]float64, 3000)
	for n := range x {
		fn := float64(n)
		x[n] = math.Sin(2*math.Pi*440*fn/Rate) + 0.3*math.Sin(2*math.Pi*1234.5*fn/Rate+0.2)*(fn/3000)
	}
	compareFixture(t, "synth", x)
}

func TestAgainstNumpyFSDD(t *testing.T) {
	a, err := wav.Read(filepath.Join("..", "..", "..", "shared", "data", "fsdd", "recordings", "3_theo_7.wav"))
	if err != nil {
		t.Skip("shared FSDD mirror not present:", err)
	}
	compareFixture(t, "fsdd_3_theo_7", a.Float())
}

func TestSilenceAndErrors(t *testing.T) {
	var r Renderer
	img := make([]uint8, Size*Size)
	if _, err := r.Render(make([]float64, 2000), img); err == nil {
		t.Fatal("all-silent clip accepted")
	}
	// Silence in part of the clip renders as the lowest power (white).
	x := make([]float64, 2000)
	for n := 1000; n < 2000; n++ {
		x[n] = math.Sin(float64(n))
	}
	if _, err := r.Render(x, img); err != nil {
		t.Fatal(err)
	}
	if img[0] != 255 {
		t.Fatalf("silent segment renders as %d", img[0])
	}
	if _, err := r.Render(x, img[:10]); err == nil {
		t.Fatal("short output accepted")
	}
}

func BenchmarkRender(b *testing.B) {
	var r Renderer
	x := make([]float64, 3217) // the mean FSDD clip length of the 4 speakers
	for n := range x {
		x[n] = math.Sin(0.1 * float64(n))
	}
	img := make([]uint8, Size*Size)
	for b.Loop() {
		r.Render(x, img)
	}
}
