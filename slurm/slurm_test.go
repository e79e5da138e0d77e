package slurm

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

// TestScriptRuns runs the generated batch script with bash, as sbatch
// would: each array task runs its own command with its arguments intact
// (spaces, quotes, $ and globs included), and an index without a command
// fails.
func TestScriptRuns(t *testing.T) {
	cmds := [][]string{
		{"printf", "%s|", "plain", "two words", "it's", "$HOME", "*"},
		{"printf", "%s|", "--stage", "train/m2mixer_s+lc_eta=0.05/42"},
	}
	s, err := Script(Job{Name: "m2mix", Commands: cmds, Requeue: true}, Resources{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"plain|two words|it's|$HOME|*|", "--stage|train/m2mixer_s+lc_eta=0.05/42|"}
	for i, w := range want {
		cmd := exec.Command("bash", "-c", s)
		cmd.Env = append(os.Environ(), "SLURM_ARRAY_TASK_ID="+string(rune('0'+i)))
		out, err := cmd.CombinedOutput()
		if err != nil || string(out) != w {
			t.Errorf("task %d: %q (%v), want %q\n%s", i, out, err, w, s)
		}
	}
	cmd := exec.Command("bash", "-c", s)
	cmd.Env = append(os.Environ(), "SLURM_ARRAY_TASK_ID=2")
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("task 2 of 2 ran: %q", out)
	}
}

// TestScriptOptions: the #SBATCH lines carry the array, the dependency,
// requeue and every resource that is set, and nothing that is not.
func TestScriptOptions(t *testing.T) {
	j := Job{Name: "m2mix-train", Commands: [][]string{{"a"}, {"b"}, {"c"}}, AfterOK: []string{"12", "13_1"},
		Chdir: "/shared/work", Output: "logs/%x-%A_%a.out", Requeue: true}
	r := Resources{Partition: "gpu", GPUs: "1", Time: "02:00:00", CPUsPerTask: 4, Mem: "8G"}
	s, err := Script(j, r)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"#SBATCH --job-name=m2mix-train", "#SBATCH --array=0-2", "#SBATCH --chdir=/shared/work",
		"#SBATCH --output=logs/%x-%A_%a.out", "#SBATCH --dependency=afterok:12:13_1", "#SBATCH --kill-on-invalid-dep=yes",
		"#SBATCH --requeue", "#SBATCH --open-mode=append", "#SBATCH --partition=gpu", "#SBATCH --gpus=1",
		"#SBATCH --time=02:00:00", "#SBATCH --cpus-per-task=4", "#SBATCH --mem=8G",
	} {
		if !strings.Contains(s, line+"\n") {
			t.Errorf("no %q in\n%s", line, s)
		}
	}
	if strings.Contains(s, "--gres") {
		t.Errorf("an unset --gres is written:\n%s", s)
	}
	one, err := Script(Job{Name: "x", Commands: [][]string{{"a"}}}, Resources{})
	if err != nil || strings.Contains(one, "--array") || strings.Contains(one, "--dependency") || strings.Contains(one, "--requeue") {
		t.Errorf("a single job without dependencies: %v\n%s", err, one)
	}
	if _, err := Script(Job{Name: "x"}, Resources{}); err == nil {
		t.Error("a job without commands is accepted")
	}
}

