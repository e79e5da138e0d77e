package torch

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// refInput is one input of a refCase: its shape, whether autograd tracks
// it, and how its values are drawn (uniform in [-1, 1), or shifted up to
// [lo, lo + 2) when lo is set).
type refInput struct {
	shape []int64
	grad  bool
	lo    float64
}

// refCase is an op checked against PyTorch: goF and py (Python setting out
// from x, see testdata/ops_reference.py) compute the same outputs from the
// same inputs; the outputs and the gradients of sum_i sum(out[i] * w[i])
// (w random, over the outputs that require grad) must agree to tol.
type refCase struct {
	name   string
	inputs []refInput
	goF    func(s *Scope, x []*Tensor) []*Tensor
	py     string
	tol    float64
}

// Running statistics of the batch-norm cases: (K, C) stacked buffers whose
// rows are one model's, as the networks keep them.
const bnK, bnC = 2, 3

// opRefCases are the ops added for the baselines, each forward and backward.
func opRefCases() []refCase {
	many := func(ts ...*Tensor) []*Tensor { return ts }
	// bnStats are the initial (K, C) running mean and (positive) variance.
	bnStats := []refInput{{shape: []int64{bnK, bnC}}, {shape: []int64{bnK, bnC}, lo: 0.5}}
	return []refCase{
		{name: "conv2d groups=2 with bias",
			inputs: []refInput{{shape: []int64{2, 6, 7, 7}, grad: true}, {shape: []int64{8, 3, 3, 3}, grad: true}, {shape: []int64{8}, grad: true}},
			goF: func(s *Scope, x []*Tensor) []*Tensor {
				return many(s.Conv2dGroups(x[0], x[1], x[2], 1, 1, 2))
			},
			py: "out = [F.conv2d(x[0], x[1], x[2], stride=1, padding=1, groups=2)]"},
		{name: "conv2d groups=3 no bias stride 2",
			inputs: []refInput{{shape: []int64{2, 6, 9, 9}, grad: true}, {shape: []int64{6, 2, 5, 5}, grad: true}},
			goF: func(s *Scope, x []*Tensor) []*Tensor {
				return many(s.Conv2dGroups(x[0], x[1], nil, 2, 0, 3))
			},
			py: "out = [F.conv2d(x[0], x[1], None, stride=2, groups=3)]"},
		{name: "conv2d groups=1 no bias",
			inputs: []refInput{{shape: []int64{2, 2, 6, 6}, grad: true}, {shape: []int64{3, 2, 3, 3}, grad: true}},
			goF: func(s *Scope, x []*Tensor) []*Tensor {
				return many(s.Conv2d(x[0], x[1], nil, 1, 2))
			},
			py: "out = [F.conv2d(x[0], x[1], None, padding=2)]"},
		{name: "batch_norm train, stacked running statistics",
			// x is (N, K*C, H, W): K models laid out as channels; the running
			// statistics are views of (K, C) buffers, which must come back updated.
			inputs: append([]refInput{{shape: []int64{4, bnK * bnC, 3, 3}, grad: true}, {shape: []int64{bnK * bnC}, grad: true, lo: 0.5},
				{shape: []int64{bnK * bnC}, grad: true}, {shape: []int64{4, bnK * bnC, 3, 3}}}, bnStats...),
			goF: func(s *Scope, x []*Tensor) []*Tensor {
				rm, rv := s.Clone(x[4]), s.Clone(x[5])
				vm, vv := s.Reshape(rm, bnK*bnC), s.Reshape(rv, bnK*bnC)
				y1 := s.BatchNorm2d(x[0], x[1], x[2], vm, vv, true, 0.3, 1e-5)
				y2 := s.BatchNorm2d(s.Add(x[0], x[3]), x[1], x[2], vm, vv, true, 0.3, 1e-5)
				return many(y1, y2, s.BatchNorm2d(x[0], x[1], x[2], vm, vv, false, 0.3, 1e-5), rm, rv)
			},
			py: `rm, rv = x[4].clone(), x[5].clone()
vm, vv = rm.reshape(-1), rv.reshape(-1)
y1 = F.batch_norm(x[0], vm, vv, x[1], x[2], training=True, momentum=0.3, eps=1e-5)
y2 = F.batch_norm(x[0] + x[3], vm, vv, x[1], x[2], training=True, momentum=0.3, eps=1e-5)
out = [y1, y2, F.batch_norm(x[0], vm, vv, x[1], x[2], training=False, momentum=0.3, eps=1e-5), rm, rv]`},
		{name: "batch_norm one model's row of the buffer, no affine",
			inputs: append([]refInput{{shape: []int64{5, bnC, 2, 4}, grad: true}}, bnStats...),
			goF: func(s *Scope, x []*Tensor) []*Tensor {
				rm, rv := s.Clone(x[1]), s.Clone(x[2])
				vm, vv := s.Reshape(s.Narrow(rm, 0, 1, 1), bnC), s.Reshape(s.Narrow(rv, 0, 1, 1), bnC)
				return many(s.BatchNorm2d(x[0], nil, nil, vm, vv, true, 0.1, 1e-3), rm, rv)
			},
			py: `rm, rv = x[1].clone(), x[2].clone()
out = [F.batch_norm(x[0], rm[1], rv[1], None, None, training=True, momentum=0.1, eps=1e-3), rm, rv]`},
		{name: "batch_norm eval",
			inputs: []refInput{{shape: []int64{3, 4, 5, 5}, grad: true}, {shape: []int64{4}, grad: true}, {shape: []int64{4}, grad: true},
				{shape: []int64{4}}, {shape: []int64{4}, lo: 0.5}},
			goF: func(s *Scope, x []*Tensor) []*Tensor {
				return many(s.BatchNorm2d(x[0], x[1], x[2], x[3], x[4], false, 0.1, 1e-5), x[3], x[4])
			},
			py: "out = [F.batch_norm(x[0], x[3], x[4], x[1], x[2], training=False, eps=1e-5), x[3], x[4]]"},
		{name: "max_pool2d 2x2 (odd size, floor)",
			inputs: []refInput{{shape: []int64{2, 3, 7, 9}, grad: true}},
			goF:    func(s *Scope, x []*Tensor) []*Tensor { return many(s.MaxPool2d(x[0], 2, 2)) },
			py:     "out = [F.max_pool2d(x[0], 2, 2)]"},
		{name: "max_pool2d 3x3 stride 2 (overlapping)",
			inputs: []refInput{{shape: []int64{1, 2, 8, 8}, grad: true}},
			goF:    func(s *Scope, x []*Tensor) []*Tensor { return many(s.MaxPool2d(x[0], 3, 2)) },
			py:     "out = [F.max_pool2d(x[0], 3, 2)]"},
		{name: "sigmoid and tanh",
			inputs: []refInput{{shape: []int64{3, 5}, grad: true}},
			goF: func(s *Scope, x []*Tensor) []*Tensor {
				return many(s.Sigmoid(s.MulScalar(x[0], 4)), s.Tanh(s.MulScalar(x[0], 2)))
			},
			py: "out = [torch.sigmoid(x[0] * 4), torch.tanh(x[0] * 2)]"},
		{name: "clamp_min",
			inputs: []refInput{{shape: []int64{4, 6}, grad: true}},
			goF:    func(s *Scope, x []*Tensor) []*Tensor { return many(s.ClampMin(x[0], 0.1)) },
			py:     "out = [torch.clamp_min(x[0], 0.1)]"},
		{name: "cosine_similarity",
			inputs: []refInput{{shape: []int64{4, 5}, grad: true}, {shape: []int64{4, 5}, grad: true}, {shape: []int64{1, 3, 4}, grad: true}},
			goF: func(s *Scope, x []*Tensor) []*Tensor {
				// dim 1 of equal shapes; the last dim with broadcasting (3, 4) against (2, 3, 4)
				return many(s.CosineSimilarity(x[0], x[1], 1, 1e-8),
					s.CosineSimilarity(x[2], s.Reshape(s.Narrow(s.Reshape(x[0], 20), 0, 0, 12), 1, 3, 4), -1, 1e-8))
			},
			py: "out = [F.cosine_similarity(x[0], x[1], 1, 1e-8), F.cosine_similarity(x[2], x[0].reshape(20)[:12].reshape(1, 3, 4), -1, 1e-8)]"},
		{name: "eigh, batched, eigenvalues and eigenvector projectors",
			// A = X + X^T + diag(0, 3, 6, 9): symmetric with well-separated
			// eigenvalues. The projectors v v^T do not depend on each
			// eigenvector's sign, which LAPACK may choose either way.
			inputs: []refInput{{shape: []int64{2, 4, 4}, grad: true}, {shape: []int64{4, 4}}},
			goF: func(s *Scope, x []*Tensor) []*Tensor {
				a := s.Add(s.Add(x[0], s.Transpose(x[0], 1, 2)), x[1])
				vals, vecs := s.Eigh(a)
				vt := s.Transpose(vecs, 1, 2) // (2, i, a): eigenvector i
				proj := s.Mul(s.Reshape(vt, 2, 4, 4, 1), s.Reshape(vt, 2, 4, 1, 4))
				return many(vals, proj)
			},
			py: `a = x[0] + x[0].transpose(1, 2) + x[1]
vals, vecs = torch.linalg.eigh(a)
vt = vecs.transpose(1, 2)
out = [vals, vt.reshape(2, 4, 4, 1) * vt.reshape(2, 4, 1, 4)]`},
	}
}

