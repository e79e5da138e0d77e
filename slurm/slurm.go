// Package slurm wraps the Slurm commands m2mix uses: sbatch (a batch script,
// one job or a job array, with afterok dependencies), squeue and sacct (the
// state of submitted jobs; scontrol when the cluster keeps no accounting
// database) and scancel. It writes the batch scripts and parses the
// commands' outputs; it schedules nothing itself.
package slurm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Resources are the submission options every job of a submission gets: an
// empty field (or 0) leaves it to the cluster's defaults. Extra is passed to
// sbatch as it is, after the others, so it can override them.
type Resources struct {
	Partition   string   `json:"partition,omitempty"`
	Gres        string   `json:"gres,omitempty"`          // e.g. gpu:1
	GPUs        string   `json:"gpus,omitempty"`          // e.g. 1 or a100:1
	Time        string   `json:"time,omitempty"`          // time limit, e.g. 02:00:00
	CPUsPerTask int      `json:"cpus_per_task,omitempty"` // cores per job
	Mem         string   `json:"mem,omitempty"`           // e.g. 8G
	Extra       []string `json:"extra,omitempty"`         // more sbatch arguments
}

// Over returns r with every field that o sets replaced by o's (flags over a
// profile's defaults); Extra is r's followed by o's.
func (r Resources) Over(o Resources) Resources {
	pick := func(a, b string) string {
		if b != "" {
			return b
		}
		return a
	}
	out := Resources{
		Partition: pick(r.Partition, o.Partition), Gres: pick(r.Gres, o.Gres), GPUs: pick(r.GPUs, o.GPUs),
		Time: pick(r.Time, o.Time), Mem: pick(r.Mem, o.Mem), CPUsPerTask: r.CPUsPerTask,
		Extra: append(slices.Clone(r.Extra), o.Extra...),
	}
	if o.CPUsPerTask > 0 {
		out.CPUsPerTask = o.CPUsPerTask
	}
	return out
}

// Job is one submission: a single job (one command) or a job array (one
// command per task, task i running Commands[i]).
type Job struct {
	Name string // job name (squeue's NAME)
	// Commands are the argument lists the tasks run, the program first.
	Commands [][]string
	// AfterOK are job ids (an array's id stands for all its tasks) that must
	// finish successfully first.
	AfterOK []string
	Chdir   string // working folder of the job
	Output  string // stdout and stderr file, with sbatch's %x, %A, %a, %j patterns
	// Requeue lets Slurm requeue the job after a preemption or a node
	// failure; the output is then appended to, not truncated.
	Requeue bool
}

// Script returns the batch script sbatch reads for j with resources r.
// The command runs under exec, so the scheduler's SIGTERM (time limit,
// preemption, scancel) reaches the program itself.
func Script(j Job, r Resources) (string, error) {
	if len(j.Commands) == 0 {
		return "", fmt.Errorf("slurm job %q: no commands", j.Name)
	}
	for i, c := range j.Commands {
		if len(c) == 0 {
			return "", fmt.Errorf("slurm job %q: command %d is empty", j.Name, i)
		}
	}
	var b strings.Builder
	b.WriteString("#!/bin/bash\n")
	opt := func(name, v string) {
		if v != "" {
			fmt.Fprintf(&b, "#SBATCH --%s=%s\n", name, v)
		}
	}
	opt("job-name", j.Name)
	if len(j.Commands) > 1 {
		opt("array", fmt.Sprintf("0-%d", len(j.Commands)-1))
	}
	opt("chdir", j.Chdir)
	opt("output", j.Output)
	if len(j.AfterOK) > 0 {
		opt("dependency", "afterok:"+strings.Join(j.AfterOK, ":"))
		// A job whose dependency failed is cancelled rather than left
		// pending for ever; a new submission replaces it.
		opt("kill-on-invalid-dep", "yes")
	}
	if j.Requeue {
		b.WriteString("#SBATCH --requeue\n")
		opt("open-mode", "append")
	}
	opt("partition", r.Partition)
	opt("gres", r.Gres)
	opt("gpus", r.GPUs)
	opt("time", r.Time)
	if r.CPUsPerTask > 0 {
		opt("cpus-per-task", strconv.Itoa(r.CPUsPerTask))
	}
	opt("mem", r.Mem)
	b.WriteString("set -euo pipefail\n")
	if len(j.Commands) == 1 {
		fmt.Fprintf(&b, "exec %s\n", shellJoin(j.Commands[0]))
		return b.String(), nil
	}
	b.WriteString("case \"$SLURM_ARRAY_TASK_ID\" in\n")
	for i, c := range j.Commands {
		fmt.Fprintf(&b, "%d) exec %s ;;\n", i, shellJoin(c))
	}
	b.WriteString("*) echo \"no command for array task $SLURM_ARRAY_TASK_ID\" >&2; exit 2 ;;\nesac\n")
	return b.String(), nil
}

