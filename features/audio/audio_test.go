package audio

import (
	"math"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/m2mix/m2mix/prep/npy"
)

func TestResampleMatchesNumpyReference(t *testing.T) {
	ref, err := npy.Read(filepath.Join("testdata", "resample_44100_8000.npy"))
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float64, 2000)
	for k := range x {
		fk := float64(k)
		x[k] = math.Sin(2*math.Pi*1000*fk/44100) + 0.5*math.Sin(2*math.Pi*6000*fk/44100) + 0.01*float64(k%7)
	}
	r, err := NewResampler(44100, 8000)
	if err != nil {
		t.Fatal(err)
	}
	if r.Up != 80 || r.Down != 441 {
		t.Fatalf("ratio %d/%d", r.Up, r.Down)
	}
	y := r.Resample(x)
	if len(y) != len(ref.Float64) || len(y) != 363 { // ceil(2000*80/441)
		t.Fatalf("length %d, numpy %d", len(y), len(ref.Float64))
	}
	for m := range y {
		if math.Abs(y[m]-ref.Float64[m]) > 1e-10 {
			t.Fatalf("sample %d: %.15g, numpy %.15g", m, y[m], ref.Float64[m])
		}
	}
}

func TestResampleBandLimits(t *testing.T) {
	r, _ := NewResampler(44100, 8000)
	tone := func(f float64, n int) []float64 {
		x := make([]float64, n)
		for k := range x {
			x[k] = math.Sin(2 * math.Pi * f * float64(k) / 44100)
		}
		return x
	}
	// A 1 kHz tone keeps its frequency and amplitude (away from the edges,
	// where the filter sees the signal's start and end).
	y := r.Resample(tone(1000, 44100))
	for m := 1000; m < 7000; m++ {
		want := math.Sin(2 * math.Pi * 1000 * float64(m) / 8000)
		if math.Abs(y[m]-want) > 5e-3 {
			t.Fatalf("1 kHz: sample %d = %g, want %g", m, y[m], want)
		}
	}
	// A 6 kHz tone is above the new Nyquist rate (4 kHz) and must vanish
	// rather than alias to 2 kHz.
	y = r.Resample(tone(6000, 44100))
	rms := 0.0
	for m := 1000; m < 7000; m++ {
		rms += y[m] * y[m]
	}
	if rms = math.Sqrt(rms / 6000); rms > 5e-3 {
		t.Fatalf("6 kHz tone leaks with rms %g", rms)
	}
}

func TestResampleCases(t *testing.T) {
	same, _ := NewResampler(8000, 8000)
	x := []float64{1, 2, 3}
	if y := same.Resample(x); !reflect.DeepEqual(y, x) {
		t.Fatalf("identity: %v", y)
	}
	if _, err := NewResampler(0, 8000); err == nil {
		t.Fatal("rate 0 accepted")
	}
	r, _ := NewResampler(44100, 8000)
	for n, want := range map[int]int{0: 0, 1: 1, 441: 80, 442: 81, 220500: 40000} {
		if got := r.Len(n); got != want || len(r.Resample(make([]float64, n))) != want {
			t.Errorf("Len(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestMix(t *testing.T) {
	cases := []struct {
		speech, noise, want []float64
	}{
		{[]float64{1, 2, 3}, []float64{100, 200, 300, 400}, []float64{1.9, 3.8, 5.7}}, // crop
		{[]float64{1, 2, 3}, []float64{100}, []float64{1.9, 2, 3}},                    // pad
		{[]float64{}, []float64{1}, []float64{}},
	}
	for _, c := range cases {
		got := Mix(c.speech, c.noise, 0.009)
		for i := range c.want {
			if math.Abs(got[i]-c.want[i]) > 1e-12 {
				t.Fatalf("Mix(%v, %v) = %v, want %v", c.speech, c.noise, got, c.want)
			}
		}
		if len(got) != len(c.want) {
			t.Fatalf("length %d", len(got))
		}
	}
}