func TestResourcesOver(t *testing.T) {
	profile := Resources{Partition: "cpu", Time: "01:00:00", CPUsPerTask: 2, Extra: []string{"--qos=low"}}
	flags := Resources{Time: "03:00:00", Mem: "4G", Extra: []string{"--account=lab"}}
	got := profile.Over(flags)
	want := Resources{Partition: "cpu", Time: "03:00:00", CPUsPerTask: 2, Mem: "4G", Extra: []string{"--qos=low", "--account=lab"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestParseSbatch(t *testing.T) {
	for _, c := range []struct {
		out, id string
		ok      bool
	}{
		{"123\n", "123", true},
		{"4567;cluster1\n", "4567", true},
		{"sbatch: warning: something\n89\n", "89", true},
		{"", "", false},
		{"Submitted batch job 12\n", "", false},
	} {
		id, err := ParseSbatch([]byte(c.out))
		if (err == nil) != c.ok || id != c.id {
			t.Errorf("%q: %q, %v; want %q (ok %v)", c.out, id, err, c.id, c.ok)
		}
	}
}

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestParseSqueue: testdata/squeue.txt is this Slurm's (22.05) output for a
// three-task array and a job waiting on it, with a pending range as squeue
// prints it before the tasks are split added by hand.
func TestParseSqueue(t *testing.T) {
	got, err := ParseSqueue(read(t, "squeue.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]State{
		"4_0": {ID: "4_0", State: "RUNNING", Reason: "None"}, "4_1": {ID: "4_1", State: "RUNNING", Reason: "None"},
		"4_2": {ID: "4_2", State: "PENDING", Reason: "Resources"}, "5": {ID: "5", State: "PENDING", Reason: "Dependency"},
		"21_0": {ID: "21_0", State: "PENDING", Reason: "Dependency"}, "21_1": {ID: "21_1", State: "PENDING", Reason: "Dependency"},
		"21_2": {ID: "21_2", State: "PENDING", Reason: "Dependency"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	if _, err := ParseSqueue([]byte("12|RUNNING\n")); err == nil {
		t.Error("a line with two fields is accepted")
	}
}

func TestParseSacct(t *testing.T) {
	got, err := ParseSacct(read(t, "sacct.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]State{
		"12": {ID: "12", State: "COMPLETED", Exit: "0:0"}, "13_0": {ID: "13_0", State: "FAILED", Exit: "1:0"},
		"13_1": {ID: "13_1", State: "CANCELLED", Exit: "0:15"}, "14_2": {ID: "14_2", State: "PENDING", Exit: "0:0"},
		"14_3": {ID: "14_3", State: "PENDING", Exit: "0:0"}, "14_6": {ID: "14_6", State: "PENDING", Exit: "0:0"},
		"15": {ID: "15", State: "TIMEOUT", Exit: "0:0"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	if _, err := ParseSacct([]byte("14_[3-1]|PENDING|0:0\n")); err == nil {
		t.Error("a backwards task range is accepted")
	}
}

// TestParseScontrol: testdata/scontrol.txt is this Slurm's output for a
// three-task array with one task cancelled.
func TestParseScontrol(t *testing.T) {
	got, err := ParseScontrol(read(t, "scontrol.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]State{
		"4_0": {ID: "4_0", State: "RUNNING", Reason: "None", Exit: "0:0"},
		"4_1": {ID: "4_1", State: "CANCELLED", Reason: "None", Exit: "0:15"},
		"4_2": {ID: "4_2", State: "RUNNING", Reason: "None", Exit: "0:0"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
}

// TestStates: squeue answers for queued jobs; without accounting the
// finished ones come from scontrol, and a job nobody knows is left out.
func TestStates(t *testing.T) {
	var calls []string
	c := Client{Run: func(_ context.Context, _ []byte, name string, args ...string) ([]byte, error) {
		calls = append(calls, name+" "+strings.Join(args, " "))
		switch name {
		case "squeue":
			return []byte("30_1|RUNNING|None\n"), nil
		case "sacct":
			return nil, errors.New("sacct: exit status 1: Slurm accounting storage is disabled")
		case "scontrol":
			if args[len(args)-1] == "30" {
				return []byte("JobId=31 ArrayJobId=30 ArrayTaskId=0 JobState=COMPLETED Reason=None ExitCode=0:0\n"), nil
			}
			return nil, errors.New("scontrol: exit status 1: slurm_load_jobs error: Invalid job id specified")
		}
		return nil, errors.New("unexpected " + name)
	}}
	got, err := c.States(context.Background(), []string{"30_0", "30_1", "29"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]State{
		"30_0": {ID: "30_0", State: "COMPLETED", Reason: "None", Exit: "0:0"},
		"30_1": {ID: "30_1", State: "RUNNING", Reason: "None"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v\nwant %v (calls %q)", got, want, calls)
	}
	if !got["30_1"].Active() || got["30_0"].Active() {
		t.Error("Active: running is active, completed is not")
	}
}
