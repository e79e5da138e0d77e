// Package model holds the paper's networks, the one training loop that
// serves every configuration, and the run records it writes. It is the only
// package that uses the libtorch binding.
package model

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/m2mix/m2mix/manifests"
	"github.com/m2mix/m2mix/torch"
)

// Config is one experiment configuration: a paper row, read from
// manifests/configs/<name>.json. Adding a row means adding a file.
type Config struct {
	Name        string `json:"name"`
	Model       string `json:"model"` // the paper's name for the row
	Description string `json:"description"`
	Dataset     string `json:"dataset"`  // "avmnist" or "mimic"
	Kind        string `json:"kind"`     // "multimodal", "unimodal" or "probe"
	Modality    string `json:"modality"` // unimodal and probe: "image" or "audio"
	ProbeOf     string `json:"probe_of"` // probe: the configuration whose encoder is probed

	// Network is what the model is made of: an encoder per modality, a
	// fusion and heads, each a part named by type with its sizes (parts.go).
	Network NetworkSpec `json:"network"`

	Heads []string `json:"heads"` // the first is the head that is reported
	Loss  struct {
		WFusion float64 `json:"w_fusion"` // weight of the fusion head; the others share 1-w_f
		Scale   float64 `json:"scale"`    // the whole loss is multiplied by this
		LCEta   float64 `json:"lc_eta"`   // w_f grows by this after each validation epoch (0: fixed)
		// LCK is the paper's k of Eq. 7 (the reference code's
		// loss_change_epoch): w_f grows after the validation of each epoch
		// i >= k (0-based), as the reference does, so epoch i trains with
		// min(1, w_f + eta*max(0, i-k)). 0 when unset, which is also what the
		// reference configuration leaves for M2-Mixer_LC (the paper reports
		// k = 1 as best); omitted from JSON when 0, so existing keys stay.
		LCK int `json:"lc_k,omitempty"`
		// Aux are terms added to the heads' loss (a baseline's regulariser).
		Aux []AuxLoss `json:"aux,omitempty"`
	} `json:"loss"`

	LR float64 `json:"lr"`
	// Optimizer is the update rule; nil: Adam with PyTorch's defaults (the mixers).
	Optimizer *OptimizerSpec `json:"optimizer,omitempty"`
	// ClipGradNorm, when positive, scales each model's gradients (of its
	// network, not of auxiliary modules) to at most this 2-norm before a step.
	ClipGradNorm float64 `json:"clip_grad_norm,omitempty"`
	// Selection is what picks the best epoch (the weights tested and probed):
	// "val_loss" (the default: the lowest weighted validation loss) or
	// "val_accuracy" (the highest validation accuracy of the reported head,
	// strictly improving, as MultiBench selects).
	Selection string `json:"selection,omitempty"`
	Plateau   *struct {
		Patience  int     `json:"patience"`
		Factor    float64 `json:"factor"`
		Threshold float64 `json:"threshold"`
	} `json:"plateau"` // nil: constant learning rate

	// GradBlend, when set, trains by MultiBench's Gradient Blending
	// (gradblend.go): rounds of weight estimation, blended training and a
	// head fine-tune, all taken by the one loop's epochs.
	GradBlend *GradBlendSpec `json:"gradient_blend,omitempty"`

	BatchSize     int  `json:"batch_size"`
	MaxEpochs     int  `json:"max_epochs"`
	EarlyStopping int  `json:"early_stopping"` // epochs without a lower validation loss before stopping; 0: never (a fixed epoch count)
	Shuffle       bool `json:"shuffle"`        // a new order of the training rows each epoch, seeded by (seed, epoch)
}

// ConfigDir is where configurations live (also embedded in the binary).
const ConfigDir = "manifests/configs"

// LoadConfig reads configuration name from ConfigDir.
func LoadConfig(name string) (*Config, error) {
	path := filepath.Join(ConfigDir, name+".json")
	b, err := manifests.Read(path)
	if err != nil {
		names, _ := ConfigNames()
		return nil, fmt.Errorf("configuration %q: %w (known: %s)", name, err, strings.Join(names, ", "))
	}
	return ParseConfig(path, b)
}

// ParseConfig decodes and validates a configuration file's bytes.
func ParseConfig(path string, b []byte) (*Config, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return &c, nil
}

