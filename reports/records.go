package reports

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/runrecord"
)

// loadRecords reads every <runs>/<config>/<seed>/record.json, sorted by
// configuration, then seed. A missing runs folder holds no records.
func loadRecords(runsDir string) ([]runrecord.Record, error) {
	if _, err := os.Stat(runsDir); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	paths, err := filepath.Glob(filepath.Join(runsDir, "*", "*", runrecord.FileName))
	if err != nil {
		return nil, fmt.Errorf("list run records: %w", err)
	}
	recs := make([]runrecord.Record, 0, len(paths))
	for _, p := range paths {
		var r runrecord.Record
		if err := artifact.ReadJSON(p, &r); err != nil {
			return nil, fmt.Errorf("run record: %w", err)
		}
		if err := checkRecord(p, &r); err != nil {
			return nil, err
		}
		recs = append(recs, r)
	}
	sort.Slice(recs, func(i, j int) bool {
		if recs[i].Config != recs[j].Config {
			return recs[i].Config < recs[j].Config
		}
		return recs[i].Seed < recs[j].Seed
	})
	return recs, nil
}

// checkRecord rejects a record that does not belong where it lies, or whose
// metrics are not fractions: the tables multiply by 100, and a record that
// already holds percentages would otherwise show as 7000%.
func checkRecord(path string, r *runrecord.Record) error {
	seedDir := filepath.Dir(path)
	configDir := filepath.Dir(seedDir)
	if r.Config != filepath.Base(configDir) {
		return fmt.Errorf("run record %s: config %q does not match its folder", path, r.Config)
	}
	if strconv.FormatInt(r.Seed, 10) != filepath.Base(seedDir) {
		return fmt.Errorf("run record %s: seed %d does not match its folder", path, r.Seed)
	}
	if r.Final == nil {
		return nil
	}
	fracs := map[string]float64{"accuracy": r.Final.Accuracy, "macro_f1": r.Final.MacroF1, "micro_f1": r.Final.MicroF1}
	for h, a := range r.Final.HeadAccuracy {
		fracs["head_accuracy."+h] = a
	}
	for _, name := range slices.Sorted(maps.Keys(fracs)) {
		if v := fracs[name]; !(v >= 0 && v <= 1) {
			return fmt.Errorf("run record %s: %s = %v, want a fraction in [0, 1]", path, name, v)
		}
	}
	for name, v := range map[string]float64{"train_seconds": r.Final.TrainSeconds, "test_seconds": r.Final.TestSeconds} {
		if v < 0 || math.IsNaN(v) {
			return fmt.Errorf("run record %s: %s = %v", path, name, v)
		}
	}
	return nil
}

// group gathers the records of one configuration.
type group struct {
	Config     string
	Complete   []runrecord.Record // Final != nil, by seed
	Incomplete []runrecord.Record
}

// all returns complete and incomplete records, by seed.
func (g *group) all() []runrecord.Record {
	out := append(append([]runrecord.Record{}, g.Complete...), g.Incomplete...)
	sort.Slice(out, func(i, j int) bool { return out[i].Seed < out[j].Seed })
	return out
}

// groupRecords splits sorted records by configuration.
func groupRecords(recs []runrecord.Record) map[string]*group {
	gs := map[string]*group{}
	for _, r := range recs {
		g := gs[r.Config]
		if g == nil {
			g = &group{Config: r.Config}
			gs[r.Config] = g
		}
		if r.Final != nil {
			g.Complete = append(g.Complete, r)
		} else {
			g.Incomplete = append(g.Incomplete, r)
		}
	}
	return gs
}

// ConfigStats summarises the complete runs of one configuration. Accuracies
// and F1 are in percent, times in seconds, parameters in millions.
type ConfigStats struct {
	Config     string
	Model      string
	Dataset    string
	Seeds      []int64 // complete runs
	Incomplete []int64 // runs without final metrics
	Accuracy   Stat
	MacroF1    Stat
	MicroF1    Stat
	TrainSec   Stat
	TestSec    Stat
	ParamsM    Stat
	Epochs     Stat
	Stopped    int             // runs that stopped early
	Heads      map[string]Stat // final accuracy per head
}

func configStats(g *group) ConfigStats {
	cs := ConfigStats{Config: g.Config, Heads: map[string]Stat{}}
	for _, r := range g.Incomplete {
		cs.Incomplete = append(cs.Incomplete, r.Seed)
	}
	if len(g.Complete) == 0 {
		if len(g.Incomplete) > 0 {
			cs.Model, cs.Dataset = g.Incomplete[0].Model, g.Incomplete[0].Dataset
		}
		return cs
	}
	cs.Model, cs.Dataset = g.Complete[0].Model, g.Complete[0].Dataset
	var acc, macro, micro, train, test, params, epochs []float64
	heads := map[string][]float64{}
	for _, r := range g.Complete {
		f := r.Final
		cs.Seeds = append(cs.Seeds, r.Seed)
		acc = append(acc, 100*f.Accuracy)
		macro = append(macro, 100*f.MacroF1)
		micro = append(micro, 100*f.MicroF1)
		train = append(train, f.TrainSeconds)
		test = append(test, f.TestSeconds)
		params = append(params, float64(r.Params)/1e6)
		epochs = append(epochs, float64(f.Epochs))
		if f.StoppedEarly {
			cs.Stopped++
		}
		for h, a := range f.HeadAccuracy {
			heads[h] = append(heads[h], 100*a)
		}
	}
	cs.Accuracy, cs.MacroF1, cs.MicroF1 = Summarize(acc), Summarize(macro), Summarize(micro)
	cs.TrainSec, cs.TestSec = Summarize(train), Summarize(test)
	cs.ParamsM, cs.Epochs = Summarize(params), Summarize(epochs)
	for h, v := range heads {
		cs.Heads[h] = Summarize(v)
	}
	return cs
}
