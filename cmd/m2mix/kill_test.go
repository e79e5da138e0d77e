package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/prep/mimic/mimictest"
	"github.com/m2mix/m2mix/runrecord"
)

// TestMain lets the test binary stand in for the m2mix command: with
// M2MIX_TEST_MAIN=1 it runs main on its arguments, so the tests can start,
// and kill -9, a real m2mix process.
func TestMain(m *testing.M) {
	if os.Getenv("M2MIX_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// m2mix is the m2mix command, run by this test binary.
func m2mix(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "M2MIX_TEST_MAIN=1")
	return cmd
}

// killAt runs the command and sends it SIGKILL once trigger says so (it
// sees each line of output as it comes); it fails the test if the command
// ended before the kill. It returns the output.
func killAt(t *testing.T, cmd *exec.Cmd, trigger func(line string) bool) string {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		if trigger(sc.Text()) {
			cmd.Process.Kill()
			break
		}
	}
	for sc.Scan() { // drain what was already written
		log.WriteString(sc.Text() + "\n")
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the run was not killed (%v):\n%s%s", err, log.String(), errBuf.String())
	}
	return log.String()
}

// TestTrainKilledResumes trains a K = 3 MIMIC-III seed batch (shuffled, as
// its configuration says) with the m2mix command uninterrupted, then again
// killed with SIGKILL at several points and rerun with the same command
// until it completes: between two seeds' checkpoint writes, in the middle
// of an epoch, after one seed's final record but before the others', and
// several times at fixed delays after the start (wherever they land,
// checkpoint writes included). Every seed must end with the uninterrupted
// run's record (wall times aside) and best and last checkpoints, byte for
// byte.
func TestTrainKilledResumes(t *testing.T) {
	if _, err := os.Stat(os.Getenv("M2MIX_SHIM")); err != nil {
		t.Skip("M2MIX_SHIM does not name the libtorch shim (make test sets it)")
	}
	dir := t.TempDir()
	pk, data := filepath.Join(dir, "im.pk"), filepath.Join(dir, "data")
	if err := mimictest.WritePickleFile(pk, mimictest.Synthetic(3000, 5)); err != nil {
		t.Fatal(err)
	}
	if out, err := m2mix("prep", "mimic", "--pk", pk, "--data", data).CombinedOutput(); err != nil {
		t.Fatalf("prep: %v\n%s", err, out)
	}
	seeds := []string{"1", "2", "3"}
	train := func(runs string) *exec.Cmd {
		return m2mix("train", "--config", "m2mixer_lc", "--seeds", strings.Join(seeds, ","), "--max-epochs", "4",
			"--threads", "1", "--data", data, "--runs", runs)
	}
	ref := filepath.Join(dir, "uninterrupted")
	if out, err := train(ref).CombinedOutput(); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, out)
	}

	scenarios := []struct {
		name    string
		trigger func(line string) bool
	}{
		{"between two seeds' writes", func(l string) bool { return strings.Contains(l, "seed 2 epoch 2/4:") }},
		{"mid-epoch", func(l string) bool {
			if strings.Contains(l, "seeds [1 2 3] epoch 2:") {
				time.Sleep(30 * time.Millisecond)
				return true
			}
			return false
		}},
		{"between two seeds' final records", func(l string) bool { return strings.Contains(l, "seed 1: test accuracy") }},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			runs := filepath.Join(t.TempDir(), "runs")
			killAt(t, train(runs), sc.trigger)
			out, err := train(runs).CombinedOutput()
			if err != nil {
				t.Fatalf("resumed run: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), "resuming at epoch") && !strings.Contains(string(out), "already complete") {
				t.Errorf("the rerun did not resume:\n%s", out)
			}
			for _, seed := range seeds {
				requireSameFolder(t, filepath.Join(ref, "m2mixer_lc", seed), filepath.Join(runs, "m2mixer_lc", seed))
			}
		})
	}
	t.Run("repeated kills at fixed delays", func(t *testing.T) {
		// Each run is killed a fixed time after its first line of output
		// (startup and data loading take longer than an epoch), about an
		// epoch (1.7 s on a 2-core machine) later and a little more each
		// time, so the kills land wherever the runs are by then: inside an
		// epoch, an evaluation or the checkpoint writes at its end.
		runs := filepath.Join(t.TempDir(), "runs")
		kills := 0
		for _, d := range []time.Duration{100, 1500, 1650, 1800, 1950} {
			started := false
			out := killAt(t, train(runs), func(string) bool {
				if !started {
					started = true
					time.Sleep(d * time.Millisecond)
				}
				return true
			})
			kills++
			lines := strings.Split(strings.TrimSpace(out), "\n")
			t.Logf("killed %v after its first line, after %q", d*time.Millisecond, lines[len(lines)-1])
		}
		if out, err := train(runs).CombinedOutput(); err != nil {
			t.Fatalf("last run: %v\n%s", err, out)
		}
		t.Logf("%d kills", kills)
		for _, seed := range seeds {
			requireSameFolder(t, filepath.Join(ref, "m2mixer_lc", seed), filepath.Join(runs, "m2mixer_lc", seed))
		}
	})
}

