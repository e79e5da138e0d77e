// Package pca fits principal component analysis for the AV-MNIST image
// modality (reproduction.md §5): centred PCA with all components, the
// number kept chosen by the cumulative explained-variance rule, and the
// reconstruction from the kept components without adding the mean back.
//
// For pixel data (uint8) the scatter matrix is accumulated in exact integer
// arithmetic over each image's non-zero pixels (MNIST is ~80% zeros), so the
// covariance is the same bit for bit however the work is split across
// goroutines, and a 60,000-image fit takes about a second instead of the
// half minute a dense float64 product needs. The eigendecomposition is
// gonum's (LAPACK dsyev port).
package pca

import (
	"fmt"
	"runtime"
	"slices"
	"sort"

	"gonum.org/v1/gonum/mat"

	"github.com/m2mix/m2mix/internal/parallel"
)

// Model is a fitted PCA.
type Model struct {
	N, D int
	Mean []float64
	// Variances are the eigenvalues of the covariance (divisor N-1), largest
	// first: the explained variance of each component.
	Variances []float64
	// Components holds the unit eigenvectors as rows, in the same order
	// (D x D, row-major).
	Components []float64
}

// FitUint8 fits PCA to n rows of d bytes (row-major), e.g. images.
func FitUint8(x []uint8, n, d int) (*Model, error) {
	if n < 2 || d < 1 || len(x) != n*d {
		return nil, fmt.Errorf("pca: %d values for %d rows of %d (need at least 2 rows)", len(x), n, d)
	}
	workers := max(1, min(runtime.GOMAXPROCS(0), n/1000+1))
	scatter := make([][]uint64, workers)
	sums := make([][]uint64, workers)
	workers = parallel.Ranges(n, workers, func(w, lo, hi int) {
		s := make([]uint64, d*d) // upper triangle used
		sum := make([]uint64, d)
		idx := make([]int, 0, d)
		val := make([]uint64, 0, d)
		for r := lo; r < hi; r++ {
			row := x[r*d : (r+1)*d]
			idx, val = idx[:0], val[:0]
			for p, v := range row {
				if v != 0 {
					idx = append(idx, p)
					val = append(val, uint64(v))
					sum[p] += uint64(v)
				}
			}
			for a, p := range idx {
				vp := val[a]
				sr := s[p*d : (p+1)*d]
				for b := a; b < len(idx); b++ {
					sr[idx[b]] += vp * val[b]
				}
			}
		}
		scatter[w], sums[w] = s, sum
	})
	scatter, sums = scatter[:workers], sums[:workers]
	// Integer sums are exact, so the order of this reduction cannot matter.
	S, sum := scatter[0], sums[0]
	for w := 1; w < workers; w++ {
		for i, v := range scatter[w] {
			S[i] += v
		}
		for i, v := range sums[w] {
			sum[i] += v
		}
	}
	mean := make([]float64, d)
	for p := range mean {
		mean[p] = float64(sum[p]) / float64(n)
	}
	// Pixels that never vary (MNIST's border is always 0) contribute zero
	// rows and columns; leaving them out of the eigenproblem changes nothing
	// but its cost, which grows with the cube of the dimension. The test is
	// exact: n*S_pp == s_p^2 only when every value equals the mean.
	var active []int
	for p := 0; p < d; p++ {
		if uint64(n)*S[p*d+p] != sum[p]*sum[p] {
			active = append(active, p)
		}
	}
	a := len(active)
	if a == 0 {
		return nil, fmt.Errorf("pca: all %d columns are constant", d)
	}
	cov := mat.NewSymDense(a, nil)
	for i, p := range active {
		for j := i; j < a; j++ {
			q := active[j]
			// sum_r (x_p - m_p)(x_q - m_q) = S_pq - s_p s_q / n
			c := float64(S[p*d+q]) - float64(sum[p])*float64(sum[q])/float64(n)
			cov.SetSym(i, j, c/float64(n-1))
		}
	}
	red, err := fromCov(cov, make([]float64, a), n)
	if err != nil {
		return nil, err
	}
	// Embed the reduced model: constant pixels get zero loadings and the
	// remaining (zero-variance) components are unit vectors on them.
	m := &Model{N: n, D: d, Mean: mean, Variances: make([]float64, d), Components: make([]float64, d*d)}
	copy(m.Variances, red.Variances)
	for r := 0; r < a; r++ {
		for i, p := range active {
			m.Components[r*d+p] = red.Components[r*a+i]
		}
	}
	r := a
	for p := 0; p < d; p++ {
		if !slices.Contains(active, p) {
			m.Components[r*d+p] = 1
			r++
		}
	}
	return m, nil
}