// eighShift is the fixed diagonal that separates the eigenvalues in the eigh case.
var eighShift = []float64{0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 6, 0, 0, 0, 0, 9}

// TestOpsAgainstPyTorch runs each new op and its gradient here and in
// PyTorch from the same float64 inputs.
func TestOpsAgainstPyTorch(t *testing.T) {
	type pyIn struct {
		Data  []float64 `json:"data"`
		Shape []int64   `json:"shape"`
		Grad  bool      `json:"grad"`
	}
	type pyCase struct {
		Name   string      `json:"name"`
		Code   string      `json:"code"`
		Inputs []pyIn      `json:"inputs"`
		W      [][]float64 `json:"w"`
	}
	type pyOut struct {
		Outputs [][]float64 `json:"outputs"`
		Grads   [][]float64 `json:"grads"`
	}
	cases := opRefCases()
	s := newTestScope(t)
	var req []pyCase
	type ours struct{ outputs, grads [][]float64 }
	got := map[string]ours{}
	for ci, c := range cases {
		r := rand.New(rand.NewPCG(16, uint64(ci)))
		pc := pyCase{Name: c.name, Code: c.py}
		var xs []*Tensor
		for _, in := range c.inputs {
			n := int64(1)
			for _, d := range in.shape {
				n *= d
			}
			v := randFloats(r, int(n))
			if in.lo != 0 {
				for i := range v {
					v[i] += 1 + in.lo
				}
			}
			if strings.HasPrefix(c.name, "eigh") && !in.grad {
				v = eighShift
			}
			x := s.From(v, in.shape...)
			if in.grad {
				x.SetRequiresGrad(true)
			}
			xs = append(xs, x)
			pc.Inputs = append(pc.Inputs, pyIn{Data: v, Shape: in.shape, Grad: in.grad})
		}
		ys := c.goF(s, xs)
		var loss *Tensor
		var res ours
		for _, y := range ys {
			v, err := y.Float64s()
			if err != nil {
				t.Fatalf("%s: %v (scope: %v)", c.name, err, s.Err())
			}
			res.outputs = append(res.outputs, v)
			w := randFloats(r, len(v))
			pc.W = append(pc.W, w)
			if rg, _ := y.RequiresGrad(); rg {
				sh, _ := y.Shape()
				term := s.Sum(s.Mul(y, s.From(w, sh...)), false)
				if loss == nil {
					loss = term
				} else {
					loss = s.Add(loss, term)
				}
			}
		}
		if err := loss.Backward(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for i, x := range xs {
			var g []float64
			if c.inputs[i].grad {
				gt := s.Grad(x)
				if gt == nil {
					t.Fatalf("%s: input %d has no gradient", c.name, i)
				}
				g, _ = gt.Float64s()
			}
			res.grads = append(res.grads, g)
		}
		if s.Err() != nil {
			t.Fatalf("%s: %v", c.name, s.Err())
		}
		got[c.name] = res
		req = append(req, pc)
	}
	var ref map[string]pyOut
	runTorchRef(t, "ops_reference.py", req, &ref)
	for _, c := range cases {
		tol := c.tol
		if tol == 0 {
			tol = 1e-12
		}
		g, want := got[c.name], ref[c.name]
		worst := 0.0
		if len(want.Outputs) != len(g.outputs) {
			t.Fatalf("%s: PyTorch gave %d outputs, we %d", c.name, len(want.Outputs), len(g.outputs))
		}
		for i := range g.outputs {
			d, err := relDiff(g.outputs[i], want.Outputs[i])
			worst = math.Max(worst, d)
			if err != nil || d > tol {
				t.Errorf("%s: output %d differs from PyTorch by %.3g (%v)", c.name, i, d, err)
			}
		}
		for i := range g.grads {
			if g.grads[i] == nil {
				continue
			}
			d, err := relDiff(g.grads[i], want.Grads[i])
			worst = math.Max(worst, d)
			if err != nil || d > tol {
				t.Errorf("%s: gradient of input %d differs from PyTorch by %.3g (%v)", c.name, i, d, err)
			}
		}
		t.Logf("%s: largest relative difference from PyTorch %.3g", c.name, worst)
	}
}

// TestBatchNormRunningStatsInPlace: the running statistics are updated in
// the storage of the stacked buffer they view, and by PyTorch's rule
// (momentum, unbiased variance), checked by hand for one channel.
func TestBatchNormRunningStatsInPlace(t *testing.T) {
	s := newTestScope(t)
	// Two models' stats, C = 1 each; x (N=2, K*C=2, 1, 2): model 0's values 1, 2, 3, 5; model 1's 0 four times.
	x := s.From([]float64{1, 2, 0, 0, 3, 5, 0, 0}, 2, 2, 1, 2)
	mean := s.From([]float64{10, 20}, 2, 1)
	vr := s.From([]float64{1, 2}, 2, 1)
	y := s.BatchNorm2d(x, nil, nil, s.Reshape(mean, 2), s.Reshape(vr, 2), true, 0.25, 0)
	m, _ := mean.Float64s()
	v, _ := vr.Float64s()
	if s.Err() != nil {
		t.Fatal(s.Err())
	}
	// Model 0: batch mean 11/4, unbiased variance sum((x - 2.75)^2) / 3 = 8.75 / 3.
	want := []float64{0.75*10 + 0.25*2.75, 0.75 * 20, 0.75*1 + 0.25*8.75/3, 0.75 * 2}
	got := append(m, v...)
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-12 {
			t.Fatalf("running statistics %v, want %v", got, want)
		}
	}
	// Normalised with the biased variance 8.75 / 4.
	yv, _ := y.Float64s()
	if math.Abs(yv[0]-(1-2.75)/math.Sqrt(8.75/4)) > 1e-12 {
		t.Fatalf("normalised value %v", yv[0])
	}
}

