package torch

import (
	"math"
	"testing"
)

// keyedMaskRef is the keyed dropout formula written out independently of
// the shim (see m2t_dropout_keyed): element i of a model with this key, at
// this step counter and site, is kept when its 24-bit draw (one of two from
// hash i/2) is at least ceil(p * 2^24).
func keyedMaskRef(key, counter, site uint64, n int, p float64) []float32 {
	mix := func(z uint64) uint64 {
		z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
		z = (z ^ (z >> 27)) * 0x94D049BB133111EB
		return z ^ (z >> 31)
	}
	base := mix(key + counter*0xD1B54A32D192ED03 + site*0xAEF17502108EF2D9)
	cut := uint64(math.Ceil(p * (1 << 24)))
	out := make([]float32, n)
	for i := range out {
		z := mix(base + uint64(i/2+1)*0x9E3779B97F4A7C15)
		u := z >> 40 // two 24-bit draws per hash
		if i%2 == 1 {
			u = (z >> 16) & 0xFFFFFF
		}
		if u >= cut {
			out[i] = float32(1 / (1 - p))
		}
	}
	return out
}

// TestKeyedDropout checks the masks against the formula written out in Go,
// the CPU loop against the tensor-op form the GPU runs (bit for bit), the
// kept fraction, that a stacked draw is each model's lone draw, and that
// sites and steps give fresh masks.
func TestKeyedDropout(t *testing.T) {
	const n, p = 5003, 0.25
	keys := []uint64{9, 1 << 63, 77}
	s := newTestScope(t)
	draw := func(keys []uint64, stacked, tensorOps bool, steps, sites int) []float32 {
		d, err := NewKeyedDropout(CPU, len(keys), stacked)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		d.TensorOps = tensorOps
		if err := d.StartEpoch(keys); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < steps; i++ {
			if err := d.EndStep(); err != nil {
				t.Fatal(err)
			}
		}
		shape := []int64{n}
		if stacked {
			shape = []int64{int64(len(keys)), n}
		}
		var v []float32
		for i := 0; i <= sites; i++ {
			var err error
			if v, err = d.Apply(s, s.Full(1, Float32, CPU, shape...), p).Float32s(); err != nil {
				t.Fatal(err)
			}
		}
		return v
	}
	for _, tensorOps := range []bool{false, true} {
		lone := draw(keys[1:2], false, tensorOps, 2, 1) // step 2, site 1
		if want := keyedMaskRef(keys[1], 2, 1, n, p); !equalFloats(lone, want) {
			t.Fatalf("tensorOps %v: mask differs from the formula", tensorOps)
		}
		stacked := draw(keys, true, tensorOps, 2, 1)
		for m, key := range keys {
			if !equalFloats(stacked[m*n:(m+1)*n], keyedMaskRef(key, 2, 1, n, p)) {
				t.Fatalf("tensorOps %v: stacked model %d differs from its lone mask", tensorOps, m)
			}
		}
	}
	a := draw(keys[:1], false, false, 0, 0)
	kept := 0
	for i, v := range a {
		switch v {
		case 0:
		case float32(1 / (1 - p)):
			kept++
		default:
			t.Fatalf("element %d = %v, want 0 or 1/(1-p)", i, v)
		}
	}
	if f := float64(kept) / n; math.Abs(f-(1-p)) > 0.03 {
		t.Fatalf("kept fraction %.3f, want about %.2f", f, 1-p)
	}
	for _, other := range [][]float32{draw(keys[:1], false, false, 1, 0), draw(keys[:1], false, false, 0, 1), draw(keys[1:2], false, false, 0, 0)} {
		if equalFloats(a, other) {
			t.Fatal("another step, site or key gave the same mask")
		}
	}

	// float64 inputs: both forms again.
	d, _ := NewKeyedDropout(CPU, 1, false)
	defer d.Close()
	d.StartEpoch(keys[:1])
	x := s.Full(1, Float64, CPU, 64)
	loop, _ := d.Apply(s, x, 0.5).Float64s()
	d.TensorOps, d.site = true, 0
	ops, _ := d.Apply(s, x, 0.5).Float64s()
	for i := range loop {
		if loop[i] != ops[i] || float32(loop[i]) != keyedMaskRef(keys[0], 0, 0, 64, 0.5)[i] {
			t.Fatalf("float64 element %d: loop %v, tensor ops %v", i, loop[i], ops[i])
		}
	}
}

// TestKeyedDropoutErrors: mismatched keys are an error naming the shapes.
func TestKeyedDropoutErrors(t *testing.T) {
	if _, err := NewKeyedDropout(CPU, 2, false); err == nil {
		t.Fatal("2 keys for an unstacked model: no error")
	}
	d, err := NewKeyedDropout(CPU, 3, true)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	s := newTestScope(t)
	d.Apply(s, s.Full(1, Float32, CPU, 2, 5), 0.5)
	if s.Err() == nil {
		t.Fatal("3 keys for a model axis of 2: no error")
	}
	t.Logf("as expected: %v", s.Err())
	s2 := newTestScope(t)
	d.Apply(s2, s2.Full(1, Float32, CPU, 3, 5), 1)
	if s2.Err() == nil {
		t.Fatal("p = 1: no error")
	}
}

// TestGraphsOnCPUBuild: a shim built without CUDA graphs says so, and asking
// for one is an error, not a crash.
func TestGraphsOnCPUBuild(t *testing.T) {
	if GraphsAvailable() {
		t.Skip("this shim has CUDA graphs (TestGraphCUDA covers it)")
	}
	if g, err := NewGraph(Device("cuda")); err == nil {
		g.Close()
		t.Fatal("a CUDA graph without CUDA graph support")
	} else {
		t.Logf("as expected: %v", err)
	}
}