// FitFloat fits PCA to n rows of d float64 values (row-major). It is the
// straightforward dense version, for tests and small data.
func FitFloat(x []float64, n, d int) (*Model, error) {
	if n < 2 || d < 1 || len(x) != n*d {
		return nil, fmt.Errorf("pca: %d values for %d rows of %d (need at least 2 rows)", len(x), n, d)
	}
	mean := make([]float64, d)
	for r := 0; r < n; r++ {
		for p := 0; p < d; p++ {
			mean[p] += x[r*d+p]
		}
	}
	for p := range mean {
		mean[p] /= float64(n)
	}
	cov := mat.NewSymDense(d, nil)
	c := make([]float64, d)
	for r := 0; r < n; r++ {
		for p := 0; p < d; p++ {
			c[p] = x[r*d+p] - mean[p]
		}
		for p := 0; p < d; p++ {
			for q := p; q < d; q++ {
				cov.SetSym(p, q, cov.At(p, q)+c[p]*c[q])
			}
		}
	}
	cov.ScaleSym(1/float64(n-1), cov)
	return fromCov(cov, mean, n)
}

func fromCov(cov *mat.SymDense, mean []float64, n int) (*Model, error) {
	d := len(mean)
	var eig mat.EigenSym
	if !eig.Factorize(cov, true) {
		return nil, fmt.Errorf("pca: eigendecomposition of the %dx%d covariance did not converge", d, d)
	}
	vals := eig.Values(nil)
	var vecs mat.Dense
	eig.VectorsTo(&vecs)
	order := make([]int, d)
	for i := range order {
		order[i] = i
	}
	// Largest first; ties keep gonum's order so the result is deterministic.
	sort.SliceStable(order, func(a, b int) bool { return vals[order[a]] > vals[order[b]] })
	m := &Model{N: n, D: d, Mean: mean, Variances: make([]float64, d), Components: make([]float64, d*d)}
	for r, c := range order {
		// Rounding can leave the smallest eigenvalues slightly negative.
		m.Variances[r] = max(vals[c], 0)
		for p := 0; p < d; p++ {
			m.Components[r*d+p] = vecs.At(p, c)
		}
	}
	return m, nil
}

// Ratios returns each component's share of the total variance.
func (m *Model) Ratios() []float64 {
	total := 0.0
	for _, v := range m.Variances {
		total += v
	}
	out := make([]float64, len(m.Variances))
	for i, v := range m.Variances {
		out[i] = v / total
	}
	return out
}

// KeepFor returns k, the index of the first component at which the
// cumulative ratio exceeds threshold (so the k kept components explain at
// most threshold), and the share of variance those k explain.
func KeepFor(ratios []float64, threshold float64) (k int, kept float64) {
	cum := 0.0
	for i, r := range ratios {
		if cum+r > threshold {
			return i, cum
		}
		cum += r
	}
	return len(ratios), cum
}

// Reconstruct returns, for each of the n rows of x, the projection on the
// first k components without the mean: scores[:, :k] @ components[:k],
// scores = (x - mean) @ components^T. Rows are independent, so the result
// does not depend on how the work is split.
func (m *Model) Reconstruct(x []uint8, n, k int) ([]float32, error) {
	d := m.D
	if len(x) != n*d || k < 0 || k > d {
		return nil, fmt.Errorf("pca: reconstruct %d values as %d rows of %d with k=%d", len(x), n, d, k)
	}
	out := make([]float32, n*d)
	parallel.Ranges(n, 0, func(_, lo, hi int) {
		c := make([]float64, d)
		acc := make([]float64, d)
		for r := lo; r < hi; r++ {
			for p := 0; p < d; p++ {
				c[p] = float64(x[r*d+p]) - m.Mean[p]
			}
			clear(acc)
			for j := 0; j < k; j++ {
				v := m.Components[j*d : (j+1)*d]
				s := 0.0
				for p, cp := range c {
					s += cp * v[p]
				}
				for p := range acc {
					acc[p] += s * v[p]
				}
			}
			o := out[r*d : (r+1)*d]
			for p := range o {
				o[p] = float32(acc[p])
			}
		}
	})
	return out, nil
}
