package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/manifests"
	"github.com/m2mix/m2mix/model"
	"github.com/m2mix/m2mix/reports"
	"github.com/m2mix/m2mix/slurm"
)

// Sweep is a sweep file (manifests/sweeps/<name>.json): a base
// configuration expanded over a grid of parameter values, each grid point a
// derived configuration with its own name, run folders and stage keys,
// trained for every seed.
type Sweep struct {
	Name        string      `json:"name"`
	Description string      `json:"description"`
	Base        string      `json:"base"` // a configuration in manifests/configs
	Grid        []SweepAxis `json:"grid"` // the first axis is the heat map's rows, the second its columns
	Seeds       []int64     `json:"seeds"`
	Overrides   Overrides   `json:"overrides"`
	SeedBatch   bool        `json:"seed_batch,omitempty"`
	// Slurm are the sweep's default submission options (flags override them).
	Slurm slurm.Resources `json:"slurm,omitempty"`
}

// SweepAxis is one parameter of the grid: a configuration field by its JSON
// path (e.g. "loss.lc_eta", "dropout") and the values it takes.
type SweepAxis struct {
	Param  string            `json:"param"`
	Values []json.RawMessage `json:"values"`
}

// SweepDir is where sweep files live (also embedded in the binary).
const SweepDir = "manifests/sweeps"

var (
	sweepName  = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)
	paramPath  = regexp.MustCompile(`^[a-z_]+(\.[a-z_]+)*$`)
	valueToken = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
)

