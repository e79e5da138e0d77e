package pipeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/m2mix/m2mix/manifests"
	"github.com/m2mix/m2mix/slurm"
)

// Profile says which configurations to train, with which seeds and limits.
// Profiles are data files in manifests/profiles (quick.json, paper.json).
type Profile struct {
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Seeds       []int64  `json:"seeds"`
	Configs     []string `json:"configs"`
	// Overrides apply to every configuration.
	Overrides Overrides `json:"overrides"`
	// PerConfigOverrides apply to one configuration, over Overrides.
	PerConfigOverrides map[string]Overrides `json:"per_config_overrides,omitempty"`
	// SeedBatch trains all seeds of a configuration in lockstep as one
	// stacked model (model.Train with every seed), one stage per configuration; a
	// probe's models each start from their own seed's encoder.
	SeedBatch bool `json:"seed_batch,omitempty"`
	// GPUJobs is how many stages train at once on a GPU (0: one): small
	// models at batch 32 leave most of a large GPU idle, and stages on
	// their own threads and streams overlap. On the CPU stages run one by one.
	GPUJobs int `json:"gpu_jobs,omitempty"`
	// RobustnessRows is how many test rows (the first) the robustness
	// stages evaluate each run on (0: every row the run was tested on).
	RobustnessRows int `json:"robustness_rows,omitempty"`
	// Slurm are the default submission options of --executor slurm (the
	// flags override them).
	Slurm slurm.Resources `json:"slurm,omitempty"`
}

// Overrides are training limits that replace a configuration's own. A nil
// field leaves the configuration's value alone; for the limits, 0 means
// "no limit".
type Overrides struct {
	MaxEpochs  *int `json:"max_epochs,omitempty"`  // at most this many epochs
	LimitTrain *int `json:"limit_train,omitempty"` // train on the first N training samples
	LimitEval  *int `json:"limit_eval,omitempty"`  // validate and test on the first N samples
	// Gradient Blending's schedule, shortened: epochs per round and head
	// fine-tune epochs per round (configurations without it refuse them).
	GradBlendRound    *int `json:"gb_round_epochs,omitempty"`
	GradBlendFinetune *int `json:"gb_finetune_epochs,omitempty"`
}

// LoadProfile reads and validates a profile file. Unknown fields are an
// error, so that a misspelt limit is not silently ignored.
func LoadProfile(path string) (*Profile, error) {
	b, err := manifests.Read(path)
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var p Profile
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("profile %s: %w", path, err)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("profile %s: %w", path, err)
	}
	return &p, nil
}

// Validate checks that the profile names a run set that makes sense.
func (p *Profile) Validate() error {
	if p.Name == "" {
		return fmt.Errorf("no name")
	}
	if len(p.Seeds) == 0 {
		return fmt.Errorf("no seeds")
	}
	if i := firstDuplicate(p.Seeds); i >= 0 {
		return fmt.Errorf("seed %d listed twice", p.Seeds[i])
	}
	if len(p.Configs) == 0 {
		return fmt.Errorf("no configs")
	}
	for _, c := range p.Configs {
		if c == "" {
			return fmt.Errorf("empty config name")
		}
	}
	if i := firstDuplicate(p.Configs); i >= 0 {
		return fmt.Errorf("config %q listed twice", p.Configs[i])
	}
	if err := p.Overrides.validate(); err != nil {
		return fmt.Errorf("overrides: %w", err)
	}
	names := make([]string, 0, len(p.PerConfigOverrides))
	for c := range p.PerConfigOverrides {
		names = append(names, c)
	}
	sort.Strings(names) // report the same error every time
	for _, c := range names {
		if !slices.Contains(p.Configs, c) {
			return fmt.Errorf("per_config_overrides: %q is not in configs", c)
		}
		if err := p.PerConfigOverrides[c].validate(); err != nil {
			return fmt.Errorf("per_config_overrides %q: %w", c, err)
		}
	}
	return nil
}

// Only keeps the profile's configurations that are named, in the
// profile's order: a part of a profile, with the profile's name, settings
// and so stage keys. Every name must be one of the profile's.
func (p *Profile) Only(names []string) error {
	for _, n := range names {
		if !slices.Contains(p.Configs, n) {
			return fmt.Errorf("profile %s has no configuration %q (it has %s)", p.Name, n, strings.Join(p.Configs, ", "))
		}
	}
	p.Configs = slices.DeleteFunc(p.Configs, func(c string) bool { return !slices.Contains(names, c) })
	return nil
}

// For returns the overrides for config: the profile-wide ones with that
// configuration's own on top.
func (p *Profile) For(config string) Overrides {
	o := p.Overrides
	pc := p.PerConfigOverrides[config]
	if pc.MaxEpochs != nil {
		o.MaxEpochs = pc.MaxEpochs
	}
	if pc.LimitTrain != nil {
		o.LimitTrain = pc.LimitTrain
	}
	if pc.LimitEval != nil {
		o.LimitEval = pc.LimitEval
	}
	if pc.GradBlendRound != nil {
		o.GradBlendRound = pc.GradBlendRound
	}
	if pc.GradBlendFinetune != nil {
		o.GradBlendFinetune = pc.GradBlendFinetune
	}
	return o
}

func (o Overrides) validate() error {
	for _, f := range []struct {
		name string
		v    *int
	}{{"max_epochs", o.MaxEpochs}, {"limit_train", o.LimitTrain}, {"limit_eval", o.LimitEval},
		{"gb_round_epochs", o.GradBlendRound}, {"gb_finetune_epochs", o.GradBlendFinetune}} {
		if f.v != nil && *f.v < 0 {
			return fmt.Errorf("%s is %d; use 0 for no limit", f.name, *f.v)
		}
	}
	return nil
}

func firstDuplicate[T comparable](xs []T) int {
	seen := make(map[T]bool, len(xs))
	for i, x := range xs {
		if seen[x] {
			return i
		}
		seen[x] = true
	}
	return -1
}
