// Package pipeline runs m2mix's stages in order and skips those whose
// inputs, parameters and code have not changed since their outputs were made.
//
// It works in the spirit of DVC: each Stage declares the files it reads, its
// parameters, the files or folders it writes and a code version. These give
// the stage a key; a lock file (JSON) records, per stage, the key and the
// sha256 of every output. A stage whose key matches its lock entry and whose
// outputs are all present with the recorded checksums is up to date and is
// skipped. Dependencies between stages need no graph of their own: a stage
// that reads another's output sees that output's sha256 in its key, and
// when stages run at once (Options.Jobs) it waits for the stages that write
// its inputs.
//
// Two executors run the same stages: Run, here (the local executor), and
// SubmitSlurm, which makes Slurm jobs of them (job arrays, afterok
// dependencies) whose each job runs one stage with Run; the lock file takes
// their entries under a file lock (UpdateLock).
//
// The package also loads the profiles in manifests/profiles (see Profile)
// and the sweeps in manifests/sweeps (see Sweep).
package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/m2mix/m2mix/artifact"
)

// Stage is one step of the pipeline.
type Stage struct {
	// Name identifies the stage in the lock file, in --force and in messages.
	Name string
	// Inputs are the files or folders the stage reads. Their sha256 enter
	// the key, so a change upstream reruns this stage.
	Inputs []string
	// Params are the stage's parameters; any value encoding/json accepts.
	// Their canonical JSON enters the key.
	Params any
	// Outputs are the files or folders the stage writes. It must write them
	// through package artifact, so that an interrupted run leaves nothing
	// that looks complete.
	Outputs []string
	// Code is the version of the code behind the stage; changing it reruns
	// the stage.
	Code string
	// SkipReason, when not empty, marks a stage that cannot run in this
	// setting (for example MIMIC-III without an im.pk). The runner prints it
	// and goes on; the lock entry is left as it is.
	SkipReason string
	// Run does the work.
	Run func(ctx context.Context) error
}

// Status says what the runner did with a stage.
type Status int

const (
	UpToDate Status = iota // skipped: key and outputs match the lock
	Ran                    // run and recorded in the lock
	Skipped                // not run because of its SkipReason
	Failed                 // its Run or the hashing of its outputs failed
)

func (s Status) String() string {
	switch s {
	case UpToDate:
		return "up to date"
	case Ran:
		return "ran"
	case Skipped:
		return "skipped"
	case Failed:
		return "failed"
	case Submitted:
		return "submitted"
	case Queued:
		return "queued"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// Result is what happened to one stage.
type Result struct {
	Name     string
	Status   Status
	Reason   string // why it ran, why it was skipped, or the error
	Key      string
	Duration time.Duration
}

// Options control Run.
type Options struct {
	// LockPath is the lock file; "m2mix.lock" when empty.
	LockPath string
	// Force names stages to run even when they are up to date.
	Force []string
	// Log receives one line per stage; os.Stdout when nil.
	Log io.Writer
	// Jobs is how many stages may run at once (0 or 1: one after another).
	// A stage starts only after every earlier stage that writes one of its
	// inputs has finished.
	Jobs int
}

// DefaultLockPath is the lock file used when Options.LockPath is empty.
const DefaultLockPath = "m2mix.lock"

// Run runs stages in order and prints one line per stage to opts.Log: up to
// date (skipped), skipped (its SkipReason), ran (with its duration and why),
// or failed. Up-to-date stages are skipped; a stage that ran is recorded in
// the lock file at once, so work done before a later failure or
// interruption is kept. The first failing stage stops the run (stages
// already running finish first); its error names it, and its lock entry
// stays as it was. With opts.Jobs > 1, independent stages run at once.
func Run(ctx context.Context, stages []Stage, opts Options) ([]Result, error) {
	lockPath := opts.LockPath
	if lockPath == "" {
		lockPath = DefaultLockPath
	}
	log := opts.Log
	if log == nil {
		log = os.Stdout
	}
	if err := checkStages(stages, opts.Force); err != nil {
		return nil, err
	}
	lock, err := ReadLock(lockPath)
	if err != nil {
		return nil, err
	}
	jobs := max(opts.Jobs, 1)
	deps := dependencies(stages)

	var (
		mu       sync.Mutex // guards lock, results, failures and log lines
		wg       sync.WaitGroup
		results  = make([]Result, len(stages))
		started  = make([]bool, len(stages))
		finished = make([]chan struct{}, len(stages))
		failures = map[int]error{}
		slots    = make(chan struct{}, jobs)
	)
	for i := range finished {
		finished[i] = make(chan struct{})
	}
	failed := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(failures) > 0
	}
	for i, st := range stages {
		for _, j := range deps[i] {
			<-finished[j]
		}
		if failed() {
			break
		}
		if err := ctx.Err(); err != nil {
			mu.Lock()
			failures[i] = fmt.Errorf("stage %q: not started: %w", st.Name, err)
			mu.Unlock()
			break
		}
		prefix := fmt.Sprintf("[%d/%d] %s:", i+1, len(stages), st.Name)
		if st.SkipReason != "" {
			fmt.Fprintf(log, "%s skipped: %s\n", prefix, st.SkipReason)
			results[i], started[i] = Result{Name: st.Name, Status: Skipped, Reason: st.SkipReason}, true
			close(finished[i])
			continue
		}
		slots <- struct{}{}
		if failed() {
			break
		}
		started[i] = true
		wg.Add(1)
		go func() {
			defer func() { <-slots; close(finished[i]); wg.Done() }()
			mu.Lock()
			prev := lock.Stages[st.Name]
			mu.Unlock()
			start := time.Now()
			res, entry, err := runStage(ctx, st, prev, slices.Contains(opts.Force, st.Name))
			res.Duration = time.Since(start)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				res.Status, res.Reason = Failed, err.Error()
				fmt.Fprintf(log, "%s FAILED after %s: %v\n", prefix, res.Duration.Round(time.Millisecond), err)
				failures[i] = fmt.Errorf("stage %q: %w", st.Name, err)
			case res.Status == UpToDate:
				fmt.Fprintf(log, "%s up to date, skipped (key %s)\n", prefix, short(res.Key))
			case res.Status == Ran:
				fmt.Fprintf(log, "%s ran in %s (%s)\n", prefix, res.Duration.Round(time.Millisecond), res.Reason)
				lock.Stages[st.Name] = entry
				if err := UpdateLock(lockPath, func(l *Lock) { l.Stages[st.Name] = entry }); err != nil {
					failures[i] = fmt.Errorf("stage %q: %w", st.Name, err)
				}
			}
			results[i] = res
		}()
	}
	wg.Wait()
	var out []Result
	for i, r := range results {
		if started[i] {
			out = append(out, r)
		}
	}
	if len(failures) > 0 {
		return out, failures[slices.Min(slices.Collect(maps.Keys(failures)))]
	}
	return out, nil
}

