// Package audit measures what an AV-MNIST dataset is made of, from its
// files alone: how many PCA components its images keep (the numerical rank
// of the image matrix), its value ranges, and how well its audio agrees
// with its labels (groups of byte-identical spectrograms, which are the same
// FSDD take with the same noise, and the share of each group carrying the
// group's majority label). It serves to tell what the public files were
// made with, and to check that our own generation is what it says.
package audit

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"sort"
	"strings"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/mat"

	"github.com/m2mix/m2mix/features/pca"
)

// Split is what an audit reads of one split: row-aligned labels, images
// (rows x ImageSize float32) and spectrograms (rows x AudioSize bytes).
type Split struct {
	Name  string
	Label []int64
	Image []float32
	Audio []uint8
	// MNIST, when set, is the MNIST split the images were made from (in
	// the same row order, pixels rows x ImageSize): the audit then says how
	// much of MNIST's variance the found rank keeps.
	MNIST []uint8
}

// Sizes of one row.
const (
	ImageSize = 784
	AudioSize = 112 * 112
)

// RankRows is how many rows (evenly spaced) the rank is measured on: any
// set of rows that spans the images' subspace has its rank, and a few
// thousand do for ranks far below 784.
const RankRows = 4096

// RankTolerance: a singular value counts when it is above this times the
// largest. Images stored as float32 carry rounding noise near 1e-7 of the
// largest; a kept PCA component of MNIST is above 1e-2.
const RankTolerance = 1e-5

// Report is the audit of a dataset.
type Report struct {
	Source string        `json:"source"`
	Splits []SplitReport `json:"splits"`
}

// SplitReport is the audit of one split.
type SplitReport struct {
	Split string      `json:"split"`
	Rows  int         `json:"rows"`
	Image ImageReport `json:"image"`
	Audio AudioReport `json:"audio"`
}

// ImageReport describes the image matrix.
type ImageReport struct {
	Rank           int       `json:"rank"`            // numerical rank: the PCA components kept
	RankRows       int       `json:"rank_rows"`       // rows it was measured on
	SingularValues []float64 `json:"singular_values"` // the largest ones, relative to the first
	// VarianceShare is the share of MNIST's variance that PCA with Rank
	// components keeps (when the MNIST split was given).
	VarianceShare *float64 `json:"variance_share,omitempty"`
	// RuleK is the k the 25 % rule gives on that MNIST split.
	RuleK *int       `json:"rule_k,omitempty"`
	Range [3]float64 `json:"min_max_mean"`
}

// AudioReport describes the spectrograms' agreement with the labels.
type AudioReport struct {
	Range    [3]float64 `json:"min_max_mean"`
	Distinct int        `json:"distinct"`       // distinct spectrograms
	Groups   int        `json:"groups"`         // spectrograms shared by two rows or more
	InGroups int        `json:"rows_in_groups"` // rows in those groups
	// Agreement is the share of rows in groups that carry their group's
	// majority label: 1 when every row's audio is its own.
	Agreement float64 `json:"label_agreement"`
	// PairAgreement is the share of pairs of rows within a group that have
	// the same label; Chance is what it would be with labels unrelated to
	// the audio (the sum of squared label shares).
	PairAgreement float64 `json:"pair_agreement"`
	Chance        float64 `json:"chance"`
	// InPlace estimates the share of rows whose audio is their own: if a
	// share p is, two rows of a group agree with probability p^2 + (1 -
	// p^2) x Chance, so p = sqrt((PairAgreement - Chance) / (1 - Chance)).
	InPlace float64 `json:"in_place_estimate"`
}

// Audit measures every split.
func Audit(source string, splits []Split) (*Report, error) {
	r := &Report{Source: source}
	for _, s := range splits {
		sr, err := auditSplit(s)
		if err != nil {
			return nil, fmt.Errorf("%s split %s: %w", source, s.Name, err)
		}
		r.Splits = append(r.Splits, *sr)
	}
	return r, nil
}

