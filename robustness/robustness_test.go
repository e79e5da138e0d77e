package robustness

import (
	"math"
	"slices"
	"testing"
)

// fixture is 200 rows of a (4, 3) modality with known values.
func fixture() ([]float32, ModalityStats) {
	const rows, width = 200, 12
	x := make([]float32, rows*width)
	for i := range x {
		x[i] = float32((i*7)%23) - 5
	}
	st, err := ComputeStats(x, rows, []int64{4, 3})
	if err != nil {
		panic(err)
	}
	return x, st
}

func TestComputeStatsByHand(t *testing.T) {
	// Two rows of width 2: [1, 2], [3, 6]. Per-position means 2, 4; all
	// values: mean 3, population variance (4+1+0+9)/4 = 3.5.
	st, err := ComputeStats([]float32{1, 2, 3, 6}, 2, []int64{2})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(st.Mean, []float64{2, 4}) || math.Abs(st.Std-math.Sqrt(3.5)) > 1e-15 {
		t.Fatalf("stats %+v, want mean [2 4], std sqrt(3.5)", st)
	}
	if _, err := ComputeStats([]float32{1, 2, 3}, 2, []int64{2}); err == nil {
		t.Fatal("3 values for 2 rows of 2 accepted")
	}
}

func TestMissingFills(t *testing.T) {
	x, st := fixture()
	z := slices.Clone(x)
	if err := (Corruption{Kind: Missing, Modality: "m", Fill: FillZeros}).Apply(z, 0, 200, st, 1); err != nil {
		t.Fatal(err)
	}
	for i, v := range z {
		if v != 0 {
			t.Fatalf("zeros: value %d is %v", i, v)
		}
	}
	m := slices.Clone(x)
	if err := (Corruption{Kind: Missing, Modality: "m", Fill: FillMean}).Apply(m, 0, 200, st, 1); err != nil {
		t.Fatal(err)
	}
	for i, v := range m {
		if v != float32(st.Mean[i%12]) {
			t.Fatalf("mean: value %d is %v, want %v", i, v, st.Mean[i%12])
		}
	}
	if err := (Corruption{Kind: Missing, Fill: "median"}).Apply(m, 0, 200, st, 1); err == nil {
		t.Fatal("an unknown fill was accepted")
	}
}

// The noise added has mean 0 and the std asked for, is the same for the
// same seed whatever the batching, and differs for another seed.
func TestGaussianStdAndDeterminism(t *testing.T) {
	x, st := fixture()
	for _, level := range []float64{0.1, 0.5, 1} {
		c := Corruption{Kind: Gaussian, Modality: "m", Level: level}
		y := slices.Clone(x)
		if err := c.Apply(y, 0, 200, st, 7); err != nil {
			t.Fatal(err)
		}
		sum, ss := 0.0, 0.0
		for i := range y {
			d := float64(y[i]) - float64(x[i])
			sum += d
			ss += d * d
		}
		n := float64(len(y))
		mean := sum / n
		sd := math.Sqrt(ss/n - mean*mean)
		want := level * st.Std
		// 2,400 draws: the sample std is within 5 % of sigma (about 3.5 of its
		// standard errors), the mean within 4 standard errors of 0.
		if math.Abs(sd-want) > 0.05*want || math.Abs(mean) > 4*want/math.Sqrt(n) {
			t.Errorf("level %v: noise mean %.4f std %.4f, want 0 and %.4f", level, mean, sd, want)
		}
		// Two batches of 80 and 120 rows give the same bytes as one of 200.
		z := slices.Clone(x)
		if err := c.Apply(z[:80*12], 0, 80, st, 7); err != nil {
			t.Fatal(err)
		}
		if err := c.Apply(z[80*12:], 80, 120, st, 7); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(y, z) {
			t.Errorf("level %v: batching changed the noise", level)
		}
		o := slices.Clone(x)
		if err := c.Apply(o, 0, 200, st, 8); err != nil {
			t.Fatal(err)
		}
		if slices.Equal(o, y) {
			t.Errorf("level %v: another seed gave the same noise", level)
		}
	}
}

