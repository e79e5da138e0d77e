package model

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"

	"github.com/m2mix/m2mix/torch"
)

// Params owns a network's trainable tensors, in creation order, under the
// names PyTorch's state_dict would give them (so weights move between the
// two by name). Every tensor is stacked over the models on a leading axis:
// (K, shape...), model k's slice being what a lone model of seeds[k] has.
type Params struct {
	scope   *torch.Scope
	device  torch.Device
	seeds   []uint64 // one per model
	Names   []string
	Tensors []*torch.Tensor
	frozen  map[string]bool
	buffers map[string]bool // saved with the weights, never trained (BatchNorm's running statistics, ...)
}

func newParams(device torch.Device, seeds []uint64) *Params {
	return &Params{scope: torch.NewScope(), device: device, seeds: seeds, frozen: map[string]bool{}, buffers: map[string]bool{}}
}

// modelShape prefixes shape with the model axis.
func (p *Params) modelShape(shape []int64) []int64 {
	return append([]int64{int64(len(p.seeds))}, shape...)
}

// Close frees every parameter.
func (p *Params) Close() { p.scope.Close() }

// uniform creates a parameter filled from U(-bound, bound). Each parameter
// draws from its own stream, keyed by the seed and its name, so a parameter's
// initial value does not depend on which others exist or their order, nor
// on whether its model is trained alone or stacked with others.
func (p *Params) uniform(name string, bound float64, shape ...int64) *torch.Tensor {
	return p.add(name, p.draw(name, shape, func(r *rand.Rand) float64 { return (r.Float64()*2 - 1) * bound }), true)
}

// normal creates a parameter filled from N(0, std^2), from the same
// per-seed, per-name streams as uniform.
func (p *Params) normal(name string, std float64, shape ...int64) *torch.Tensor {
	return p.add(name, p.draw(name, shape, func(r *rand.Rand) float64 { return r.NormFloat64() * std }), true)
}

// normalBuffer is normal for a tensor that is saved but never trained.
func (p *Params) normalBuffer(name string, std float64, shape ...int64) *torch.Tensor {
	return p.add(name, p.draw(name, shape, func(r *rand.Rand) float64 { return r.NormFloat64() * std }), false)
}

// draw fills a (K, shape...) tensor, model k's values from its own stream
// keyed by (seeds[k], name).
func (p *Params) draw(name string, shape []int64, next func(*rand.Rand) float64) *torch.Tensor {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	h := fnv.New64a()
	h.Write([]byte(name))
	v := make([]float32, 0, n*int64(len(p.seeds)))
	for _, seed := range p.seeds {
		r := rand.New(rand.NewPCG(seed, h.Sum64()))
		for i := int64(0); i < n; i++ {
			v = append(v, float32(next(r)))
		}
	}
	return p.scope.From(v, p.modelShape(shape)...)
}

// constant creates a parameter filled with c (LayerNorm's 1s and 0s).
func (p *Params) constant(name string, c float64, shape ...int64) *torch.Tensor {
	return p.add(name, p.scope.Full(c, torch.Float32, torch.CPU, p.modelShape(shape)...), true)
}

// constantBuffer is constant for a tensor that is saved but never trained.
func (p *Params) constantBuffer(name string, c float64, shape ...int64) *torch.Tensor {
	return p.add(name, p.scope.Full(c, torch.Float32, torch.CPU, p.modelShape(shape)...), false)
}

func (p *Params) add(name string, t *torch.Tensor, trainable bool) *torch.Tensor {
	if p.device != torch.CPU {
		t = p.scope.To(t, p.device)
	}
	if !trainable {
		p.buffers[name] = true
	} else if err := t.SetRequiresGrad(true); err != nil && p.scope.Err() == nil {
		panic(fmt.Sprintf("parameter %s: %v", name, err))
	}
	p.Names = append(p.Names, name)
	p.Tensors = append(p.Tensors, t)
	return t
}

// Err reports the first error met while creating parameters.
func (p *Params) Err() error { return p.scope.Err() }

// Freeze stops gradients for every parameter whose name has the prefix.
func (p *Params) Freeze(prefix string) error {
	for i, n := range p.Names {
		if len(n) >= len(prefix) && n[:len(prefix)] == prefix && !p.buffers[n] {
			if err := p.Tensors[i].SetRequiresGrad(false); err != nil {
				return err
			}
			p.frozen[n] = true
		}
	}
	return nil
}

// Trainable returns the parameters the optimiser updates.
func (p *Params) Trainable() []*torch.Tensor {
	var out []*torch.Tensor
	for i, n := range p.Names {
		if !p.frozen[n] && !p.buffers[n] {
			out = append(out, p.Tensors[i])
		}
	}
	return out
}

// TrainableNames returns the names of the trainable parameters, in order.
func (p *Params) TrainableNames() []string {
	var out []string
	for _, n := range p.Names {
		if !p.frozen[n] && !p.buffers[n] {
			out = append(out, n)
		}
	}
	return out
}

// Count is the number of trainable scalars of one model (buffers and
// frozen parameters are not counted).
func (p *Params) Count() (int64, error) {
	var n int64
	for _, t := range p.Trainable() {
		k, err := t.Numel()
		if err != nil {
			return 0, err
		}
		n += k
	}
	return n / int64(len(p.seeds)), nil
}

// ByName maps names to tensors.
func (p *Params) ByName() map[string]*torch.Tensor {
	m := make(map[string]*torch.Tensor, len(p.Names))
	for i, n := range p.Names {
		m[n] = p.Tensors[i]
	}
	return m
}

// kaimingBound is PyTorch's default bound for Linear and Conv2d weights:
// kaiming_uniform_ with a = sqrt(5) reduces to U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
// the same bound PyTorch uses for their biases.
func kaimingBound(fanIn int64) float64 { return 1 / math.Sqrt(float64(fanIn)) }

// holdBuffers copies models' slices of every buffer (made in s) and
// returns what puts them back: for a pass that must leave those models as
// they are, while a training-mode forward pass over all K models updates
// every model's BatchNorm statistics.
func (p *Params) holdBuffers(s *torch.Scope, models []int) (restore func() error, err error) {
	type held struct{ dst, saved *torch.Tensor }
	var hs []held
	for i, name := range p.Names {
		if !p.buffers[name] {
			continue
		}
		for _, m := range models {
			v := s.Narrow(p.Tensors[i], 0, int64(m), 1)
			hs = append(hs, held{v, s.Clone(v)})
		}
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("hold buffers: %w", err)
	}
	return func() error {
		for _, h := range hs {
			if err := h.dst.CopyFrom(h.saved); err != nil {
				return fmt.Errorf("restore buffers: %w", err)
			}
		}
		return nil
	}, nil
}
