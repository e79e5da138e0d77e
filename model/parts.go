package model

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/m2mix/m2mix/torch"
)

// A network is the paper's own abstraction: an encoder per modality, a
// fusion of what the encoders give, and heads on the fusion and on the
// encoders, each a part chosen by its type name, with its sizes, in the
// configuration's "network". One builder (NewNetwork) assembles every
// configuration from these parts: the M2-Mixers and MultiBench's
// baselines alike. A new block (gMLP, say) is one more entry in a table
// below and the type that implements it, not a new network.
//
// Every part works on K models stacked on a leading axis, and every part
// hands the next one tokens: (K, batch, tokens, width). A mixer encoder
// gives many tokens; a vector encoder (LeNet, an MLP) gives one token; a
// GRU gives one token per time step. A fusion turns the encoders' tokens
// into its own, and a head turns tokens into (K, batch, classes).

// NetworkSpec is a configuration's "network".
type NetworkSpec struct {
	Encoders map[string]Part `json:"encoders"`         // by modality name
	Fusion   *Part           `json:"fusion,omitempty"` // multimodal models only
	Heads    map[string]Part `json:"heads"`            // by head name, the configuration's heads
}

// Part is one building block and its sizes. Which sizes a type reads is in
// its table entry; a size it does not read must be left out.
type Part struct {
	Type       string  `json:"type"`
	Hidden     int64   `json:"hidden,omitempty"`      // width: a mixer's, an MLP's hidden layer, a GRU's state
	TokenDim   int64   `json:"token_dim,omitempty"`   // mixer: token-mixing MLP width
	ChannelDim int64   `json:"channel_dim,omitempty"` // mixer: channel-mixing MLP width
	Blocks     int     `json:"blocks,omitempty"`      // mixer blocks; LeNet: blocks after the first convolution
	Patch      int64   `json:"patch,omitempty"`       // patch-mixer: patch side
	Dropout    float64 `json:"dropout,omitempty"`
	Channels   int64   `json:"channels,omitempty"`  // LeNet: channels of the first convolution
	Out        int64   `json:"out,omitempty"`       // output width of an MLP encoder or a fusion
	Rank       int64   `json:"rank,omitempty"`      // low-rank fusion: rank
	Project    int64   `json:"project,omitempty"`   // encoder: a Linear to this width after it
	Init       string  `json:"init,omitempty"`      // "xavier": the part's Linear layers xavier-normal, zero bias
	Trainable  *bool   `json:"trainable,omitempty"` // low-rank fusion: whether its tensors train (MultiBench: they do not)
	// BatchStatsAtTest keeps a LeNet's BatchNorm on batch statistics when
	// evaluating, as MultiBench's Gradient Blending tests (its encoders are
	// never put in eval mode).
	BatchStatsAtTest bool `json:"batch_stats_at_test,omitempty"`
}

// tokens is the shape of what a part gives: n tokens of width w.
type tokens struct{ n, w int64 }

func (t tokens) flat() int64 { return t.n * t.w }

// An encoder maps one modality's batch to tokens (K, batch, tokens, width).
// perModel: x carries the model axis first (each model its own rows); else
// every model reads the same x.
type encoder interface {
	Forward(s *torch.Scope, x *torch.Tensor, perModel bool, mode Mode) *torch.Tensor
}

// A fusion maps the encoders' tokens, in the dataset's modality order, to
// its own tokens.
type fusion interface {
	Forward(s *torch.Scope, xs []*torch.Tensor, mode Mode) *torch.Tensor
}

// A head maps tokens to logits (K, batch, classes).
type head interface {
	Forward(s *torch.Scope, x *torch.Tensor) *torch.Tensor
}

// partType is one entry of a part table: the sizes it needs and may take.
type partType[B any] struct {
	required, optional string // space-separated JSON names
	build              B
}

type (
	buildEncoder func(p *Params, name string, m *ModalitySpec, spec Part) (encoder, tokens)
	buildFusion  func(p *Params, name string, in []tokens, spec Part) (fusion, tokens, error)
	buildHead    func(p *Params, name string, in tokens, classes int64, spec Part) head
)

