package artifact

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestCreateRemovesStaleTemporaries: a write removes the temporary files
// that killed writes of the same target left (a dead process of this host,
// or anything older than StaleAge), and leaves a live writer's file and
// other targets' files alone.
func TestCreateRemovesStaleTemporaries(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "train.arrow")
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	host := hostname()
	files := map[string]bool{ // name -> must survive
		fmt.Sprintf(".train.arrow.tmp-%s-%d-111", host, dead.Process.Pid):   false, // killed writer of this host
		fmt.Sprintf(".train.arrow.tmp-%s-%d-222", host, os.Getppid()):       true,  // a live writer
		fmt.Sprintf(".train.arrow.tmp-other-host-%d-333", dead.Process.Pid): true,  // another host's, recent
		".train.arrow.tmp-4455667":                                          true,  // an older naming, recent
		".train.arrow.tmp-8899":                                             false, // an older naming, old
		fmt.Sprintf(".test.arrow.tmp-%s-%d-444", host, dead.Process.Pid):    true,  // another target
	}
	for name := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * StaleAge)
	if err := os.Chtimes(filepath.Join(dir, ".train.arrow.tmp-8899"), old, old); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(target, []byte("complete")); err != nil {
		t.Fatal(err)
	}
	for name, survive := range files {
		_, err := os.Stat(filepath.Join(dir, name))
		if survive != (err == nil) {
			t.Errorf("%s: exists %v, want %v", name, err == nil, survive)
		}
	}
	if b, _ := os.ReadFile(target); string(b) != "complete" {
		t.Errorf("target holds %q", b)
	}
}

func TestTempWriter(t *testing.T) {
	for _, c := range []struct {
		in   string
		host string
		pid  int
		ok   bool
	}{
		{"node-7-1234-5678", "node-7", 1234, true},
		{"h-1-2", "h", 1, true},
		{"4455667", "", 0, false},
		{"h-x-2", "", 0, false},
	} {
		h, p, ok := tempWriter(c.in)
		if h != c.host || p != c.pid || ok != c.ok {
			t.Errorf("%q: %q %d %v", c.in, h, p, ok)
		}
	}
}
