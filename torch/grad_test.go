package torch

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// newTestScope loads the shim or fails the test, and closes the scope at the end.
func newTestScope(t testing.TB) *Scope {
	t.Helper()
	if _, err := Load(); err != nil {
		t.Fatalf("%v", err)
	}
	s := NewScope()
	t.Cleanup(s.Close)
	return s
}

func randFloats(r *rand.Rand, n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = r.Float64()*2 - 1
	}
	return v
}

// like moves t to ref's device.
func like(s *Scope, t, ref *Tensor) *Tensor {
	d, err := ref.Device()
	if err != nil {
		return s.fail("like", err)
	}
	return s.To(t, d)
}

// gradCase is one differentiable op under test: f maps the leaf inputs to
// a tensor; the checked scalar is sum(f(x) * w) for a fixed random w.
type gradCase struct {
	name   string
	shapes [][]int64
	f      func(s *Scope, x []*Tensor) *Tensor
	// positive keeps inputs away from zero (for div, log, sqrt).
	positive bool
}

func gradCases() []gradCase {
	return []gradCase{
		{"add", [][]int64{{2, 3}, {3}}, func(s *Scope, x []*Tensor) *Tensor { return s.Add(x[0], x[1]) }, false},
		{"sub", [][]int64{{2, 3}, {2, 3}}, func(s *Scope, x []*Tensor) *Tensor { return s.Sub(x[0], x[1]) }, false},
		{"mul", [][]int64{{2, 3}, {2, 1}}, func(s *Scope, x []*Tensor) *Tensor { return s.Mul(x[0], x[1]) }, false},
		{"div", [][]int64{{2, 3}, {2, 3}}, func(s *Scope, x []*Tensor) *Tensor { return s.Div(x[0], x[1]) }, true},
		{"scalar forms", [][]int64{{4}}, func(s *Scope, x []*Tensor) *Tensor {
			return s.RSubScalar(s.DivScalar(s.MulScalar(s.SubScalar(s.AddScalar(x[0], 0.5), 0.25), 3), 2), 1)
		}, false},
		{"matmul batched", [][]int64{{2, 3, 4}, {4, 2}}, func(s *Scope, x []*Tensor) *Tensor { return s.MatMul(x[0], x[1]) }, false},
		{"linear", [][]int64{{3, 4}, {5, 4}, {5}}, func(s *Scope, x []*Tensor) *Tensor { return s.Linear(x[0], x[1], x[2]) }, false},
		{"conv2d patch", [][]int64{{2, 1, 4, 4}, {3, 1, 2, 2}, {3}}, func(s *Scope, x []*Tensor) *Tensor {
			return s.Conv2d(x[0], x[1], x[2], 2, 0)
		}, false},
		{"gelu", [][]int64{{6}}, func(s *Scope, x []*Tensor) *Tensor { return s.Gelu(s.MulScalar(x[0], 3)) }, false},
		{"relu", [][]int64{{6}}, func(s *Scope, x []*Tensor) *Tensor { return s.Relu(x[0]) }, false},
		{"layer_norm", [][]int64{{3, 5}, {5}, {5}}, func(s *Scope, x []*Tensor) *Tensor {
			return s.LayerNorm(x[0], 1, x[1], x[2], 1e-5)
		}, false},
		{"views", [][]int64{{2, 3, 4}}, func(s *Scope, x []*Tensor) *Tensor {
			y := s.Permute(s.Transpose(x[0], 0, 1), 2, 0, 1)
			return s.Reshape(s.Contiguous(y), 4, 6)
		}, false},
		{"cat", [][]int64{{2, 3}, {1, 3}}, func(s *Scope, x []*Tensor) *Tensor { return s.Cat(0, x[0], x[1]) }, false},
		{"narrow", [][]int64{{5, 2}}, func(s *Scope, x []*Tensor) *Tensor { return s.Narrow(x[0], 0, 1, 3) }, false},
		{"index_select", [][]int64{{5, 2}}, func(s *Scope, x []*Tensor) *Tensor {
			return s.IndexSelect(x[0], 0, like(s, s.From([]int64{4, 0, 4}, 3), x[0]))
		}, false},
		{"mean and sum", [][]int64{{2, 3, 4}}, func(s *Scope, x []*Tensor) *Tensor {
			return s.Add(s.Mean(x[0], false, 1), s.Sum(x[0], false, 1))
		}, false},
		{"softmax", [][]int64{{3, 4}}, func(s *Scope, x []*Tensor) *Tensor { return s.Softmax(x[0], 1) }, false},
		{"log_softmax", [][]int64{{3, 4}}, func(s *Scope, x []*Tensor) *Tensor { return s.LogSoftmax(x[0], -1) }, false},
		{"cross_entropy", [][]int64{{4, 3}}, func(s *Scope, x []*Tensor) *Tensor {
			return s.CrossEntropy(x[0], like(s, s.From([]int64{0, 2, 1, 2}, 4), x[0]), ReduceMean)
		}, false},
		{"exp log sqrt tanh", [][]int64{{4}}, func(s *Scope, x []*Tensor) *Tensor {
			return s.Add(s.Add(s.Exp(x[0]), s.Log(x[0])), s.Add(s.Sqrt(x[0]), s.Tanh(x[0])))
		}, true},
		{"conv2d groups", [][]int64{{1, 4, 4, 4}, {4, 2, 3, 3}}, func(s *Scope, x []*Tensor) *Tensor {
			return s.Conv2dGroups(x[0], x[1], nil, 1, 1, 2)
		}, false},
		{"batch_norm train", [][]int64{{3, 2, 2, 2}, {2}, {2}}, func(s *Scope, x []*Tensor) *Tensor {
			rm, rv := like(s, s.Full(0, Float64, CPU, 2), x[0]), like(s, s.Full(1, Float64, CPU, 2), x[0])
			return s.BatchNorm2d(x[0], x[1], x[2], rm, rv, true, 0.1, 1e-5)
		}, false},
		{"max_pool2d", [][]int64{{1, 2, 5, 5}}, func(s *Scope, x []*Tensor) *Tensor { return s.MaxPool2d(x[0], 2, 2) }, false},
		{"sigmoid clamp_min", [][]int64{{8}}, func(s *Scope, x []*Tensor) *Tensor {
			return s.ClampMin(s.Sigmoid(s.MulScalar(x[0], 3)), 0.4)
		}, false},
		{"cosine_similarity", [][]int64{{3, 4}, {3, 4}}, func(s *Scope, x []*Tensor) *Tensor {
			return s.CosineSimilarity(x[0], x[1], 1, 1e-8)
		}, false},
		{"eigh", [][]int64{{3, 3}}, func(s *Scope, x []*Tensor) *Tensor {
			// symmetric with separated eigenvalues; eigenvector projectors are sign-free
			a := s.Add(s.Add(x[0], s.Transpose(x[0], 0, 1)), like(s, s.From([]float64{0, 0, 0, 0, 4, 0, 0, 0, 8}, 3, 3), x[0]))
			vals, vecs := s.Eigh(a)
			return s.Add(s.MatMul(s.Mul(vecs, s.Reshape(vals, 1, 3)), s.Transpose(vecs, 0, 1)),
				s.Mul(s.Reshape(vals, 3, 1), s.Mul(vecs, vecs)))
		}, false},
		{"dropout (fixed seed)", [][]int64{{20}}, func(s *Scope, x []*Tensor) *Tensor {
			if err := ManualSeed(7); err != nil {
				panic(err)
			}
			return s.Dropout(x[0], 0.3, true)
		}, false},
	}
}

