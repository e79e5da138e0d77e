package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/pipeline"
	"github.com/m2mix/m2mix/reports"
	"github.com/m2mix/m2mix/runrecord"
	"github.com/m2mix/m2mix/slurm"
)

// requireSlurm skips the test unless a Slurm answers here (sbatch on the
// PATH, the controller up): scripts/slurm-local.sh starts one.
func requireSlurm(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("sbatch"); err != nil {
		t.Skip("no sbatch on the PATH: start a one-node Slurm with scripts/slurm-local.sh (as root) to run this test")
	}
	out, err := exec.Command("scontrol", "ping").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "is UP") {
		t.Skipf("Slurm's controller does not answer (%v: %s): start it with scripts/slurm-local.sh", err, bytes.TrimSpace(out))
	}
}

// rawMirror is the raw-source mirror beside the repository, or the test is
// skipped.
func rawMirror(t *testing.T) string {
	t.Helper()
	mirror, err := filepath.Abs("../../../shared/data")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(mirror); err != nil {
		t.Skipf("no raw-source mirror at %s", mirror)
	}
	return mirror
}

// inDir runs the m2mix command (this test binary) in folder dir.
func inDir(dir string, args ...string) *exec.Cmd {
	cmd := m2mix(args...)
	cmd.Dir = dir
	return cmd
}

