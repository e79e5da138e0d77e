package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/m2mix/m2mix/artifact"
)

// chain is a two-stage pipeline in a temporary folder: "make" turns in.txt
// and its parameter into a.txt; "use" turns a.txt into the folder out/.
type chain struct {
	dir   string
	param string
	fail  bool           // make "make" fail
	runs  map[string]int // how often each stage's Run was called
	log   bytes.Buffer
}

func newChain(t *testing.T) *chain {
	t.Helper()
	c := &chain{dir: t.TempDir(), param: "p1", runs: map[string]int{}}
	c.write(t, "in.txt", "input one")
	return c
}

func (c *chain) path(name string) string { return filepath.Join(c.dir, name) }

func (c *chain) write(t *testing.T, name, text string) {
	t.Helper()
	if err := os.WriteFile(c.path(name), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (c *chain) stages() []Stage {
	return []Stage{
		{
			Name:    "make",
			Inputs:  []string{c.path("in.txt")},
			Params:  map[string]any{"suffix": c.param},
			Outputs: []string{c.path("a.txt")},
			Code:    "v1",
			Run: func(context.Context) error {
				c.runs["make"]++
				if c.fail {
					return errors.New("boom")
				}
				in, err := os.ReadFile(c.path("in.txt"))
				if err != nil {
					return err
				}
				return artifact.WriteFile(c.path("a.txt"), append(in, c.param...))
			},
		},
		{
			Name:    "use",
			Inputs:  []string{c.path("a.txt")},
			Outputs: []string{c.path("out")},
			Code:    "v1",
			Run: func(context.Context) error {
				c.runs["use"]++
				a, err := os.ReadFile(c.path("a.txt"))
				if err != nil {
					return err
				}
				if err := artifact.WriteFile(c.path("out/x.txt"), bytes.ToUpper(a)); err != nil {
					return err
				}
				return artifact.WriteFile(c.path("out/sub/y.txt"), []byte("y"))
			},
		},
	}
}

// run runs the chain and returns which stages' Run functions were called.
func (c *chain) run(t *testing.T, force ...string) ([]string, error) {
	t.Helper()
	before := map[string]int{}
	for k, v := range c.runs {
		before[k] = v
	}
	c.log.Reset()
	_, err := Run(context.Background(), c.stages(), Options{LockPath: c.path("m2mix.lock"), Force: force, Log: &c.log})
	var ran []string
	for _, s := range []string{"make", "use"} {
		if c.runs[s] > before[s] {
			ran = append(ran, s)
		}
	}
	return ran, err
}

func TestRerunRules(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, c *chain)
		force  []string
		want   []string
	}{
		{"nothing changed", func(*testing.T, *chain) {}, nil, nil},
		{"param changed", func(_ *testing.T, c *chain) { c.param = "p2" }, nil, []string{"make", "use"}},
		{"input changed", func(t *testing.T, c *chain) { c.write(t, "in.txt", "input two") }, nil, []string{"make", "use"}},
		{"input touched, same bytes", func(t *testing.T, c *chain) { c.write(t, "in.txt", "input one") }, nil, nil},
		{"last output deleted", func(t *testing.T, c *chain) { os.RemoveAll(c.path("out")) }, nil, []string{"use"}},
		{"file in output folder deleted", func(t *testing.T, c *chain) { os.Remove(c.path("out/sub/y.txt")) }, nil, []string{"use"}},
		{"output edited", func(t *testing.T, c *chain) { c.write(t, "out/x.txt", "edited") }, nil, []string{"use"}},
		{"first output deleted", func(t *testing.T, c *chain) { os.Remove(c.path("a.txt")) }, nil, []string{"make"}},
		// make's output comes out the same, so use stays up to date.
		{"force first", func(*testing.T, *chain) {}, []string{"make"}, []string{"make"}},
		{"force second", func(*testing.T, *chain) {}, []string{"use"}, []string{"use"}},
		// A leftover temporary file from an interrupted write is not an output.
		{"temp file in output folder", func(t *testing.T, c *chain) { c.write(t, "out/.x.txt.tmp-123", "half") }, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newChain(t)
			ran, err := c.run(t)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ran, []string{"make", "use"}) {
				t.Fatalf("first run ran %v, want both stages", ran)
			}
			tt.change(t, c)
			ran, err = c.run(t, tt.force...)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ran, tt.want) {
				t.Errorf("second run ran %v, want %v\nlog:\n%s", ran, tt.want, c.log.String())
			}
		})
	}
}