// requireSameFolder compares two run folders: record.json without its wall
// times, and the checkpoints by sha256.
func requireSameFolder(t *testing.T, a, b string) {
	t.Helper()
	ra, rb := recordWithoutTimes(t, a), recordWithoutTimes(t, b)
	if ra != rb {
		t.Errorf("%s: records differ (wall times aside):\n uninterrupted %s\n killed        %s", filepath.Base(b), ra, rb)
	}
	for _, f := range []string{"best.safetensors", "last.safetensors"} {
		ha, err := artifact.SHA256File(filepath.Join(a, f))
		if err != nil {
			t.Fatal(err)
		}
		hb, err := artifact.SHA256File(filepath.Join(b, f))
		if err != nil {
			t.Fatal(err)
		}
		if ha != hb {
			t.Errorf("%s/%s differs: %s uninterrupted, %s killed and resumed", filepath.Base(b), f, ha[:12], hb[:12])
		}
	}
}

// recordWithoutTimes is a folder's record.json as canonical JSON with every
// wall-clock field removed.
func recordWithoutTimes(t *testing.T, dir string) string {
	t.Helper()
	var rec runrecord.Record
	if err := artifact.ReadJSON(filepath.Join(dir, runrecord.FileName), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Final == nil {
		t.Fatalf("%s: the run is not complete", dir)
	}
	for i := range rec.History {
		rec.History[i].Seconds = 0
	}
	rec.Final.TrainSeconds, rec.Final.TestSeconds = 0, 0
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s", b)
}

// TestTrainSeedFlagsExclusive: --seed and --seeds together are refused
// before anything is read.
func TestTrainSeedFlagsExclusive(t *testing.T) {
	out, err := m2mix("train", "--config", "m2mixer_s", "--seed", "1", "--seeds", "2,3", "--data", t.TempDir()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "seed") || !strings.Contains(string(out), "none of the others can be") {
		t.Fatalf("want a refusal naming the two flags, got %v:\n%s", err, out)
	}
}

// TestPrepKilledNeverMixes kills `m2mix prep mimic` (from a second pickle,
// over a finished dataset of a first) at several points. Whatever a kill
// leaves, training either finds a set its manifest.json vouches for (all
// old or all new) or refuses the folder; it never trains on a mix. A
// finished preparation afterwards leaves no temporary file behind.
func TestPrepKilledNeverMixes(t *testing.T) {
	if _, err := os.Stat(os.Getenv("M2MIX_SHIM")); err != nil {
		t.Skip("M2MIX_SHIM does not name the libtorch shim (make test sets it)")
	}
	dir := t.TempDir()
	pkA, pkB := filepath.Join(dir, "a.pk"), filepath.Join(dir, "b.pk")
	if err := mimictest.WritePickleFile(pkA, mimictest.Synthetic(40000, 1)); err != nil {
		t.Fatal(err)
	}
	if err := mimictest.WritePickleFile(pkB, mimictest.Synthetic(40000, 2)); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	folder := filepath.Join(data, "mimic")
	prep := func(pk string) *exec.Cmd { return m2mix("prep", "mimic", "--pk", pk, "--data", data) }
	kills, mixed := 0, 0
	for d := 150 * time.Millisecond; d <= 900*time.Millisecond; d += 75 * time.Millisecond {
		if out, err := prep(pkA).CombinedOutput(); err != nil {
			t.Fatalf("prep A: %v\n%s", err, out)
		}
		cmd := prep(pkB)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-time.After(d):
			cmd.Process.Kill()
			<-done
			kills++
		case <-done:
		}
		var man artifact.Manifest
		consistent := artifact.ReadJSON(filepath.Join(folder, "manifest.json"), &man) == nil
		for _, f := range []string{"train.arrow", "validation.arrow", "test.arrow"} {
			sum, err := artifact.SHA256File(filepath.Join(folder, f))
			consistent = consistent && err == nil && sum == man.Outputs[f]
		}
		out, err := m2mix("train", "--config", "m2mixer_h", "--max-epochs", "1", "--limit-train", "256", "--limit-eval", "256",
			"--threads", "1", "--data", data, "--runs", filepath.Join(dir, "runs", d.String())).CombinedOutput()
		switch {
		case consistent && err != nil:
			t.Fatalf("kill at %v: a consistent set was refused: %v\n%s", d, err, out)
		case !consistent && err == nil:
			t.Fatalf("kill at %v: trained on a set its manifest does not vouch for:\n%s", d, out)
		case !consistent:
			mixed++
			if !strings.Contains(string(out), "prepare the dataset again") {
				t.Errorf("kill at %v: refusal does not say what to do:\n%s", d, out)
			}
		}
	}
	t.Logf("%d kills, %d left a set that training refused", kills, mixed)
	if kills == 0 {
		t.Fatal("no preparation was killed: the delays are longer than a preparation")
	}
	if out, err := prep(pkB).CombinedOutput(); err != nil {
		t.Fatalf("final prep: %v\n%s", err, out)
	}
	ents, err := os.ReadDir(folder)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("left behind after a finished preparation: %s", e.Name())
		}
	}
}
