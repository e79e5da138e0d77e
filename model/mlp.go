package model

import (
	"math"

	"github.com/m2mix/m2mix/torch"
)

// ReluMLP is MultiBench's MLP: Linear (fc), ReLU, Linear (fc2), on vectors
// (K, rows, in). Its baselines use it as encoder, head and refiner.
type ReluMLP struct {
	FC, FC2 Linear
}

// newReluMLP names its layers name.fc and name.fc2; init "xavier" draws
// their weights xavier-normal with zero biases.
func newReluMLP(p *Params, name string, in, hidden, out int64, init string) ReluMLP {
	lin := newLinear
	if init == "xavier" {
		lin = newXavierLinear
	}
	return ReluMLP{FC: lin(p, name+".fc", in, hidden), FC2: lin(p, name+".fc2", hidden, out)}
}

// In is the input width.
func (m ReluMLP) In() int64 {
	shape, _ := m.FC.W.Shape()
	return shape[len(shape)-1]
}

func (m ReluMLP) Forward(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
	return m.FC2.Forward(s, s.Relu(m.FC.Forward(s, x)))
}

// newXavierLinear is MultiBench's Linear(xavier_init=True): weight
// xavier-normal (std sqrt(2 / (in + out))), bias zero.
func newXavierLinear(p *Params, name string, in, out int64) Linear {
	return Linear{W: p.normal(name+".weight", math.Sqrt(2/float64(in+out)), out, in), B: p.constant(name+".bias", 0, out)}
}

// mlpEncoder encodes a vector modality (MIMIC-III's static features) with
// a ReluMLP into one token.
type mlpEncoder struct{ MLP ReluMLP }

func newMLPEncoder(p *Params, name string, m *ModalitySpec, spec Part) (encoder, tokens) {
	return mlpEncoder{newReluMLP(p, name, m.RowSize(), spec.Hidden, spec.Out, "")}, tokens{1, spec.Out}
}

func (e mlpEncoder) Forward(s *torch.Scope, x *torch.Tensor, perModel bool, mode Mode) *torch.Tensor {
	h := s.Relu(linearOn(s, e.MLP.FC, x, perModel))
	return asToken(s, e.MLP.FC2.Forward(s, h))
}

// asToken turns vectors (K, batch, width) into one token each, (K, batch, 1, width).
func asToken(s *torch.Scope, y *torch.Tensor) *torch.Tensor {
	shape, _ := y.Shape()
	if len(shape) != 3 {
		return y // let the next operation report it
	}
	return s.Reshape(y, shape[0], shape[1], 1, shape[2])
}

// flatTokens turns tokens (K, batch, n, w) into vectors (K, batch, n*w),
// row-major, as MultiBench's Concat flattens each modality.
func flatTokens(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
	shape, _ := x.Shape()
	if len(shape) != 4 {
		return x
	}
	return s.Reshape(x, shape[0], shape[1], shape[2]*shape[3])
}

// mlpHead is MultiBench's head: a ReluMLP on the flattened tokens.
type mlpHead struct{ MLP ReluMLP }

func newMLPHead(p *Params, name string, in tokens, classes int64, spec Part) head {
	return mlpHead{newReluMLP(p, name, in.flat(), spec.Hidden, classes, "")}
}

func (h mlpHead) Forward(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
	return h.MLP.Forward(s, flatTokens(s, x))
}