// shellJoin quotes each argument for bash.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

var plainWord = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

func shellQuote(s string) string {
	if plainWord.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Runner runs a Slurm command and returns its standard output; the error
// carries its standard error. Tests replace it with fixtures.
type Runner func(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error)

// Exec runs the real commands.
func Exec(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(string(out))
		}
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return out, nil
}

// Client submits and looks up jobs through Run (Exec when nil).
type Client struct {
	Run Runner
}

func (c Client) run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	if c.Run == nil {
		return Exec(ctx, stdin, name, args...)
	}
	return c.Run(ctx, stdin, name, args...)
}

// Submit hands j to sbatch and returns its job id (an array's id).
func (c Client) Submit(ctx context.Context, j Job, r Resources) (string, error) {
	script, err := Script(j, r)
	if err != nil {
		return "", err
	}
	args := append([]string{"--parsable"}, r.Extra...)
	out, err := c.run(ctx, []byte(script), "sbatch", args...)
	if err != nil {
		return "", fmt.Errorf("submit %s: %w", j.Name, err)
	}
	id, err := ParseSbatch(out)
	if err != nil {
		return "", fmt.Errorf("submit %s: %w", j.Name, err)
	}
	return id, nil
}

// ParseSbatch reads `sbatch --parsable`'s output: "<id>" or "<id>;<cluster>".
func ParseSbatch(out []byte) (string, error) {
	s := strings.TrimSpace(string(out))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 { // warnings come first
		s = s[i+1:]
	}
	id, _, _ := strings.Cut(s, ";")
	if _, err := strconv.ParseUint(id, 10, 64); err != nil {
		return "", fmt.Errorf("sbatch printed %q, not a job id", strings.TrimSpace(string(out)))
	}
	return id, nil
}

// State is what Slurm says about one job or array task.
type State struct {
	ID     string // "123" or, for an array task, "123_4"
	State  string // PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, ...
	Reason string // why it is pending (squeue, scontrol)
	Exit   string // exit code "code:signal" (sacct, scontrol)
}

// Active says whether the job is still waiting or running (it will run or
// is running the stage).
func (s State) Active() bool {
	switch s.State {
	case "PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SUSPENDED", "STAGE_OUT", "SIGNALING":
		return true
	}
	return false
}

// Queue lists the jobs squeue knows (pending and running), each array task
// on its own line.
func (c Client) Queue(ctx context.Context) (map[string]State, error) {
	out, err := c.run(ctx, nil, "squeue", "--noheader", "--array", "--format=%i|%T|%r")
	if err != nil {
		return nil, err
	}
	return ParseSqueue(out)
}

// ParseSqueue reads `squeue --noheader --array --format=%i|%T|%r`.
func ParseSqueue(out []byte) (map[string]State, error) {
	m := map[string]State{}
	for n, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Split(strings.TrimSpace(line), "|")
		if len(f) != 3 || f[0] == "" {
			return nil, fmt.Errorf("squeue line %d: %q: want id|state|reason", n+1, line)
		}
		ids, err := expandArray(f[0])
		if err != nil {
			return nil, fmt.Errorf("squeue line %d: %w", n+1, err)
		}
		for _, id := range ids {
			m[id] = State{ID: id, State: f[1], Reason: f[2]}
		}
	}
	return m, nil
}

// ErrNoAccounting is returned by Accounting on a cluster without an
// accounting database (sacct cannot answer there).
var ErrNoAccounting = errors.New("slurm accounting storage is disabled")

// Accounting asks sacct for the final states of jobs (ids as "123" or
// "123_4"). Array tasks come back one by one.
func (c Client) Accounting(ctx context.Context, ids []string) (map[string]State, error) {
	if len(ids) == 0 {
		return map[string]State{}, nil
	}
	out, err := c.run(ctx, nil, "sacct", "--noheader", "--parsable2", "--allocations",
		"--format=JobID,State,ExitCode", "--jobs="+strings.Join(ids, ","))
	if err != nil {
		if strings.Contains(strings.ToLower(err.Error()), "accounting storage is disabled") {
			return nil, ErrNoAccounting
		}
		return nil, err
	}
	return ParseSacct(out)
}

