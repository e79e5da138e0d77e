package model

import (
	"fmt"

	"github.com/m2mix/m2mix/torch"
)

// Network is K >= 1 models of one configuration, stacked on a leading
// model axis, built from the configuration's parts (parts.go): one encoder
// per modality it uses (in the dataset's order), an optional fusion of
// their tokens, heads, and the auxiliary losses' modules.
type Network struct {
	Config *Config
	Data   *DatasetSpec
	Params *Params
	K      int

	Modalities []ModalitySpec // encoded, in fusion order
	Encoders   []encoder      // one per modality
	Fusion     fusion         // nil for a uni-modal model or a probe
	Fused      tokens         // what the fusion gives (zero without one)
	Heads      map[string]head
	Aux        []auxTerm // the loss's auxiliary terms, in the configuration's order
}

// NewNetwork builds len(seeds) models of a configuration, every parameter
// stacked on a leading model axis, model k initialised as PyTorch
// initialises the parts (each part's own rule), drawn from seeds[k]
// independently of the other models.
func NewNetwork(c *Config, seeds []uint64, device torch.Device) (*Network, error) {
	ds, err := Dataset(c.Dataset)
	if err != nil {
		return nil, err
	}
	if len(seeds) == 0 {
		return nil, fmt.Errorf("build %s: no seeds", c.Name)
	}
	p := newParams(device, seeds)
	n := &Network{Config: c, Data: ds, Params: p, K: len(seeds), Modalities: ds.used(c), Heads: map[string]head{}}
	var encoded []tokens
	out := map[string]tokens{}
	for _, m := range n.Modalities {
		spec := c.Network.Encoders[m.Name]
		e, t := encoderParts[spec.Type].build(p, m.Prefix, &m, spec)
		n.Encoders = append(n.Encoders, e)
		encoded = append(encoded, t)
		out[m.Name] = t
	}
	if f := c.Network.Fusion; f != nil {
		var t tokens
		if n.Fusion, t, err = fusionParts[f.Type].build(p, fusionPrefix, encoded, *f); err != nil {
			p.Close()
			return nil, fmt.Errorf("build %s: %w", c.Name, err)
		}
		out[fusionHead], n.Fused = t, t
	}
	for _, h := range c.Heads {
		param := fusionHeadParam
		if m, ok := ds.Modality(h); ok {
			param = m.Head
		}
		spec := c.Network.Heads[h]
		n.Heads[h] = headParts[spec.Type].build(p, param, out[h], ds.Classes, spec)
	}
	for _, a := range c.Loss.Aux {
		term, err := newAuxTerm(p, a, n, encoded, out[fusionHead])
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("build %s: %w", c.Name, err)
		}
		n.Aux = append(n.Aux, term)
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
// leaves that encoder in training mode while the probe trains), and puts
// BatchNorm on batch statistics.
func (n *Network) Forward(s *torch.Scope, b Batch, mode Mode) map[string]*torch.Tensor {
	return n.forward(s, b, mode).logits
}

// forwardResult is a forward pass's logits and what auxiliary losses read.
type forwardResult struct {
	logits  map[string]*torch.Tensor
	encoded []*torch.Tensor // each modality's tokens (K, batch, tokens, width)
	fused   *torch.Tensor   // the fusion's tokens; nil without fusion
}

func (n *Network) forward(s *torch.Scope, b Batch, mode Mode) forwardResult {
	r := forwardResult{logits: map[string]*torch.Tensor{}}
	for i, m := range n.Modalities {
		t := n.Encoders[i].Forward(s, b.X[m.Name], b.PerModel, mode)
		if h, ok := n.Heads[m.Name]; ok {
			r.logits[m.Name] = h.Forward(s, t)
		}
		r.encoded = append(r.encoded, t)
	}
	if n.Fusion != nil {
		r.fused = n.Fusion.Forward(s, r.encoded, mode)
		if h, ok := n.Heads[fusionHead]; ok {
			r.logits[fusionHead] = h.Forward(s, r.fused)
		}
	}
	return r
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
