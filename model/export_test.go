package model

import (
	"encoding/json"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/export"
	"github.com/m2mix/m2mix/runrecord"
	"github.com/m2mix/m2mix/torch"
)

// The export test writes a run folder per exportable configuration (a
// best.safetensors as training writes it, and a finished record), exports
// it with package export in both formats, and has PyTorch
// (testdata/reference_classes.py: the reference implementation's classes,
// named and nested as it names them) load both files, load_state_dict with
// strict=True, and compute the logits of a batch, which must be ours to
// exportTol. The weights are perturbed away from their initialisation
// first: LayerNorms start as weight 1, bias 0 everywhere, so an export that
// swapped two of them would otherwise give the same logits.

// exportTol is the largest norm-wise relative error ||ours-ref||/||ref||
// accepted per head's logits.
const exportTol = 1e-5

// perturb moves every parameter of net to w*(1+0.2 n) + 0.05 n', n and n'
// standard normal draws, so that no two tensors of one kind hold the same
// values.
func perturb(t *testing.T, net *Network, r *rand.Rand) {
	t.Helper()
	err := torch.NoGrad(func() {
		s := torch.NewScope()
		defer s.Close()
		for i, p := range net.Params.Tensors {
			v, err := p.Float32s()
			if err != nil {
				t.Fatal(err)
			}
			for j := range v {
				v[j] = v[j]*float32(1+0.2*r.NormFloat64()) + float32(0.05*r.NormFloat64())
			}
			shape, _ := p.Shape()
			if err := p.CopyFrom(s.From(v, shape...)); err != nil {
				t.Fatalf("%s: %v", net.Params.Names[i], err)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}

// exportCase is one configuration's side of the comparison.
type exportCase struct {
	cfg    *Config
	dir    string
	logits map[string][]float32
	job    map[string]any
}

// prepareExportCase writes the run folder and the batch, exports the run,
// and records our logits.
func prepareExportCase(t *testing.T, name string, batch int64) *exportCase {
	t.Helper()
	cfg, err := LoadConfig(name)
	if err != nil {
		t.Fatal(err)
	}
	arch, err := export.ReferenceArchitecture(name)
	if err != nil {
		t.Fatal(err)
	}
	c := &exportCase{cfg: cfg, dir: filepath.Join(t.TempDir(), name), logits: map[string][]float32{}}
	run := filepath.Join(c.dir, "runs", name, "5")
	net, err := NewNetwork(cfg, []uint64{5}, torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	r := rand.New(rand.NewPCG(19, uint64(len(name))))
	perturb(t, net, r)
	if err := os.MkdirAll(run, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := saveModel(filepath.Join(run, BestFile), net, 0, nil, nil); err != nil {
		t.Fatal(err)
	}
	rec := runrecord.Record{Config: name, Dataset: cfg.Dataset, Seed: 5, Final: &runrecord.Metrics{}}
	if err := artifact.WriteJSON(filepath.Join(run, runrecord.FileName), rec); err != nil {
		t.Fatal(err)
	}
	pt, st := filepath.Join(c.dir, "export.pt"), filepath.Join(c.dir, "export.safetensors")
	for _, out := range []string{pt, st} {
		res, err := export.Checkpoint(export.Options{Run: run, Out: out})
		if err != nil {
			t.Fatal(err)
		}
		var want int64
		for _, p := range net.Params.Tensors {
			n, _ := p.Numel()
			want += n
		}
		if res.Params != want || res.Tensors != len(net.Params.Names) || res.Class != arch.Class {
			t.Fatalf("%s: exported %d tensors, %d parameters as %s; the network has %d, %d (%s)",
				out, res.Tensors, res.Params, res.Class, len(net.Params.Names), want, arch.Class)
		}
	}

	s := torch.NewScope()
	defer s.Close()
	b, inputs := randomBatch(t, s, cfg, rand.New(rand.NewPCG(2026, uint64(len(name)))), batch)
	if err := torch.SaveSafetensors(filepath.Join(c.dir, "inputs.safetensors"), inputs, nil); err != nil {
		t.Fatal(err)
	}
	var ferr error
	if err := torch.NoGrad(func() {
		es := torch.NewScope()
		defer es.Close()
		for h, l := range net.Forward(es, b, Mode{}) {
			if c.logits[h], ferr = l.Float32s(); ferr != nil {
				return
			}
		}
		ferr = es.Err()
	}); err != nil || ferr != nil {
		t.Fatal(err, ferr)
	}
	// The sizes the reference classes take: a mixer encoder's (every mixer
	// encoder of a configuration has the same) and the fusion's.
	var enc, fus Part
	for _, m := range net.Modalities {
		if e := cfg.Network.Encoders[m.Name]; strings.HasSuffix(e.Type, "-mixer") {
			enc = e
		}
	}
	if cfg.Network.Fusion != nil {
		fus = *cfg.Network.Fusion
	}
	c.job = map[string]any{
		"class": arch.Class,
		"sizes": map[string]any{
			"hidden": enc.Hidden, "token_dim": enc.TokenDim, "channel_dim": enc.ChannelDim, "blocks": enc.Blocks,
			"fusion_blocks": fus.Blocks, "fusion_token_dim": fus.TokenDim, "fusion_channel_dim": fus.ChannelDim,
			"dropout": enc.Dropout,
		},
		"torch": pt, "safetensors": st,
		"inputs": filepath.Join(c.dir, "inputs.safetensors"), "out": filepath.Join(c.dir, "torch_logits.safetensors"),
	}
	return c
}

// runReferenceClasses runs testdata/reference_classes.py on the jobs.
func runReferenceClasses(t *testing.T, jobs []map[string]any) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "job.json")
	b, _ := json.Marshal(map[string]any{"cases": jobs})
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	runPython(t, 5*time.Minute, "reference_classes.py", path)
}

// referenceLogits reads what reference_classes.py wrote for a job.
func referenceLogits(t *testing.T, job map[string]any) (map[string][]float32, []string) {
	t.Helper()
	raw, meta, err := torch.ReadSafetensors(job["out"].(string))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]float32{}
	for k, v := range raw {
		if v.DType != torch.Float32 {
			t.Fatalf("%s: %v", k, v.DType)
		}
		f := make([]float32, len(v.Data)/4)
		for i := range f {
			f[i] = math.Float32frombits(uint32(v.Data[4*i]) | uint32(v.Data[4*i+1])<<8 | uint32(v.Data[4*i+2])<<16 | uint32(v.Data[4*i+3])<<24)
		}
		out[k] = f
	}
	var names []string
	if err := json.Unmarshal([]byte(meta["names"]), &names); err != nil {
		t.Fatal(err)
	}
	return out, names
}

// TestExportLoadsIntoReferenceClasses: every exportable configuration's
// export, torch.save's file and safetensors alike, loads with strict=True
// into the reference's class and gives our logits on the same batch.
func TestExportLoadsIntoReferenceClasses(t *testing.T) {
	requireTorchPython(t)
	if err := torch.SetThreads(1); err != nil {
		t.Fatal(err)
	}
	configs := export.ExportableConfigs()
	names, err := ConfigNames()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range configs {
		if !slices.Contains(names, n) {
			t.Fatalf("export lists %s, which is no configuration (have %v)", n, names)
		}
	}
	const batch = 6
	cases := make([]*exportCase, len(configs))
	jobs := make([]map[string]any, len(configs))
	for i, name := range configs {
		cases[i] = prepareExportCase(t, name, batch)
		jobs[i] = cases[i].job
	}

	// A negative control: the M2-Mixer_S export with the first image
	// block's two LayerNorms swapped loads just as well (same names and
	// shapes) and must give other logits, or the comparison could not see
	// a table that swaps them.
	swapped := map[string]any{}
	for k, v := range cases[0].job {
		swapped[k] = v
	}
	if cases[0].cfg.Name != "m2mixer_s" {
		t.Fatalf("first exportable configuration is %s, want m2mixer_s", cases[0].cfg.Name)
	}
	dir := filepath.Join(cases[0].dir, "swapped")
	tensors, _, err := torch.ReadSafetensors(cases[0].job["safetensors"].(string))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"weight", "bias"} {
		a, b := "image_mixer.mixer_blocks.0.token_mix.0."+p, "image_mixer.mixer_blocks.0.channel_mix.0."+p
		if _, ok := tensors[a]; !ok {
			t.Fatalf("export has no %s", a)
		}
		tensors[a], tensors[b] = tensors[b], tensors[a]
	}
	order := slices.Sorted(maps.Keys(tensors))
	swapped["torch"], swapped["safetensors"], swapped["out"] = filepath.Join(dir, "x.pt"), filepath.Join(dir, "x.safetensors"), filepath.Join(dir, "logits.safetensors")
	if err := export.WriteStateDict(swapped["torch"].(string), order, tensors); err != nil {
		t.Fatal(err)
	}
	if err := torch.WriteSafetensors(swapped["safetensors"].(string), tensors, nil); err != nil {
		t.Fatal(err)
	}
	runReferenceClasses(t, append(jobs, swapped))

	for _, c := range cases {
		t.Run(c.cfg.Name, func(t *testing.T) {
			ref, names := referenceLogits(t, c.job)
			if len(names) == 0 {
				t.Fatal("no names")
			}
			if len(ref) != len(c.cfg.Heads) {
				t.Fatalf("PyTorch gave %d heads' logits, the configuration has %v", len(ref), c.cfg.Heads)
			}
			for _, h := range c.cfg.Heads {
				want, ok := ref["logits."+h]
				if !ok {
					t.Fatalf("PyTorch gave no logits for head %s", h)
				}
				got := c.logits[h]
				if len(got) != len(want) || len(want) != batch*map[string]int{"avmnist": 10, "mimic": 6}[c.cfg.Dataset] {
					t.Fatalf("head %s: %d logits, PyTorch %d", h, len(got), len(want))
				}
				rel, maxAbs := relErr(got, want)
				if !(rel <= exportTol) {
					t.Errorf("head %s: logits relative error %.3g > %g (max abs %.3g)", h, rel, exportTol, maxAbs)
				}
				t.Logf("%s head %s: %d tensors as %s, logits relative error %.2e (max abs %.2e)", c.cfg.Name, h, len(names), c.job["class"], rel, maxAbs)
			}
		})
	}
	t.Run("swapped LayerNorms", func(t *testing.T) {
		ref, _ := referenceLogits(t, swapped)
		rel, _ := relErr(cases[0].logits["image"], ref["logits.image"])
		if rel < 100*exportTol {
			t.Errorf("swapping two LayerNorms changed the image head's logits by only %.3g (relative): the test would not see it", rel)
		}
		t.Logf("swapped LayerNorms: image logits relative error %.3g", rel)
	})
}