// ParseSacct reads `sacct --noheader --parsable2 --format=JobID,State,ExitCode`.
// "CANCELLED by 0" becomes CANCELLED.
func ParseSacct(out []byte) (map[string]State, error) {
	m := map[string]State{}
	for n, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Split(strings.TrimSpace(line), "|")
		if len(f) != 3 || f[0] == "" {
			return nil, fmt.Errorf("sacct line %d: %q: want JobID|State|ExitCode", n+1, line)
		}
		if strings.Contains(f[0], ".") { // a job step (batch, extern)
			continue
		}
		state, _, _ := strings.Cut(f[1], " ")
		ids, err := expandArray(f[0])
		if err != nil {
			return nil, fmt.Errorf("sacct line %d: %w", n+1, err)
		}
		for _, id := range ids {
			m[id] = State{ID: id, State: state, Exit: f[2]}
		}
	}
	return m, nil
}

// Show asks scontrol about one job (or array) as long as the controller
// still holds it (MinJobAge after it ended); every task of an array comes
// back. An id the controller no longer knows gives an empty map.
func (c Client) Show(ctx context.Context, id string) (map[string]State, error) {
	out, err := c.run(ctx, nil, "scontrol", "--oneliner", "show", "job", id)
	if err != nil {
		if strings.Contains(err.Error(), "Invalid job id") {
			return map[string]State{}, nil
		}
		return nil, err
	}
	return ParseScontrol(out)
}

// ParseScontrol reads `scontrol --oneliner show job`: one line per job or
// array task of KEY=VALUE fields.
func ParseScontrol(out []byte) (map[string]State, error) {
	m := map[string]State{}
	for n, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		kv := map[string]string{}
		for _, f := range strings.Fields(line) {
			if k, v, ok := strings.Cut(f, "="); ok {
				if _, seen := kv[k]; !seen {
					kv[k] = v
				}
			}
		}
		id := kv["JobId"]
		if id == "" || kv["JobState"] == "" {
			return nil, fmt.Errorf("scontrol line %d: no JobId or JobState: %q", n+1, line)
		}
		ids := []string{id}
		if a, t := kv["ArrayJobId"], kv["ArrayTaskId"]; a != "" && t != "" {
			var err error
			if ids, err = expandArray(a + "_[" + t + "]"); err != nil {
				return nil, fmt.Errorf("scontrol line %d: %w", n+1, err)
			}
		}
		for _, id := range ids {
			m[id] = State{ID: id, State: kv["JobState"], Reason: kv["Reason"], Exit: kv["ExitCode"]}
		}
	}
	return m, nil
}

// expandArray turns a pending array's "123_[0-3,7%2]" into its task ids
// (123_0 ... 123_3, 123_7); any other id is returned as it is.
func expandArray(id string) ([]string, error) {
	job, tasks, ok := strings.Cut(id, "_[")
	if !ok {
		return []string{id}, nil
	}
	tasks, ok = strings.CutSuffix(tasks, "]")
	if !ok {
		return nil, fmt.Errorf("array id %q: no closing bracket", id)
	}
	tasks, _, _ = strings.Cut(tasks, "%") // a limit on tasks at once
	var out []string
	for _, part := range strings.Split(tasks, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("array id %q: task %q", id, part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("array id %q: task range %q", id, part)
			}
		}
		for t := a; t <= b; t++ {
			out = append(out, job+"_"+strconv.Itoa(t))
		}
	}
	return out, nil
}

// Cancel cancels jobs (scancel).
func (c Client) Cancel(ctx context.Context, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := c.run(ctx, nil, "scancel", ids...)
	return err
}

// States returns the state of each id: squeue's for pending and running
// jobs, else sacct's, else (no accounting) scontrol's. An id no command
// knows any more is missing from the map.
func (c Client) States(ctx context.Context, ids []string) (map[string]State, error) {
	out := map[string]State{}
	q, err := c.Queue(ctx)
	if err != nil {
		return nil, err
	}
	var rest []string
	for _, id := range ids {
		if s, ok := q[id]; ok {
			out[id] = s
		} else {
			rest = append(rest, id)
		}
	}
	if len(rest) == 0 {
		return out, nil
	}
	acct, err := c.Accounting(ctx, rest)
	if err == nil {
		for _, id := range rest {
			if s, ok := acct[id]; ok {
				out[id] = s
			}
		}
		return out, nil
	}
	if !errors.Is(err, ErrNoAccounting) {
		return nil, err
	}
	shown := map[string]map[string]State{}
	for _, id := range rest {
		job, _, _ := strings.Cut(id, "_")
		if shown[job] == nil {
			if shown[job], err = c.Show(ctx, job); err != nil {
				return nil, err
			}
		}
		if s, ok := shown[job][id]; ok {
			out[id] = s
		}
	}
	return out, nil
}
