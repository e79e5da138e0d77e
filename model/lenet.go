package model

import (
	"math"
	"strconv"

	"github.com/m2mix/m2mix/torch"
)

// LeNet is MultiBench's convolutional encoder (after MFAS and CentralNet):
// a 5x5 convolution to C channels, then blocks 3x3 convolutions each
// doubling the channels, every convolution without bias and followed by
// BatchNorm, ReLU and 2x2 max pooling; what is left of the image is the
// code (8C for 28x28 and three blocks, 32C for 112x112 and five). The
// convolutions are kaiming-uniform with a = 0 (bound sqrt(6 / fan_in)),
// not PyTorch's default. An optional Linear projects the code.
//
// K models run as one network of K times the channels: their channels sit
// side by side, (batch, K*C, H, W), and grouped convolutions keep each
// model to its own; BatchNorm and pooling work per channel anyway.
type LeNet struct {
	Convs            []*torch.Tensor // (K, out, in, k, k)
	BNs              []batchNorm
	Kernel           []int64
	K                int64
	Project          *Linear
	BatchStatsAtTest bool
}

// batchNorm is BatchNorm2d's affine and running statistics, (K, C) each;
// the statistics are buffers (saved, never trained).
type batchNorm struct {
	W, B, Mean, Var *torch.Tensor
}

func newBatchNorm(p *Params, name string, c int64) batchNorm {
	return batchNorm{
		W: p.constant(name+".weight", 1, c), B: p.constant(name+".bias", 0, c),
		Mean: p.constantBuffer(name+".running_mean", 0, c), Var: p.constantBuffer(name+".running_var", 1, c),
	}
}

// forward normalises x (batch, K*C, H, W), eps 1e-5, momentum 0.1.
func (b batchNorm) forward(s *torch.Scope, x *torch.Tensor, train bool) *torch.Tensor {
	flat := func(t *torch.Tensor) *torch.Tensor { return s.Reshape(t, -1) }
	return s.BatchNorm2d(x, flat(b.W), flat(b.B), flat(b.Mean), flat(b.Var), train, 0.1, 1e-5)
}

func newLeNet(p *Params, name string, m *ModalitySpec, spec Part) (encoder, tokens) {
	e := LeNet{K: int64(len(p.seeds)), BatchStatsAtTest: spec.BatchStatsAtTest}
	in, out, kernel := m.Shape[0], spec.Channels, int64(5)
	side := m.Shape[1]
	for i := 0; i <= spec.Blocks; i++ {
		conv := name + ".convs." + strconv.Itoa(i) + ".weight"
		e.Convs = append(e.Convs, p.uniform(conv, math.Sqrt(6/float64(in*kernel*kernel)), out, in, kernel, kernel))
		e.BNs = append(e.BNs, newBatchNorm(p, name+".bns."+strconv.Itoa(i), out))
		e.Kernel = append(e.Kernel, kernel)
		side /= 2
		in, out, kernel = out, out*2, 3
	}
	code := tokens{1, in * side * side}
	if spec.Project > 0 {
		lin := newLinear
		if spec.Init == "xavier" {
			lin = newXavierLinear
		}
		l := lin(p, name+".proj", code.w, spec.Project)
		e.Project, code = &l, tokens{1, spec.Project}
	}
	return e, code
}

// Forward maps images (batch, C, H, W), or (K, batch, C, H, W) per model,
// to one token each, (K, batch, 1, code).
func (e LeNet) Forward(s *torch.Scope, x *torch.Tensor, perModel bool, mode Mode) *torch.Tensor {
	shape, _ := x.Shape()
	if want := map[bool]int{false: 4, true: 5}[perModel]; len(shape) != want {
		return failed(s, "lenet", x, want)
	}
	groups := int64(1)
	if perModel {
		// (K, batch, C, H, W) -> (batch, K*C, H, W): each model's channels together.
		x = s.Reshape(s.Permute(x, 1, 0, 2, 3, 4), shape[1], -1, shape[3], shape[4])
		groups = e.K
	}
	train := mode.Train || e.BatchStatsAtTest
	for i, w := range e.Convs {
		ws, _ := w.Shape() // (K, out, in, k, k)
		kernel := s.Reshape(w, ws[0]*ws[1], ws[2], ws[3], ws[4])
		x = s.Conv2dGroups(x, kernel, nil, 1, e.Kernel[i]/2, groups)
		x = s.MaxPool2d(s.Relu(e.BNs[i].forward(s, x, train)), 2, 2)
		groups = e.K
	}
	xs, _ := x.Shape()                                   // (batch, K*code, h, w)
	y := s.Transpose(s.Reshape(x, xs[0], e.K, -1), 0, 1) // (K, batch, code)
	if e.Project != nil {
		y = e.Project.Forward(s, y)
	}
	return asToken(s, y)
}
