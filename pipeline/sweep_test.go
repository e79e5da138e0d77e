package pipeline

import (
	"bytes"
	"context"
	"io"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/model"
	"github.com/m2mix/m2mix/prep/mimic/mimictest"
	"github.com/m2mix/m2mix/reports"
	"github.com/m2mix/m2mix/runrecord"
)

// TestSweepPoints expands the AV-MNIST schedule sweep: six points, the last
// axis fastest, each the base configuration with only its two loss fields,
// its name and its labels changed.
func TestSweepPoints(t *testing.T) {
	s, err := LoadSweep("../manifests/sweeps/lc-schedule-avmnist.json")
	if err != nil {
		t.Fatal(err)
	}
	configs, info, err := s.Points()
	if err != nil {
		t.Fatal(err)
	}
	base, err := model.LoadConfig("m2mixer_s")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		eta float64
		k   int
	}{{0, 0}, {0, 2}, {0.05, 0}, {0.05, 2}, {0.1, 0}, {0.1, 2}}
	wantNames := []string{"m2mixer_s+lc_eta=0+lc_k=0", "m2mixer_s+lc_eta=0+lc_k=2", "m2mixer_s+lc_eta=0.05+lc_k=0",
		"m2mixer_s+lc_eta=0.05+lc_k=2", "m2mixer_s+lc_eta=0.1+lc_k=0", "m2mixer_s+lc_eta=0.1+lc_k=2"}
	if len(configs) != len(want) {
		t.Fatalf("%d points, want %d", len(configs), len(want))
	}
	for i, c := range configs {
		if c.Name != wantNames[i] || c.Loss.LCEta != want[i].eta || c.Loss.LCK != want[i].k {
			t.Errorf("point %d: %s eta %v k %d, want %s eta %v k %d", i, c.Name, c.Loss.LCEta, c.Loss.LCK, wantNames[i], want[i].eta, want[i].k)
		}
		if info.Points[i].Config != c.Name {
			t.Errorf("point %d: info names %s", i, info.Points[i].Config)
		}
		rest := *c
		rest.Name, rest.Model, rest.Description = base.Name, base.Model, base.Description
		rest.Loss.LCEta, rest.Loss.LCK = base.Loss.LCEta, base.Loss.LCK
		if !reflect.DeepEqual(&rest, base) {
			t.Errorf("point %d changes more than its grid values:\n%+v\n%+v", i, rest, *base)
		}
	}
	if c := configs[3]; c.Model != "M2-Mixer_S (lc_eta=0.05, lc_k=2)" {
		t.Errorf("model label %q", c.Model)
	}
	if !reflect.DeepEqual(info.Params, []string{"loss.lc_eta", "loss.lc_k"}) || !slices.Equal(info.Points[3].Values, []string{"0.05", "2"}) {
		t.Errorf("info %+v", info)
	}
	// The MIMIC-III sweep file expands too (its data is not needed for that).
	m, err := LoadSweep("../manifests/sweeps/lc-schedule-mimic.json")
	if err != nil {
		t.Fatal(err)
	}
	if configs, _, err := m.Points(); err != nil || len(configs) != 12 || configs[1].Loss.LCK != 1 {
		t.Fatalf("MIMIC-III sweep: %v, %d points", err, len(configs))
	}
}

// TestSweepRefuses: sweep files that would train something other than what
// they say are refused, naming the problem.
func TestSweepRefuses(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ body, want string }{
		{`{"name":"a","base":"m2mixer_s","grid":[{"param":"loss.lc_kk","values":[1]}],"seeds":[1]}`, `unknown field "lc_kk"`},
		{`{"name":"a","base":"m2mixer_s","grid":[{"param":"hidden.x","values":[1]}],"seeds":[1]}`, `"hidden" is not an object`},
		{`{"name":"a","base":"m2mixer_s","grid":[{"param":"network.fusion.dropout","values":[0.1,0.1]}],"seeds":[1]}`, "listed twice"},
		{`{"name":"a","base":"m2mixer_s","grid":[{"param":"network.fusion.dropout","values":[1.5]}],"seeds":[1]}`, "dropout 1.5 out of [0,1)"},
		{`{"name":"a","base":"m2mixer_s","grid":[{"param":"loss.lc_k","values":[-1]}],"seeds":[1]}`, "lc_k"},
		{`{"name":"a","base":"m2mixer_s","grid":[{"param":"name","values":["x"]}],"seeds":[1]}`, "names its configurations itself"},
		{`{"name":"A b","base":"m2mixer_s","grid":[{"param":"network.fusion.dropout","values":[0.1]}],"seeds":[1]}`, "name"},
		{`{"name":"a","base":"m2mixer_s","grid":[{"param":"network.fusion.dropout","values":["a b"]}],"seeds":[1]}`, "plain word"},
		{`{"name":"a","base":"probe_image","grid":[{"param":"network.fusion.dropout","values":[0.1]}],"seeds":[1]}`, "is a probe"},
		{`{"name":"a","base":"m2mixer_s","grid":[],"seeds":[1]}`, "empty grid"},
		{`{"name":"a","base":"m2mixer_s","grid":[{"param":"network.fusion.dropout","values":[0.1]}],"seeds":[1],"limits":{}}`, `unknown field "limits"`},
	} {
		path := filepath.Join(dir, "s.json")
		if err := os.WriteFile(path, []byte(c.body), 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := LoadSweep(path)
		if err == nil {
			_, _, err = s.Points()
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.body, err, c.want)
		}
	}
}