func TestLogLines(t *testing.T) {
	c := newChain(t)
	if _, err := c.run(t); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(c.log.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "[1/2] make: ran in ") || !strings.Contains(lines[0], "(never ran)") {
		t.Errorf("first run log:\n%s", c.log.String())
	}
	c.param = "p2"
	if _, err := c.run(t); err != nil {
		t.Fatal(err)
	}
	lines = strings.Split(strings.TrimSpace(c.log.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "(params changed)") ||
		!strings.Contains(lines[1], "(input "+c.path("a.txt")+" changed)") {
		t.Errorf("rerun log:\n%s", c.log.String())
	}
	if _, err := c.run(t); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.log.String(), "[1/2] make: up to date, skipped (key ") {
		t.Errorf("up-to-date log:\n%s", c.log.String())
	}
}

func TestFailingStageLeavesLock(t *testing.T) {
	c := newChain(t)
	lockPath := c.path("m2mix.lock")

	// A stage that never succeeded gets no entry, and the run stops there.
	c.fail = true
	ran, err := c.run(t)
	if err == nil || !strings.Contains(err.Error(), `stage "make"`) || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("error %v, want one naming stage make", err)
	}
	if !reflect.DeepEqual(ran, []string{"make"}) {
		t.Errorf("ran %v after a failure, want only make", ran)
	}
	if _, err := os.Stat(lockPath); !os.IsNotExist(err) {
		t.Errorf("lock file exists after the only stage failed: %v", err)
	}

	// After a success, a failing rerun leaves the lock byte for byte.
	c.fail = false
	if _, err := c.run(t); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	c.param, c.fail = "p2", true
	if _, err := c.run(t); err == nil {
		t.Fatal("no error from a failing stage")
	}
	after, err := os.ReadFile(lockPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("a failing stage changed the lock file")
	}
	// The stage stays stale until it succeeds.
	c.fail = false
	if ran, err := c.run(t); err != nil || !reflect.DeepEqual(ran, []string{"make", "use"}) {
		t.Errorf("after fixing: ran %v, err %v", ran, err)
	}
}

func TestMissingOutputIsAnError(t *testing.T) {
	dir := t.TempDir()
	st := Stage{Name: "lazy", Outputs: []string{filepath.Join(dir, "never.txt")}, Run: func(context.Context) error { return nil }}
	_, err := Run(context.Background(), []Stage{st}, Options{LockPath: filepath.Join(dir, "lock"), Log: &bytes.Buffer{}})
	if err == nil || !strings.Contains(err.Error(), "never.txt") {
		t.Errorf("error %v, want one naming the missing output", err)
	}
}

func TestSkipReason(t *testing.T) {
	dir := t.TempDir()
	ran := false
	stages := []Stage{
		{Name: "prep-mimic", SkipReason: "no im.pk given (m2mix prep mimic --pk PATH)"},
		{Name: "after", Outputs: []string{filepath.Join(dir, "a")}, Run: func(context.Context) error {
			ran = true
			return artifact.WriteFile(filepath.Join(dir, "a"), []byte("a"))
		}},
	}
	var log bytes.Buffer
	res, err := Run(context.Background(), stages, Options{LockPath: filepath.Join(dir, "lock"), Log: &log})
	if err != nil {
		t.Fatal(err)
	}
	if !ran || res[0].Status != Skipped || res[1].Status != Ran {
		t.Errorf("results %+v, later stage ran: %v", res, ran)
	}
	if want := "[1/2] prep-mimic: skipped: no im.pk given (m2mix prep mimic --pk PATH)\n"; !strings.HasPrefix(log.String(), want) {
		t.Errorf("log %q, want it to start with %q", log.String(), want)
	}
}

