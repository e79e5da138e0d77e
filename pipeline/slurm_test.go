package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/slurm"
)

// fakeSlurm stands for sbatch, squeue and scancel: it numbers submissions
// from 100, keeps their scripts, and answers squeue with queue.
type fakeSlurm struct {
	next      int
	scripts   map[string]string
	queue     map[string]string // job id -> state
	cancelled []string
}

func (f *fakeSlurm) client() slurm.Client {
	return slurm.Client{Run: func(_ context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
		switch name {
		case "sbatch":
			f.next++
			id := fmt.Sprint(99 + f.next)
			f.scripts[id] = string(stdin)
			return []byte(id + "\n"), nil
		case "squeue":
			var b strings.Builder
			for id, st := range f.queue {
				fmt.Fprintf(&b, "%s|%s|None\n", id, st)
			}
			return []byte(b.String()), nil
		case "scancel":
			f.cancelled = append(f.cancelled, args...)
			return nil, nil
		}
		return nil, errors.New("unexpected " + name)
	}}
}

// TestSubmitSlurmPlan: a data stage, two seeds of one configuration (one
// array), a probe of the first seed and a report are submitted level by
// level with afterok dependencies on the jobs that write their inputs; a
// second submission while they are queued submits nothing; after one array
// task is cancelled, only that stage and the report that reads it are
// submitted again, and the report's old job is cancelled.
func TestSubmitSlurmPlan(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "raw")
	if err := os.WriteFile(in, []byte("raw"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	never := func(context.Context) error { return errors.New("a submission runs nothing") }
	stages := []Stage{
		{Name: "prep", Inputs: []string{in}, Outputs: []string{p("data")}, Code: "1", Run: never},
		{Name: "skipme", Outputs: []string{p("none")}, SkipReason: "not here"},
		{Name: "train/a/1", Inputs: []string{p("data")}, Outputs: []string{p("a1")}, Code: "1", Run: never},
		{Name: "train/a/2", Inputs: []string{p("data")}, Outputs: []string{p("a2")}, Code: "1", Run: never},
		{Name: "train/probe/1", Inputs: []string{p("data"), p("a1")}, Outputs: []string{p("pr1")}, Code: "1", Run: never},
		{Name: "report", Inputs: []string{p("a1"), p("a2"), p("pr1")}, Outputs: []string{p("results")}, Code: "1", Run: never},
	}
	fake := &fakeSlurm{scripts: map[string]string{}, queue: map[string]string{}}
	lock := filepath.Join(dir, "m2mix.lock")
	so := SlurmOptions{Command: []string{"/bin/m2mix", "reproduce", "--profile=tiny"}, Chdir: dir, Logs: p("logs"), Client: fake.client()}
	var log bytes.Buffer
	res, err := SubmitSlurm(context.Background(), stages, Options{LockPath: lock, Log: &log}, so)
	if err != nil {
		t.Fatal(err)
	}
	want := []Status{Submitted, Skipped, Submitted, Submitted, Submitted, Submitted}
	for i, r := range res {
		if r.Status != want[i] {
			t.Errorf("%s: %v, want %v", r.Name, r.Status, want[i])
		}
	}
	// 100 prep, 101 the train/a array, 102 the probe, 103 the report.
	checks := map[string][]string{
		"100": {"#SBATCH --job-name=m2mix-prep\n", "exec /bin/m2mix reproduce --profile=tiny --stage prep\n"},
		"101": {"#SBATCH --array=0-1\n", "#SBATCH --dependency=afterok:100\n", "0) exec /bin/m2mix reproduce --profile=tiny --stage train/a/1 ;;", "1) exec /bin/m2mix reproduce --profile=tiny --stage train/a/2 ;;"},
		"102": {"#SBATCH --dependency=afterok:100:101\n", "--stage train/probe/1\n"},
		"103": {"#SBATCH --dependency=afterok:101:102\n", "--stage report\n", "#SBATCH --requeue\n"},
	}
	if len(fake.scripts) != len(checks) {
		t.Fatalf("%d jobs submitted, want %d:\n%s", len(fake.scripts), len(checks), log.String())
	}
	for id, subs := range checks {
		for _, s := range subs {
			if !strings.Contains(fake.scripts[id], s) {
				t.Errorf("job %s: no %q in\n%s", id, s, fake.scripts[id])
			}
		}
	}
	jobs, err := ReadJobs(lock)
	if err != nil {
		t.Fatal(err)
	}
	wantJobs := map[string]string{"prep": "100", "train/a/1": "101_0", "train/a/2": "101_1", "train/probe/1": "102", "report": "103"}
	for st, id := range wantJobs {
		if jobs.Stages[st] != id {
			t.Errorf("jobs file: %s -> %q, want %q", st, jobs.Stages[st], id)
		}
	}

	// All queued: nothing new.
	for _, id := range wantJobs {
		fake.queue[id] = "PENDING"
	}
	res, err = SubmitSlurm(context.Background(), stages, Options{LockPath: lock, Log: &log}, so)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Status != Queued && r.Status != Skipped {
			t.Errorf("second submission: %s %v, want queued", r.Name, r.Status)
		}
	}
	if len(fake.scripts) != 4 {
		t.Fatalf("the second submission submitted %d jobs", len(fake.scripts)-4)
	}

	// prep done (its output exists and is in the lock), train/a/2 cancelled.
	if err := os.WriteFile(p("data"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := runOne(stages[0], lock); err != nil {
		t.Fatal(err)
	}
	delete(fake.queue, "100")
	delete(fake.queue, "101_1")
	res, err = SubmitSlurm(context.Background(), stages, Options{LockPath: lock, Log: &log}, so)
	if err != nil {
		t.Fatal(err)
	}
	want = []Status{UpToDate, Skipped, Queued, Submitted, Queued, Submitted}
	for i, r := range res {
		if r.Status != want[i] {
			t.Errorf("after the cancel: %s %v, want %v", r.Name, r.Status, want[i])
		}
	}
	if !slices.Equal(fake.cancelled, []string{"103"}) {
		t.Errorf("cancelled %v, want the report's old job 103", fake.cancelled)
	}
	if s := fake.scripts["104"]; !strings.Contains(s, "--stage train/a/2\n") || strings.Contains(s, "--dependency") {
		t.Errorf("train/a/2 again: want a job without dependencies (prep is done):\n%s", s)
	}
	if s := fake.scripts["105"]; !strings.Contains(s, "#SBATCH --dependency=afterok:101_0:102:104\n") {
		t.Errorf("the report again: want afterok on the queued task, the probe and the new job:\n%s", s)
	}
}

// runOne records st as run in the lock file without running it (its
// outputs already exist).
func runOne(st Stage, lock string) error {
	st.Run = func(context.Context) error { return nil }
	_, err := Run(context.Background(), []Stage{st}, Options{LockPath: lock, Log: &bytes.Buffer{}})
	return err
}

// TestStatusOf: done from the lock file, queued and running from squeue,
// failed from scontrol (no accounting here), waiting without inputs.
func TestStatusOf(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	for _, f := range []string{"in", "done"} {
		if err := os.WriteFile(p(f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ok := func(context.Context) error { return nil }
	stages := []Stage{
		{Name: "done", Inputs: []string{p("in")}, Outputs: []string{p("done")}, Code: "1", Run: ok},
		{Name: "q", Inputs: []string{p("done")}, Outputs: []string{p("q")}, Code: "1", Run: ok},
		{Name: "r", Inputs: []string{p("done")}, Outputs: []string{p("r")}, Code: "1", Run: ok},
		{Name: "f", Inputs: []string{p("done")}, Outputs: []string{p("f")}, Code: "1", Run: ok},
		{Name: "w", Inputs: []string{p("q")}, Outputs: []string{p("w")}, Code: "1", Run: ok},
		{Name: "t", Inputs: []string{p("done")}, Outputs: []string{p("t")}, Code: "1", Run: ok},
		{Name: "c", Inputs: []string{p("f")}, Outputs: []string{p("c")}, Code: "1", Run: ok},
	}
	lock := p("m2mix.lock")
	if err := runOne(stages[0], lock); err != nil {
		t.Fatal(err)
	}
	if err := artifact.WriteJSON(JobsPath(lock), Jobs{Version: JobsVersion, Stages: map[string]string{
		"done": "7", "q": "8_0", "r": "8_1", "f": "8_2", "w": "9", "c": "10"}}); err != nil {
		t.Fatal(err)
	}
	client := slurm.Client{Run: func(_ context.Context, _ []byte, name string, args ...string) ([]byte, error) {
		switch name {
		case "squeue":
			return []byte("8_0|PENDING|Priority\n8_1|RUNNING|None\n"), nil
		case "sacct":
			return nil, errors.New("Slurm accounting storage is disabled")
		case "scontrol":
			switch args[len(args)-1] {
			case "8":
				return []byte("JobId=12 ArrayJobId=8 ArrayTaskId=2 JobState=FAILED Reason=NonZeroExitCode ExitCode=1:0\n"), nil
			case "7":
				return []byte("JobId=7 JobState=COMPLETED Reason=None ExitCode=0:0\n"), nil
			case "10":
				return []byte("JobId=10 JobState=CANCELLED Reason=DependencyNeverSatisfied ExitCode=0:0\n"), nil
			}
			return nil, errors.New("slurm_load_jobs error: Invalid job id specified")
		}
		return nil, errors.New("unexpected " + name)
	}}
	got, err := StatusOf(context.Background(), stages, lock, client)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"done": "done", "q": "queued", "r": "running", "f": "failed", "w": "waiting", "t": "to do", "c": "failed"}
	for _, s := range got {
		if s.State != want[s.Name] {
			t.Errorf("%s: %s (%s), want %s", s.Name, s.State, s.Note, want[s.Name])
		}
	}
	var b bytes.Buffer
	PrintStatus(&b, got)
	if !strings.Contains(b.String(), "failed   f  job 8_2  (job 8_2 FAILED, exit 1:0;") || !strings.Contains(b.String(), "7 stages: 1 done, 1 running, 1 queued, 1 waiting, 1 to do, 2 failed") {
		t.Errorf("status:\n%s", b.String())
	}
}