func auditSplit(s Split) (*SplitReport, error) {
	n := len(s.Label)
	if n == 0 {
		return nil, errors.New("no rows")
	}
	if len(s.Image) != n*ImageSize || len(s.Audio) != n*AudioSize {
		return nil, fmt.Errorf("%d labels, %d image values, %d audio values: want %d and %d per row", n, len(s.Image), len(s.Audio), ImageSize, AudioSize)
	}
	img, err := imageReport(s.Image, n, s.MNIST)
	if err != nil {
		return nil, err
	}
	return &SplitReport{Split: s.Name, Rows: n, Image: *img, Audio: audioReport(s.Audio, s.Label)}, nil
}

// imageReport finds the numerical rank of the image matrix from the
// eigenvalues of the Gram matrix of up to RankRows evenly spaced rows.
func imageReport(x []float32, n int, mnist []uint8) (*ImageReport, error) {
	r := &ImageReport{}
	lo, hi, sum := math.Inf(1), math.Inf(-1), 0.0
	for _, v := range x {
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("image values include %v", f)
		}
		lo, hi, sum = math.Min(lo, f), math.Max(hi, f), sum+f
	}
	r.Range = [3]float64{lo, hi, sum / float64(len(x))}

	m := min(n, RankRows)
	rows := make([]float64, m*ImageSize)
	for i := 0; i < m; i++ {
		src := (i * n / m) * ImageSize
		for j := 0; j < ImageSize; j++ {
			rows[i*ImageSize+j] = float64(x[src+j])
		}
	}
	gram := blas64.Symmetric{N: ImageSize, Stride: ImageSize, Uplo: blas.Upper, Data: make([]float64, ImageSize*ImageSize)}
	blas64.Syrk(blas.Trans, 1, blas64.General{Rows: m, Cols: ImageSize, Stride: ImageSize, Data: rows}, 0, gram)
	var eig mat.EigenSym
	if !eig.Factorize(mat.NewSymDense(ImageSize, gram.Data), false) {
		return nil, errors.New("image Gram matrix: eigendecomposition did not converge")
	}
	vals := eig.Values(nil)
	sort.Sort(sort.Reverse(sort.Float64Slice(vals)))
	top := math.Sqrt(math.Max(vals[0], 0))
	r.RankRows = m
	for _, l := range vals {
		sv := math.Sqrt(math.Max(l, 0))
		if top > 0 && sv > RankTolerance*top {
			r.Rank++
		}
	}
	for _, l := range vals[:min(len(vals), r.Rank+3, 12)] {
		rel := 0.0
		if top > 0 {
			rel = math.Sqrt(math.Max(l, 0)) / top
		}
		r.SingularValues = append(r.SingularValues, rel)
	}
	if mnist != nil {
		if len(mnist) != n*ImageSize {
			return nil, fmt.Errorf("%d MNIST pixels for %d rows", len(mnist), n)
		}
		model, err := pca.FitUint8(mnist, n, ImageSize)
		if err != nil {
			return nil, err
		}
		ratios := model.Ratios()
		share := 0.0
		for _, v := range ratios[:min(r.Rank, len(ratios))] {
			share += v
		}
		k, _ := pca.KeepFor(ratios, 0.25)
		r.VarianceShare, r.RuleK = &share, &k
	}
	return r, nil
}

