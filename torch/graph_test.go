package torch

import (
	"math"
	"os"
	"runtime"
	"strings"
	"testing"
)

// cudaTestDevice is the device M2MIX_TEST_DEVICE names (scripts/gpu-smoke.sh
// sets it); tests that need one skip without it.
func cudaTestDevice(t *testing.T) Device {
	dev := os.Getenv("M2MIX_TEST_DEVICE")
	if dev == "" {
		t.Skip("M2MIX_TEST_DEVICE not set (e.g. cuda)")
	}
	info, err := GetInfo()
	if err != nil {
		t.Fatal(err)
	}
	if info.CUDADevices == 0 {
		t.Fatalf("M2MIX_TEST_DEVICE=%s but libtorch sees no CUDA device (shim %s, libtorch %s)", dev, info.ShimPath, info.Version)
	}
	return Device(dev)
}

// TestGraphCUDA records y += 2x and, as a second capture, y += 1, and
// replays them with x changed in place between replays: recording must not
// run the work, each replay must read x's current values, and each capture
// must replay by its own index.
func TestGraphCUDA(t *testing.T) {
	dev := cudaTestDevice(t)
	if !GraphsAvailable() {
		t.Fatal("the shim on a CUDA machine was built without CUDA graphs (see the Makefile's CUDA_INCLUDE)")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	s := newTestScope(t)
	x := s.To(s.From([]float32{1, 2, 3}, 3), dev)
	y := s.Full(0, Float32, dev, 3)
	g, err := NewGraph(dev)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Begin(); err != nil {
		t.Fatal(err)
	}
	rec := NewScope()
	err = y.AddScaled(rec.MulScalar(x, 2), 1)
	double, endErr := g.End()
	if err == nil {
		err = endErr
	}
	rec.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Begin(); err != nil {
		t.Fatal(err)
	}
	err = y.Fill(0) // recorded, not run
	one, endErr := g.End()
	if err == nil {
		err = endErr
	}
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := y.Float32s(); v[0] != 0 {
		t.Fatalf("recording ran the work: y = %v", v)
	}
	for i := 0; i < 3; i++ {
		if i == 2 {
			x.CopyFrom(s.To(s.From([]float32{10, 20, 30}, 3), dev))
		}
		if err := g.Replay(double); err != nil {
			t.Fatal(err)
		}
	}
	if v, _ := y.Float32s(); v[0] != 24 || v[1] != 48 || v[2] != 72 {
		t.Fatalf("after replays y = %v, want [24 48 72]", v)
	}
	if err := g.Replay(one); err != nil {
		t.Fatal(err)
	}
	if err := g.Replay(7); err == nil {
		t.Fatal("replay of a capture that does not exist: no error")
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if v, _ := y.Float32s(); v[0] != 0 {
		t.Fatalf("after the second capture's replay y = %v, want zeros", v)
	}
}

// TestKeyedDropoutCUDA: the device's tensor-op masks, per site and from
// the per-step bank, equal the CPU loop's bit for bit.
func TestKeyedDropoutCUDA(t *testing.T) {
	dev := cudaTestDevice(t)
	s := newTestScope(t)
	keys := []uint64{3, 1 << 62, 12345}
	masks := func(d Device, noBank bool) []float32 {
		drop, err := NewKeyedDropout(d, len(keys), true)
		if err != nil {
			t.Fatal(err)
		}
		defer drop.Close()
		drop.NoBank = noBank
		drop.StartEpoch(keys)
		var all []float32
		for step := 0; step < 2; step++ { // the second step uses the bank
			for _, n := range []int64{7 * 129, 33} {
				v, err := s.To(drop.Apply(s, s.Full(1, Float32, d, 3, n), 0.1), CPU).Float32s()
				if err != nil {
					t.Fatal(err)
				}
				all = append(all, v...)
			}
			drop.EndStep()
		}
		return all
	}
	want := masks(CPU, true)
	if !equalFloats(want, masks(dev, true)) || !equalFloats(want, masks(dev, false)) {
		t.Fatal("CUDA masks differ from the CPU's")
	}
}

// TestFlatOptimizerAdamCUDA: the vectorized step on the GPU against the exact CPU step.
func TestFlatOptimizerAdamCUDA(t *testing.T) {
	dev := cudaTestDevice(t)
	s := newTestScope(t)
	run := func(d Device) []float32 {
		init := make([]float32, 2*3*5)
		for i := range init {
			init[i] = float32(math.Sin(float64(i)))
		}
		p := s.From(init, 2, 3, 5)
		if d != CPU {
			p = s.To(p, d)
		}
		p.SetRequiresGrad(true)
		opt, err := NewFlatOptimizer([]*Tensor{p}, 2, OptimizerSpec{Rule: RuleAdam, LR: 0.01})
		if err != nil {
			t.Fatal(err)
		}
		defer opt.Close()
		opt.SetLR(1, 0.05)
		for i := 0; i < 5; i++ {
			opt.SetActive(1, i < 3)
			opt.Sync()
			ls := NewScope()
			opt.ZeroGrad()
			ls.Sum(ls.Mul(p, ls.Mul(p, p)), false).Backward()
			if err := opt.Step(); err != nil {
				t.Fatal(err)
			}
			ls.Close()
		}
		v, _ := s.To(s.Detach(p), CPU).Float32s()
		return v
	}
	want, got := run(CPU), run(dev)
	for i := range want {
		if math.Abs(float64(got[i]-want[i])) > 1e-6*(1+math.Abs(float64(want[i]))) {
			t.Fatalf("element %d: CUDA %v, CPU %v", i, got[i], want[i])
		}
	}
}

// TestForbidHostTransfers checks the guard a capture sets: host reads and
// tensors made from host data fail, on that thread only, with a message that
// says why; device work and other threads go on; clearing it restores both.
func TestForbidHostTransfers(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	s := newTestScope(t)
	x := s.From([]float32{1, 2, 3}, 3)
	if err := ForbidHostTransfers(true); err != nil {
		t.Fatal(err)
	}
	y := s.MulScalar(x, 2) // device work: allowed
	_, readErr := y.Float32s()
	made := s.From([]float32{4}, 1)
	other := make(chan error)
	go func() { // another OS thread is not affected
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		_, err := x.Float32s()
		other <- err
	}()
	otherErr := <-other
	if err := ForbidHostTransfers(false); err != nil {
		t.Fatal(err)
	}
	if readErr == nil || !strings.Contains(readErr.Error(), "while recording a CUDA graph") {
		t.Errorf("host read under the guard: err = %v, want the recording error", readErr)
	}
	if made.Valid() || s.Err() == nil || !strings.Contains(s.Err().Error(), "host data") {
		t.Errorf("tensor from host data under the guard: scope error %v", s.Err())
	}
	if otherErr != nil {
		t.Errorf("another thread's read failed: %v", otherErr)
	}
	got, err := y.Float32s()
	if err != nil || len(got) != 3 || got[0] != 2 || got[2] != 6 {
		t.Errorf("after the guard: %v, %v; want [2 4 6]", got, err)
	}
}