// dependencies lists, for each stage, the earlier stages that write one of
// its inputs (an output path equal to the input or a folder above it).
func dependencies(stages []Stage) [][]int {
	deps := make([][]int, len(stages))
	for i, st := range stages {
		for j := range stages[:i] {
			if writesAny(stages[j].Outputs, st.Inputs) {
				deps[i] = append(deps[i], j)
			}
		}
	}
	return deps
}

func writesAny(outputs, inputs []string) bool {
	for _, o := range outputs {
		o = filepath.Clean(o)
		for _, in := range inputs {
			in = filepath.Clean(in)
			if in == o || strings.HasPrefix(in, o+string(filepath.Separator)) || strings.HasPrefix(o, in+string(filepath.Separator)) {
				return true
			}
		}
	}
	return false
}

// checkStages rejects a stage list the runner could not handle sensibly.
func checkStages(stages []Stage, force []string) error {
	seen := map[string]bool{}
	for i, st := range stages {
		if st.Name == "" {
			return fmt.Errorf("stage %d has no name", i)
		}
		if seen[st.Name] {
			return fmt.Errorf("stage %q is listed twice", st.Name)
		}
		seen[st.Name] = true
		if st.Run == nil && st.SkipReason == "" {
			return fmt.Errorf("stage %q has no Run function", st.Name)
		}
		if len(st.Outputs) == 0 && st.SkipReason == "" {
			// Without outputs there is nothing to check, and the stage would
			// be skipped forever after its first run.
			return fmt.Errorf("stage %q declares no outputs", st.Name)
		}
	}
	for _, f := range force {
		if !seen[f] {
			return fmt.Errorf("force %q: no such stage", f)
		}
	}
	return nil
}