// TestSweepStages: the sweep shares reproduce's data stages, trains each
// point and seed into <runs>/sweeps/<name>, and its report reads every
// record and the sweep's description and writes <results>/sweeps/<name>.
func TestSweepStages(t *testing.T) {
	s, err := LoadSweep("../manifests/sweeps/lc-schedule-avmnist.json")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	o := ReproduceOptions{Data: filepath.Join(dir, "data"), Runs: filepath.Join(dir, "runs"), Results: filepath.Join(dir, "results"), Log: io.Discard}
	stages, _, err := SweepStages(s, o)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, st := range stages {
		names = append(names, st.Name)
	}
	// MIMIC-III's preparation is not among them: AV-MNIST's training does not read it.
	if len(stages) != 2+12+1 || !slices.Equal(names[:2], []string{"fetch", "prep-avmnist"}) ||
		names[2] != "train/m2mixer_s+lc_eta=0+lc_k=0/42" || names[3] != "train/m2mixer_s+lc_eta=0+lc_k=0/43" || names[14] != "report-sweep/lc-schedule-avmnist" {
		t.Fatalf("stages %v", names)
	}
	sweepRuns := filepath.Join(o.Runs, reports.SweepsDir, s.Name)
	if !slices.Contains(stages[3].Outputs, filepath.Join(sweepRuns, "m2mixer_s+lc_eta=0+lc_k=0", "43", "record.json")) {
		t.Errorf("outputs %v", stages[3].Outputs)
	}
	rep := stages[14]
	if len(rep.Inputs) != 13 || rep.Inputs[12] != filepath.Join(sweepRuns, reports.SweepFileName) ||
		!slices.Equal(rep.Outputs, []string{filepath.Join(o.Results, reports.SweepsDir, s.Name)}) {
		t.Errorf("sweep report: inputs %v outputs %v", rep.Inputs, rep.Outputs)
	}
	deps := dependencies(stages)
	if !slices.Contains(deps[3], 1) || len(deps[14]) != 12 {
		t.Errorf("dependencies: training %v, report %v", deps[3], deps[14])
	}
}

// TestRunSweep runs a small sweep here end to end on a synthetic MIMIC-III:
// M2-Mixer_LC over lc_k in {0, 2} for two epochs. Each point trains with its
// own schedule (k = 2 keeps w_f = 1/3 in both epochs), leaves its record in
// runs/sweeps/<name>, the sweep's page has a row per point, and running the
// sweep again does no work.
func TestRunSweep(t *testing.T) {
	dir := t.TempDir()
	pk := filepath.Join(dir, "im.pk")
	if err := mimictest.WritePickleFile(pk, mimictest.Synthetic(400, 3)); err != nil {
		t.Fatal(err)
	}
	spec := filepath.Join(dir, "k.json")
	if err := os.WriteFile(spec, []byte(`{"name": "k", "base": "m2mixer_lc", "seeds": [3],
		"grid": [{"param": "loss.lc_k", "values": [0, 2]}], "overrides": {"max_epochs": 2}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSweep(spec)
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	o := ReproduceOptions{Data: filepath.Join(dir, "data"), Runs: filepath.Join(dir, "runs"), Results: filepath.Join(dir, "results"),
		PK: pk, Threads: 1, LockPath: filepath.Join(dir, "m2mix.lock"), Log: &log}
	if err := RunSweep(context.Background(), s, o); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	for k, want := range map[string][]float64{"0": {1.0 / 3, 1.0/3 + 0.05}, "2": {1.0 / 3, 1.0 / 3}} {
		var rec runrecord.Record
		path := filepath.Join(o.Runs, reports.SweepsDir, "k", "m2mixer_lc+lc_k="+k, "3", runrecord.FileName)
		if err := artifact.ReadJSON(path, &rec); err != nil || rec.Final == nil {
			t.Fatalf("k %s: %v", k, err)
		}
		for i, e := range rec.History {
			if math.Abs(e.WFusion-want[i]) > 1e-12 {
				t.Errorf("k %s epoch %d: w_f %v, want %v", k, i, e.WFusion, want[i])
			}
		}
	}
	page, err := os.ReadFile(filepath.Join(o.Results, reports.SweepsDir, "k", reports.IndexFile))
	if err != nil || !strings.Contains(string(page), "| 0 | 1 | ") || !strings.Contains(string(page), "| 2 | 1 | ") {
		t.Fatalf("sweep page (%v):\n%s", err, page)
	}
	log.Reset()
	if err := RunSweep(context.Background(), s, o); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(log.String(), " ran in ") {
		t.Errorf("the second run did work:\n%s", log.String())
	}
}
