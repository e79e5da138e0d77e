package audit

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/m2mix/m2mix/features/pca"
)

// lowRank returns n rows of 784 float32 values spanning exactly k dimensions.
func lowRank(r *rand.Rand, n, k int) []float32 {
	u := make([]float64, n*k)
	v := make([]float64, k*ImageSize)
	for i := range u {
		u[i] = r.NormFloat64()
	}
	for i := range v {
		v[i] = r.NormFloat64()
	}
	x := make([]float32, n*ImageSize)
	for i := 0; i < n; i++ {
		for j := 0; j < ImageSize; j++ {
			s := 0.0
			for c := 0; c < k; c++ {
				s += u[i*k+c] * v[c*ImageSize+j]
			}
			x[i*ImageSize+j] = float32(s)
		}
	}
	return x
}

// audioFor gives every (label, take) its own spectrogram bytes.
func audioFor(label, take int) []uint8 {
	r := rand.New(rand.NewPCG(uint64(label), uint64(take)))
	a := make([]uint8, AudioSize)
	for i := range a {
		a[i] = uint8(r.IntN(256))
	}
	return a
}

// fixture makes n rows with random labels, each row's audio one of takes
// takes of its label, and images of rank k.
func fixture(r *rand.Rand, n, takes, k int) Split {
	s := Split{Name: "fixture", Label: make([]int64, n), Image: lowRank(r, n, k), Audio: make([]uint8, n*AudioSize)}
	for i := range s.Label {
		l := r.IntN(10)
		s.Label[i] = int64(l)
		copy(s.Audio[i*AudioSize:], audioFor(l, r.IntN(takes)))
	}
	return s
}

// TestImageRank: the audit recovers the rank of images built with k
// dimensions, and of images made as generation makes them (PCA with k
// components of uint8 pixels), with the MNIST variance share PCA gives.
func TestImageRank(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, k := range []int{1, 3, 5, 17} {
		s := fixture(r, 500, 5, k)
		rep, err := Audit("fixture", []Split{s})
		if err != nil {
			t.Fatal(err)
		}
		if got := rep.Splits[0].Image.Rank; got != k {
			t.Errorf("rank-%d images: audit says %d (singular values %v)", k, got, rep.Splits[0].Image.SingularValues)
		}
	}
	// Generation's own images: reconstructions of pixels with k components.
	const n = 800
	pix := make([]uint8, n*ImageSize)
	for i := range pix {
		// Structured pixels (a few smooth patterns plus noise), so PCA's
		// leading components carry most of the variance, as in MNIST.
		row, col := i/ImageSize, i%ImageSize
		v := 128 + 60*math.Sin(float64(col)/40+float64(row%7)) + 30*math.Cos(float64(col)/9*float64(row%3)) + 10*r.NormFloat64()
		pix[i] = uint8(max(0, min(255, v)))
	}
	m, err := pca.FitUint8(pix, n, ImageSize)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []int{3, 5} {
		img, err := m.Reconstruct(pix, n, k)
		if err != nil {
			t.Fatal(err)
		}
		s := fixture(r, n, 5, 1)
		s.Image, s.MNIST = img, pix
		rep, err := Audit("pca", []Split{s})
		if err != nil {
			t.Fatal(err)
		}
		ir := rep.Splits[0].Image
		want := 0.0
		for _, v := range m.Ratios()[:k] {
			want += v
		}
		ruleK, _ := pca.KeepFor(m.Ratios(), 0.25)
		if ir.Rank != k || ir.VarianceShare == nil || math.Abs(*ir.VarianceShare-want) > 1e-12 || *ir.RuleK != ruleK {
			t.Errorf("PCA with %d components: rank %d, variance share %v (want %v), rule k %v (want %d)", k, ir.Rank, ir.VarianceShare, want, ir.RuleK, ruleK)
		}
	}
}

// TestAudioAgreement: with every row's audio its own, agreement is 100 %;
// with a known share of rows given other rows' audio, the in-place
// estimate recovers that share.
func TestAudioAgreement(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	s := fixture(r, 3000, 20, 2)
	rep, err := Audit("aligned", []Split{s})
	if err != nil {
		t.Fatal(err)
	}
	a := rep.Splits[0].Audio
	if a.Agreement != 1 || a.PairAgreement != 1 || a.InPlace != 1 || a.Distinct != 200 || a.InGroups != 3000 {
		t.Fatalf("aligned rows: %+v", a)
	}
	for _, displaced := range []float64{0.3, 0.6, 0.85} {
		d := fixture(r, 3000, 20, 2)
		// Displace a random subset: its rows' audio is permuted among them.
		var idx []int
		for i := range d.Label {
			if r.Float64() < displaced {
				idx = append(idx, i)
			}
		}
		perm := r.Perm(len(idx))
		orig := append([]uint8(nil), d.Audio...)
		own := 0
		for j, i := range idx {
			src := idx[perm[j]]
			copy(d.Audio[i*AudioSize:(i+1)*AudioSize], orig[src*AudioSize:(src+1)*AudioSize])
			if src == i {
				own++
			}
		}
		inPlace := float64(len(d.Label)-len(idx)+own) / float64(len(d.Label))
		rep, err := Audit("displaced", []Split{d})
		if err != nil {
			t.Fatal(err)
		}
		a := rep.Splits[0].Audio
		if math.Abs(a.InPlace-inPlace) > 0.04 || a.Agreement >= 1 {
			t.Errorf("%.0f %% displaced: %.3f in place, estimate %.3f (agreement %.3f, pairs %.3f, chance %.3f)",
				100*displaced, inPlace, a.InPlace, a.Agreement, a.PairAgreement, a.Chance)
		}
	}
}

// TestAuditRejects: NaN images and misshapen splits are errors naming the split.
func TestAuditRejects(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	s := fixture(r, 50, 3, 2)
	s.Image[7] = float32(math.NaN())
	if _, err := Audit("src", []Split{s}); err == nil || !strings.Contains(err.Error(), "src split fixture") || !strings.Contains(err.Error(), "NaN") {
		t.Errorf("NaN image: %v", err)
	}
	s = fixture(r, 50, 3, 2)
	s.Audio = s.Audio[:len(s.Audio)-1]
	if _, err := Audit("src", []Split{s}); err == nil {
		t.Error("short audio accepted")
	}
}