// LoadSweep reads and validates a sweep file: a path, or a name in SweepDir.
// Unknown fields are an error, as in profiles.
func LoadSweep(spec string) (*Sweep, error) {
	path := spec
	if !strings.ContainsAny(spec, "/.") {
		path = filepath.Join(SweepDir, spec+".json")
	}
	b, err := manifests.Read(path)
	if err != nil {
		return nil, fmt.Errorf("sweep: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var s Sweep
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("sweep %s: %w", path, err)
	}
	if err := s.validate(); err != nil {
		return nil, fmt.Errorf("sweep %s: %w", path, err)
	}
	return &s, nil
}

func (s *Sweep) validate() error {
	switch {
	case !sweepName.MatchString(s.Name):
		return fmt.Errorf("name %q: want lower-case letters, digits, '_', '-', '.'", s.Name)
	case s.Base == "":
		return fmt.Errorf("no base configuration")
	case len(s.Grid) == 0:
		return fmt.Errorf("empty grid")
	case len(s.Seeds) == 0:
		return fmt.Errorf("no seeds")
	}
	if i := firstDuplicate(s.Seeds); i >= 0 {
		return fmt.Errorf("seed %d listed twice", s.Seeds[i])
	}
	seen := map[string]bool{}
	for _, a := range s.Grid {
		if !paramPath.MatchString(a.Param) {
			return fmt.Errorf("grid param %q: want a configuration field's JSON path, e.g. loss.lc_eta", a.Param)
		}
		switch leaf := leafOf(a.Param); {
		case seen[leaf]:
			return fmt.Errorf("grid param %q: %s varies twice", a.Param, leaf)
		case leaf == "name" || leaf == "model" || leaf == "description":
			return fmt.Errorf("grid param %q: a sweep names its configurations itself", a.Param)
		}
		seen[leafOf(a.Param)] = true
		if len(a.Values) == 0 {
			return fmt.Errorf("grid param %q: no values", a.Param)
		}
		texts := map[string]bool{}
		for _, v := range a.Values {
			t, err := valueText(v)
			if err != nil {
				return fmt.Errorf("grid param %q: %w", a.Param, err)
			}
			if texts[t] {
				return fmt.Errorf("grid param %q: value %s listed twice", a.Param, t)
			}
			texts[t] = true
		}
	}
	if err := s.Overrides.validate(); err != nil {
		return fmt.Errorf("overrides: %w", err)
	}
	return nil
}

func leafOf(param string) string { return param[strings.LastIndexByte(param, '.')+1:] }

// valueText is a grid value as it appears in names and tables: a number or
// boolean as written, a string without its quotes.
func valueText(v json.RawMessage) (string, error) {
	var c bytes.Buffer
	if err := json.Compact(&c, v); err != nil {
		return "", fmt.Errorf("value %s: %w", v, err)
	}
	t := c.String()
	if strings.HasPrefix(t, `"`) {
		if err := json.Unmarshal(c.Bytes(), &t); err != nil {
			return "", err
		}
	}
	if !valueToken.MatchString(t) {
		return "", fmt.Errorf("value %s: want a number, a boolean or a plain word (it names run folders)", v)
	}
	return t, nil
}

// Points expands the grid, the last axis varying fastest, into derived
// configurations: the base with each point's values set, named
// <base>+<field>=<value>+..., and validated as any configuration file is.
func (s *Sweep) Points() ([]*model.Config, reports.SweepInfo, error) {
	info := reports.SweepInfo{Name: s.Name, Description: s.Description, Base: s.Base, Seeds: s.Seeds}
	base, err := model.LoadConfig(s.Base)
	if err != nil {
		return nil, info, fmt.Errorf("sweep %s: %w", s.Name, err)
	}
	if base.Kind == "probe" {
		return nil, info, fmt.Errorf("sweep %s: base %s is a probe; sweep the configuration it probes instead", s.Name, s.Base)
	}
	baseJSON, err := json.Marshal(base)
	if err != nil {
		return nil, info, err
	}
	for _, a := range s.Grid {
		info.Params = append(info.Params, a.Param)
	}
	var configs []*model.Config
	idx := make([]int, len(s.Grid))
	for {
		tree, err := decodeTree(baseJSON)
		if err != nil {
			return nil, info, err
		}
		name, label := s.Base, []string{}
		var values []string
		for i, a := range s.Grid {
			v := a.Values[idx[i]]
			text, _ := valueText(v) // validated
			if err := setPath(tree, a.Param, v); err != nil {
				return nil, info, fmt.Errorf("sweep %s: %w", s.Name, err)
			}
			name += "+" + leafOf(a.Param) + "=" + text
			label = append(label, leafOf(a.Param)+"="+text)
			values = append(values, text)
		}
		tree["name"] = name
		tree["model"] = base.Model + " (" + strings.Join(label, ", ") + ")"
		tree["description"] = base.Description + " Sweep " + s.Name + ": " + strings.Join(label, ", ") + "."
		b, err := json.Marshal(tree)
		if err != nil {
			return nil, info, err
		}
		cfg, err := model.ParseConfig("sweep "+s.Name+" point "+name, b)
		if err != nil {
			return nil, info, err
		}
		configs = append(configs, cfg)
		info.Points = append(info.Points, reports.SweepPoint{Values: values, Config: name})
		// Next point: the last axis fastest.
		i := len(idx) - 1
		for ; i >= 0; i-- {
			idx[i]++
			if idx[i] < len(s.Grid[i].Values) {
				break
			}
			idx[i] = 0
		}
		if i < 0 {
			return configs, info, nil
		}
	}
}

func decodeTree(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var tree map[string]any
	if err := dec.Decode(&tree); err != nil {
		return nil, err
	}
	return tree, nil
}

// setPath sets the field at a dotted JSON path; every object on the way
// must exist (the last key may be new: the configuration's decoder refuses
// a field it does not know).
func setPath(tree map[string]any, path string, v json.RawMessage) error {
	keys := strings.Split(path, ".")
	m := tree
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			return fmt.Errorf("grid param %q: %q is not an object of the configuration", path, k)
		}
		m = next
	}
	m[keys[len(keys)-1]] = v
	return nil
}

