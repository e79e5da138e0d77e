package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// run executes the m2mix command in-process.
func run(args ...string) error {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(&bytes.Buffer{})
	root.SetErr(&bytes.Buffer{})
	return root.Execute()
}

// TestFlagsValidatedFirst: negative counts and limits and unknown devices
// are refused before any work, naming the flag.
func TestFlagsValidatedFirst(t *testing.T) {
	data := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"train", "--config", "m2mixer_s", "--max-epochs", "-1"}, "--max-epochs: must be 0 or more, not -1"},
		{[]string{"train", "--config", "m2mixer_s", "--limit-train", "-10"}, "--limit-train: must be 0 or more"},
		{[]string{"train", "--config", "m2mixer_s", "--limit-eval", "-1"}, "--limit-eval: must be 0 or more"},
		{[]string{"train", "--config", "m2mixer_s", "--threads", "-2"}, "--threads: must be 0 or more"},
		{[]string{"train", "--config", "m2mixer_s", "--device", "tpu"}, `--device: device "tpu": want cpu, cuda or cuda:N`},
		{[]string{"train", "--config", "m2mixer_s", "--device", "cuda:-1"}, "--device"},
		{[]string{"reproduce", "--jobs", "-1"}, "--jobs: must be 0 or more"},
		{[]string{"reproduce", "--device", "gpu"}, "--device"},
		{[]string{"reproduce", "--avmnist-limit", "-3"}, "--avmnist-limit"},
		{[]string{"prep", "avmnist", "--limit", "-5"}, "--limit: must be 0 or more"},
	} {
		err := run(append(c.args, "--data", data)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error containing %q", c.args, err, c.want)
		}
	}
	if ents, _ := os.ReadDir(data); len(ents) != 0 {
		t.Errorf("refused commands wrote into the data folder: %v", ents)
	}
	// Negative seeds are seeds, not counts.
	if err := checkFlagsOf(t, "train", "--config", "m2mixer_s", "--seed", "-7"); err != nil {
		t.Errorf("a negative seed was refused: %v", err)
	}
}

func checkFlagsOf(t *testing.T, args ...string) error {
	t.Helper()
	root := newRootCmd()
	cmd, rest, err := root.Find(args)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.ParseFlags(rest); err != nil {
		t.Fatal(err)
	}
	return checkFlags(cmd)
}

// TestReproduceChecksOutputsFirst: an output folder that cannot be made is
// found before any stage runs; a report of a runs folder that does not
// exist is an error, not an empty page.
func TestReproduceChecksOutputsFirst(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "a-file")
	if err := os.WriteFile(blocker, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	for _, flag := range []string{"--results", "--runs"} {
		err := run("reproduce", "--data", data, flag, filepath.Join(blocker, "out"), "--lock", filepath.Join(dir, "m2mix.lock"))
		if err == nil || !strings.Contains(err.Error(), filepath.Join(blocker, "out")) {
			t.Errorf("%s under a file: %v", flag, err)
		}
		if _, err := os.Stat(filepath.Join(data, "raw")); err == nil {
			t.Fatalf("%s: the pipeline fetched before finding its output folder unusable", flag)
		}
	}
	err := run("report", "--runs", filepath.Join(dir, "no-such-runs"), "--out", filepath.Join(dir, "results"))
	if err == nil || !strings.Contains(err.Error(), "no-such-runs") {
		t.Errorf("report of a missing runs folder: %v", err)
	}
}
