package model

import (
	"fmt"

	"github.com/m2mix/m2mix/torch"
)

// Batch holds one batch of inputs on the device; a model reads the fields
// its dataset has. Image is (B,1,28,28), Audio (B,1,112,112), Static (B,5),
// Time (B,24,12), Label (B) int64.
type Batch struct {
	Image, Audio, Static, Time, Label *torch.Tensor
}

// Network is every model of the paper: modality encoders, an optional
// fusion Mixer over their concatenated tokens, and Linear heads on token
// averages. Which parts exist is decided by the configuration.
type Network struct {
	Config *Config
	Params *Params

	Image, Audio *ImageEncoder    // AV-MNIST
	Time         *SequenceEncoder // MIMIC-III
	Static       *StaticMLP       // MIMIC-III
	Fusion       *Mixer
	Heads        map[string]Linear
}

// headParam is each head's parameter name (as the reference code names them).
var headParam = map[string]string{"fusion": "hf", "image": "hi", "audio": "ha", "static": "hs", "time": "ht"}

// NewNetwork builds a configuration's network with PyTorch's default
// initialisation drawn from seed, its parameters on device.
func NewNetwork(c *Config, seed uint64, device torch.Device) (*Network, error) {
	return buildNetwork(c, []uint64{seed}, false, device)
}

// NewStackedNetwork builds len(seeds) copies of a configuration's network,
// every parameter stacked on a leading model axis, model k initialised
// exactly as NewNetwork(c, seeds[k]) would.
func NewStackedNetwork(c *Config, seeds []uint64, device torch.Device) (*Network, error) {
	return buildNetwork(c, seeds, true, device)
}

func buildNetwork(c *Config, seeds []uint64, stacked bool, device torch.Device) (*Network, error) {
	p := newParams(device, seeds, stacked)
	n := &Network{Config: c, Params: p, Heads: map[string]Linear{}}
	switch c.Dataset {
	case "avmnist":
		if c.Kind == "multimodal" || c.Modality == "image" {
			e := newImageEncoder(p, "img", 28, 14, c)
			n.Image = &e
		}
		if c.Kind == "multimodal" || c.Modality == "audio" {
			e := newImageEncoder(p, "aud", 112, 56, c)
			n.Audio = &e
		}
	case "mimic":
		st := newStaticMLP(p, "static", 5, c.Hidden, c.Dropout)
		n.Static = &st
		tm := newSequenceEncoder(p, "time", 24, 12, c)
		n.Time = &tm
	}
	if c.Kind == "multimodal" {
		tokens := map[string]int64{"avmnist": 4 + 4, "mimic": 1 + 24}[c.Dataset]
		f := &Mixer{}
		for i := 0; i < c.FusionBlocks; i++ {
			f.Blocks = append(f.Blocks, newMixerBlock(p, blockName("fus", i), tokens, c.Hidden, c.FusionTokenDim, c.FusionChannelDim, c.Dropout))
		}
		f.LN = newLayerNorm(p, blockName("fus", c.FusionBlocks), c.Hidden)
		n.Fusion = f
	}
	classes := map[string]int64{"avmnist": 10, "mimic": 6}[c.Dataset]
	for _, h := range c.Heads {
		n.Heads[h] = newLinear(p, headParam[h], c.Hidden, classes)
	}
	if err := p.Err(); err != nil {
		p.Close()
		return nil, fmt.Errorf("build %s: %w", c.Name, err)
	}
	return n, nil
}

// Close frees the network's parameters.
func (n *Network) Close() { n.Params.Close() }

// Forward returns each head's logits: (batch, classes), or (models, batch,
// classes) when stacked. mode.Train turns dropout on everywhere, including a
// probe's frozen encoder (the reference leaves that encoder in training mode
// while the probe trains).
func (n *Network) Forward(s *torch.Scope, b Batch, mode Mode) map[string]*torch.Tensor {
	out := map[string]*torch.Tensor{}
	avg := func(tokens *torch.Tensor) *torch.Tensor { return s.Mean(tokens, false, -2) }
	head := func(name string, x *torch.Tensor) {
		if h, ok := n.Heads[name]; ok {
			out[name] = h.Forward(s, x)
		}
	}
	switch n.Config.Dataset {
	case "avmnist":
		var img, aud *torch.Tensor
		if n.Image != nil {
			img = n.Image.Forward(s, b.Image, mode)
			head("image", avg(img))
		}
		if n.Audio != nil {
			aud = n.Audio.Forward(s, b.Audio, mode)
			head("audio", avg(aud))
		}
		if n.Fusion != nil {
			head("fusion", avg(n.Fusion.Forward(s, s.Cat(-2, img, aud), mode)))
		}
	case "mimic":
		static := n.Static.Forward(s, b.Static, mode) // (..., batch, D)
		series := n.Time.Forward(s, b.Time, mode)     // (..., batch, 24, D)
		head("static", static)
		head("time", avg(series))
		tokens := s.Cat(-2, asToken(s, static), series) // the static token first
		head("fusion", avg(n.Fusion.Forward(s, tokens, mode)))
	}
	return out
}

// asToken turns (..., batch, D) into (..., batch, 1, D).
func asToken(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
	shape, _ := x.Shape()
	if len(shape) == 0 {
		return x
	}
	last := shape[len(shape)-1]
	return s.Reshape(x, append(append(append([]int64{}, shape[:len(shape)-1]...), 1), last)...)
}

// CountParams builds a configuration on the CPU and counts what its
// optimiser would train (a probe trains its head only).
func CountParams(c *Config) (int64, error) {
	n, err := NewNetwork(c, 0, torch.CPU)
	if err != nil {
		return 0, err
	}
	defer n.Close()
	if c.Kind == "probe" {
		if err := n.Params.Freeze(encoderPrefix(c.Modality)); err != nil {
			return 0, err
		}
	}
	return n.Params.Count()
}
