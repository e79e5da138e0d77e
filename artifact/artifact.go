// Package artifact writes pipeline outputs safely and fingerprints them.
//
// Every file m2mix produces goes through here: it is written under a
// temporary name in its destination folder and renamed only once complete, so
// an interrupted run never leaves a file that looks finished. Checksums are
// hex sha256 strings, the currency of manifests and the lock file.
package artifact

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// File is a file being written under a temporary name beside its final path.
type File struct {
	*os.File
	final string
	done  bool
}

// Create opens a temporary file next to path (creating parent folders).
// Call Commit to move it into place, or Abort to discard it. It first
// removes what earlier, killed writes of path left (see removeStale).
func Create(path string) (*File, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, tempPrefix(path)+fmt.Sprintf("%s-%d-*", hostname(), os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("create temp for %s: %w", path, err)
	}
	return &File{File: f, final: path}, nil
}

// Temporary files are named .<name>.tmp-<host>-<pid>-<random>, so a later
// write of the same target can tell which writer left them.
func tempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp-" }

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "unknown"
	}
	return strings.ReplaceAll(h, string(filepath.Separator), "_")
}

// StaleAge is how old a temporary file of an unknown or remote writer
// must be before a later write of the same target removes it.
const StaleAge = 24 * time.Hour

// removeStale deletes the temporary files of earlier writes of path that
// can no longer finish: those of a process on this host that has exited
// (a kill -9 mid-write), and any (a writer on another host sharing the
// folder, or an older naming) last modified more than StaleAge ago. A live
// writer's file is left alone.
func removeStale(path string) error {
	dir, prefix := filepath.Dir(path), tempPrefix(path)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	host := hostname()
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || e.IsDir() {
			continue
		}
		stale := false
		if h, pid, ok := tempWriter(rest); ok && h == host && pid != os.Getpid() {
			stale = !processAlive(pid)
		}
		if !stale {
			if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > StaleAge {
				stale = true
			}
		}
		if stale {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove stale %s: %w", filepath.Join(dir, e.Name()), err)
			}
		}
	}
	return nil
}

// tempWriter parses "<host>-<pid>-<random>".
func tempWriter(rest string) (host string, pid int, ok bool) {
	i := strings.LastIndexByte(rest, '-')
	if i < 0 {
		return "", 0, false
	}
	j := strings.LastIndexByte(rest[:i], '-')
	if j < 0 {
		return "", 0, false
	}
	pid, err := strconv.Atoi(rest[j+1 : i])
	if err != nil || pid <= 0 {
		return "", 0, false
	}
	return rest[:j], pid, true
}

// processAlive reports whether a process of this host has that pid.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Commit flushes the file to disk and renames it to its final path.
func (f *File) Commit() error {
	if f.done {
		return fmt.Errorf("commit %s: already finished", f.final)
	}
	f.done = true
	tmp := f.Name()
	if err := f.Sync(); err != nil {
		f.File.Close()
		os.Remove(tmp)
		return fmt.Errorf("sync %s: %w", f.final, err)
	}
	if err := f.File.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("close %s: %w", f.final, err)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("chmod %s: %w", f.final, err)
	}
	if err := os.Rename(tmp, f.final); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rename %s: %w", f.final, err)
	}
	return nil
}

// Abort discards the temporary file. It is safe to call after Commit
// (it then does nothing), so `defer f.Abort()` is the usual pattern.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.File.Close()
	os.Remove(f.Name())
}

// CheckWritable makes dir (and its parents) and checks that a file can be
// written in it, so a long run finds an unusable output folder before its
// work, not after.
func CheckWritable(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("output folder %s: %w", dir, err)
	}
	f, err := Create(filepath.Join(dir, ".m2mix-write-check"))
	if err != nil {
		return fmt.Errorf("output folder %s is not writable: %w", dir, err)
	}
	f.Abort()
	return nil
}

// WriteFile writes data to path atomically.
func WriteFile(path string, data []byte) error {
	f, err := Create(path)
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Commit()
}

// WriteJSON writes v as indented JSON (with a final newline) atomically.
// Go's encoder sorts map keys, so equal values give identical bytes.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return WriteFile(path, append(b, '\n'))
}

// ReadJSON decodes the JSON file at path into v.
func ReadJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
}

// SHA256File returns the hex sha256 of the file at path.
func SHA256File(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// SHA256Bytes returns the hex sha256 of b.
func SHA256Bytes(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Manifest records what a stage made and what it was made from.
// It carries no timestamps, so the same inputs give the same manifest bytes.
type Manifest struct {
	Stage   string            `json:"stage"`
	Params  map[string]any    `json:"params,omitempty"`
	Inputs  map[string]string `json:"inputs"`  // name -> sha256
	Outputs map[string]string `json:"outputs"` // file name (relative to the manifest) -> sha256
	Notes   map[string]any    `json:"notes,omitempty"`
}

// HashOutputs fills m.Outputs with the sha256 of each named file in dir.
func (m *Manifest) HashOutputs(dir string, names ...string) error {
	if m.Outputs == nil {
		m.Outputs = map[string]string{}
	}
	for _, n := range names {
		s, err := SHA256File(filepath.Join(dir, n))
		if err != nil {
			return fmt.Errorf("hash output: %w", err)
		}
		m.Outputs[n] = s
	}
	return nil
}
