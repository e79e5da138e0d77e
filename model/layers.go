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

// Parameters stacked on a leading model axis (K models trained in lockstep)
// change only how Linear, LayerNorm and the patch embedding apply them;
// everything else works on either layout because it addresses dimensions
// from the end: tokens are always the second-to-last axis, features the last.

// Linear is y = x W^T + b.
type Linear struct {
	W, B    *torch.Tensor
	stacked bool
}

func newLinear(p *Params, name string, in, out int64) Linear {
	b := kaimingBound(in)
	return Linear{W: p.uniform(name+".weight", b, out, in), B: p.uniform(name+".bias", b, out), stacked: p.stacked}
}

// Forward applies the layer to x, which carries the model axis when the
// parameters are stacked.
func (l Linear) Forward(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
	if !l.stacked {
		return s.Linear(x, l.W, l.B)
	}
	return l.stackedForward(s, x, false)
}

// ForwardShared applies a stacked layer to an input every model shares
// (a data batch without the model axis); unstacked, it is Forward.
func (l Linear) ForwardShared(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
	if !l.stacked {
		return s.Linear(x, l.W, l.B)
	}
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
		rep := make([]*torch.Tensor, k)
		for i := range rep {
			rep[i] = x
		}
		x = s.Cat(0, rep...)
	} else {
		lead = lead[1:]
		x = s.Reshape(x, k, -1, in)
	}
	y := s.StackedLinear(x, l.W, l.B)
	return s.Reshape(y, append(append([]int64{k}, lead...), out)...)
}

// LayerNorm normalises the last dimension (eps 1e-5, affine).
type LayerNorm struct {
	W, B    *torch.Tensor
	stacked bool
	// broadcast applies stacked models' affines in two broadcast operations
	// instead of one fused kernel per model: fewer launches on a GPU, equal
	// up to rounding. On the CPU the per-model kernel is kept (exact).
	broadcast bool
}

func newLayerNorm(p *Params, name string, dim int64) LayerNorm {
	return LayerNorm{W: p.constant(name+".weight", 1, dim), B: p.constant(name+".bias", 0, dim),
		stacked: p.stacked, broadcast: p.stacked && p.device != torch.CPU}
}

func (l LayerNorm) Forward(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
	if !l.stacked {
		return s.LayerNorm(x, 1, l.W, l.B, 1e-5)
	}
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

func (m Mixer) Forward(s *torch.Scope, x *torch.Tensor, mode Mode) *torch.Tensor {
	for _, b := range m.Blocks {
		x = b.Forward(s, x, mode)
	}
	return m.LN.Forward(s, x)
}

// ImageEncoder embeds non-overlapping patches with a strided convolution,
// takes them as tokens in row-major patch order, and mixes them.
type ImageEncoder struct {
	Embed                 struct{ W, B *torch.Tensor }
	Patch, Hidden, Tokens int64
	Mixer                 Mixer
	models                int64 // > 0: parameters stacked over this many models
}

func newImageEncoder(p *Params, name string, size, patch int64, c *Config) ImageEncoder {
	e := ImageEncoder{Patch: patch, Hidden: c.Hidden, Tokens: (size / patch) * (size / patch)}
	if p.stacked {
		e.models = int64(len(p.seeds))
	}
	b := kaimingBound(patch * patch)
	e.Embed.W = p.uniform(name+".emb.weight", b, c.Hidden, 1, patch, patch)
	e.Embed.B = p.uniform(name+".emb.bias", b, c.Hidden)
	for i := 0; i < c.EncoderBlocks; i++ {
		e.Mixer.Blocks = append(e.Mixer.Blocks, newMixerBlock(p, blockName(name+".blocks", i), e.Tokens, c.Hidden, c.TokenDim, c.ChannelDim, c.Dropout))
	}
	e.Mixer.LN = newLayerNorm(p, name+".ln", c.Hidden)
	return e
}

// Forward maps images (batch, 1, H, W) to tokens (batch, patches, hidden),
// or (models, batch, patches, hidden) when stacked: the models' filters
// then run as one convolution with models x hidden output channels.
func (e ImageEncoder) Forward(s *torch.Scope, x *torch.Tensor, mode Mode) *torch.Tensor {
	if e.models == 0 {
		x = s.Conv2d(x, e.Embed.W, e.Embed.B, e.Patch, 0)           // (batch, hidden, H/p, W/p)
		x = s.Transpose(s.Reshape(x, -1, e.Hidden, e.Tokens), 1, 2) // (batch, patches, hidden)
	} else {
		w := s.Reshape(e.Embed.W, e.models*e.Hidden, 1, e.Patch, e.Patch)
		x = s.Conv2d(x, w, s.Reshape(e.Embed.B, e.models*e.Hidden), e.Patch, 0)   // (batch, models*hidden, H/p, W/p)
		x = s.Permute(s.Reshape(x, -1, e.models, e.Hidden, e.Tokens), 1, 0, 3, 2) // (models, batch, patches, hidden)
	}
	return e.Mixer.Forward(s, x, mode)
}

// SequenceEncoder projects each time step's features to the hidden size and mixes.
type SequenceEncoder struct {
	Embed Linear
	Mixer Mixer
}

func newSequenceEncoder(p *Params, name string, steps, features int64, c *Config) SequenceEncoder {
	e := SequenceEncoder{Embed: newLinear(p, name+".emb", features, c.Hidden)}
	for i := 0; i < c.EncoderBlocks; i++ {
		e.Mixer.Blocks = append(e.Mixer.Blocks, newMixerBlock(p, blockName(name+".blocks", i), steps, c.Hidden, c.TokenDim, c.ChannelDim, c.Dropout))
	}
	e.Mixer.LN = newLayerNorm(p, name+".ln", c.Hidden)
	return e
}

// Forward maps a batch of series (batch, steps, features), shared by every
// model, to tokens.
func (e SequenceEncoder) Forward(s *torch.Scope, x *torch.Tensor, mode Mode) *torch.Tensor {
	return e.Mixer.Forward(s, e.Embed.ForwardShared(s, x), mode)
}

// StaticMLP encodes MIMIC's 5 static features into one token:
// Linear-ReLU-Dropout, Linear-ReLU-Dropout, Linear (names .0, .3, .6).
type StaticMLP struct {
	L1, L2, L3 Linear
	Dropout    float64
}

func newStaticMLP(p *Params, name string, in, hidden int64, dropout float64) StaticMLP {
	return StaticMLP{
		L1: newLinear(p, name+".0", in, hidden), L2: newLinear(p, name+".3", hidden, hidden),
		L3: newLinear(p, name+".6", hidden, hidden), Dropout: dropout,
	}
}

// Forward maps a shared batch (batch, features) to (batch, hidden).
func (m StaticMLP) Forward(s *torch.Scope, x *torch.Tensor, mode Mode) *torch.Tensor {
	x = mode.dropout(s, s.Relu(m.L1.ForwardShared(s, x)), m.Dropout)
	x = mode.dropout(s, s.Relu(m.L2.Forward(s, x)), m.Dropout)
	return m.L3.Forward(s, x)
}

func blockName(prefix string, i int) string { return prefix + "." + strconv.Itoa(i) }