func TestDropSteps(t *testing.T) {
	x, st := fixture()
	for _, p := range []float64{0, 0.3, 1} {
		y := slices.Clone(x)
		c := Corruption{Kind: DropSteps, Modality: "time", Level: p}
		if err := c.Apply(y, 0, 200, st, 3); err != nil {
			t.Fatal(err)
		}
		dropped := 0
		for r := 0; r < 200; r++ {
			for s := 0; s < 4; s++ {
				row, orig := y[r*12+s*3:r*12+s*3+3], x[r*12+s*3:r*12+s*3+3]
				isMean := true
				for f := range row {
					isMean = isMean && row[f] == float32(st.Mean[s*3+f])
				}
				switch {
				case slices.Equal(row, orig):
				case isMean:
					dropped++
				default:
					t.Fatalf("p %v: row %d step %d is neither kept nor the mean", p, r, s)
				}
			}
		}
		// 800 steps: the share dropped within 5 points of p.
		if share := float64(dropped) / 800; math.Abs(share-p) > 0.05 {
			t.Errorf("p %v: dropped %.3f of the steps", p, share)
		}
	}
	flat := ModalityStats{Shape: []int64{12}, Mean: make([]float64, 12)}
	if err := (Corruption{Kind: DropSteps, Level: 0.5}).Apply(make([]float32, 12), 0, 1, flat, 1); err == nil {
		t.Fatal("dropping steps of a flat modality was accepted")
	}
}

func TestPlan(t *testing.T) {
	p := Plan([]string{"static", "time"}, map[string][]int64{"static": {5}, "time": {24, 12}}, nil)
	// clean, 2x2 missing, 2x10 Gaussian, 10 dropped-step levels.
	if len(p) != 1+4+20+10 {
		t.Fatalf("%d corruptions", len(p))
	}
	a := Plan([]string{"image", "audio"}, map[string][]int64{"image": {1, 28, 28}, "audio": {1, 112, 112}}, []float64{0.1, 0.5})
	if len(a) != 1+4+20+2 || a[len(a)-1] != (Corruption{Kind: NoiseWeight, Modality: "audio", Level: 0.5}) {
		t.Fatalf("AV-MNIST plan: %v", a)
	}
}

// MultiBench's figures on hand-computed curves.
func TestRobustnessFigures(t *testing.T) {
	flat := []float64{0.8, 0.8, 0.8}
	if v := RelativeRobustness(flat); math.Abs(v-0.8) > 1e-15 {
		t.Errorf("flat curve area %v, want 0.8", v)
	}
	// 11 points falling linearly from 1 to 0: area 1/2.
	lin := make([]float64, 11)
	for i := range lin {
		lin[i] = 1 - float64(i)/10
	}
	if v := RelativeRobustness(lin); math.Abs(v-0.5) > 1e-12 {
		t.Errorf("linear curve area %v, want 0.5", v)
	}
	// A curve that drops like the reference, from a higher start, has
	// effective robustness 0; one that keeps 0.1 more at each of its two
	// noisy points has 0.2.
	ref := []float64{0.7, 0.5, 0.3}
	if v := EffectiveRobustness([]float64{0.9, 0.7, 0.5}, ref); math.Abs(v) > 1e-12 {
		t.Errorf("parallel curve %v, want 0", v)
	}
	if v := EffectiveRobustness([]float64{0.9, 0.8, 0.6}, ref); math.Abs(v-0.2) > 1e-12 {
		t.Errorf("flatter curve %v, want 0.2", v)
	}
	if !math.IsNaN(EffectiveRobustness(flat, lin)) {
		t.Error("curves of different lengths gave a number")
	}
}

func TestResultCurve(t *testing.T) {
	r := Result{Head: "fusion", Conditions: []Condition{
		{Corruption: Corruption{Kind: Clean}, Accuracy: map[string]float64{"fusion": 0.9}},
		{Corruption: Corruption{Kind: Gaussian, Modality: "image", Level: 0.1}, Accuracy: map[string]float64{"fusion": 0.8}},
		{Corruption: Corruption{Kind: Gaussian, Modality: "image", Level: 0.2}, Accuracy: map[string]float64{"fusion": 0.7}},
	}}
	c, ok := r.Curve(Gaussian, "image", []float64{0.1, 0.2})
	if !ok || !slices.Equal(c, []float64{0.9, 0.8, 0.7}) {
		t.Fatalf("curve %v %v", c, ok)
	}
	if _, ok := r.Curve(Gaussian, "image", []float64{0.1, 0.3}); ok {
		t.Fatal("a curve with a missing point")
	}
}