var encoderParts = map[string]partType[buildEncoder]{
	"patch-mixer":    {"patch hidden token_dim channel_dim blocks", "dropout", newPatchEncoder},
	"sequence-mixer": {"hidden token_dim channel_dim blocks", "dropout", newSequenceEncoder},
	"static-mlp":     {"hidden", "dropout", newStaticMLP},
	"mlp":            {"hidden out", "", newMLPEncoder},
	"lenet":          {"channels blocks", "project init batch_stats_at_test", newLeNet},
	"gru":            {"hidden", "", newGRU},
}

var fusionParts = map[string]partType[buildFusion]{
	"mixer":     {"hidden token_dim channel_dim blocks", "dropout", newMixerFusion},
	"concat":    {"", "", newConcat},
	"low-rank":  {"rank out", "trainable", newLowRankFusion},
	"mi-matrix": {"out", "", newMIMatrix},
}

var headParts = map[string]partType[buildHead]{
	"linear": {"", "init", newLinearHead},
	"mlp":    {"hidden", "", newMLPHead},
}

// sizes lists a part's non-zero sizes by JSON name.
func (p Part) sizes() map[string]bool {
	return map[string]bool{
		"hidden": p.Hidden != 0, "token_dim": p.TokenDim != 0, "channel_dim": p.ChannelDim != 0,
		"blocks": p.Blocks != 0, "patch": p.Patch != 0, "dropout": p.Dropout != 0, "channels": p.Channels != 0,
		"out": p.Out != 0, "rank": p.Rank != 0, "project": p.Project != 0, "init": p.Init != "",
		"trainable": p.Trainable != nil, "batch_stats_at_test": p.BatchStatsAtTest,
	}
}

// checkPart validates a part against its table entry.
func checkPart[B any](role, name string, p Part, table map[string]partType[B]) error {
	t, ok := table[p.Type]
	if !ok {
		return fmt.Errorf("%s %s: type %q, want one of %v", role, name, p.Type, slices.Sorted(maps.Keys(table)))
	}
	set := p.sizes()
	for _, f := range strings.Fields(t.required) {
		if !set[f] {
			return fmt.Errorf("%s %s (%s): needs %s", role, name, p.Type, f)
		}
	}
	allowed := strings.Fields(t.required + " " + t.optional)
	for _, f := range slices.Sorted(maps.Keys(set)) {
		if set[f] && !slices.Contains(allowed, f) {
			return fmt.Errorf("%s %s (%s): takes no %s (it takes %s)", role, name, p.Type, f, strings.Join(allowed, ", "))
		}
	}
	switch {
	case p.Hidden < 0 || p.TokenDim < 0 || p.ChannelDim < 0 || p.Blocks < 0 || p.Patch < 0 || p.Channels < 0 ||
		p.Out < 0 || p.Rank < 0 || p.Project < 0:
		return fmt.Errorf("%s %s (%s): sizes must be positive", role, name, p.Type)
	case p.Dropout < 0 || p.Dropout >= 1:
		return fmt.Errorf("%s %s (%s): dropout %v out of [0,1)", role, name, p.Type, p.Dropout)
	case p.Init != "" && p.Init != "xavier":
		return fmt.Errorf("%s %s (%s): init %q, want xavier or nothing (PyTorch's default)", role, name, p.Type, p.Init)
	}
	return nil
}

// validate checks the network against the configuration's kind, modality
// and heads, and every part against its table.
func (n *NetworkSpec) validate(c *Config, ds *DatasetSpec) error {
	used := ds.used(c)
	for name := range n.Encoders {
		if !slices.ContainsFunc(used, func(m ModalitySpec) bool { return m.Name == name }) {
			return fmt.Errorf("network: encoder %q: a %s model of %s encodes %v", name, c.Kind, c.Dataset, modalityNames(used))
		}
	}
	for _, m := range used {
		spec, ok := n.Encoders[m.Name]
		if !ok {
			return fmt.Errorf("network: no encoder for %s", m.Name)
		}
		if err := checkPart("encoder", m.Name, spec, encoderParts); err != nil {
			return fmt.Errorf("network: %w", err)
		}
		if spec.Type == "patch-mixer" && (m.Shape[1]%spec.Patch != 0 || m.Shape[2]%spec.Patch != 0) {
			return fmt.Errorf("network: encoder %s: patch %d does not divide %v", m.Name, spec.Patch, m.Shape[1:])
		}
	}
	switch {
	case c.Kind == "multimodal" && n.Fusion == nil:
		return fmt.Errorf("network: a multimodal model needs a fusion")
	case c.Kind != "multimodal" && n.Fusion != nil:
		return fmt.Errorf("network: a %s model has no fusion", c.Kind)
	case n.Fusion != nil:
		if err := checkPart("fusion", "", *n.Fusion, fusionParts); err != nil {
			return fmt.Errorf("network: %w", err)
		}
	}
	if !slices.Equal(slices.Sorted(maps.Keys(n.Heads)), slices.Sorted(slices.Values(c.Heads))) {
		return fmt.Errorf("network: heads %v, but the configuration's heads are %v", slices.Sorted(maps.Keys(n.Heads)), c.Heads)
	}
	for _, h := range c.Heads {
		if err := checkPart("head", h, n.Heads[h], headParts); err != nil {
			return fmt.Errorf("network: %w", err)
		}
	}
	return nil
}

