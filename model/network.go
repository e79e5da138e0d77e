package model

import (
	"fmt"

	"github.com/m2mix/m2mix/torch"
)

// Network is every model of the paper, K >= 1 of them stacked on a leading
// model axis: one encoder per modality the configuration uses (from the
// dataset's table), an optional fusion Mixer over their concatenated
// tokens, and Linear heads on token averages.
type Network struct {
	Config *Config
	Data   *DatasetSpec
	Params *Params
	K      int

	Modalities []ModalitySpec // encoded, in fusion order
	Encoders   []encoder      // one per modality
	Fusion     *Mixer
	Heads      map[string]Linear
}

// NewNetwork builds len(seeds) models of a configuration, every parameter
// stacked on a leading model axis, model k initialised as PyTorch's default
// initialisation drawn from seeds[k] (independently of the other models).
func NewNetwork(c *Config, seeds []uint64, device torch.Device) (*Network, error) {
	ds, err := Dataset(c.Dataset)
	if err != nil {
		return nil, err
	}
	if len(seeds) == 0 {
		return nil, fmt.Errorf("build %s: no seeds", c.Name)
	}
	p := newParams(device, seeds)
	n := &Network{Config: c, Data: ds, Params: p, K: len(seeds), Modalities: ds.used(c), Heads: map[string]Linear{}}
	tokens := int64(0)
	for _, m := range n.Modalities {
		n.Encoders = append(n.Encoders, newEncoder(p, m, c))
		tokens += m.Tokens()
	}
	if c.Kind == "multimodal" {
		f := newMixer(p, fusionPrefix, blockName(fusionPrefix, c.FusionBlocks), c.FusionBlocks, tokens, c.Hidden, c.FusionTokenDim, c.FusionChannelDim, c.Dropout)
		n.Fusion = &f
	}
	for _, h := range c.Heads {
		param := fusionHeadParam
		if m, ok := ds.Modality(h); ok {
			param = m.Head
		}
		n.Heads[h] = newLinear(p, param, c.Hidden, ds.Classes)
	}
	if err := p.Err(); err != nil {
		p.Close()
		return nil, fmt.Errorf("build %s: %w", c.Name, err)
	}
	return n, nil
}

// Close frees the network's parameters.
func (n *Network) Close() { n.Params.Close() }

// Forward returns each head's logits, (K, batch, classes). mode.Train turns
// dropout on everywhere, including a probe's frozen encoder (the reference
// leaves that encoder in training mode while the probe trains).
func (n *Network) Forward(s *torch.Scope, b Batch, mode Mode) map[string]*torch.Tensor {
	out := map[string]*torch.Tensor{}
	avg := func(tokens *torch.Tensor) *torch.Tensor { return s.Mean(tokens, false, -2) }
	head := func(name string, x *torch.Tensor) {
		if h, ok := n.Heads[name]; ok {
			out[name] = h.Forward(s, avg(x))
		}
	}
	var tokens []*torch.Tensor
	for i, m := range n.Modalities {
		t := n.Encoders[i].Forward(s, b.X[m.Name], b.PerModel, mode) // (K, batch, tokens, hidden)
		head(m.Name, t)
		tokens = append(tokens, t)
	}
	if n.Fusion != nil {
		head(fusionHead, n.Fusion.Forward(s, s.Cat(-2, tokens...), mode))
	}
	return out
}

// CountParams builds one model of a configuration on the CPU and counts
// what its optimiser would train (a probe trains its head only).
func CountParams(c *Config) (int64, error) {
	n, err := NewNetwork(c, []uint64{0}, torch.CPU)
	if err != nil {
		return 0, err
	}
	defer n.Close()
	if c.Kind == "probe" {
		if err := n.Params.Freeze(c.encoderPrefix()); err != nil {
			return 0, err
		}
	}
	return n.Params.Count()
}
