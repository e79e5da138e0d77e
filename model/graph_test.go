package model

import (
	"math"
	"os"
	"runtime"
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
	run := func(noGraphs bool) ([]float64, []float32) {
		net, err := NewStackedNetwork(cfg, seeds, dev)
		if err != nil {
			t.Fatal(err)
		}
		defer net.Close()
		tr, err := newStackedTrainer(net, cfg, len(seeds), sp, Options{Device: dev, NoGraphs: noGraphs, Log: testLog{t}})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		if !noGraphs && tr.graph == nil {
			t.Fatal("no graph on a CUDA device")
		}
		var losses []float64
		for epoch := 0; epoch < 2; epoch++ {
			tr.opt.SetLR(1, cfg.LR/(1+float64(epoch))) // a learning rate that changes between epochs
			l, err := tr.epoch(sp, cfg.HeadWeights(cfg.Loss.WFusion), []uint64{epochSeed(42, epoch), epochSeed(43, epoch)})
			if err != nil {
				t.Fatal(err)
			}
			losses = append(losses, l...)
		}
		if !noGraphs && !tr.captured {
			t.Fatal("the graph was never captured")
		}
		w, err := s.To(net.Params.Tensors[0], torch.CPU).Float32s()
		if err != nil {
			t.Fatal(err)
		}
		return losses, w
	}
	gl, gw := run(false)
	pl, pw := run(true)
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