// TestGradients compares autograd with central finite differences in float64.
func TestGradients(t *testing.T) { checkGradients(t, CPU) }

// TestGradientsCUDA repeats the check on a GPU; it runs where
// M2MIX_TEST_DEVICE names one (scripts/gpu-smoke.sh sets it).
func TestGradientsCUDA(t *testing.T) { checkGradients(t, cudaTestDevice(t)) }

func checkGradients(t *testing.T, dev Device) {
	for _, tc := range gradCases() {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, uint64(len(tc.name))))
			inputs := make([][]float64, len(tc.shapes))
			for i, sh := range tc.shapes {
				n := int64(1)
				for _, d := range sh {
					n *= d
				}
				inputs[i] = randFloats(r, int(n))
				if tc.positive {
					for j := range inputs[i] {
						inputs[i][j] = 0.5 + math.Abs(inputs[i][j])
					}
				}
			}
			var w []float64
			// loss evaluates sum(f(x)*w); with grads it also returns d loss / d x.
			loss := func(vals [][]float64, wantGrad bool) (float64, [][]float64) {
				s := NewScope()
				defer s.Close()
				xs := make([]*Tensor, len(vals))
				for i, v := range vals {
					xs[i] = s.From(v, tc.shapes[i]...)
					if dev != CPU {
						xs[i] = s.To(xs[i], dev)
					}
					if err := xs[i].SetRequiresGrad(true); err != nil {
						t.Fatal(err)
					}
				}
				y := tc.f(s, xs)
				if w == nil {
					n, err := y.Numel()
					if err != nil {
						t.Fatal(err)
					}
					w = randFloats(r, int(n))
				}
				sh, _ := y.Shape()
				l := s.Sum(s.Mul(y, s.To(s.From(w, sh...), dev)), false)
				if s.Err() != nil {
					t.Fatal(s.Err())
				}
				v, err := l.Item()
				if err != nil {
					t.Fatal(err)
				}
				if !wantGrad {
					return v, nil
				}
				if err := l.Backward(); err != nil {
					t.Fatal(err)
				}
				grads := make([][]float64, len(xs))
				for i, x := range xs {
					g := s.Grad(x)
					if g == nil {
						t.Fatalf("input %d has no gradient", i)
					}
					if grads[i], err = g.Float64s(); err != nil {
						t.Fatal(err)
					}
				}
				return v, grads
			}
			_, grads := loss(inputs, true)
			const h = 1e-6
			for i := range inputs {
				for j := range inputs[i] {
					orig := inputs[i][j]
					inputs[i][j] = orig + h
					up, _ := loss(inputs, false)
					inputs[i][j] = orig - h
					down, _ := loss(inputs, false)
					inputs[i][j] = orig
					fd := (up - down) / (2 * h)
					if math.Abs(fd-grads[i][j]) > 1e-6*math.Max(1, math.Abs(fd)) {
						t.Errorf("input %d[%d]: autograd %.9g, finite difference %.9g", i, j, grads[i][j], fd)
					}
				}
			}
		})
	}
}

