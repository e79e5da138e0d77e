package model

import (
	"strconv"

	"github.com/m2mix/m2mix/torch"
)

// Mode is how a forward pass runs: dropout on (training) or off, and the
// keyed dropout (one key per model) its masks come from.
type Mode struct {
	Train bool
	Drop  *torch.KeyedDropout
}

func (m Mode) dropout(s *torch.Scope, x *torch.Tensor, p float64) *torch.Tensor {
	if !m.Train || p == 0 {
		return x
	}
	return m.Drop.Apply(s, x, p)
}

// Every parameter is stacked on a leading model axis: a network is K >= 1
// models trained in lockstep (K = 1 is a lone run). That changes only how
// Linear, LayerNorm and the patch embedding apply them; everything else
// addresses dimensions from the end: tokens are always the second-to-last
// axis, features the last.

// Linear is y = x W^T + b, W (K, out, in), b (K, out).
type Linear struct {
	W, B *torch.Tensor
}

func newLinear(p *Params, name string, in, out int64) Linear {
	b := kaimingBound(in)
	return Linear{W: p.uniform(name+".weight", b, out, in), B: p.uniform(name+".bias", b, out)}
}

// Forward applies each model's layer to its own rows: x is (K, ..., in).
func (l Linear) Forward(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
	return l.stackedForward(s, x, false)
}

// ForwardShared applies every model's layer to the same rows: x is (...,
// in), without the model axis (a data batch every model reads).
func (l Linear) ForwardShared(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
	return l.stackedForward(s, x, true)
}

// stackedForward is one batched matmul over the model axis:
// (K, rows, in) @ (K, in, out) + (K, 1, out).
func (l Linear) stackedForward(s *torch.Scope, x *torch.Tensor, shared bool) *torch.Tensor {
	shape, _ := x.Shape()
	wshape, _ := l.W.Shape()
	if len(shape) == 0 || len(wshape) != 3 {
		return s.MatMul(x, l.W) // let libtorch report the mismatch
	}
	k, out, in := wshape[0], wshape[1], wshape[2]
	lead := shape[:len(shape)-1]
	if shared {
		// Every model reads the same rows: repeat them along the model axis.
		x = s.Reshape(x, 1, -1, in)
		if k > 1 {
			rep := make([]*torch.Tensor, k)
			for i := range rep {
				rep[i] = x
			}
			x = s.Cat(0, rep...)
		}
	} else {
		lead = lead[1:]
		x = s.Reshape(x, k, -1, in)
	}
	y := s.StackedLinear(x, l.W, l.B)
	return s.Reshape(y, append(append([]int64{k}, lead...), out)...)
}

// LayerNorm normalises the last dimension (eps 1e-5, affine), W and B (K, D).
type LayerNorm struct {
	W, B *torch.Tensor
	// broadcast applies the models' affines in two broadcast operations
	// instead of one fused kernel per model: fewer launches on a GPU, equal
	// up to rounding. On the CPU the per-model kernel is kept (exact).
	broadcast bool
}

func newLayerNorm(p *Params, name string, dim int64) LayerNorm {
	return LayerNorm{W: p.constant(name+".weight", 1, dim), B: p.constant(name+".bias", 0, dim), broadcast: p.device != torch.CPU}
}

func (l LayerNorm) Forward(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
	if !l.broadcast {
		return s.StackedLayerNorm(x, l.W, l.B, 1e-5)
	}
	shape, _ := x.Shape()
	view := make([]int64, len(shape)) // (K, 1, ..., 1, D)
	for i := range view {
		view[i] = 1
	}
	view[0], view[len(view)-1] = shape[0], shape[len(shape)-1]
	y := s.LayerNorm(x, 1, nil, nil, 1e-5)
	return s.Add(s.Mul(y, s.Reshape(l.W, view...)), s.Reshape(l.B, view...))
}

// MLP is Linear -> GELU -> Dropout -> Linear -> Dropout, the Mixer's feed-forward.
// Its names follow nn.Sequential: name.0 and name.3.
type MLP struct {
	In, Out Linear
	Dropout float64
}

func newMLP(p *Params, name string, dim, hidden int64, dropout float64) MLP {
	return MLP{In: newLinear(p, name+".0", dim, hidden), Out: newLinear(p, name+".3", hidden, dim), Dropout: dropout}
}

func (m MLP) Forward(s *torch.Scope, x *torch.Tensor, mode Mode) *torch.Tensor {
	x = mode.dropout(s, s.Gelu(m.In.Forward(s, x)), m.Dropout)
	return mode.dropout(s, m.Out.Forward(s, x), m.Dropout)
}

// MixerBlock mixes tokens, then channels, each behind a pre-LayerNorm and a
// residual connection. x is (batch, tokens, hidden).
type MixerBlock struct {
	LN1, LN2        LayerNorm
	Tokens, Channel MLP
}

func newMixerBlock(p *Params, name string, tokens, hidden, tokenDim, channelDim int64, dropout float64) MixerBlock {
	return MixerBlock{
		LN1:     newLayerNorm(p, name+".ln1", hidden),
		Tokens:  newMLP(p, name+".tok", tokens, tokenDim, dropout),
		LN2:     newLayerNorm(p, name+".ln2", hidden),
		Channel: newMLP(p, name+".ch", hidden, channelDim, dropout),
	}
}

