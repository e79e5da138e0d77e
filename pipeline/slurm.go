package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/slurm"
)

// SlurmOptions say how stages become Slurm jobs. The stages are the same as
// the local executor's: a job runs the same m2mix command with --stage NAME,
// which runs that one stage with the local runner (keys, lock file, resume).
type SlurmOptions struct {
	Resources slurm.Resources
	// Command is the m2mix command line a job runs (the binary on the shared
	// filesystem first); "--stage NAME" (and "--force NAME") is appended.
	Command []string
	// Chdir is the jobs' working folder; the current one when empty.
	Chdir string
	// Logs is the folder of the jobs' output files ("slurm-logs" when empty).
	Logs   string
	Client slurm.Client
}

// Statuses a submission gives stages (beside UpToDate and Skipped).
const (
	Submitted Status = iota + 100 // handed to sbatch now
	Queued                        // a job submitted earlier is still pending or running
)

// JobsVersion is the format of the jobs file beside the lock file.
const JobsVersion = 1

// Jobs records, per stage, the Slurm job that last took it (job id, or
// array id and task: "12_3"). It lives beside the lock file (<lock>.jobs),
// so that `m2mix status` can ask Slurm about those jobs.
type Jobs struct {
	Version int               `json:"version"`
	Stages  map[string]string `json:"stages"`
}

// JobsPath is the jobs file of a lock file.
func JobsPath(lockPath string) string { return lockPath + ".jobs" }

// ReadJobs reads the jobs file of lockPath; a missing file has no jobs.
func ReadJobs(lockPath string) (*Jobs, error) {
	j := &Jobs{Version: JobsVersion, Stages: map[string]string{}}
	err := artifact.ReadJSON(JobsPath(lockPath), j)
	if errors.Is(err, fs.ErrNotExist) {
		return j, nil
	}
	if err != nil {
		return nil, fmt.Errorf("jobs file: %w", err)
	}
	if j.Version != JobsVersion {
		return nil, fmt.Errorf("jobs file %s: version %d, this m2mix reads version %d", JobsPath(lockPath), j.Version, JobsVersion)
	}
	if j.Stages == nil {
		j.Stages = map[string]string{}
	}
	return j, nil
}

func updateJobs(lockPath string, set map[string]string) error {
	return withFileLock(lockPath+".flock", func() error {
		j, err := ReadJobs(lockPath)
		if err != nil {
			return err
		}
		maps.Copy(j.Stages, set)
		if err := artifact.WriteJSON(JobsPath(lockPath), j); err != nil {
			return fmt.Errorf("write jobs file: %w", err)
		}
		return nil
	})
}

// plan is what a submission does with one stage.
type plan struct {
	status   Status
	reason   string
	job      string // Queued: the earlier job; Submitted: the new job's id
	upstream []int  // stages this one waits for that are queued or submitted
	level    int    // Submitted: 1 + the highest level of its submitted upstream
}

