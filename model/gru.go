package model

import (
	"github.com/m2mix/m2mix/torch"
)

// GRU is one unidirectional GRU layer over a sequence (batch, steps,
// features), batch first, giving every step's state: (K, batch, steps,
// hidden), MultiBench's GRU encoder for MIMIC-III's time series. Gates in
// PyTorch's order (r, z, n) and names (weight_ih_l0, ...), every weight
// and bias U(-1/sqrt(hidden), 1/sqrt(hidden)) as nn.GRU draws them:
//
//	r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
//	z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
//	n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
//	h' = (1 - z) * n + z * h
//
// The input projections of all steps are one matmul; the recurrence is
// unrolled, one stacked matmul per step for all K models.
type GRU struct {
	Input, State Linear // (K, 3H, features), (K, 3H, H)
	Hidden       int64
}

func newGRU(p *Params, name string, m *ModalitySpec, spec Part) (encoder, tokens) {
	h := spec.Hidden
	b := kaimingBound(h) // 1/sqrt(hidden)
	g := GRU{Hidden: h}
	g.Input = Linear{W: p.uniform(name+".gru.weight_ih_l0", b, 3*h, m.Shape[1])}
	g.State = Linear{W: p.uniform(name+".gru.weight_hh_l0", b, 3*h, h)}
	g.Input.B = p.uniform(name+".gru.bias_ih_l0", b, 3*h)
	g.State.B = p.uniform(name+".gru.bias_hh_l0", b, 3*h)
	return g, tokens{m.Shape[0], h}
}

func (g GRU) Forward(s *torch.Scope, x *torch.Tensor, perModel bool, mode Mode) *torch.Tensor {
	gi := linearOn(s, g.Input, x, perModel) // (K, batch, steps, 3H)
	shape, _ := gi.Shape()
	if len(shape) != 4 {
		return failed(s, "gru", gi, 4)
	}
	k, n, steps, h := shape[0], shape[1], shape[2], g.Hidden
	state := s.Full(0, torch.Float32, deviceOf(gi), k, n, h)
	gate := func(t *torch.Tensor, i int64) *torch.Tensor { return s.Narrow(t, -1, i*h, h) }
	out := make([]*torch.Tensor, steps)
	for t := int64(0); t < steps; t++ {
		xt := s.Reshape(s.Narrow(gi, 2, t, 1), k, n, 3*h)
		ht := g.State.Forward(s, state)
		r := s.Sigmoid(s.Add(gate(xt, 0), gate(ht, 0)))
		z := s.Sigmoid(s.Add(gate(xt, 1), gate(ht, 1)))
		c := s.Tanh(s.Add(gate(xt, 2), s.Mul(r, gate(ht, 2))))
		state = s.Add(c, s.Mul(z, s.Sub(state, c))) // (1 - z) n + z h
		out[t] = s.Reshape(state, k, n, 1, h)
	}
	return s.Cat(2, out...)
}
