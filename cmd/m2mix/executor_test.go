package main

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/m2mix/m2mix/pipeline"
	"github.com/m2mix/m2mix/slurm"
)

// TestJobCommand: a Slurm job gets back every pipeline flag the user set
// (the persistent --data too, lists joined), and none of the submission's
// own (executor, resources, --force, --jobs).
func TestJobCommand(t *testing.T) {
	root := newRootCmd()
	args := []string{"reproduce", "--executor", "slurm", "--profile", "quick", "--data", "d", "--runs", "r", "--threads", "1",
		"--force", "report,fetch", "--partition", "p", "--sbatch-arg=--qos=x", "--jobs", "2", "--avmnist-seed", "7"}
	cmd, rest, err := root.Find(args)
	if err != nil {
		t.Fatal(err)
	}
	root.SetArgs(args)
	if err := cmd.ParseFlags(rest); err != nil {
		t.Fatal(err)
	}
	got, err := jobCommand(cmd, []string{"reproduce"})
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	if got[0] != exe || got[1] != "reproduce" {
		t.Fatalf("command %q", got)
	}
	for _, want := range []string{"--profile=quick", "--data=d", "--runs=r", "--threads=1", "--avmnist-seed=7"} {
		if !slices.Contains(got, want) {
			t.Errorf("no %s in %q", want, got)
		}
	}
	for _, a := range got[2:] {
		for _, no := range []string{"--executor", "--partition", "--sbatch-arg", "--force", "--jobs"} {
			if strings.HasPrefix(a, no+"=") {
				t.Errorf("%s passed to the job: %q", no, got)
			}
		}
	}
	var sf slurmFlags
	sf.executor, sf.res = "slurm", slurm.Resources{Partition: "p", Extra: []string{"--qos=x"}}
	var o pipeline.ReproduceOptions
	if err := sf.apply(cmd, &o, slurm.Resources{Partition: "default", Time: "01:00:00"}, []string{"reproduce"}); err != nil {
		t.Fatal(err)
	}
	if o.Slurm == nil || o.Slurm.Resources.Partition != "p" || o.Slurm.Resources.Time != "01:00:00" || !slices.Equal(o.Slurm.Resources.Extra, []string{"--qos=x"}) {
		t.Errorf("resources: flags over the profile's: %+v", o.Slurm)
	}
}

// TestExecutorFlags: Slurm's options without --executor slurm, an unknown
// executor and --stage with Slurm are refused before any work.
func TestExecutorFlags(t *testing.T) {
	data := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"reproduce", "--partition", "gpu"}, "--partition: needs --executor slurm"},
		{[]string{"reproduce", "--time", "1:00:00", "--mem", "4G"}, "--mem, --time: needs --executor slurm"},
		{[]string{"reproduce", "--executor", "pbs"}, `--executor "pbs": want local or slurm`},
		{[]string{"reproduce", "--executor", "slurm", "--stage", "report"}, "--stage runs one stage here"},
		{[]string{"reproduce", "--executor", "slurm", "--cpus-per-task", "-1"}, "--cpus-per-task: must be 0 or more"},
		{[]string{"reproduce", "--stage", "no-such-stage", "--lock", data + "/m2mix.lock", "--runs", data + "/runs", "--results", data + "/results"}, `--stage "no-such-stage": no such stage`},
		{[]string{"sweep", "no-such-sweep"}, "no-such-sweep"},
	} {
		err := run(append(c.args, "--data", data)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error containing %q", c.args, err, c.want)
		}
	}
}
