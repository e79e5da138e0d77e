package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"

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
