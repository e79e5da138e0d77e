package model

import (
	"fmt"
	"math"
	"strconv"

	"github.com/m2mix/m2mix/torch"
)

// MultiBench's fusions of vectors. Each gives one token.

// concat flattens each modality's tokens and concatenates them
// (MultiBench's Concat).
type concat struct{}

func newConcat(p *Params, name string, in []tokens, spec Part) (fusion, tokens, error) {
	w := int64(0)
	for _, t := range in {
		w += t.flat()
	}
	return concat{}, tokens{1, w}, nil
}

func (concat) Forward(s *torch.Scope, xs []*torch.Tensor, mode Mode) *torch.Tensor {
	flat := make([]*torch.Tensor, len(xs))
	for i, x := range xs {
		flat[i] = flatTokens(s, x)
	}
	return asToken(s, s.Cat(-1, flat...))
}

// lowRank is low-rank multimodal tensor fusion (LRTF): each modality's
// vector with a 1 prepended, times its factor (rank, d+1, out); the
// modalities' results multiplied element-wise; the rank summed with
// weights (1, rank); a bias (1, out) added. Factors and weights are
// xavier-normal, the bias zero.
//
// MultiBench keeps the factors in a Python list and moves the weights
// with .to(device), so none of them is registered and none trains: its
// fusion is a fixed random map. trainable false (the default) does the
// same: the tensors are buffers, saved with the weights but neither
// trained nor counted. trainable true trains them, as intended.
type lowRank struct {
	Factors       []*torch.Tensor // (K, rank, d+1, out)
	Weights, Bias *torch.Tensor   // (K, 1, rank), (K, 1, out)
	Rank, Out     int64
}

func newLowRankFusion(p *Params, name string, in []tokens, spec Part) (fusion, tokens, error) {
	tensor := p.normal
	if spec.Trainable == nil || !*spec.Trainable {
		tensor = p.normalBuffer
	}
	f := lowRank{Rank: spec.Rank, Out: spec.Out}
	for i, t := range in {
		d := t.flat() + 1
		// xavier_normal_ of a 3-D tensor: fan_in = d*out, fan_out = rank*out.
		std := math.Sqrt(2 / float64(d*spec.Out+spec.Rank*spec.Out))
		f.Factors = append(f.Factors, tensor(name+".factors."+strconv.Itoa(i), std, spec.Rank, d, spec.Out))
	}
	f.Weights = tensor(name+".fusion_weights", math.Sqrt(2/float64(1+spec.Rank)), 1, spec.Rank)
	if spec.Trainable != nil && *spec.Trainable {
		f.Bias = p.constant(name+".fusion_bias", 0, 1, spec.Out)
	} else {
		f.Bias = p.constantBuffer(name+".fusion_bias", 0, 1, spec.Out)
	}
	return f, tokens{1, spec.Out}, nil
}

func (f lowRank) Forward(s *torch.Scope, xs []*torch.Tensor, mode Mode) *torch.Tensor {
	var z *torch.Tensor // (K, rank, batch, out)
	for i, x := range xs {
		v := flatTokens(s, x) // (K, batch, d)
		shape, _ := v.Shape()
		if len(shape) != 3 {
			return failed(s, "low-rank fusion", v, 3)
		}
		ones := s.Full(1, torch.Float32, deviceOf(v), shape[0], shape[1], 1)
		v = s.Reshape(s.Cat(-1, ones, v), shape[0], 1, shape[1], shape[2]+1)
		zi := s.MatMul(v, f.Factors[i]) // (K, 1, batch, d+1) @ (K, rank, d+1, out)
		if z == nil {
			z = zi
		} else {
			z = s.Mul(z, zi)
		}
	}
	shape, _ := z.Shape()
	if len(shape) != 4 {
		return failed(s, "low-rank fusion", z, 4)
	}
	k := shape[0]
	// out[k, b] = sum_r w[k, r] z[k, r, b]: (K, batch, 1, rank) @ (K, batch, rank, out).
	w := s.Reshape(f.Weights, k, 1, 1, f.Rank)
	out := s.MatMul(w, s.Permute(z, 0, 2, 1, 3)) // (K, batch, 1, out)
	return s.Add(out, s.Reshape(f.Bias, k, 1, 1, f.Out))
}

// miMatrix is multiplicative interactions in matrix form (MI-Matrix) of
// two modalities m1, m2: out = m2 (m1 W + V) + m1 U + b, with W (d1, d2,
// out), U (d1, out), V (d2, out) xavier-normal and b standard normal;
// computed as (m1 outer m2) flattened times W reshaped.
type miMatrix struct {
	W, U, V, B  *torch.Tensor
	D1, D2, Out int64
}

func newMIMatrix(p *Params, name string, in []tokens, spec Part) (fusion, tokens, error) {
	if len(in) != 2 {
		return nil, tokens{}, fmt.Errorf("mi-matrix fusion: %d modalities, want 2", len(in))
	}
	d1, d2, out := in[0].flat(), in[1].flat(), spec.Out
	f := miMatrix{D1: d1, D2: d2, Out: out}
	// xavier_normal_ of (d1, d2, out): fan_in = d2*out, fan_out = d1*out.
	f.W = p.normal(name+".W", math.Sqrt(2/float64(d2*out+d1*out)), d1, d2, out)
	f.U = p.normal(name+".U", math.Sqrt(2/float64(d1+out)), d1, out)
	f.V = p.normal(name+".V", math.Sqrt(2/float64(d2+out)), d2, out)
	f.B = p.normal(name+".b", 1, out)
	return f, tokens{1, out}, nil
}

func (f miMatrix) Forward(s *torch.Scope, xs []*torch.Tensor, mode Mode) *torch.Tensor {
	m1, m2 := flatTokens(s, xs[0]), flatTokens(s, xs[1]) // (K, batch, d1), (K, batch, d2)
	shape, _ := m1.Shape()
	if len(shape) != 3 {
		return failed(s, "mi-matrix fusion", m1, 3)
	}
	k, n := shape[0], shape[1]
	outer := s.Mul(s.Reshape(m1, k, n, f.D1, 1), s.Reshape(m2, k, n, 1, f.D2))
	y := s.MatMul(s.Reshape(outer, k, n, f.D1*f.D2), s.Reshape(f.W, k, f.D1*f.D2, f.Out))
	y = s.Add(y, s.MatMul(m2, f.V))
	y = s.Add(y, s.MatMul(m1, f.U))
	return asToken(s, s.Add(y, s.Reshape(f.B, k, 1, f.Out)))
}

// failed records in s that a part got a tensor of the wrong rank (unless
// s already holds an earlier operation's error, which is then the cause)
// and returns an inert tensor, so the pass ends with an error, not a panic.
func failed(s *torch.Scope, part string, x *torch.Tensor, want int) *torch.Tensor {
	shape, _ := x.Shape()
	return s.Fail(part, fmt.Errorf("input of shape %v, want %d dimensions", shape, want))
}

func deviceOf(t *torch.Tensor) torch.Device {
	d, _ := t.Device()
	return d
}
