package model

import (
	"github.com/m2mix/m2mix/torch"
)

// ccaTerm is deep CCA's loss as MultiBench computes it (objective_functions
// /cca.py): the two encoders' outputs H1, H2 (batch m, width o) centred;
// S12 = H1'H2/(m-1), S11 and S22 likewise plus 1e-3 I; T = S11^-1/2 S12
// S22^-1/2 with the root inverses from eigendecompositions; the canonical
// correlation is the sum of the square roots of the eigenvalues of
// T'T + 1e-3 I (clamped at 1e-9; all o of them, since the code keeps as
// many components as dimensions). The term is -weight * correlation.
// MultiBench also drops eigenvalues of S11 and S22 below 1e-9; the 1e-3
// ridge keeps them all above it, so nothing is dropped here either.
type ccaTerm struct {
	Weight float64
	Dim    int64
}

func (t ccaTerm) Loss(s *torch.Scope, r forwardResult, b Batch, k int) *torch.Tensor {
	const ridge, floor = 1e-3, 1e-9
	h1, h2 := flatTokens(s, r.encoded[0]), flatTokens(s, r.encoded[1]) // (K, m, o)
	shape, _ := h1.Shape()
	if len(shape) != 3 {
		return h1 // an earlier operation failed: the scope holds its error
	}
	m := float64(shape[1])
	dev := deviceOf(h1)
	eye := s.MulScalar(eyeMatrix(s, t.Dim, dev), ridge)
	c1 := s.Sub(h1, s.Mean(h1, true, 1))
	c2 := s.Sub(h2, s.Mean(h2, true, 1))
	cov := func(a, b *torch.Tensor) *torch.Tensor { return s.DivScalar(s.MatMul(s.Transpose(a, 1, 2), b), m-1) }
	s12 := cov(c1, c2)
	s11, s22 := s.Add(cov(c1, c1), eye), s.Add(cov(c2, c2), eye)
	tv := s.MatMul(s.MatMul(rootInverse(s, s11), s12), rootInverse(s, s22))
	vals, _ := s.Eigh(s.Add(s.MatMul(s.Transpose(tv, 1, 2), tv), eye))
	corr := s.Sum(s.Sqrt(s.ClampMin(vals, floor)), false, -1) // (K)
	return s.MulScalar(corr, -t.Weight)
}

// rootInverse is V diag(d^-1/2) V' of symmetric positive-definite
// matrices (K, o, o).
func rootInverse(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
	d, v := s.Eigh(x)
	shape, _ := d.Shape()
	if len(shape) != 2 {
		return d // the scope holds the error
	}
	scaled := s.Mul(v, s.Reshape(s.PowScalar(d, -0.5), shape[0], 1, shape[1]))
	return s.MatMul(scaled, s.Transpose(v, 1, 2))
}

// eyeMatrix is the n x n identity on device.
func eyeMatrix(s *torch.Scope, n int64, device torch.Device) *torch.Tensor {
	v := make([]float32, n*n)
	for i := int64(0); i < n; i++ {
		v[i*n+i] = 1
	}
	e := s.From(v, n, n)
	if device != torch.CPU {
		e = s.To(e, device)
	}
	return e
}
