package torch

import (
	"math"
	"testing"
)

// keyedMaskRef is the keyed dropout formula written out independently of
// the shim (see keyed_mask in m2t.cpp): element e (counted through the
// step) of a model with this key, at this step counter, is kept when its
// 24-bit draw (one of two from hash e/2) is at least ceil(p * 2^24).
func keyedMaskRef(key, counter uint64, offset, n int, p float64) []float32 {
	mix := func(z uint64) uint64 {
		z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
		z = (z ^ (z >> 27)) * 0x94D049BB133111EB
		return z ^ (z >> 31)
	}
	base := mix(key + counter*0xD1B54A32D192ED03)
	cut := uint64(math.Ceil(p * (1 << 24)))
	out := make([]float32, n)
	for i := range out {
		e := offset + i
		z := mix(base + uint64(e/2+1)*0x9E3779B97F4A7C15)
		u := z >> 40 // two 24-bit draws per hash
		if e%2 == 1 {
			u = (z >> 16) & 0xFFFFFF
		}
		if u >= cut {
			out[i] = float32(1 / (1 - p))
		}
	}
	return out
}

// dropSteps runs steps of dropout sites on ones and returns every site's
// output, step by step: sites[i] is (elements per model, p).
func dropSteps(t *testing.T, keys []uint64, stacked bool, configure func(*KeyedDropout), steps int, sites [][2]float64) [][][]float32 {
	t.Helper()
	d, err := NewKeyedDropout(CPU, len(keys), stacked)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	configure(d)
	if err := d.StartEpoch(keys); err != nil {
		t.Fatal(err)
	}
	var out [][][]float32
	for step := 0; step < steps; step++ {
		ss := NewScope()
		var got [][]float32
		for _, site := range sites {
			shape := []int64{int64(site[0])}
			if stacked {
				shape = []int64{int64(len(keys)), int64(site[0])}
			}
			v, err := d.Apply(ss, ss.Full(1, Float32, CPU, shape...), site[1]).Float32s()
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, v)
		}
		ss.Close()
		if err := d.EndStep(); err != nil {
			t.Fatal(err)
		}
		out = append(out, got)
	}
	return out
}

// TestKeyedDropout checks the masks against the formula written out in Go,
// for the CPU loop, the tensor-op form the GPU runs and the per-step bank
// alike (bit for bit), stacked and alone; a site of another rate or size
// than the bank still gets the formula's masks; and the kept fraction.
func TestKeyedDropout(t *testing.T) {
	keys := []uint64{9, 1 << 63, 77}
	// An odd-sized first site puts the next one at an odd offset; the third
	// site has another rate, so it cannot use the bank.
	sites := [][2]float64{{1001, 0.25}, {4002, 0.25}, {63, 0.5}, {7, 0.25}}
	forms := map[string]func(*KeyedDropout){
		"loop, per site":   func(d *KeyedDropout) { d.NoBank = true },
		"loop, bank":       func(d *KeyedDropout) {},
		"tensor ops, site": func(d *KeyedDropout) { d.NoBank, d.TensorOps = true, true },
		"tensor ops, bank": func(d *KeyedDropout) { d.TensorOps = true },
	}
	for name, form := range forms {
		for _, stacked := range []bool{false, true} {
			ks := keys[1:2]
			if stacked {
				ks = keys
			}
			got := dropSteps(t, ks, stacked, form, 3, sites)
			for step := range got {
				offset := 0
				for si, site := range sites {
					n := int(site[0])
					for m, key := range ks {
						if want := keyedMaskRef(key, uint64(step), offset, n, site[1]); !equalFloats(got[step][si][m*n:(m+1)*n], want) {
							t.Fatalf("%s, stacked %v: step %d site %d model %d differs from the formula", name, stacked, step, si, m)
						}
					}
					offset += n
				}
			}
		}
	}
	a := keyedMaskRef(keys[0], 0, 0, 5003, 0.25)
	kept := 0
	for _, v := range a {
		if v != 0 {
			kept++
		}
	}
	if f := float64(kept) / 5003; math.Abs(f-0.75) > 0.03 {
		t.Fatalf("kept fraction %.3f, want about 0.75", f)
	}
	if equalFloats(a, keyedMaskRef(keys[0], 1, 0, 5003, 0.25)) || equalFloats(a, keyedMaskRef(keys[1], 0, 0, 5003, 0.25)) {
		t.Fatal("another step or key gave the same mask")
	}

	// float64 inputs: both forms again.
	s := newTestScope(t)
	x := s.Full(1, Float64, CPU, 64)
	var outs [2][]float64
	for i, ops := range []bool{false, true} {
		d, _ := NewKeyedDropout(CPU, 1, false)
		d.TensorOps = ops
		d.StartEpoch(keys[:1])
		outs[i], _ = d.Apply(s, x, 0.5).Float64s()
		d.Close()
	}
	ref := keyedMaskRef(keys[0], 0, 0, 64, 0.5)
	for i := range ref {
		if outs[0][i] != outs[1][i] || float32(outs[0][i]) != ref[i] {
			t.Fatalf("float64 element %d: loop %v, tensor ops %v", i, outs[0][i], outs[1][i])
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
	d.Rewind()
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