// SubmitSlurm hands every stage that is not up to date to Slurm: stages of
// one kind (the name's first part: train, report, ...) that do not depend on
// one another become one job array, and a job waits (afterok) for the jobs of
// the stages that write its inputs. A stage whose earlier job is still
// pending or running is left to it. Nothing runs here: Slurm does the
// ordering, and each job records its stage in the lock file when it ends.
// The stages' job ids go to the jobs file beside the lock file.
func SubmitSlurm(ctx context.Context, stages []Stage, opts Options, so SlurmOptions) ([]Result, error) {
	lockPath := opts.LockPath
	if lockPath == "" {
		lockPath = DefaultLockPath
	}
	log := opts.Log
	if log == nil {
		log = os.Stdout
	}
	if len(so.Command) == 0 {
		return nil, fmt.Errorf("slurm: no m2mix command for the jobs")
	}
	if err := checkStages(stages, opts.Force); err != nil {
		return nil, err
	}
	lock, err := ReadLock(lockPath)
	if err != nil {
		return nil, err
	}
	jobs, err := ReadJobs(lockPath)
	if err != nil {
		return nil, err
	}
	queue := map[string]slurm.State{}
	if len(jobs.Stages) > 0 {
		if queue, err = so.Client.Queue(ctx); err != nil {
			return nil, fmt.Errorf("slurm: %w", err)
		}
	}
	deps := dependencies(stages)
	plans := make([]plan, len(stages))
	var stale []string // earlier jobs to cancel: their inputs will be remade
	for i, st := range stages {
		p := &plans[i]
		if st.SkipReason != "" {
			p.status, p.reason = Skipped, st.SkipReason
			continue
		}
		forced := slices.Contains(opts.Force, st.Name)
		newUpstream := false
		var names []string
		for _, j := range deps[i] {
			if s := plans[j].status; s == Submitted || s == Queued {
				p.upstream = append(p.upstream, j)
				names = append(names, stages[j].Name)
				if s == Submitted {
					newUpstream = true
					p.level = max(p.level, plans[j].level)
				}
			}
		}
		if len(p.upstream) == 0 {
			inputs, err := hashPaths(st.Inputs)
			if err != nil {
				return nil, fmt.Errorf("stage %q: inputs: %w", st.Name, err)
			}
			params, err := CanonicalJSON(st.Params)
			if err != nil {
				return nil, fmt.Errorf("stage %q: params: %w", st.Name, err)
			}
			p.reason = staleReason(st, lock.Stages[st.Name], stageKey(inputs, params, st.Code), inputs, params)
			if forced {
				p.reason = "forced"
			}
			if p.reason == "" {
				p.status = UpToDate
				continue
			}
		} else {
			p.reason = "after " + strings.Join(names, ", ")
			if len(names) > 3 {
				p.reason = fmt.Sprintf("after %d stages: %s, ...", len(names), strings.Join(names[:2], ", "))
			}
		}
		if job, ok := jobs.Stages[st.Name]; ok && queue[job].Active() {
			if !newUpstream && !forced {
				p.status, p.job = Queued, job
				continue
			}
			stale = append(stale, job)
		}
		p.status, p.level = Submitted, p.level+1
	}
	if err := so.Client.Cancel(ctx, stale...); err != nil {
		return nil, fmt.Errorf("slurm: cancel jobs whose inputs are remade: %w", err)
	}

	// Groups: stages of one kind at one level, submitted level by level so
	// that every group's upstream jobs have ids.
	type group struct {
		kind  string
		level int
		idx   []int
	}
	var groups []*group
	for i, st := range stages {
		if plans[i].status != Submitted {
			continue
		}
		kind, _, _ := strings.Cut(st.Name, "/")
		var g *group
		for _, h := range groups {
			if h.kind == kind && h.level == plans[i].level {
				g = h
			}
		}
		if g == nil {
			g = &group{kind: kind, level: plans[i].level}
			groups = append(groups, g)
		}
		g.idx = append(g.idx, i)
	}
	slices.SortStableFunc(groups, func(a, b *group) int { return a.level - b.level })

	chdir := so.Chdir
	if chdir == "" {
		if chdir, err = os.Getwd(); err != nil {
			return nil, err
		}
	}
	logs := so.Logs
	if logs == "" {
		logs = "slurm-logs"
	}
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return nil, fmt.Errorf("slurm logs folder: %w", err)
	}
	if !filepath.IsAbs(logs) {
		logs = filepath.Join(chdir, logs)
	}
	for _, g := range groups {
		job := slurm.Job{Name: "m2mix-" + g.kind, Chdir: chdir, Requeue: true,
			Output: filepath.Join(logs, "%x-%A_%a.out")}
		if len(g.idx) == 1 {
			job.Output = filepath.Join(logs, "%x-%j.out")
		}
		after := map[string]bool{}
		for _, i := range g.idx {
			cmd := append(slices.Clone(so.Command), "--stage", stages[i].Name)
			if slices.Contains(opts.Force, stages[i].Name) {
				cmd = append(cmd, "--force", stages[i].Name)
			}
			job.Commands = append(job.Commands, cmd)
			for _, j := range plans[i].upstream {
				id := plans[j].job
				if plans[j].status == Submitted {
					id, _, _ = strings.Cut(id, "_") // the whole array
				}
				after[id] = true
			}
		}
		job.AfterOK = slices.Sorted(maps.Keys(after))
		id, err := so.Client.Submit(ctx, job, so.Resources)
		if err != nil {
			return nil, fmt.Errorf("slurm: %w", err)
		}
		set := map[string]string{}
		for t, i := range g.idx {
			plans[i].job = id
			if len(g.idx) > 1 {
				plans[i].job = fmt.Sprintf("%s_%d", id, t)
			}
			set[stages[i].Name] = plans[i].job
		}
		if err := updateJobs(lockPath, set); err != nil {
			return nil, err
		}
	}

	var results []Result
	submitted := 0
	for i, st := range stages {
		p := plans[i]
		prefix := fmt.Sprintf("[%d/%d] %s:", i+1, len(stages), st.Name)
		switch p.status {
		case UpToDate:
			fmt.Fprintf(log, "%s up to date, skipped\n", prefix)
		case Skipped:
			fmt.Fprintf(log, "%s skipped: %s\n", prefix, p.reason)
		case Queued:
			fmt.Fprintf(log, "%s already queued as job %s (%s)\n", prefix, p.job, queue[p.job].State)
		case Submitted:
			submitted++
			fmt.Fprintf(log, "%s submitted as job %s (%s)\n", prefix, p.job, p.reason)
		}
		results = append(results, Result{Name: st.Name, Status: p.status, Reason: p.reason + jobNote(p.job)})
	}
	fmt.Fprintf(log, "slurm: %d stage(s) submitted in %d job(s); `m2mix status` shows where they are\n", submitted, len(groups))
	return results, nil
}