func TestBadStageLists(t *testing.T) {
	ok := func(context.Context) error { return nil }
	tests := []struct {
		name   string
		stages []Stage
		force  []string
		want   string
	}{
		{"unknown force", []Stage{{Name: "a", Outputs: []string{"x"}, Run: ok}}, []string{"b"}, `force "b": no such stage`},
		{"duplicate", []Stage{{Name: "a", Outputs: []string{"x"}, Run: ok}, {Name: "a", Outputs: []string{"y"}, Run: ok}}, nil, "listed twice"},
		{"no run", []Stage{{Name: "a", Outputs: []string{"x"}}}, nil, "no Run"},
		{"no outputs", []Stage{{Name: "a", Run: ok}}, nil, "no outputs"},
		{"no name", []Stage{{Outputs: []string{"x"}, Run: ok}}, nil, "no name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Run(context.Background(), tt.stages, Options{LockPath: filepath.Join(t.TempDir(), "lock"), Force: tt.force, Log: &bytes.Buffer{}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestCanonicalJSON(t *testing.T) {
	type params struct {
		Zeta  int     `json:"zeta"`
		Alpha float64 `json:"alpha"`
		Big   int64   `json:"big"`
	}
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"struct fields sorted", params{Zeta: 1, Alpha: 0.5, Big: 1 << 60}, `{"alpha":0.5,"big":1152921504606846976,"zeta":1}`},
		{"map", map[string]any{"zeta": 1, "alpha": 0.5, "big": int64(1 << 60)}, `{"alpha":0.5,"big":1152921504606846976,"zeta":1}`},
		{"nested", map[string]any{"b": []any{map[string]int{"y": 1, "x": 2}}, "a": nil}, `{"a":null,"b":[{"x":2,"y":1}]}`},
		{"nil", nil, `null`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := CanonicalJSON(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
	if _, err := CanonicalJSON(func() {}); err == nil {
		t.Error("no error for a value JSON cannot encode")
	}
}

func TestKeyParts(t *testing.T) {
	in := map[string]string{"a": "1", "b": "2"}
	base := stageKey(in, []byte(`{}`), "v1")
	others := map[string]string{
		"code":       stageKey(in, []byte(`{}`), "v2"),
		"params":     stageKey(in, []byte(`{"x":1}`), "v1"),
		"input hash": stageKey(map[string]string{"a": "1", "b": "3"}, []byte(`{}`), "v1"),
		"input path": stageKey(map[string]string{"a": "1", "c": "2"}, []byte(`{}`), "v1"),
	}
	for part, k := range others {
		if k == base {
			t.Errorf("changing the %s leaves the key unchanged", part)
		}
	}
}

func ExampleRun() {
	dir, _ := os.MkdirTemp("", "pipeline-example")
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "hello.txt")
	stages := []Stage{{
		Name:    "hello",
		Params:  map[string]string{"greeting": "hello"},
		Outputs: []string{out},
		Code:    "1",
		Run:     func(context.Context) error { return artifact.WriteFile(out, []byte("hello\n")) },
	}}
	opts := Options{LockPath: filepath.Join(dir, "m2mix.lock"), Log: io.Discard}
	for range 2 {
		res, err := Run(context.Background(), stages, opts)
		if err != nil {
			fmt.Println(err)
		}
		fmt.Println(res[0].Name, res[0].Status)
	}
	// Output:
	// hello ran
	// hello up to date
}

// TestRunJobs runs a diamond with two jobs: "left" and "right" are
// independent and must overlap (each waits until the other has started),
// "join" reads both outputs and must start only after both are written; a
// second run finds all three up to date. A failing stage with jobs stops
// the run with that stage's error.
func TestRunJobs(t *testing.T) {
	dir := t.TempDir()
	path := func(n string) string { return filepath.Join(dir, n) }
	startedLeft, startedRight := make(chan struct{}), make(chan struct{})
	write := func(name string, wait <-chan struct{}, mark chan struct{}) func(context.Context) error {
		return func(context.Context) error {
			close(mark)
			select {
			case <-wait:
			case <-time.After(10 * time.Second):
				return errors.New("the other branch never started: stages did not run at once")
			}
			return artifact.WriteFile(path(name), []byte(name))
		}
	}
	joined := false
	stages := func() []Stage {
		return []Stage{
			{Name: "left", Outputs: []string{path("l.txt")}, Code: "v1", Run: write("l.txt", startedRight, startedLeft)},
			{Name: "right", Outputs: []string{path("r.txt")}, Code: "v1", Run: write("r.txt", startedLeft, startedRight)},
			{Name: "join", Inputs: []string{path("l.txt"), path("r.txt")}, Outputs: []string{path("j.txt")}, Code: "v1",
				Run: func(context.Context) error {
					joined = true
					return artifact.WriteFile(path("j.txt"), []byte("joined"))
				}},
		}
	}
	var log bytes.Buffer
	lock := path("m2mix.lock")
	res, err := Run(context.Background(), stages(), Options{LockPath: lock, Log: &log, Jobs: 2})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if !joined || len(res) != 3 || res[2].Status != Ran {
		t.Fatalf("results %+v\n%s", res, log.String())
	}
	res, err = Run(context.Background(), stages()[2:], Options{LockPath: lock, Log: io.Discard, Jobs: 2})
	if err != nil || res[0].Status != UpToDate {
		t.Fatalf("second run: %+v, %v", res, err)
	}

	// A failure: the dependent stage must not start.
	bad := []Stage{
		{Name: "bad", Outputs: []string{path("b.txt")}, Code: "v1", Run: func(context.Context) error { return errors.New("boom") }},
		{Name: "after", Inputs: []string{path("b.txt")}, Outputs: []string{path("c.txt")}, Code: "v1",
			Run: func(context.Context) error { t.Error("a stage ran after the stage it reads from failed"); return nil }},
	}
	if _, err := Run(context.Background(), bad, Options{LockPath: lock, Log: io.Discard, Jobs: 2}); err == nil || !strings.Contains(err.Error(), `stage "bad"`) {
		t.Fatalf("failure: %v", err)
	}
}
