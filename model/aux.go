package model

import (
	"fmt"

	"github.com/m2mix/m2mix/torch"
)

// AuxLoss is a term a baseline adds to its heads' loss, computed from what
// the forward pass gives besides logits.
//
//   - "refiner" (ReFNet, MultiBench's simplified form): an MLP (Linear,
//     ReLU, Linear of hidden units) maps the fused vector back to every
//     modality's flattened input, and each modality adds
//     weight * mean(1 - cos(reconstruction, input)), PyTorch's
//     CosineEmbeddingLoss with target 1.
//   - "cca" (deep CCA): weight times minus the canonical correlation of the
//     two encoders' outputs over the batch (MultiBench's CCALoss with
//     use_all_singular_values false and as many components as dimensions).
//
// An auxiliary module's parameters (the refiner's) are trained by the same
// optimiser but are not the network's: gradient clipping leaves them
// alone, as MultiBench clips only its MMDL's parameters.
type AuxLoss struct {
	Type   string  `json:"type"`
	Weight float64 `json:"weight"`
	Hidden int64   `json:"hidden,omitempty"` // refiner: hidden units
}

func (a AuxLoss) validate() error {
	switch {
	case a.Type != "refiner" && a.Type != "cca":
		return fmt.Errorf("loss.aux: type %q, want refiner or cca", a.Type)
	case a.Weight <= 0:
		return fmt.Errorf("loss.aux %s: weight must be positive", a.Type)
	case a.Type == "refiner" && a.Hidden <= 0:
		return fmt.Errorf("loss.aux refiner: needs hidden")
	case a.Type == "cca" && a.Hidden != 0:
		return fmt.Errorf("loss.aux cca: takes no hidden")
	}
	return nil
}

// auxPrefix starts every auxiliary module's parameter names.
const auxPrefix = "aux."

// An auxTerm is one auxiliary loss: (K), each model's weighted term
// averaged over the batch.
type auxTerm interface {
	Loss(s *torch.Scope, r forwardResult, b Batch, k int) *torch.Tensor
}

func newAuxTerm(p *Params, a AuxLoss, n *Network, encoded []tokens, fused tokens) (auxTerm, error) {
	switch a.Type {
	case "refiner":
		if n.Fusion == nil {
			return nil, fmt.Errorf("loss.aux refiner: needs a fusion to refine")
		}
		if fused.n != 1 {
			return nil, fmt.Errorf("loss.aux refiner: the fusion gives %d tokens, want one vector", fused.n)
		}
		out := int64(0)
		for _, m := range n.Modalities {
			out += m.RowSize()
		}
		return refiner{
			MLP: newReluMLP(p, auxPrefix+"refiner", fused.w, a.Hidden, out, ""), Weight: a.Weight, Modalities: n.Modalities,
		}, nil
	case "cca":
		if len(encoded) != 2 || encoded[0] != encoded[1] || encoded[0].n != 1 {
			return nil, fmt.Errorf("loss.aux cca: needs two encoders giving one vector of the same width, have %v", encoded)
		}
		return ccaTerm{Weight: a.Weight, Dim: encoded[0].w}, nil
	}
	return nil, fmt.Errorf("loss.aux: type %q", a.Type)
}

// refiner is ReFNet's self-supervised reconstruction term.
type refiner struct {
	MLP        ReluMLP
	Weight     float64
	Modalities []ModalitySpec
}

func (t refiner) Loss(s *torch.Scope, r forwardResult, b Batch, k int) *torch.Tensor {
	fused := s.Reshape(r.fused, int64(k), -1, t.MLP.In()) // (K, batch, width)
	rec := t.MLP.Forward(s, fused)                        // (K, batch, sum of row sizes)
	var total *torch.Tensor
	off := int64(0)
	for _, m := range t.Modalities {
		n := m.RowSize()
		x := b.X[m.Name]
		if b.PerModel {
			x = s.Reshape(x, int64(k), -1, n)
		} else {
			x = s.Reshape(x, 1, -1, n) // every model compares with the same rows
		}
		term := s.Mean(s.RSubScalar(cosineEmbedding(s, s.Narrow(rec, -1, off, n), x), 1), false, -1) // (K)
		if total == nil {
			total = term
		} else {
			total = s.Add(total, term)
		}
		off += n
	}
	return s.MulScalar(total, t.Weight)
}

// cosineEmbedding is the cosine of a and b along the last axis as
// PyTorch's CosineEmbeddingLoss computes it: eps 1e-12 added to each
// squared norm before the square root of their product.
func cosineEmbedding(s *torch.Scope, a, b *torch.Tensor) *torch.Tensor {
	const eps = 1e-12
	dot := s.Sum(s.Mul(a, b), false, -1)
	na := s.AddScalar(s.Sum(s.Mul(a, a), false, -1), eps)
	nb := s.AddScalar(s.Sum(s.Mul(b, b), false, -1), eps)
	return s.Div(dot, s.Sqrt(s.Mul(na, nb)))
}