// TestEighProperties: A V = V diag(λ), V orthonormal, λ ascending.
func TestEighProperties(t *testing.T) {
	s := newTestScope(t)
	a := s.From([]float64{4, 1, 0.5, 1, 3, -1, 0.5, -1, 2}, 3, 3)
	vals, vecs := s.Eigh(a)
	av := s.MatMul(a, vecs)
	vl := s.Mul(vecs, s.Reshape(vals, 1, 3))
	vtv := s.MatMul(s.Transpose(vecs, 0, 1), vecs)
	l, _ := vals.Float64s()
	d1, _ := s.Sub(av, vl).Float64s()
	eye, _ := vtv.Float64s()
	if s.Err() != nil {
		t.Fatal(s.Err())
	}
	if !(l[0] < l[1] && l[1] < l[2]) || math.Abs(l[0]+l[1]+l[2]-9) > 1e-12 {
		t.Fatalf("eigenvalues %v: want ascending with trace 9", l)
	}
	for i := range d1 {
		if math.Abs(d1[i]) > 1e-12 {
			t.Fatalf("A V - V Λ = %v", d1)
		}
		want := 0.0
		if i%4 == 0 {
			want = 1
		}
		if math.Abs(eye[i]-want) > 1e-12 {
			t.Fatalf("VᵀV = %v", eye)
		}
	}
}

