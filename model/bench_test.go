package model

import (
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/m2mix/m2mix/torch"
)

// benchDevice is M2MIX_BENCH_DEVICE (cpu when unset): scripts/gpu-bench.sh
// runs the carried test binary with it set to cuda.
func benchDevice() torch.Device {
	if d := os.Getenv("M2MIX_BENCH_DEVICE"); d != "" {
		return torch.Device(d)
	}
	return torch.CPU
}

// syntheticAVMNIST makes an AV-MNIST-shaped split of n random rows on the
// bench device, as ../shared/bench/torch_m2mixer.py does for its timing.
func syntheticAVMNIST(s *torch.Scope, n int, seed uint64, dev torch.Device) *Split {
	r := rand.New(rand.NewPCG(seed, 1))
	img := make([]float32, n*784)
	for i := range img {
		img[i] = float32(r.NormFloat64())
	}
	aud := make([]uint8, n*112*112)
	for i := range aud {
		aud[i] = uint8(r.IntN(256))
	}
	lab := make([]int64, n)
	for i := range lab {
		lab[i] = int64(r.IntN(10))
	}
	on := func(t *torch.Tensor) *torch.Tensor {
		if dev == torch.CPU {
			return t
		}
		return s.To(t, dev)
	}
	return &Split{N: int64(n), Label: on(s.From(lab, int64(n))), X: map[string]*torch.Tensor{
		"image": on(s.From(img, int64(n), 1, 28, 28)), "audio": on(s.From(aud, int64(n), 1, 112, 112))}}
}

// syntheticMIMIC makes a MIMIC-III-shaped split of n random rows (static
// (n, 5), time series (n, 24, 12), 6 classes) on the bench device.
func syntheticMIMIC(s *torch.Scope, n int, seed uint64, dev torch.Device) *Split {
	r := rand.New(rand.NewPCG(seed, 2))
	normal := func(m int) []float32 {
		v := make([]float32, m)
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		return v
	}
	lab := make([]int64, n)
	for i := range lab {
		lab[i] = int64(r.IntN(6))
	}
	on := func(t *torch.Tensor) *torch.Tensor {
		if dev == torch.CPU {
			return t
		}
		return s.To(t, dev)
	}
	return &Split{N: int64(n), Label: on(s.From(lab, int64(n))), X: map[string]*torch.Tensor{
		"static": on(s.From(normal(n*5), int64(n), 5)), "time": on(s.From(normal(n*24*12), int64(n), 24, 12))}}
}

// firstRows is a view of sp's first n rows.
func firstRows(s *torch.Scope, sp *Split, n int64) *Split { return sp.rowsAt(s, nil, 0, n) }

// BenchmarkTrainEpoch times one training epoch of M2-Mixer_M (batch 32,
// Adam) over M2MIX_BENCH_N random samples (default 3200) and reports the
// per-sample time, the figure torch_m2mixer.py prints as per_sample_us.
// M2MIX_BENCH_CONFIG picks another configuration (a baseline: its own
// batch size and optimiser; MIMIC-III's on MIMIC-shaped rows). It is the
// one training loop's K = 1 case.
func BenchmarkTrainEpoch(b *testing.B) { benchTrainEpoch(b, 1) }

// BenchmarkTrainEpochSeedBatch times one training epoch of K stacked
// models (M2MIX_BENCH_K, default 10; M2MIX_BENCH_CONFIG, default
// m2mixer_m) over M2MIX_BENCH_N random samples and reports the time per
// sample per model, to set beside BenchmarkTrainEpoch and PyTorch's
// single-model figure. On CUDA the step runs as a CUDA graph, captured in
// the untimed warm-up epoch, unless M2MIX_BENCH_NOGRAPHS is set.
func BenchmarkTrainEpochSeedBatch(b *testing.B) {
	k := 10
	if v, err := strconv.Atoi(os.Getenv("M2MIX_BENCH_K")); err == nil {
		k = v
	}
	benchTrainEpoch(b, k)
}

func benchTrainEpoch(b *testing.B, k int) {
	n, name := 3200, "m2mixer_m"
	if v, err := strconv.Atoi(os.Getenv("M2MIX_BENCH_N")); err == nil {
		n = v
	}
	if v := os.Getenv("M2MIX_BENCH_CONFIG"); v != "" {
		name = v
	}
	cfg, err := LoadConfig(name)
	if err != nil {
		b.Fatal(err)
	}
	runtime.LockOSThread() // the graph's stream is this thread's
	defer runtime.UnlockOSThread()
	if err := torch.SetThreads(2); err != nil {
		b.Fatal(err)
	}
	s := torch.NewScope()
	defer s.Close()
	sp := syntheticAVMNIST(s, n, 42, benchDevice())
	if cfg.Dataset == "mimic" {
		sp = syntheticMIMIC(s, n, 42, benchDevice())
	}
	seeds := make([]uint64, k)
	for i := range seeds {
		seeds[i] = uint64(42 + i)
	}
	net, err := NewNetwork(cfg, seeds, benchDevice())
	if err != nil {
		b.Fatal(err)
	}
	defer net.Close()
	o := Options{Device: benchDevice(), Log: os.Stderr, NoGraphs: os.Getenv("M2MIX_BENCH_NOGRAPHS") != ""}
	tr, err := newTrainer(net, cfg, sp, o)
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	w := sameWeights(k, cfg.HeadWeights(cfg.Loss.WFusion))
	keys := make([]uint64, k)
	for i := range keys {
		keys[i] = epochSeed(int64(seeds[i]), 0)
	}
	// Warm-up: enough full batches to capture the graph on CUDA.
	if _, err := tr.epoch(firstRows(s, sp, min(int64(n), int64(cfg.BatchSize)*(graphWarmup+2))), nil, w, keys); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := tr.epoch(sp, nil, w, keys); err != nil {
			b.Fatal(err)
		}
		total += time.Since(t0)
	}
	if k == 1 {
		b.ReportMetric(float64(total.Microseconds())/float64(b.N*n), "us/sample")
		return
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N*n*k), "us/sample/model")
	b.ReportMetric(total.Seconds()/float64(b.N*k), "s/model-epoch")
}
