package model

import (
	"slices"
	"testing"

	"github.com/m2mix/m2mix/torch"
)

// TestHoldBuffersKeepsWaitingModels checks what the loop relies on for a
// model that waits or has stopped in a seed batch: a training-mode pass
// updates every model's BatchNorm running statistics, and holdBuffers puts
// the held models' back exactly, leaving the others' updates.
func TestHoldBuffersKeepsWaitingModels(t *testing.T) {
	cfg, err := LoadConfig("late_fusion")
	if err != nil {
		t.Fatal(err)
	}
	net, err := NewNetwork(cfg, []uint64{1, 2}, torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer net.Close()
	s := torch.NewScope()
	defer s.Close()
	sp := syntheticAVMNIST(s, 8, 3, torch.CPU)
	stats := func() map[string][]float32 {
		out := map[string][]float32{}
		for i, n := range net.Params.Names {
			if net.Params.buffers[n] {
				v, err := net.Params.Tensors[i].Float32s()
				if err != nil {
					t.Fatal(err)
				}
				out[n] = v
			}
		}
		return out
	}
	before := stats()
	if len(before) == 0 {
		t.Fatal("late_fusion has no buffers")
	}
	restore, err := net.Params.holdBuffers(s, []int{1})
	if err != nil {
		t.Fatal(err)
	}
	if err := torch.NoGrad(func() { net.Forward(s, sp.Batch(s), Mode{Train: true}) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	moved := stats()
	if err := restore(); err != nil {
		t.Fatal(err)
	}
	after := stats()
	for n, b := range before {
		half := len(b) / 2 // (K=2, C): model 0's values, then model 1's
		if slices.Equal(moved[n][:half], b[:half]) {
			t.Errorf("%s: the training-mode pass did not update model 0's statistics", n)
		}
		if !slices.Equal(after[n][:half], moved[n][:half]) {
			t.Errorf("%s: restoring model 1 changed model 0's statistics", n)
		}
		if !slices.Equal(after[n][half:], b[half:]) {
			t.Errorf("%s: model 1's statistics not restored", n)
		}
	}
}
