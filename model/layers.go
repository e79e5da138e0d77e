package model

import (
	"strconv"

	"github.com/m2mix/m2mix/torch"
)

// Linear is y = x W^T + b.
type Linear struct{ W, B *torch.Tensor }

func newLinear(p *Params, name string, in, out int64) Linear {
	b := kaimingBound(in)
	return Linear{W: p.uniform(name+".weight", b, out, in), B: p.uniform(name+".bias", b, out)}
}

func (l Linear) Forward(s *torch.Scope, x *torch.Tensor) *torch.Tensor { return s.Linear(x, l.W, l.B) }

// LayerNorm normalises the last dimension (eps 1e-5, affine).
type LayerNorm struct{ W, B *torch.Tensor }

func newLayerNorm(p *Params, name string, dim int64) LayerNorm {
	return LayerNorm{W: p.constant(name+".weight", 1, dim), B: p.constant(name+".bias", 0, dim)}
}

func (l LayerNorm) Forward(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
	return s.LayerNorm(x, 1, l.W, l.B, 1e-5)
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

func (m MLP) Forward(s *torch.Scope, x *torch.Tensor, train bool) *torch.Tensor {
	x = s.Dropout(s.Gelu(m.In.Forward(s, x)), m.Dropout, train)
	return s.Dropout(m.Out.Forward(s, x), m.Dropout, train)
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

func (b MixerBlock) Forward(s *torch.Scope, x *torch.Tensor, train bool) *torch.Tensor {
	y := s.Transpose(b.LN1.Forward(s, x), 1, 2) // (batch, hidden, tokens): mix along tokens
	x = s.Add(x, s.Transpose(b.Tokens.Forward(s, y, train), 1, 2))
	return s.Add(x, b.Channel.Forward(s, b.LN2.Forward(s, x), train))
}

// Mixer is a stack of blocks and a final LayerNorm.
type Mixer struct {
	Blocks []MixerBlock
	LN     LayerNorm
}

func (m Mixer) Forward(s *torch.Scope, x *torch.Tensor, train bool) *torch.Tensor {
	for _, b := range m.Blocks {
		x = b.Forward(s, x, train)
	}
	return m.LN.Forward(s, x)
}

// ImageEncoder embeds non-overlapping patches with a strided convolution,
// takes them as tokens in row-major patch order, and mixes them.
type ImageEncoder struct {
	Embed                 struct{ W, B *torch.Tensor }
	Patch, Hidden, Tokens int64
	Mixer                 Mixer
}

func newImageEncoder(p *Params, name string, size, patch int64, c *Config) ImageEncoder {
	e := ImageEncoder{Patch: patch, Hidden: c.Hidden, Tokens: (size / patch) * (size / patch)}
	b := kaimingBound(patch * patch)
	e.Embed.W = p.uniform(name+".emb.weight", b, c.Hidden, 1, patch, patch)
	e.Embed.B = p.uniform(name+".emb.bias", b, c.Hidden)
	for i := 0; i < c.EncoderBlocks; i++ {
		e.Mixer.Blocks = append(e.Mixer.Blocks, newMixerBlock(p, blockName(name+".blocks", i), e.Tokens, c.Hidden, c.TokenDim, c.ChannelDim, c.Dropout))
	}
	e.Mixer.LN = newLayerNorm(p, name+".ln", c.Hidden)
	return e
}

// Forward maps images (batch, 1, H, W) to tokens (batch, patches, hidden).
func (e ImageEncoder) Forward(s *torch.Scope, x *torch.Tensor, train bool) *torch.Tensor {
	x = s.Conv2d(x, e.Embed.W, e.Embed.B, e.Patch, 0)           // (batch, hidden, H/p, W/p)
	x = s.Transpose(s.Reshape(x, -1, e.Hidden, e.Tokens), 1, 2) // (batch, patches, hidden)
	return e.Mixer.Forward(s, x, train)
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

func (e SequenceEncoder) Forward(s *torch.Scope, x *torch.Tensor, train bool) *torch.Tensor {
	return e.Mixer.Forward(s, e.Embed.Forward(s, x), train)
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

// Forward maps (batch, features) to (batch, hidden).
func (m StaticMLP) Forward(s *torch.Scope, x *torch.Tensor, train bool) *torch.Tensor {
	x = s.Dropout(s.Relu(m.L1.Forward(s, x)), m.Dropout, train)
	x = s.Dropout(s.Relu(m.L2.Forward(s, x)), m.Dropout, train)
	return m.L3.Forward(s, x)
}

func blockName(prefix string, i int) string { return prefix + "." + strconv.Itoa(i) }
