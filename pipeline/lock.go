package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"github.com/m2mix/m2mix/artifact"
)

// LockVersion is the lock file format this package reads and writes.
const LockVersion = 1

// Lock is the lock file: what each stage was last made from and what it made.
type Lock struct {
	Version int                  `json:"version"`
	Stages  map[string]LockEntry `json:"stages"`
}

// LockEntry records one stage's last successful run. Code, Params and
// Inputs repeat what went into Key so that the runner can say why a stage
// is stale.
type LockEntry struct {
	Key     string            `json:"key"`
	Code    string            `json:"code"`
	Params  json.RawMessage   `json:"params"`
	Inputs  map[string]string `json:"inputs"`  // path -> sha256
	Outputs map[string]string `json:"outputs"` // path -> sha256
}

// ReadLock reads the lock file at path; a missing file is an empty lock.
func ReadLock(path string) (*Lock, error) {
	l := &Lock{Version: LockVersion, Stages: map[string]LockEntry{}}
	err := artifact.ReadJSON(path, l)
	if errors.Is(err, fs.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lock file: %w", err)
	}
	if l.Version != LockVersion {
		return nil, fmt.Errorf("lock file %s: version %d, this m2mix reads version %d (delete the file to rebuild every stage)", path, l.Version, LockVersion)
	}
	if l.Stages == nil {
		l.Stages = map[string]LockEntry{}
	}
	return l, nil
}

// WriteLock writes l to path atomically, with sorted keys.
func WriteLock(path string, l *Lock) error {
	if err := artifact.WriteJSON(path, l); err != nil {
		return fmt.Errorf("write lock file: %w", err)
	}
	return nil
}

// UpdateLock changes the lock file at path with f while holding an
// exclusive file lock (flock on path+".flock"): it re-reads the file, applies f
// and writes it atomically. Stages that finish at once, in this process or in
// others (Slurm jobs on a shared filesystem), each add their entry instead of
// the last writer's lock replacing the others'.
func UpdateLock(path string, f func(*Lock)) error {
	return withFileLock(path+".flock", func() error {
		l, err := ReadLock(path)
		if err != nil {
			return err
		}
		f(l)
		return WriteLock(path, l)
	})
}

// withFileLock runs fn while holding an exclusive flock on path (created
// when missing). The lock goes with the process, so a killed holder frees it.
func withFileLock(path string, fn func() error) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("file lock: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("file lock %s: %w", path, err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return fn()
}