// SweepStages lists the sweep's pipeline: the data stages of reproduce that
// its training reads (the same names, so they share lock entries), one training stage per
// (grid point, seed) (or per point with seed_batch) whose runs go to
// <runs>/sweeps/<name>, and the sweep's report (<results>/sweeps/<name>).
func SweepStages(s *Sweep, o ReproduceOptions) ([]Stage, reports.SweepInfo, error) {
	configs, info, err := s.Points()
	if err != nil {
		return nil, info, err
	}
	o.Configs = map[string]*model.Config{}
	var names []string
	for _, c := range configs {
		o.Configs[c.Name] = c
		names = append(names, c.Name)
	}
	o.Profile = &Profile{Name: "sweep-" + s.Name, Seeds: s.Seeds, Configs: names, Overrides: s.Overrides, SeedBatch: s.SeedBatch}
	if err := o.Profile.Validate(); err != nil {
		return nil, info, fmt.Errorf("sweep %s: %w", s.Name, err)
	}
	runs, results := filepath.Join(o.Runs, reports.SweepsDir, s.Name), filepath.Join(o.Results, reports.SweepsDir, s.Name)
	o.Runs = runs
	stages, err := Stages(o)
	if err != nil {
		return nil, info, err
	}
	// Only the training and the data stages it needs (AV-MNIST's fetch and
	// preparation, or MIMIC-III's), found through the stages' inputs; not
	// reproduce's robustness stages.
	deps := dependencies(stages)
	keep := make([]bool, len(stages))
	for i := len(stages) - 1; i >= 0; i-- {
		if strings.HasPrefix(stages[i].Name, "train/") {
			keep[i] = true
		}
		if keep[i] {
			for _, j := range deps[i] {
				keep[j] = true
			}
		}
	}
	var needed []Stage
	for i, st := range stages {
		if keep[i] {
			needed = append(needed, st)
		}
	}
	// The whole report, replaced by the sweep's, which reads what the kept
	// stages write of the report's inputs (the run records).
	last := stages[len(stages)-1]
	written := map[string]bool{}
	for _, st := range needed {
		for _, out := range st.Outputs {
			written[out] = true
		}
	}
	var inputs []string
	for _, in := range last.Inputs {
		if written[in] {
			inputs = append(inputs, in)
		}
	}
	infoPath := filepath.Join(runs, reports.SweepFileName)
	stages = append(needed, Stage{
		Name: "report-sweep/" + s.Name, Inputs: append(inputs, infoPath), Params: map[string]any{"sweep": s.Name},
		Outputs: []string{results}, Code: codeReportSweep,
		Run: func(context.Context) error {
			sum, err := reports.GenerateSweep(runs, results)
			if err == nil {
				fmt.Fprintf(o.Log, "sweep report: %d complete runs, table in %s\n", sum.Complete, filepath.Join(results, reports.IndexFile))
			}
			return err
		},
	})
	return stages, info, nil
}

const codeReportSweep = "report-sweep/1"

// RunSweep writes the sweep's description (<runs>/sweeps/<name>/sweep.json,
// which the report reads) and runs its stages as o says: here, on Slurm, or
// one stage (a Slurm job's part).
func RunSweep(ctx context.Context, s *Sweep, o ReproduceOptions) error {
	stages, info, err := SweepStages(s, o)
	if err != nil {
		return err
	}
	if err := checkOutputs(o); err != nil {
		return err
	}
	if err := artifact.WriteJSON(filepath.Join(o.Runs, reports.SweepsDir, s.Name, reports.SweepFileName), info); err != nil {
		return fmt.Errorf("sweep %s: %w", s.Name, err)
	}
	o.Profile = &Profile{Name: "sweep-" + s.Name}
	return execute(ctx, stages, o)
}

// SweepStatus says where each stage of the sweep stands (see StatusOf).
func SweepStatus(ctx context.Context, s *Sweep, o ReproduceOptions, client slurm.Client) ([]StageState, error) {
	stages, _, err := SweepStages(s, o)
	if err != nil {
		return nil, err
	}
	return StatusOf(ctx, stages, o.LockPath, client)
}
