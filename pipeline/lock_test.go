package pipeline

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// TestUpdateLockProcesses: four processes add 25 entries each to one lock
// file at the same time, as Slurm jobs finishing together do; every entry
// is there at the end (with WriteLock alone, the last writer's copy would
// drop the others').
func TestUpdateLockProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m2mix.lock")
	const procs, each = 4, 25
	var cmds []*exec.Cmd
	for p := range procs {
		cmd := exec.Command(os.Args[0], "-test.run=^TestUpdateLockHelper$")
		cmd.Env = append(os.Environ(), "M2MIX_LOCK_HELPER="+path, "M2MIX_LOCK_HELPER_ID="+strconv.Itoa(p), "M2MIX_LOCK_HELPER_N="+strconv.Itoa(each))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	l, err := ReadLock(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Stages) != procs*each {
		t.Fatalf("%d entries, want %d", len(l.Stages), procs*each)
	}
	for p := range procs {
		for i := range each {
			name := fmt.Sprintf("stage-%d-%d", p, i)
			if l.Stages[name].Key != name {
				t.Errorf("%s: entry %+v", name, l.Stages[name])
			}
		}
	}
}

// TestUpdateLockHelper is one writer of TestUpdateLockProcesses.
func TestUpdateLockHelper(t *testing.T) {
	path := os.Getenv("M2MIX_LOCK_HELPER")
	if path == "" {
		t.Skip("helper process of TestUpdateLockProcesses")
	}
	id, n := os.Getenv("M2MIX_LOCK_HELPER_ID"), os.Getenv("M2MIX_LOCK_HELPER_N")
	count, _ := strconv.Atoi(n)
	for i := range count {
		name := fmt.Sprintf("stage-%s-%d", id, i)
		if err := UpdateLock(path, func(l *Lock) { l.Stages[name] = LockEntry{Key: name} }); err != nil {
			t.Fatal(err)
		}
	}
}
