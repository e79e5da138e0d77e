package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/m2mix/m2mix/features/avmnist"
	"github.com/m2mix/m2mix/pipeline"
	"github.com/m2mix/m2mix/slurm"
	"github.com/m2mix/m2mix/torch"
)

func newReproduceCmd() *cobra.Command {
	var (
		pf pipelineFlags
		sf slurmFlags
	)
	c := &cobra.Command{
		Use:   "reproduce",
		Short: "Run the whole pipeline: fetch, prepare, train every configuration and seed, report",
		Long: `reproduce runs every stage in order. Each stage is keyed by the sha256 of its
inputs, its parameters and its code version, recorded in the lock file
(m2mix.lock); an up-to-date stage is skipped, so running it again does no
work, and an interrupted run continues where it stopped. --force STAGE redoes
one stage (e.g. --force report, --force train/m2mixer_m/42).

--executor slurm submits every stage that is not up to date to Slurm instead:
the seeds and configurations of one kind as one job array, each job waiting
(afterok) for the jobs that write its inputs, every job running this same
binary on the shared filesystem. Jobs may be requeued (preemption): a
requeued or resubmitted training resumes from its last epoch. --dry-run (or
m2mix status) shows which stages are done, queued, running or failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := pf.options(cmd)
			if err != nil {
				return err
			}
			if sf.dryRun {
				states, err := pipeline.ReproduceStatus(context.Background(), o, slurm.Client{})
				if err != nil {
					return err
				}
				pipeline.PrintStatus(cmd.OutOrStdout(), states)
				return nil
			}
			if err := sf.apply(cmd, &o, o.Profile.Slurm, []string{"reproduce"}); err != nil {
				return err
			}
			return pipeline.Reproduce(context.Background(), o)
		},
	}
	pf.register(c.Flags(), true)
	sf.register(c.Flags())
	return c
}

// pipelineFlags are the flags that say what the pipeline is: reproduce,
// status and sweep share them, and a Slurm job gets them back unchanged.
type pipelineFlags struct {
	profile, device, mirror, variant string
	only                             []string
	o                                pipeline.ReproduceOptions
}

func (pf *pipelineFlags) register(f *pflag.FlagSet, profile bool) {
	if profile {
		f.StringVar(&pf.profile, "profile", "quick", "quick (CPU, minutes) or paper (10 seeds, full training; meant for a GPU), or a profile file")
		f.StringSliceVar(&pf.only, "only", nil, "train only these of the profile's configurations (their stages keep the profile's keys; the others' are left as they are)")
	}
	f.StringVar(&pf.device, "device", "cpu", "cpu, cuda or cuda:N")
	f.StringVar(&pf.mirror, "mirror", "", "local mirror of the raw sources (default "+defaultMirror+" when it exists)")
	f.StringVar(&pf.o.PK, "pk", "", "MultiBench's im.pk for MIMIC-III (skipped when absent)")
	f.StringVar(&pf.o.RawMIMIC, "mimic-raw", "", "folder of the raw MIMIC-III tables, instead of --pk")
	f.StringVar(&pf.o.Runs, "runs", "runs", "folder of run records")
	f.StringVar(&pf.o.Results, "results", "results", "folder for tables and plots")
	f.Uint64Var(&pf.o.NoiseSeed, "avmnist-seed", 42, "seed of AV-MNIST's noise draw")
	f.StringVar(&pf.o.AVPack, "avmnist-pack", "", "generate AV-MNIST from this inputs pack (m2mix pack) instead of fetching the raw sources")
	f.StringVar(&pf.variant, "avmnist-variant", avmnist.Clean, "AV-MNIST as the recipe says (clean) or a variant in manifests/avmnist-variants (public-like); each variant keeps its own datasets, runs and lock entries")
	f.IntVar(&pf.o.AVLimit, "avmnist-limit", 0, "generate AV-MNIST from the first N MNIST rows of each split only (previews)")
	f.IntVar(&pf.o.Threads, "threads", 0, "libtorch threads (0: all cores; in a Slurm job, the CPUs Slurm gave it)")
	f.BoolVar(&pf.o.NoGraphs, "no-graphs", false, "seed batches on CUDA: plain steps instead of a replayed CUDA graph")
	f.IntVar(&pf.o.Jobs, "jobs", 0, "stages to run at once (0: the profile's gpu_jobs on a GPU, 1 on the CPU)")
	f.StringSliceVar(&pf.o.Force, "force", nil, "stages to redo even when up to date")
	f.StringVar(&pf.o.LockPath, "lock", pipeline.DefaultLockPath, "lock file")
}

// options resolves the flags into the pipeline's options (the profile
// loaded, the mirror found).
func (pf *pipelineFlags) options(cmd *cobra.Command) (pipeline.ReproduceOptions, error) {
	o := pf.o
	if pf.profile != "" {
		path := pf.profile
		if !strings.ContainsAny(path, "/.") {
			path = filepath.Join("manifests", "profiles", pf.profile+".json")
		}
		p, err := pipeline.LoadProfile(path)
		if err != nil {
			return o, err
		}
		if len(pf.only) > 0 {
			if err := p.Only(pf.only); err != nil {
				return o, err
			}
		}
		o.Profile = p
	}
	mirror := pf.mirror
	if mirror == "" {
		if st, err := os.Stat(defaultMirror); err == nil && st.IsDir() {
			mirror = defaultMirror
		}
	}
	var err error
	if o.AVVariant, err = avmnist.LoadVariant(pf.variant); err != nil {
		return o, err
	}
	o.Data, o.Mirror, o.MNISTDir = dataDir(cmd), mirror, findGoMNIST()
	o.Device, o.Log = torch.Device(pf.device), cmd.OutOrStdout()
	return o, nil
}

// slurmFlags choose the executor and Slurm's submission options.
type slurmFlags struct {
	executor, stage, logs string
	res                   slurm.Resources
	dryRun                bool
}

// submitFlags are Slurm's submission options: they need --executor slurm.
var submitFlags = []string{"partition", "gres", "gpus", "time", "cpus-per-task", "mem", "sbatch-arg", "slurm-logs"}

// slurmOnly are the flags a job does not get back: they are about
// submitting, not about the pipeline (--force goes to the forced stage's
// job alone).
var slurmOnly = append([]string{"executor", "stage", "force", "dry-run", "jobs"}, submitFlags...)

func (sf *slurmFlags) register(f *pflag.FlagSet) {
	f.StringVar(&sf.executor, "executor", "local", "local (run the stages here) or slurm (submit them with sbatch)")
	f.StringVar(&sf.res.Partition, "partition", "", "slurm: partition (default: the profile's, else the cluster's)")
	f.StringVar(&sf.res.Gres, "gres", "", "slurm: generic resources per job, e.g. gpu:1")
	f.StringVar(&sf.res.GPUs, "gpus", "", "slurm: GPUs per job, e.g. 1")
	f.StringVar(&sf.res.Time, "time", "", "slurm: time limit per job, e.g. 02:00:00")
	f.IntVar(&sf.res.CPUsPerTask, "cpus-per-task", 0, "slurm: cores per job (0: the profile's, else the cluster's default)")
	f.StringVar(&sf.res.Mem, "mem", "", "slurm: memory per job, e.g. 8G")
	f.StringArrayVar(&sf.res.Extra, "sbatch-arg", nil, "slurm: another sbatch argument, as sbatch takes it (repeatable), e.g. --sbatch-arg=--account=lab")
	f.StringVar(&sf.logs, "slurm-logs", "slurm-logs", "slurm: folder of the jobs' output files")
	f.BoolVar(&sf.dryRun, "dry-run", false, "run nothing: show which stages are done, queued, running, failed (as m2mix status)")
	f.StringVar(&sf.stage, "stage", "", "run this one stage here (what a Slurm job runs)")
	f.Lookup("stage").Hidden = true
}

// apply checks the executor flags and sets o's executor: one stage here
// (--stage), Slurm (with the profile's options under the flags'), or the
// local runner. sub is the subcommand and arguments a job runs.
func (sf *slurmFlags) apply(cmd *cobra.Command, o *pipeline.ReproduceOptions, profile slurm.Resources, sub []string) error {
	var slurmSet []string
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if slices.Contains(submitFlags, f.Name) {
			slurmSet = append(slurmSet, "--"+f.Name)
		}
	})
	switch sf.executor {
	case "local":
		if len(slurmSet) > 0 {
			return fmt.Errorf("%s: needs --executor slurm", strings.Join(slurmSet, ", "))
		}
	case "slurm":
		if sf.stage != "" {
			return fmt.Errorf("--stage runs one stage here; it does not go with --executor slurm")
		}
	default:
		return fmt.Errorf("--executor %q: want local or slurm", sf.executor)
	}
	if sf.stage != "" {
		o.Stage = sf.stage
		if n := slurmCPUs(); n > 0 {
			// Go's own parallel loops (data preparation) keep to them too.
			runtime.GOMAXPROCS(n)
			if o.Threads == 0 {
				o.Threads = n
			}
		}
		return nil
	}
	if sf.executor != "slurm" {
		return nil
	}
	command, err := jobCommand(cmd, sub)
	if err != nil {
		return err
	}
	o.Slurm = &pipeline.SlurmOptions{Resources: profile.Over(sf.res), Command: command, Logs: sf.logs}
	return nil
}

// jobCommand is the command line a Slurm job runs: this executable, the
// subcommand and every pipeline flag the user set, as set.
func jobCommand(cmd *cobra.Command, sub []string) ([]string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("slurm: the m2mix binary for the jobs: %w", err)
	}
	args := append([]string{exe}, sub...)
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if slices.Contains(slurmOnly, f.Name) {
			return
		}
		v := f.Value.String()
		if s, ok := f.Value.(pflag.SliceValue); ok {
			v = strings.Join(s.GetSlice(), ",")
		}
		args = append(args, "--"+f.Name+"="+v)
	})
	return args, nil
}

// slurmCPUs is the number of CPUs Slurm gave this job (0 outside a job):
// where Slurm does not confine a job to them (TaskPlugin=task/none),
// libtorch and Go would otherwise start a thread per core of the node.
func slurmCPUs() int {
	for _, v := range []string{"SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE"} {
		if n, err := strconv.Atoi(os.Getenv(v)); err == nil && n > 0 {
			return n
		}
	}
	return 0
}