// TestNewOpErrors: bad shapes and arguments give a Go error naming the op.
func TestNewOpErrors(t *testing.T) {
	cases := []struct {
		name, want string
		f          func(s *Scope)
	}{
		{"conv groups do not divide channels", "conv2d", func(s *Scope) {
			s.Conv2dGroups(s.Zeros(CPU, 1, 5, 4, 4), s.Zeros(CPU, 4, 2, 3, 3), nil, 1, 0, 2)
		}},
		{"conv weight not 4-D", "4-D", func(s *Scope) { s.Conv2dGroups(s.Zeros(CPU, 1, 2, 4, 4), s.Zeros(CPU, 4, 2, 3), nil, 1, 0, 1) }},
		{"conv groups 0", "groups", func(s *Scope) { s.Conv2dGroups(s.Zeros(CPU, 1, 2, 4, 4), s.Zeros(CPU, 4, 2, 3, 3), nil, 1, 0, 0) }},
		{"conv bias size", "conv2d", func(s *Scope) {
			s.Conv2dGroups(s.Zeros(CPU, 1, 2, 4, 4), s.Zeros(CPU, 4, 1, 3, 3), s.Zeros(CPU, 3), 1, 0, 2)
		}},
		{"batch norm running mean size", "running mean", func(s *Scope) {
			s.BatchNorm2d(s.Zeros(CPU, 2, 3, 2, 2), nil, nil, s.Zeros(CPU, 4), s.Zeros(CPU, 3), true, 0.1, 1e-5)
		}},
		{"batch norm weight size", "weight", func(s *Scope) {
			s.BatchNorm2d(s.Zeros(CPU, 2, 3, 2, 2), s.Zeros(CPU, 2), nil, s.Zeros(CPU, 3), s.Zeros(CPU, 3), false, 0.1, 1e-5)
		}},
		{"batch norm one value per channel", "more than one value", func(s *Scope) {
			s.BatchNorm2d(s.Zeros(CPU, 1, 3, 1, 1), nil, nil, s.Zeros(CPU, 3), s.Zeros(CPU, 3), true, 0.1, 1e-5)
		}},
		{"batch norm nil running stats", "batch_norm", func(s *Scope) {
			s.BatchNorm2d(s.Zeros(CPU, 2, 3, 2, 2), nil, nil, nil, nil, true, 0.1, 1e-5)
		}},
		{"max pool kernel 0", "max_pool2d", func(s *Scope) { s.MaxPool2d(s.Zeros(CPU, 1, 1, 4, 4), 0, 2) }},
		{"max pool 2-D input", "max_pool2d", func(s *Scope) { s.MaxPool2d(s.Zeros(CPU, 4, 4), 2, 2) }},
		{"max pool window larger than input", "max_pool2d", func(s *Scope) { s.MaxPool2d(s.Zeros(CPU, 1, 1, 1, 1), 2, 2) }},
		{"cosine similarity shapes", "cosine_similarity", func(s *Scope) { s.CosineSimilarity(s.Zeros(CPU, 3, 4), s.Zeros(CPU, 2, 4), 1, 1e-8) }},
		{"eigh of a non-square matrix", "square", func(s *Scope) { s.Eigh(s.Zeros(CPU, 3, 4)) }},
		{"eigh of a vector", "eigh", func(s *Scope) { s.Eigh(s.Zeros(CPU, 3)) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newTestScope(t)
			c.f(s)
			if s.Err() == nil || !strings.Contains(s.Err().Error(), c.want) {
				t.Fatalf("error %v, want one mentioning %q", s.Err(), c.want)
			}
		})
	}
	// Eigh's second result is an inert tensor after an error, not nil.
	s := newTestScope(t)
	vals, vecs := s.Eigh(s.Zeros(CPU, 2, 3))
	if vals == nil || vecs == nil || vals.Valid() || vecs.Valid() {
		t.Fatal("eigh after an error: want two inert tensors")
	}
}