func TestForwardValues(t *testing.T) {
	s := newTestScope(t)
	check := func(name string, got *Tensor, want []float64, tol float64) {
		t.Helper()
		v, err := got.Float64s()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(v) != len(want) {
			t.Fatalf("%s: %d values, want %d", name, len(v), len(want))
		}
		for i := range v {
			if math.Abs(v[i]-want[i]) > tol {
				t.Errorf("%s[%d] = %.12g, want %.12g", name, i, v[i], want[i])
			}
		}
	}
	x := s.From([]float64{-1, 0, 1, 2}, 4)
	// GELU(x) = x * Phi(x) with Phi the normal CDF (erf form).
	phi := func(v float64) float64 { return 0.5 * (1 + math.Erf(v/math.Sqrt2)) }
	check("gelu", s.Gelu(x), []float64{-phi(-1), 0, phi(1), 2 * phi(2)}, 1e-12)
	check("relu", s.Relu(x), []float64{0, 0, 1, 2}, 0)
	// LayerNorm of [1,2,3]: mean 2, population variance 2/3.
	ln := s.LayerNorm(s.From([]float64{1, 2, 3}, 1, 3), 1, nil, nil, 0)
	sd := math.Sqrt(2.0 / 3)
	check("layer_norm", ln, []float64{-1 / sd, 0, 1 / sd}, 1e-12)
	// Linear: [1,2] @ [[1,0],[0,1],[1,1]]^T + [0.5,0,-1] = [1.5, 2, 2].
	lin := s.Linear(s.From([]float64{1, 2}, 1, 2), s.From([]float64{1, 0, 0, 1, 1, 1}, 3, 2), s.From([]float64{0.5, 0, -1}, 3))
	check("linear", lin, []float64{1.5, 2, 2}, 1e-12)
	// Cross-entropy of logits [0, ln 3] for class 1: -log(3/4).
	ce := s.CrossEntropy(s.From([]float64{0, math.Log(3)}, 1, 2), s.From([]int64{1}, 1), ReduceMean)
	check("cross_entropy", ce, []float64{-math.Log(0.75)}, 1e-12)
	check("softmax", s.Softmax(s.From([]float64{0, math.Log(3)}, 2), 0), []float64{0.25, 0.75}, 1e-12)
	// Conv2d with a 2x2 all-ones kernel at stride 2 sums each patch.
	img := s.From([]float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, 1, 1, 4, 4)
	conv := s.Conv2d(img, s.Full(1, Float64, CPU, 1, 1, 2, 2), nil, 2, 0)
	check("conv2d", conv, []float64{1 + 2 + 5 + 6, 3 + 4 + 7 + 8, 9 + 10 + 13 + 14, 11 + 12 + 15 + 16}, 1e-12)
	check("argmax", s.Argmax(s.From([]float64{0, 5, 2, 9, 1, 3}, 2, 3), 1), []float64{1, 0}, 0)
	check("mean all", s.Mean(x, false), []float64{0.5}, 1e-15)
	check("eval dropout is identity", s.Dropout(x, 0.5, false), []float64{-1, 0, 1, 2}, 0)
	if s.Err() != nil {
		t.Fatal(s.Err())
	}
}