func modalityNames(ms []ModalitySpec) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}

// Parts of the M2-Mixers (their types are in layers.go).

func newPatchEncoder(p *Params, name string, m *ModalitySpec, spec Part) (encoder, tokens) {
	e := PatchEncoder{Patch: spec.Patch, Hidden: spec.Hidden, Tokens: (m.Shape[1] / spec.Patch) * (m.Shape[2] / spec.Patch), models: int64(len(p.seeds))}
	b := kaimingBound(spec.Patch * spec.Patch * m.Shape[0])
	e.Embed.W = p.uniform(name+".emb.weight", b, spec.Hidden, m.Shape[0], spec.Patch, spec.Patch)
	e.Embed.B = p.uniform(name+".emb.bias", b, spec.Hidden)
	e.Mixer = newMixer(p, name+".blocks", name+".ln", spec.Blocks, e.Tokens, spec.Hidden, spec.TokenDim, spec.ChannelDim, spec.Dropout)
	return e, tokens{e.Tokens, spec.Hidden}
}

func newSequenceEncoder(p *Params, name string, m *ModalitySpec, spec Part) (encoder, tokens) {
	steps := m.Shape[0]
	return SequenceEncoder{
		Embed: newLinear(p, name+".emb", m.Shape[1], spec.Hidden),
		Mixer: newMixer(p, name+".blocks", name+".ln", spec.Blocks, steps, spec.Hidden, spec.TokenDim, spec.ChannelDim, spec.Dropout),
	}, tokens{steps, spec.Hidden}
}

func newStaticMLP(p *Params, name string, m *ModalitySpec, spec Part) (encoder, tokens) {
	h := spec.Hidden
	return StaticMLP{
		L1: newLinear(p, name+".0", m.Shape[0], h), L2: newLinear(p, name+".3", h, h),
		L3: newLinear(p, name+".6", h, h), Dropout: spec.Dropout,
	}, tokens{1, h}
}

// newMixerFusion mixes the encoders' tokens concatenated (every encoder's
// width must be the mixer's): blocks fus.0 .. fus.<N-1>, LayerNorm fus.<N>.
func newMixerFusion(p *Params, name string, in []tokens, spec Part) (fusion, tokens, error) {
	n := int64(0)
	for i, t := range in {
		if t.w != spec.Hidden {
			return nil, tokens{}, fmt.Errorf("mixer fusion of width %d: encoder %d gives width %d", spec.Hidden, i, t.w)
		}
		n += t.n
	}
	m := newMixer(p, name, blockName(name, spec.Blocks), spec.Blocks, n, spec.Hidden, spec.TokenDim, spec.ChannelDim, spec.Dropout)
	return mixerFusion{m}, tokens{n, spec.Hidden}, nil
}

type mixerFusion struct{ Mixer Mixer }

func (f mixerFusion) Forward(s *torch.Scope, xs []*torch.Tensor, mode Mode) *torch.Tensor {
	return f.Mixer.Forward(s, s.Cat(-2, xs...), mode)
}

// linearHead is the M2-Mixers' head: the tokens' mean, then a Linear
// (the mean of one token is that token, so it also serves vectors).
type linearHead struct{ L Linear }

func newLinearHead(p *Params, name string, in tokens, classes int64, spec Part) head {
	if spec.Init == "xavier" {
		return linearHead{newXavierLinear(p, name, in.w, classes)}
	}
	return linearHead{newLinear(p, name, in.w, classes)}
}

func (h linearHead) Forward(s *torch.Scope, x *torch.Tensor) *torch.Tensor {
	return h.L.Forward(s, s.Mean(x, false, -2))
}