// audioReport groups byte-identical spectrograms and measures how their
// rows' labels agree.
func audioReport(a []uint8, labels []int64) AudioReport {
	n := len(labels)
	var r AudioReport
	lo, hi, sum := 255, 0, 0
	for _, v := range a {
		lo, hi, sum = min(lo, int(v)), max(hi, int(v)), sum+int(v)
	}
	r.Range = [3]float64{float64(lo), float64(hi), float64(sum) / float64(len(a))}

	row := func(i int) []uint8 { return a[i*AudioSize : (i+1)*AudioSize] }
	byHash := map[uint64][][]int{} // hash -> groups of identical rows (collisions kept apart)
	for i := 0; i < n; i++ {
		h := fnv.New64a()
		h.Write(row(i))
		key := h.Sum64()
		gs := byHash[key]
		j := slices.IndexFunc(gs, func(g []int) bool { return slices.Equal(row(g[0]), row(i)) })
		if j < 0 {
			byHash[key] = append(gs, []int{i})
		} else {
			gs[j] = append(gs[j], i)
		}
	}
	counts := map[int64]int{}
	for _, l := range labels {
		counts[l]++
	}
	for _, c := range counts {
		f := float64(c) / float64(n)
		r.Chance += f * f
	}
	agree, pairs, same := 0, 0, 0
	for _, gs := range byHash {
		r.Distinct += len(gs)
		for _, g := range gs {
			if len(g) < 2 {
				continue
			}
			r.Groups++
			r.InGroups += len(g)
			byLabel := map[int64]int{}
			for _, i := range g {
				byLabel[labels[i]]++
			}
			top := 0
			for _, c := range byLabel {
				top = max(top, c)
				same += c * (c - 1) / 2
			}
			agree += top
			pairs += len(g) * (len(g) - 1) / 2
		}
	}
	if r.InGroups > 0 {
		r.Agreement = float64(agree) / float64(r.InGroups)
		r.PairAgreement = float64(same) / float64(pairs)
		if r.Chance < 1 {
			r.InPlace = math.Sqrt(math.Max(0, (r.PairAgreement-r.Chance)/(1-r.Chance)))
		}
	}
	return r
}

// Markdown is the report as a page.
func (r *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# AV-MNIST audit: %s\n\n", r.Source)
	b.WriteString("Written by `m2mix audit avmnist`. Image rank: the numerical rank of the split's image matrix ")
	fmt.Fprintf(&b, "(singular values above %g of the largest, on up to %d evenly spaced rows), i.e. the PCA components the images keep. ", RankTolerance, RankRows)
	b.WriteString("Audio: rows with byte-identical spectrograms (the same FSDD take with the same noise) form groups; ")
	b.WriteString("label agreement is the share of their rows carrying the group's majority label (100 % when every row's audio is its own); ")
	b.WriteString("the in-place estimate is sqrt((pair agreement − chance) / (1 − chance)).\n\n")
	b.WriteString("| split | rows | image rank | MNIST variance kept | 25 % rule's k | image min / max / mean | audio min / max / mean | distinct spectrograms | groups (rows) | label agreement | pair agreement (chance) | audio in place (est.) |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range r.Splits {
		share, rule := "–", "–"
		if s.Image.VarianceShare != nil {
			share = fmt.Sprintf("%.2f %%", 100**s.Image.VarianceShare)
			rule = fmt.Sprint(*s.Image.RuleK)
		}
		agree, pair, inPlace := "no groups", "–", "–"
		if s.Audio.InGroups > 0 {
			agree = fmt.Sprintf("%.2f %%", 100*s.Audio.Agreement)
			pair = fmt.Sprintf("%.2f %% (%.2f %%)", 100*s.Audio.PairAgreement, 100*s.Audio.Chance)
			inPlace = fmt.Sprintf("%.1f %%", 100*s.Audio.InPlace)
		}
		im, au := s.Image.Range, s.Audio.Range
		fmt.Fprintf(&b, "| %s | %d | %d | %s | %s | %.4g / %.4g / %.4g | %.0f / %.0f / %.1f | %d | %d (%d) | %s | %s | %s |\n",
			s.Split, s.Rows, s.Image.Rank, share, rule, im[0], im[1], im[2], au[0], au[1], au[2],
			s.Audio.Distinct, s.Audio.Groups, s.Audio.InGroups, agree, pair, inPlace)
	}
	b.WriteString("\nLargest singular values of the image matrix, relative to the first:\n\n")
	for _, s := range r.Splits {
		var vs []string
		for _, v := range s.Image.SingularValues {
			vs = append(vs, fmt.Sprintf("%.3g", v))
		}
		fmt.Fprintf(&b, "- %s: %s\n", s.Split, strings.Join(vs, ", "))
	}
	return b.String()
}