func TestErrors(t *testing.T) {
	s := newTestScope(t)
	a := s.Zeros(CPU, 2, 3)
	b := s.Zeros(CPU, 4, 5)
	y := s.MatMul(a, b)
	if y.Valid() || s.Err() == nil || !strings.Contains(s.Err().Error(), "matmul") || !strings.Contains(s.Err().Error(), "cannot be multiplied") {
		t.Fatalf("shape mismatch: got %v", s.Err())
	}
	// The error sticks: a later valid op does nothing.
	if z := s.Add(a, a); z.Valid() {
		t.Fatal("operation ran after an error")
	}

	s2 := newTestScope(t)
	c := s2.Zeros(CPU, 3)
	c.Free()
	s2.Relu(c)
	if s2.Err() == nil || !strings.Contains(s2.Err().Error(), "freed") {
		t.Fatalf("freed tensor: got %v", s2.Err())
	}
	s3 := newTestScope(t)
	s3.Add(nil, s3.Zeros(CPU, 1))
	if s3.Err() == nil {
		t.Fatal("nil tensor: no error")
	}
	if _, err := c.Float32s(); err == nil {
		t.Fatal("read of freed tensor: no error")
	}
	if err := (&Tensor{}).Backward(); err == nil {
		t.Fatal("backward of nil handle: no error")
	}
	s4 := newTestScope(t)
	s4.From([]float32{1, 2, 3}, 2, 2)
	if s4.Err() == nil {
		t.Fatal("from with wrong shape: no error")
	}
	s5 := newTestScope(t)
	s5.To(s5.Zeros(CPU, 1), "nonsense:7")
	if s5.Err() == nil {
		t.Fatal("bad device: no error")
	}
}

func TestRoundTripAndMeta(t *testing.T) {
	s := newTestScope(t)
	f := s.From([]float32{1.5, -2, 3}, 3)
	if v, _ := f.Float32s(); v[0] != 1.5 || v[1] != -2 || v[2] != 3 {
		t.Fatalf("float32 round trip: %v", v)
	}
	u := s.From([]uint8{0, 7, 255}, 1, 3)
	if v, _ := u.Uint8s(); v[2] != 255 {
		t.Fatalf("uint8 round trip: %v", v)
	}
	if dt, _ := u.DType(); dt != Uint8 {
		t.Fatalf("dtype %v", dt)
	}
	if sh, _ := u.Shape(); len(sh) != 2 || sh[1] != 3 {
		t.Fatalf("shape %v", sh)
	}
	if d, _ := u.Device(); d != CPU {
		t.Fatalf("device %q", d)
	}
	i := s.ToDType(u, Int64)
	if v, _ := i.Int64s(); v[1] != 7 {
		t.Fatalf("int64 conversion: %v", v)
	}
	if s.Err() != nil {
		t.Fatal(s.Err())
	}
}

func TestDeterministicDropout(t *testing.T) {
	draw := func() []float32 {
		s := newTestScope(t)
		if err := ManualSeed(123); err != nil {
			t.Fatal(err)
		}
		v, err := s.Dropout(s.Full(1, Float32, CPU, 1000), 0.5, true).Float32s()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	a, b := draw(), draw()
	zeros := 0
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			t.Fatalf("element %d differs: %v vs %v", i, a[i], b[i])
		}
		if a[i] == 0 {
			zeros++
		} else if a[i] != 2 {
			t.Fatalf("kept element scaled to %v, want 2", a[i])
		}
	}
	if zeros < 400 || zeros > 600 {
		t.Fatalf("%d of 1000 dropped at p=0.5", zeros)
	}
}

func TestNoGrad(t *testing.T) {
	s := newTestScope(t)
	x := s.Full(2, Float32, CPU, 3)
	if err := x.SetRequiresGrad(true); err != nil {
		t.Fatal(err)
	}
	var y *Tensor
	if err := NoGrad(func() { y = s.MulScalar(x, 2) }); err != nil {
		t.Fatal(err)
	}
	if rg, _ := y.RequiresGrad(); rg {
		t.Fatal("result of an op under NoGrad requires grad")
	}
	if rg, _ := s.MulScalar(x, 2).RequiresGrad(); !rg {
		t.Fatal("grad mode not restored after NoGrad")
	}
}
