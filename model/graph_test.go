package model

import (
	"math"
	"os"
	"runtime"
	"slices"
	"testing"

	"github.com/m2mix/m2mix/torch"
)

// TestSeedBatchCUDAGraph trains K = 2 stacked M2-Mixer_S models for two
// epochs on a GPU twice, once replaying the CUDA graph and once with plain
// steps, from the same start: losses and final weights must agree to
// floating-point noise (GPU kernels may sum in different orders). It runs
// where M2MIX_TEST_DEVICE names a CUDA device (scripts/gpu-smoke.sh).
func TestSeedBatchCUDAGraph(t *testing.T) {
	dev := torch.Device(os.Getenv("M2MIX_TEST_DEVICE"))
	if dev == "" {
		t.Skip("M2MIX_TEST_DEVICE not set (e.g. cuda)")
	}
	if !torch.GraphsAvailable() {
		t.Fatal("the shim on a CUDA machine was built without CUDA graphs")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cfg, err := LoadConfig("m2mixer_s")
	if err != nil {
		t.Fatal(err)
	}
	s := torch.NewScope()
	defer s.Close()
	const n = 32*8 + 5 // 8 full batches and a partial one
	sp := syntheticAVMNIST(s, n, 7, dev)
	seeds := []uint64{42, 43}
	run := func(noGraphs bool) ([]float64, []float32, []*evaluation) {
		net, err := NewNetwork(cfg, seeds, dev)
		if err != nil {
			t.Fatal(err)
		}
		defer net.Close()
		tr, err := newTrainer(net, cfg, sp, Options{Device: dev, NoGraphs: noGraphs, Log: testLog{t}})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		if !noGraphs && tr.graph == nil {
			t.Fatal("no graph on a CUDA device")
		}
		var losses []float64
		var evs []*evaluation
		for epoch := 0; epoch < 2; epoch++ {
			tr.opt.SetLR(1, cfg.LR/(1+float64(epoch))) // a learning rate that changes between epochs
			l, err := tr.epoch(sp, nil, sameWeights(2, cfg.HeadWeights(cfg.Loss.WFusion)), []uint64{epochSeed(42, epoch), epochSeed(43, epoch)})
			if err != nil {
				t.Fatal(err)
			}
			losses = append(losses, l...)
			ev, err := tr.evaluate(sp, evalRows)
			if err != nil {
				t.Fatal(err)
			}
			evs = append(evs, ev...)
		}
		if !noGraphs && (!tr.captured || !tr.eval.captured) {
			t.Fatal("a graph was never captured")
		}
		w, err := s.To(net.Params.Tensors[0], torch.CPU).Float32s()
		if err != nil {
			t.Fatal(err)
		}
		return losses, w, evs
	}
	gl, gw, ge := run(false)
	pl, pw, pe := run(true)
	for i := range pe {
		for h, l := range pe[i].loss {
			if math.Abs(ge[i].loss[h]-l) > 1e-4*math.Abs(l) || math.Abs(ge[i].acc[h]-pe[i].acc[h]) > 0.02 {
				t.Fatalf("evaluation %d head %s: graph loss %v acc %v, plain %v %v", i, h, ge[i].loss[h], ge[i].acc[h], l, pe[i].acc[h])
			}
		}
	}
	for i := range gl {
		if math.Abs(gl[i]-pl[i]) > 1e-4*math.Abs(pl[i]) {
			t.Fatalf("loss %d: graph %v, plain %v", i, gl[i], pl[i])
		}
	}
	var diff, norm float64
	for i := range gw {
		diff += float64(gw[i]-pw[i]) * float64(gw[i]-pw[i])
		norm += float64(pw[i]) * float64(pw[i])
	}
	if rel := math.Sqrt(diff / norm); rel > 1e-4 {
		t.Fatalf("weights after training: graph and plain differ by %.3g (relative)", rel)
	}
	t.Logf("losses graph %v, plain %v", gl, pl)
}

// testLog sends a trainer's log lines to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) { l.t.Log(string(p)); return len(p), nil }

// fakeGraph stands in for a CUDA graph on the CPU. There is no recording:
// a step between Begin and End runs at once, so the replay right after a
// capture does nothing, and later replays of capture i call steps[i], which
// the test sets to the step run again on the graph's input rows. It checks
// the trainer's graph paths (warm-up, capture once, input rows copied before
// every replay, outputs taken from the capture) without a GPU; what only a
// real graph can get wrong, values frozen at capture, is left to
// TestSeedBatchCUDAGraph.
type fakeGraph struct {
	steps                     []func() error
	skip                      bool
	begins, captures, replays int
}

// Begin forbids host transfers on the thread, as a real capture does, so a
// step that reads values back (which a CUDA capture cannot record) fails here.
func (f *fakeGraph) Begin() error {
	f.begins++
	runtime.LockOSThread()
	return torch.ForbidHostTransfers(true)
}
func (f *fakeGraph) Close() error { return nil }
func (f *fakeGraph) End() (int, error) {
	defer runtime.UnlockOSThread()
	if err := torch.ForbidHostTransfers(false); err != nil {
		return 0, err
	}
	f.skip = true
	f.captures++
	return f.captures - 1, nil
}
func (f *fakeGraph) Replay(id int) error {
	if f.skip {
		f.skip = false
		return nil
	}
	f.replays++
	return f.steps[id]()
}

// useFakeGraph gives the trainer a stand-in graph whose replays rerun its
// training step and its evaluation step (captured in that order) on the
// graph's input rows.
func useFakeGraph(tr *trainer) *fakeGraph {
	fake := &fakeGraph{}
	tr.graph = fake
	train := func() error {
		s := torch.NewScope()
		defer s.Close()
		return tr.step(tr.input.Batch(s), tr.batch)
	}
	eval := func() error {
		s := torch.NewScope()
		defer s.Close()
		out, err := tr.evalStep(s, tr.eval.input.Batch(s), tr.eval.batch)
		for h, p := range out {
			if err == nil {
				err = tr.eval.pred[h].CopyFrom(p)
			}
		}
		return err
	}
	fake.steps = []func() error{train, eval}
	return fake
}

// TestHostTransfersPerEpoch checks that a training epoch and an evaluation
// copy between host and device a fixed number of times, however many
// batches they run (on a GPU each copy is a synchronisation point): 4 and
// 10 training batches, 2 and 5 evaluation batches, on the plain path with
// the GPU's forms of dropout and Adam, and through the graph path.
func TestHostTransfersPerEpoch(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	trainSmall, trainLarge := syntheticAVMNIST(s, 32*4, 7, torch.CPU), syntheticAVMNIST(s, 32*10+5, 8, torch.CPU)
	valSmall, valLarge := syntheticAVMNIST(s, evalRows*2, 9, torch.CPU), syntheticAVMNIST(s, evalRows*5+3, 10, torch.CPU)
	cfg, err := LoadConfig("m2mixer_s")
	if err != nil {
		t.Fatal(err)
	}
	count := func(f func() error) int64 {
		t.Helper()
		before, err := torch.HostTransfers()
		if err == nil {
			err = f()
		}
		after, err2 := torch.HostTransfers()
		if err == nil {
			err = err2
		}
		if err != nil {
			t.Fatal(err)
		}
		return after - before
	}
	for _, graphs := range []bool{false, true} {
		net, err := NewNetwork(cfg, []uint64{42, 43}, torch.CPU)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := newTrainer(net, cfg, trainSmall, Options{Device: torch.CPU})
		if err != nil {
			t.Fatal(err)
		}
		tr.drop.TensorOps, tr.opt.Exact = true, false
		var fake *fakeGraph
		if graphs {
			fake = useFakeGraph(tr)
		}
		weights := sameWeights(2, cfg.HeadWeights(cfg.Loss.WFusion))
		epoch := func(sp *Split) func() error {
			return func() error { _, err := tr.epoch(sp, nil, weights, []uint64{1, 2}); return err }
		}
		eval := func(sp *Split) func() error {
			return func() error { _, err := tr.evaluate(sp, evalRows); return err }
		}
		count(epoch(trainSmall)) // warm-up and captures happen here
		count(eval(valSmall))
		small, large := count(epoch(trainSmall)), count(epoch(trainLarge))
		evSmall, evLarge := count(eval(valSmall)), count(eval(valLarge))
		if small != large || evSmall != evLarge {
			t.Errorf("graphs %v: a training epoch made %d host transfers with 4 batches, %d with 11; an evaluation %d with 2 batches, %d with 6",
				graphs, small, large, evSmall, evLarge)
		}
		if graphs && (fake.begins != 2 || fake.replays == 0) {
			t.Errorf("graph path: %d captures, %d replays", fake.begins, fake.replays)
		}
		t.Logf("graphs %v: %d host transfers per training epoch, %d per evaluation", graphs, small, evSmall)
		tr.Close()
		net.Close()
	}
}

// trainTwoEpochs trains K = 2 stacked M2-Mixer_S models for two epochs on
// sp, evaluating on val after each, and returns the training losses, the
// evaluations and every parameter's values; prepare adjusts the trainer first.
func trainTwoEpochs(t *testing.T, sp, val *Split, prepare func(*trainer)) ([]float64, []*evaluation, [][]float32) {
	t.Helper()
	cfg, err := LoadConfig("m2mixer_s")
	if err != nil {
		t.Fatal(err)
	}
	seeds := []uint64{42, 43}
	net, err := NewNetwork(cfg, seeds, torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	tr, err := newTrainer(net, cfg, sp, Options{Device: torch.CPU})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	prepare(tr)
	var losses []float64
	var evs []*evaluation
	for epoch := 0; epoch < 2; epoch++ {
		tr.opt.SetLR(1, cfg.LR/(1+float64(epoch)))
		l, err := tr.epoch(sp, nil, sameWeights(2, cfg.HeadWeights(cfg.Loss.WFusion)), []uint64{epochSeed(42, epoch), epochSeed(43, epoch)})
		if err != nil {
			t.Fatal(err)
		}
		losses = append(losses, l...)
		ev, err := tr.evaluate(val, evalRows)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev...)
	}
	var params [][]float32
	for _, p := range net.Params.Tensors {
		v, err := p.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		params = append(params, v)
	}
	return losses, evs, params
}

const evalRows = 64 // evaluation batch of the graph tests

// TestGraphStepFlow runs the trainer's CUDA-graph paths on the CPU with a
// stand-in graph: the same training losses, evaluations and weights, bit for
// bit, as plain steps; one capture of each step after its warm-up; every
// later full batch replayed.
func TestGraphStepFlow(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	const full, evalFull = 6, 3
	sp := syntheticAVMNIST(s, 32*full+5, 7, torch.CPU)
	val := syntheticAVMNIST(s, evalRows*evalFull+10, 9, torch.CPU)
	plainLoss, plainEval, plainParams := trainTwoEpochs(t, sp, val, func(*trainer) {})
	var fake *fakeGraph
	graphLoss, graphEval, graphParams := trainTwoEpochs(t, sp, val, func(tr *trainer) {
		fake = useFakeGraph(tr)
	})
	trainReplays := 2*full - graphWarmup - 1
	evalReplays := 2*evalFull - 2
	if fake.begins != 2 || fake.replays != trainReplays+evalReplays {
		t.Fatalf("%d captures and %d replays, want 2 and %d", fake.begins, fake.replays, trainReplays+evalReplays)
	}
	for i := range plainLoss {
		if plainLoss[i] != graphLoss[i] {
			t.Fatalf("loss %d: plain %v, graph path %v", i, plainLoss[i], graphLoss[i])
		}
	}
	for i := range plainEval {
		a, b := plainEval[i], graphEval[i]
		for h := range a.loss {
			if a.loss[h] != b.loss[h] || !slices.Equal(a.pred[h], b.pred[h]) {
				t.Fatalf("evaluation %d head %s: loss %v / %v, or predictions differ", i, h, a.loss[h], b.loss[h])
			}
		}
	}
	for i := range plainParams {
		if !slices.Equal(plainParams[i], graphParams[i]) {
			t.Fatalf("parameter %d differs between plain steps and the graph path", i)
		}
	}
}

// TestSeedBatchDeviceForms trains on the CPU with what a GPU runs instead
// of the CPU's exact forms: masks from integer tensor ops (bit-identical to
// the CPU loop's) and the vectorized flat Adam (equal up to rounding).
func TestSeedBatchDeviceForms(t *testing.T) {
	s := torch.NewScope()
	defer s.Close()
	sp := syntheticAVMNIST(s, 32*4, 8, torch.CPU)
	val := syntheticAVMNIST(s, 70, 9, torch.CPU)
	cpuLoss, _, cpuParams := trainTwoEpochs(t, sp, val, func(*trainer) {})
	devLoss, _, devParams := trainTwoEpochs(t, sp, val, func(tr *trainer) {
		tr.drop.TensorOps, tr.opt.Exact = true, false
	})
	for i := range cpuLoss {
		if rel := math.Abs(cpuLoss[i]-devLoss[i]) / math.Abs(cpuLoss[i]); rel > 1e-5 {
			t.Fatalf("loss %d: exact forms %v, device forms %v", i, cpuLoss[i], devLoss[i])
		}
	}
	var diff, norm float64
	for i := range cpuParams {
		for j := range cpuParams[i] {
			d := float64(cpuParams[i][j] - devParams[i][j])
			diff += d * d
			norm += float64(cpuParams[i][j]) * float64(cpuParams[i][j])
		}
	}
	if rel := math.Sqrt(diff / norm); rel > 1e-5 || rel == 0 {
		t.Fatalf("weights: exact and device forms differ by %.3g (relative; 0 would mean the device forms did not run)", rel)
	}
}