func (b MixerBlock) Forward(s *torch.Scope, x *torch.Tensor, mode Mode) *torch.Tensor {
	y := s.Transpose(b.LN1.Forward(s, x), -1, -2) // (..., hidden, tokens): mix along tokens
	x = s.Add(x, s.Transpose(b.Tokens.Forward(s, y, mode), -1, -2))
	return s.Add(x, b.Channel.Forward(s, b.LN2.Forward(s, x), mode))
}

// Mixer is a stack of blocks and a final LayerNorm.
type Mixer struct {
	Blocks []MixerBlock
	LN     LayerNorm
}

// newMixer builds blocks named blockPrefix.0, .1, ... over tokens tokens of
// width hidden, and a final LayerNorm named ln.
func newMixer(p *Params, blockPrefix, ln string, blocks int, tokens, hidden, tokenDim, channelDim int64, dropout float64) Mixer {
	var m Mixer
	for i := 0; i < blocks; i++ {
		m.Blocks = append(m.Blocks, newMixerBlock(p, blockName(blockPrefix, i), tokens, hidden, tokenDim, channelDim, dropout))
	}
	m.LN = newLayerNorm(p, ln, hidden)
	return m
}

func (m Mixer) Forward(s *torch.Scope, x *torch.Tensor, mode Mode) *torch.Tensor {
	for _, b := range m.Blocks {
		x = b.Forward(s, x, mode)
	}
	return m.LN.Forward(s, x)
}

// PatchEncoder embeds non-overlapping patches with a strided convolution,
// takes them as tokens in row-major patch order, and mixes them.
type PatchEncoder struct {
	Embed                         struct{ W, B *torch.Tensor }
	Patch, Hidden, Tokens, models int64
	Mixer                         Mixer
}

// Forward maps images (batch, C, H, W), or (K, batch, C, H, W) per model,
// to tokens (K, batch, patches, hidden). Shared images go through one
// convolution with K x hidden output channels; per-model images through
// one convolution per model.
func (e PatchEncoder) Forward(s *torch.Scope, x *torch.Tensor, perModel bool, mode Mode) *torch.Tensor {
	shape, _ := x.Shape()
	if !perModel {
		w := s.Reshape(e.Embed.W, e.models*e.Hidden, shape[1], e.Patch, e.Patch)
		x = s.Conv2d(x, w, s.Reshape(e.Embed.B, e.models*e.Hidden), e.Patch, 0)   // (batch, K*hidden, H/p, W/p)
		x = s.Permute(s.Reshape(x, -1, e.models, e.Hidden, e.Tokens), 1, 0, 3, 2) // (K, batch, patches, hidden)
		return e.Mixer.Forward(s, x, mode)
	}
	per := make([]*torch.Tensor, e.models)
	for i := range per {
		xi := s.Reshape(s.Narrow(x, 0, int64(i), 1), shape[1:]...)
		wi := s.Reshape(s.Narrow(e.Embed.W, 0, int64(i), 1), e.Hidden, shape[2], e.Patch, e.Patch)
		yi := s.Conv2d(xi, wi, s.Reshape(s.Narrow(e.Embed.B, 0, int64(i), 1), e.Hidden), e.Patch, 0)
		per[i] = s.Reshape(s.Transpose(s.Reshape(yi, -1, e.Hidden, e.Tokens), 1, 2), 1, -1, e.Tokens, e.Hidden)
	}
	return e.Mixer.Forward(s, s.Cat(0, per...), mode)
}

// SequenceEncoder projects each time step's features to the hidden size and mixes.
type SequenceEncoder struct {
	Embed Linear
	Mixer Mixer
}

// Forward maps series (batch, steps, features) to tokens (K, batch, steps, hidden).
func (e SequenceEncoder) Forward(s *torch.Scope, x *torch.Tensor, perModel bool, mode Mode) *torch.Tensor {
	return e.Mixer.Forward(s, linearOn(s, e.Embed, x, perModel), mode)
}

// linearOn applies l to per-model or shared rows.
func linearOn(s *torch.Scope, l Linear, x *torch.Tensor, perModel bool) *torch.Tensor {
	if perModel {
		return l.Forward(s, x)
	}
	return l.ForwardShared(s, x)
}

// StaticMLP encodes a vector of features into one token:
// Linear-ReLU-Dropout, Linear-ReLU-Dropout, Linear (names .0, .3, .6).
type StaticMLP struct {
	L1, L2, L3 Linear
	Dropout    float64
}

// Forward maps (batch, features) to one token per row, (K, batch, 1, hidden).
func (m StaticMLP) Forward(s *torch.Scope, x *torch.Tensor, perModel bool, mode Mode) *torch.Tensor {
	x = mode.dropout(s, s.Relu(linearOn(s, m.L1, x, perModel)), m.Dropout)
	x = mode.dropout(s, s.Relu(m.L2.Forward(s, x)), m.Dropout)
	y := m.L3.Forward(s, x) // (K, batch, hidden)
	shape, _ := y.Shape()
	if len(shape) != 3 {
		return y // let the next operation report it
	}
	return s.Reshape(y, shape[0], shape[1], 1, shape[2])
}

func blockName(prefix string, i int) string { return prefix + "." + strconv.Itoa(i) }