// waitJobs waits until no job of the lock file's jobs file is pending or
// running.
func waitJobs(t *testing.T, lock string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		jobs, err := pipeline.ReadJobs(lock)
		if err != nil {
			t.Fatal(err)
		}
		q, err := slurm.Client{}.Queue(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		active := 0
		for _, id := range jobs.Stages {
			if q[id].Active() {
				active++
			}
		}
		if active == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d jobs still queued or running after %v", active, limit)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// tablesWithoutTimes regenerates the report of a runs folder from copies of
// its records with every wall-clock field set to 0, and returns the page.
func tablesWithoutTimes(t *testing.T, runs string) []byte {
	t.Helper()
	copyRuns := filepath.Join(t.TempDir(), "runs")
	paths, err := filepath.Glob(filepath.Join(runs, "*", "*", runrecord.FileName))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no records in %s (%v)", runs, err)
	}
	for _, p := range paths {
		var rec runrecord.Record
		if err := artifact.ReadJSON(p, &rec); err != nil {
			t.Fatal(err)
		}
		for i := range rec.History {
			rec.History[i].Seconds = 0
		}
		if rec.Final != nil {
			rec.Final.TrainSeconds, rec.Final.TestSeconds = 0, 0
		}
		rel, _ := filepath.Rel(runs, p)
		if err := artifact.WriteJSON(filepath.Join(copyRuns, rel), rec); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "results")
	if _, err := reports.Generate(copyRuns, out, reports.Options{PaperResults: "../../manifests/paper-results.json", NoPlots: true}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, reports.IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSlurmExecutor runs a tiny profile (two configurations, one a probe of
// the other, two seeds, small limits) through a real Slurm and the same
// profile here, each in its own folder with the same relative paths: the
// datasets, records (wall times aside), checkpoints and tables (from the
// records, wall times aside) are byte-identical, and m2mix status says every
// stage is done. Then a longer training is cancelled with scancel after its
// first epochs, shows as failed, and a resubmission resumes it from its last
// epoch and ends as the uninterrupted local run does; and another is
// requeued by Slurm (scontrol requeue: SIGTERM, then queued again, as a
// preemption does) and the same job resumes and ends the same way.
func TestSlurmExecutor(t *testing.T) {
	requireSlurm(t)
	if _, err := os.Stat(os.Getenv("M2MIX_SHIM")); err != nil {
		t.Skip("M2MIX_SHIM does not name the libtorch shim (make test sets it)")
	}
	mirror := rawMirror(t)
	dir := t.TempDir()
	tiny := filepath.Join(dir, "tiny.json")
	if err := os.WriteFile(tiny, []byte(`{"name": "tiny-slurm", "seeds": [7, 8], "configs": ["mmixer", "probe_audio"],
		"overrides": {"max_epochs": 2, "limit_train": 200, "limit_eval": 100}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	local, onSlurm := filepath.Join(dir, "local"), filepath.Join(dir, "slurm")
	for _, d := range []string{local, onSlurm} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Both runs use one thread, as a one-CPU Slurm job does.
	args := func(profile string, extra ...string) []string {
		return append([]string{"reproduce", "--profile", profile, "--data", "data", "--mirror", mirror,
			"--avmnist-limit", "1500", "--threads", "1"}, extra...)
	}
	if out, err := inDir(local, args(tiny)...).CombinedOutput(); err != nil {
		t.Fatalf("local run: %v\n%s", err, out)
	}
	start := time.Now()
	out, err := inDir(onSlurm, args(tiny, "--executor", "slurm", "--time", "00:20:00")...).CombinedOutput()
	if err != nil {
		t.Fatalf("submission: %v\n%s", err, out)
	}
	for _, want := range []string{"train/mmixer/7: submitted as job ", "train/probe_audio/8: submitted as job ", "report: submitted as job "} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("no %q in the submission's output:\n%s", want, out)
		}
	}
	lock := filepath.Join(onSlurm, pipeline.DefaultLockPath)
	waitJobs(t, lock, 10*time.Minute)
	t.Logf("the tiny profile on Slurm: %v from submission to the last job's end", time.Since(start).Round(time.Second))

	status, err := inDir(onSlurm, append([]string{"status"}, args(tiny)[1:]...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("status: %v\n%s", err, status)
	}
	if !strings.Contains(string(status), "11 stages: 10 done, 1 skipped") || !strings.Contains(string(status), "done     train/probe_audio/7  job ") {
		logs, _ := filepath.Glob(filepath.Join(onSlurm, "slurm-logs", "*"))
		var all []byte
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			all = append(all, b...)
		}
		t.Fatalf("status after the jobs:\n%s\njob logs:\n%s", status, all)
	}
	for _, f := range []string{"train.arrow", "validation.arrow", "test.arrow"} {
		a, _ := artifact.SHA256File(filepath.Join(local, "data", "avmnist", f))
		b, err := artifact.SHA256File(filepath.Join(onSlurm, "data", "avmnist", f))
		if err != nil || a != b {
			t.Errorf("%s: %s here, %s on Slurm (%v)", f, a, b, err)
		}
	}
	for _, run := range []string{"mmixer/7", "mmixer/8", "probe_audio/7", "probe_audio/8"} {
		requireSameFolder(t, filepath.Join(local, "runs", run), filepath.Join(onSlurm, "runs", run))
	}
	if a, b := tablesWithoutTimes(t, filepath.Join(local, "runs")), tablesWithoutTimes(t, filepath.Join(onSlurm, "runs")); !bytes.Equal(a, b) {
		t.Errorf("the tables differ (wall times aside):\n%s\n----\n%s", a, b)
	}
	if _, err := os.Stat(filepath.Join(onSlurm, "results", reports.IndexFile)); err != nil {
		t.Errorf("the report job wrote no page: %v", err)
	}
	// A second submission finds everything up to date and submits nothing.
	out, err = inDir(onSlurm, args(tiny, "--executor", "slurm")...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "0 stage(s) submitted in 0 job(s)") {
		t.Fatalf("second submission: %v\n%s", err, out)
	}

	t.Run("scancel and resubmit", func(t *testing.T) {
		long := filepath.Join(dir, "long.json")
		if err := os.WriteFile(long, []byte(`{"name": "long-slurm", "seeds": [9], "configs": ["m2mixer_s"],
			"overrides": {"max_epochs": 8, "limit_train": 1000, "limit_eval": 100}}`), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := inDir(local, args(long)...).CombinedOutput(); err != nil {
			t.Fatalf("local run: %v\n%s", err, out)
		}
		if out, err := inDir(onSlurm, args(long, "--executor", "slurm")...).CombinedOutput(); err != nil {
			t.Fatalf("submission: %v\n%s", err, out)
		}
		jobs, err := pipeline.ReadJobs(lock)
		if err != nil {
			t.Fatal(err)
		}
		job := jobs.Stages["train/m2mixer_s/9"]
		// Cancel once two epochs are on disk and training goes on.
		waitEpochs(t, filepath.Join(onSlurm, "runs", "m2mixer_s", "9"), job, 2)
		if out, err := exec.Command("scancel", job).CombinedOutput(); err != nil {
			t.Fatalf("scancel %s: %v %s", job, err, out)
		}
		waitJobs(t, lock, 2*time.Minute)
		status, err := inDir(onSlurm, append([]string{"status"}, args(long)[1:]...)...).CombinedOutput()
		if err != nil || !strings.Contains(string(status), "failed   train/m2mixer_s/9  job "+job+"  (job "+job+" CANCELLED") {
			t.Fatalf("status after scancel (%v):\n%s", err, status)
		}
		out, err := inDir(onSlurm, args(long, "--executor", "slurm")...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "train/m2mixer_s/9: submitted as job ") {
			t.Fatalf("resubmission: %v\n%s", err, out)
		}
		waitJobs(t, lock, 5*time.Minute)
		jobs, err = pipeline.ReadJobs(lock)
		if err != nil {
			t.Fatal(err)
		}
		again := jobs.Stages["train/m2mixer_s/9"]
		logText, err := os.ReadFile(filepath.Join(onSlurm, "slurm-logs", "m2mix-train-"+again+".out"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(logText), "m2mixer_s seed 9: resuming at epoch ") || strings.Contains(string(logText), "resuming at epoch 0") {
			t.Fatalf("job %s did not resume from the cancelled job's epochs:\n%s", again, logText)
		}
		requireSameFolder(t, filepath.Join(local, "runs", "m2mixer_s", "9"), filepath.Join(onSlurm, "runs", "m2mixer_s", "9"))
	})
	t.Run("requeue", func(t *testing.T) {
		// What a preemption does: Slurm stops the job (SIGTERM, then
		// SIGKILL) and queues it again; the same job resumes.
		long := filepath.Join(dir, "requeue.json")
		if err := os.WriteFile(long, []byte(`{"name": "requeue-slurm", "seeds": [10], "configs": ["m2mixer_s"],
			"overrides": {"max_epochs": 8, "limit_train": 1000, "limit_eval": 100}}`), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := inDir(local, args(long)...).CombinedOutput(); err != nil {
			t.Fatalf("local run: %v\n%s", err, out)
		}
		if out, err := inDir(onSlurm, args(long, "--executor", "slurm")...).CombinedOutput(); err != nil {
			t.Fatalf("submission: %v\n%s", err, out)
		}
		jobs, err := pipeline.ReadJobs(lock)
		if err != nil {
			t.Fatal(err)
		}
		job := jobs.Stages["train/m2mixer_s/10"]
		waitEpochs(t, filepath.Join(onSlurm, "runs", "m2mixer_s", "10"), job, 2)
		if out, err := exec.Command("scontrol", "requeue", job).CombinedOutput(); err != nil {
			t.Fatalf("scontrol requeue %s: %v %s", job, err, out)
		}
		waitJobs(t, lock, 6*time.Minute)
		show, err := exec.Command("scontrol", "--oneliner", "show", "job", job).CombinedOutput()
		if err != nil || !strings.Contains(string(show), "JobState=COMPLETED") || !strings.Contains(string(show), "Restarts=1") {
			t.Fatalf("job %s after the requeue (%v): %s", job, err, show)
		}
		logText, err := os.ReadFile(filepath.Join(onSlurm, "slurm-logs", "m2mix-train-"+job+".out"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(logText), "m2mixer_s seed 10: resuming at epoch ") || strings.Contains(string(logText), "resuming at epoch 0") {
			t.Fatalf("the requeued job %s did not resume:\n%s", job, logText)
		}
		requireSameFolder(t, filepath.Join(local, "runs", "m2mixer_s", "10"), filepath.Join(onSlurm, "runs", "m2mixer_s", "10"))
	})
}

// waitEpochs waits until the run folder's record holds n epochs of an
// unfinished run (job is writing it).
func waitEpochs(t *testing.T, runDir, job string, n int) {
	t.Helper()
	rec := filepath.Join(runDir, runrecord.FileName)
	deadline := time.Now().Add(5 * time.Minute)
	for epochs := 0; epochs < n; {
		if time.Now().After(deadline) {
			t.Fatalf("job %s wrote %d epochs in 5 minutes", job, epochs)
		}
		time.Sleep(50 * time.Millisecond)
		var r runrecord.Record
		if b, err := os.ReadFile(rec); err == nil && json.Unmarshal(b, &r) == nil {
			if r.Final != nil {
				t.Fatalf("job %s finished before it could be stopped", job)
			}
			epochs = len(r.History)
		}
	}
}
