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

	Hidden           int64   `json:"hidden"`
	TokenDim         int64   `json:"token_dim"`
	ChannelDim       int64   `json:"channel_dim"`
	EncoderBlocks    int     `json:"encoder_blocks"`
	FusionBlocks     int     `json:"fusion_blocks"`
	FusionTokenDim   int64   `json:"fusion_token_dim"`
	FusionChannelDim int64   `json:"fusion_channel_dim"`
	Dropout          float64 `json:"dropout"`

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
	} `json:"loss"`

	LR      float64 `json:"lr"`
	Plateau *struct {
		Patience  int     `json:"patience"`
		Factor    float64 `json:"factor"`
		Threshold float64 `json:"threshold"`
	} `json:"plateau"` // nil: constant learning rate

	BatchSize     int  `json:"batch_size"`
	MaxEpochs     int  `json:"max_epochs"`
	EarlyStopping int  `json:"early_stopping"` // epochs without a lower validation loss before stopping
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
	case c.Hidden <= 0 || c.TokenDim <= 0 || c.ChannelDim <= 0 || c.EncoderBlocks <= 0:
		return fmt.Errorf("hidden, token_dim, channel_dim and encoder_blocks must be positive")
	case c.Kind == "multimodal" && (c.FusionBlocks <= 0 || c.FusionTokenDim <= 0 || c.FusionChannelDim <= 0):
		return fmt.Errorf("fusion_blocks, fusion_token_dim and fusion_channel_dim must be positive")
	case c.Dropout < 0 || c.Dropout >= 1:
		return fmt.Errorf("dropout %v out of [0,1)", c.Dropout)
	case len(c.Heads) == 0:
		return fmt.Errorf("no heads")
	case c.LR <= 0 || c.BatchSize <= 0 || c.MaxEpochs <= 0 || c.EarlyStopping <= 0:
		return fmt.Errorf("lr, batch_size, max_epochs and early_stopping must be positive")
	case c.Loss.Scale <= 0:
		return fmt.Errorf("loss.scale must be positive")
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
	return nil
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