func (c *Config) validate() error {
	if c.Name == "" {
		return fmt.Errorf("no name")
	}
	ds, err := Dataset(c.Dataset)
	if err != nil {
		return err
	}
	_, known := ds.Modality(c.Modality)
	switch {
	case c.Kind != "multimodal" && c.Kind != "unimodal" && c.Kind != "probe":
		return fmt.Errorf("kind %q: want multimodal, unimodal or probe", c.Kind)
	case c.Kind != "multimodal" && !known:
		return fmt.Errorf("modality %q: %s has %v", c.Modality, c.Dataset, ds.Heads()[1:])
	case c.Kind == "probe" && c.ProbeOf == "":
		return fmt.Errorf("a probe needs probe_of")
	case len(c.Heads) == 0:
		return fmt.Errorf("no heads")
	case c.LR <= 0 || c.BatchSize <= 0 || c.MaxEpochs <= 0 || c.EarlyStopping < 0:
		return fmt.Errorf("lr, batch_size and max_epochs must be positive, early_stopping at least 0")
	case c.Loss.Scale <= 0:
		return fmt.Errorf("loss.scale must be positive")
	case c.ClipGradNorm < 0:
		return fmt.Errorf("clip_grad_norm %v: want 0 (off) or more", c.ClipGradNorm)
	case c.Selection != "" && c.Selection != "val_loss" && c.Selection != "val_accuracy":
		return fmt.Errorf("selection %q: want val_loss or val_accuracy", c.Selection)
	case c.Loss.LCEta < 0 || c.Loss.LCK < 0:
		return fmt.Errorf("loss.lc_eta %v and loss.lc_k %d must be 0 or more", c.Loss.LCEta, c.Loss.LCK)
	}
	want := ds.Heads()
	for _, h := range c.Heads {
		if !slices.Contains(want, h) {
			return fmt.Errorf("head %q: %s has heads %v", h, c.Dataset, want)
		}
		if c.Kind != "multimodal" && h != c.Modality {
			return fmt.Errorf("head %q: a %s model of %s has only that head", h, c.Kind, c.Modality)
		}
	}
	if err := c.Optimizer.validate(); err != nil {
		return err
	}
	if err := c.GradBlend.validate(c); err != nil {
		return err
	}
	for _, a := range c.Loss.Aux {
		if err := a.validate(); err != nil {
			return err
		}
	}
	return c.Network.validate(c, ds)
}

// encoderPrefix names the parameters of the encoder a probe freezes: every
// name that starts with it.
func (c *Config) encoderPrefix() string {
	ds, _ := Dataset(c.Dataset) // validated
	m, _ := ds.Modality(c.Modality)
	return m.Prefix + "."
}

// HeadWeights returns each head's weight in the loss for fusion weight wf:
// the fusion head gets wf, the other heads share 1-wf equally, all times
// Scale. A single-head model's only head gets Scale.
func (c *Config) HeadWeights(wf float64) map[string]float64 {
	w := map[string]float64{}
	if len(c.Heads) == 1 {
		w[c.Heads[0]] = c.Loss.Scale
		return w
	}
	others := float64(len(c.Heads) - 1)
	for _, h := range c.Heads {
		if h == "fusion" {
			w[h] = c.Loss.Scale * wf
		} else {
			w[h] = c.Loss.Scale * (1 - wf) / others
		}
	}
	return w
}

// ConfigNames lists the known configurations (on disk, else embedded).
func ConfigNames() ([]string, error) {
	paths, err := filepath.Glob(filepath.Join(ConfigDir, "*.json"))
	if err != nil || len(paths) == 0 {
		paths, err = manifests.Embedded("configs")
		if err != nil {
			return nil, err
		}
	}
	var names []string
	for _, p := range paths {
		names = append(names, strings.TrimSuffix(filepath.Base(p), ".json"))
	}
	slices.Sort(names)
	return names, nil
}

// OptimizerSpec is a configuration's update rule: "adam", "sgd" or
// "rmsprop", each with PyTorch's defaults for what is not given (no
// momentum; RMSprop's alpha 0.99 and eps 1e-8; Adam's betas 0.9, 0.999 and
// eps 1e-8), and L2 weight decay added to the gradient as PyTorch's
// optimisers (not AdamW) add it. MultiBench's AdamW runs with weight decay
// 0, which makes it Adam.
type OptimizerSpec struct {
	Rule        string  `json:"rule"`
	WeightDecay float64 `json:"weight_decay,omitempty"`
}

// optimizer is the configuration's rule for the flat optimiser.
func (c *Config) optimizer() torch.OptimizerSpec {
	if c.Optimizer == nil {
		return torch.OptimizerSpec{Rule: torch.RuleAdam, LR: c.LR}
	}
	return torch.OptimizerSpec{Rule: c.Optimizer.Rule, LR: c.LR, WeightDecay: c.Optimizer.WeightDecay}
}

// selectionScore is what the best epoch minimises: the weighted validation
// loss, or minus the reported head's validation accuracy.
func (c *Config) selectionScore(valLoss float64, ev *evaluation) float64 {
	if c.Selection == "val_accuracy" {
		return -ev.acc[c.Heads[0]]
	}
	return valLoss
}

func (o *OptimizerSpec) validate() error {
	switch {
	case o == nil:
		return nil
	case o.Rule != "adam" && o.Rule != "sgd" && o.Rule != "rmsprop":
		return fmt.Errorf("optimizer: rule %q, want adam, sgd or rmsprop", o.Rule)
	case o.WeightDecay < 0:
		return fmt.Errorf("optimizer: weight_decay %v is negative", o.WeightDecay)
	}
	return nil
}
