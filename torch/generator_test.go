package torch

import (
	"math"
	"testing"
)

// TestDropoutGen: masks are reproducible from the seed, keep about 1-p of
// the elements scaled by 1/(1-p), and slice k of a stacked draw equals what
// generator k draws alone for that slice's shape.
func TestDropoutGen(t *testing.T) {
	s := newTestScope(t)
	draw := func(seeds []uint64, shape ...int64) []float32 {
		g, err := NewGenerators(CPU, seeds...)
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		v, err := s.DropoutGen(s.Full(1, Float32, CPU, shape...), 0.25, g).Float32s()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	a, b := draw([]uint64{9}, 4001), draw([]uint64{9}, 4001)
	kept := 0
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed, element %d differs", i)
		}
		switch a[i] {
		case 0:
		case float32(1 / 0.75):
			kept++
		default:
			t.Fatalf("element %d = %v, want 0 or 1/(1-p)", i, a[i])
		}
	}
	if f := float64(kept) / 4001; math.Abs(f-0.75) > 0.03 {
		t.Fatalf("kept fraction %.3f, want about 0.75", f)
	}
	if c := draw([]uint64{10}, 4001); equalFloats(a, c) {
		t.Fatal("different seeds gave the same mask")
	}
	stacked := draw([]uint64{9, 10}, 2, 4001)
	if !equalFloats(stacked[:4001], a) || !equalFloats(stacked[4001:], draw([]uint64{10}, 4001)) {
		t.Fatal("a stacked draw differs from the models' lone draws")
	}
	g, _ := NewGenerators(CPU, 1, 2, 3)
	defer g.Close()
	s2 := newTestScope(t)
	s2.DropoutGen(s2.Full(1, Float32, CPU, 2, 5), 0.5, g)
	if s2.Err() == nil {
		t.Fatal("3 generators for a model axis of 2: no error")
	}
}

func equalFloats(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestGeneratorWithoutCUDA: asking for a CUDA stream where libtorch sees no
// GPU is an error, not a crash.
func TestGeneratorWithoutCUDA(t *testing.T) {
	info, err := GetInfo()
	if err != nil {
		t.Fatal(err)
	}
	if info.CUDADevices > 0 {
		t.Skip("a CUDA device is present")
	}
	if g, err := NewGenerators(Device("cuda"), 1); err == nil {
		g.Close()
		t.Fatal("CUDA generator made without CUDA")
	} else {
		t.Logf("as expected: %v", err)
	}
}