func jobNote(job string) string {
	if job == "" {
		return ""
	}
	return " [job " + job + "]"
}

// StageState is where one stage stands (see StatusOf).
type StageState struct {
	Name  string
	State string // done, skipped, queued, running, failed, stale, waiting, to do
	Job   string // the stage's last Slurm job, if any
	Note  string // Slurm's state and reason, why it is stale, ...
}

// StatusOf says, for each stage, whether it is done (up to date in the lock
// file), queued or running (its Slurm job, from squeue), failed (its job
// ended without making it up to date: sacct, else scontrol), waiting (its
// inputs are not made yet) or to do.
func StatusOf(ctx context.Context, stages []Stage, lockPath string, client slurm.Client) ([]StageState, error) {
	if lockPath == "" {
		lockPath = DefaultLockPath
	}
	lock, err := ReadLock(lockPath)
	if err != nil {
		return nil, err
	}
	jobs, err := ReadJobs(lockPath)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, st := range stages {
		if id, ok := jobs.Stages[st.Name]; ok {
			ids = append(ids, id)
		}
	}
	states := map[string]slurm.State{}
	if len(ids) > 0 {
		if states, err = client.States(ctx, ids); err != nil {
			return nil, fmt.Errorf("slurm: %w", err)
		}
	}
	var out []StageState
	for _, st := range stages {
		s := StageState{Name: st.Name, Job: jobs.Stages[st.Name]}
		js, known := states[s.Job]
		switch {
		case st.SkipReason != "":
			s.State, s.Note = "skipped", st.SkipReason
		case s.Job != "" && js.Active():
			s.State, s.Note = "queued", js.State+" "+js.Reason
			if js.State == "RUNNING" || js.State == "COMPLETING" {
				s.State, s.Note = "running", js.State
			}
		default:
			inputs, err := hashPaths(st.Inputs)
			if err != nil {
				s.State, s.Note = "waiting", "inputs not made yet"
				if known && js.State != "COMPLETED" {
					// Its job ended without running it (cancelled after an
					// upstream job failed, or failed itself).
					s.State, s.Note = "failed", fmt.Sprintf("job %s %s, exit %s; inputs not made yet", s.Job, js.State, js.Exit)
				}
				break
			}
			params, err := CanonicalJSON(st.Params)
			if err != nil {
				return nil, fmt.Errorf("stage %q: params: %w", st.Name, err)
			}
			reason := staleReason(st, lock.Stages[st.Name], stageKey(inputs, params, st.Code), inputs, params)
			switch {
			case reason == "":
				s.State = "done"
			case known && js.State != "COMPLETED":
				s.State, s.Note = "failed", fmt.Sprintf("job %s %s, exit %s; %s", s.Job, js.State, js.Exit, reason)
			case s.Job != "" && !known:
				s.State, s.Note = "failed", "job "+s.Job+" is no longer known to Slurm; "+reason
			default:
				s.State, s.Note = "to do", reason
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// PrintStatus writes one line per stage and a count per state.
func PrintStatus(w io.Writer, states []StageState) {
	count := map[string]int{}
	for _, s := range states {
		count[s.State]++
		line := fmt.Sprintf("%-8s %s", s.State, s.Name)
		if s.Job != "" {
			line += "  job " + s.Job
		}
		if s.Note != "" {
			line += "  (" + strings.TrimSpace(s.Note) + ")"
		}
		fmt.Fprintln(w, line)
	}
	var parts []string
	for _, k := range []string{"done", "running", "queued", "waiting", "to do", "failed", "skipped"} {
		if count[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", count[k], k))
		}
	}
	fmt.Fprintf(w, "%d stages: %s\n", len(states), strings.Join(parts, ", "))
}