// runStage decides whether st is up to date, given its lock entry prev,
// and runs it if not. When it ran, it returns the stage's new lock entry;
// on error the caller marks the result Failed.
func runStage(ctx context.Context, st Stage, prev LockEntry, force bool) (Result, LockEntry, error) {
	res := Result{Name: st.Name}
	inputs, err := hashPaths(st.Inputs)
	if err != nil {
		return res, LockEntry{}, fmt.Errorf("inputs: %w", err)
	}
	params, err := CanonicalJSON(st.Params)
	if err != nil {
		return res, LockEntry{}, fmt.Errorf("params: %w", err)
	}
	res.Key = stageKey(inputs, params, st.Code)

	reason := staleReason(st, prev, res.Key, inputs, params)
	if force {
		reason = "forced"
	}
	if reason == "" {
		res.Status = UpToDate
		return res, LockEntry{}, nil
	}
	res.Reason = reason

	if err := st.Run(ctx); err != nil {
		return res, LockEntry{}, err
	}
	outputs, err := hashPaths(st.Outputs)
	if err != nil {
		return res, LockEntry{}, fmt.Errorf("outputs after running: %w", err)
	}
	res.Status = Ran
	return res, LockEntry{Key: res.Key, Code: st.Code, Params: json.RawMessage(params), Inputs: inputs, Outputs: outputs}, nil
}

// staleReason returns why st must run, or "" when it is up to date.
func staleReason(st Stage, e LockEntry, key string, inputs map[string]string, params []byte) string {
	if e.Key == "" {
		return "never ran"
	}
	if e.Key != key {
		// Say which part of the key moved; the lock keeps the parts for this.
		switch {
		case e.Code != st.Code:
			return "code version changed"
		case !sameJSON(e.Params, params):
			return "params changed"
		}
		for _, p := range slices.Sorted(maps.Keys(inputs)) {
			if e.Inputs[p] != inputs[p] {
				return "input " + p + " changed"
			}
		}
		return "key changed"
	}
	for _, p := range st.Outputs {
		want, ok := e.Outputs[p]
		if !ok {
			return "output " + p + " not in lock"
		}
		got, err := hashPath(p)
		if errors.Is(err, fs.ErrNotExist) {
			return "output " + p + " missing"
		}
		if err != nil {
			return "output " + p + " unreadable: " + err.Error()
		}
		if got != want {
			return "output " + p + " changed"
		}
	}
	return ""
}

// sameJSON compares two JSON texts ignoring space: the lock file stores
// params indented.
func sameJSON(a, b []byte) bool {
	var ca, cb bytes.Buffer
	if json.Compact(&ca, a) != nil || json.Compact(&cb, b) != nil {
		return false
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}

// stageKey hashes everything that decides a stage's outputs. Input paths
// are part of it, so pointing a stage at another file reruns it even when
// the two files are equal.
func stageKey(inputs map[string]string, params []byte, code string) string {
	h := sha256.New()
	fmt.Fprintf(h, "m2mix stage key v1\ncode %q\nparams %s\n", code, params)
	for _, p := range slices.Sorted(maps.Keys(inputs)) {
		fmt.Fprintf(h, "input %q %s\n", p, inputs[p])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// CanonicalJSON encodes v so that equal values give equal bytes: object
// keys sorted (structs and maps alike), no insignificant space, numbers kept
// as written by encoding/json. A nil v encodes as null.
func CanonicalJSON(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	// A round trip through any sorts struct fields as map keys; UseNumber
	// keeps numbers' text, so large integers do not pass through float64.
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return nil, fmt.Errorf("re-decode: %w", err)
	}
	out, err := json.Marshal(tree)
	if err != nil {
		return nil, fmt.Errorf("re-encode: %w", err)
	}
	return out, nil
}

// hashPaths returns path -> sha256 for each path (see hashPath).
func hashPaths(paths []string) (map[string]string, error) {
	m := make(map[string]string, len(paths))
	for _, p := range paths {
		s, err := hashPath(p)
		if err != nil {
			return nil, err
		}
		m[p] = s
	}
	return m, nil
}

// hashPath returns the sha256 of a file, or for a folder the sha256 of the
// sorted list of its files' relative paths and checksums. Temporary files
// left by an interrupted artifact write are not part of a folder.
func hashPath(path string) (string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	if !info.IsDir() {
		s, err := artifact.SHA256File(path)
		if err != nil {
			return "", fmt.Errorf("hash %s: %w", path, err)
		}
		return s, nil
	}
	var lines []string
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || isTemp(d.Name()) {
			return nil
		}
		s, err := artifact.SHA256File(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(path, p)
		if err != nil {
			return err
		}
		lines = append(lines, fmt.Sprintf("%q %s\n", filepath.ToSlash(rel), s))
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash folder %s: %w", path, err)
	}
	sort.Strings(lines)
	return artifact.SHA256Bytes([]byte("folder\n" + strings.Join(lines, ""))), nil
}

// isTemp matches the temporary names artifact.Create uses (".name.tmp-123").
func isTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-")
}

func short(key string) string {
	if len(key) > 12 {
		return key[:12]
	}
	return key
}
