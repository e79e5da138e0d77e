package torch

import (
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestAdamStep checks two Adam steps and a learning-rate change against the
// update rule written out by hand (PyTorch's Adam, no weight decay).
func TestAdamStep(t *testing.T) {
	s := newTestScope(t)
	p0 := []float64{1, -2, 0.5}
	p := s.From(p0, 3)
	if err := p.SetRequiresGrad(true); err != nil {
		t.Fatal(err)
	}
	opt, err := NewAdam([]*Tensor{p}, DefaultAdam(0.1))
	if err != nil {
		t.Fatal(err)
	}
	defer opt.Close()
	want := append([]float64(nil), p0...)
	m := make([]float64, 3)
	v := make([]float64, 3)
	lrs := []float64{0.1, 0.01}
	for step := 1; step <= 2; step++ {
		if err := opt.SetLR(lrs[step-1]); err != nil {
			t.Fatal(err)
		}
		step := step
		// loss = sum(p^2 * c): gradient 2*c*p.
		c := []float64{1, 3, -2}
		ls := NewScope()
		loss := ls.Sum(ls.Mul(ls.Mul(p, p), ls.From(c, 3)), false)
		if err := opt.ZeroGrad(); err != nil {
			t.Fatal(err)
		}
		if err := loss.Backward(); err != nil {
			t.Fatal(err)
		}
		if err := opt.Step(); err != nil {
			t.Fatal(err)
		}
		ls.Close()
		for i := range want {
			g := 2 * c[i] * want[i]
			m[i] = 0.9*m[i] + 0.1*g
			v[i] = 0.999*v[i] + 0.001*g*g
			mh := m[i] / (1 - math.Pow(0.9, float64(step)))
			vh := v[i] / (1 - math.Pow(0.999, float64(step)))
			want[i] -= lrs[step-1] * mh / (math.Sqrt(vh) + 1e-8)
		}
		got, _ := p.Float64s()
		for i := range want {
			if math.Abs(got[i]-want[i]) > 1e-12 {
				t.Fatalf("step %d p[%d] = %.15g, want %.15g", step, i, got[i], want[i])
			}
		}
	}
	// The state comes back out, and restoring it into a fresh optimiser
	// continues exactly where the first left off.
	st, em, ev, err := opt.State(s, 0)
	if err != nil || st != 2 {
		t.Fatalf("state: step %d, %v", st, err)
	}
	emv, _ := em.Float64s()
	for i := range m {
		if math.Abs(emv[i]-m[i]) > 1e-12 {
			t.Fatalf("exp_avg[%d] = %v, want %v", i, emv[i], m[i])
		}
	}
	q := s.Clone(s.Detach(p))
	if err := q.SetRequiresGrad(true); err != nil {
		t.Fatal(err)
	}
	opt2, err := NewAdam([]*Tensor{q}, DefaultAdam(0.01))
	if err != nil {
		t.Fatal(err)
	}
	defer opt2.Close()
	if err := opt2.SetState(0, st, em, ev); err != nil {
		t.Fatal(err)
	}
	for _, o := range []struct {
		opt *Adam
		x   *Tensor
	}{{opt, p}, {opt2, q}} {
		ls := NewScope()
		l := ls.Sum(ls.Mul(o.x, o.x), false)
		o.opt.ZeroGrad()
		if err := l.Backward(); err != nil {
			t.Fatal(err)
		}
		if err := o.opt.Step(); err != nil {
			t.Fatal(err)
		}
		ls.Close()
	}
	a, _ := p.Float64s()
	b, _ := q.Float64s()
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("resumed optimiser diverges at %d: %v vs %v", i, a[i], b[i])
		}
	}
	if err := opt.SetState(0, 1, s.Zeros(CPU, 2), s.Zeros(CPU, 2)); err == nil {
		t.Fatal("state of the wrong shape accepted")
	}
	opt.Close()
	if err := opt.Step(); err == nil {
		t.Fatal("step on a closed optimiser: no error")
	}
}

// rssKB reads this process's resident set size.
func rssKB(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	t.Skip("no VmRSS")
	return 0
}

// TestTrainingReleasesMemory trains a small MLP for 1,000 steps: every step's
// tensors are freed by its scope, so live handles return to the starting
// count and resident memory stays flat.
func TestTrainingReleasesMemory(t *testing.T) {
	if _, err := Load(); err != nil {
		t.Fatal(err)
	}
	start, _ := LiveTensors()
	params := NewScope()
	if err := ManualSeed(1); err != nil {
		t.Fatal(err)
	}
	w1 := params.MulScalar(params.Full(0.1, Float32, CPU, 32, 16), 1)
	b1 := params.Zeros(CPU, 32)
	w2 := params.Full(0.05, Float32, CPU, 4, 32)
	b2 := params.Zeros(CPU, 4)
	ps := []*Tensor{w1, b1, w2, b2}
	for _, p := range ps {
		if err := p.SetRequiresGrad(true); err != nil {
			t.Fatal(err)
		}
	}
	opt, err := NewAdam(ps, DefaultAdam(1e-3))
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float32, 64*16)
	for i := range x {
		x[i] = float32(i%13) / 13
	}
	y := make([]int64, 64)
	for i := range y {
		y[i] = int64(i % 4)
	}
	var rss100 int64
	var firstLoss, lastLoss float64
	for step := 0; step < 1000; step++ {
		s := NewScope()
		h := s.Relu(s.Linear(s.From(x, 64, 16), w1, b1))
		h = s.Dropout(h, 0.1, true)
		loss := s.CrossEntropy(s.Linear(h, w2, b2), s.From(y, 64), ReduceMean)
		if err := opt.ZeroGrad(); err != nil {
			t.Fatal(err)
		}
		if err := loss.Backward(); err != nil {
			t.Fatal(err)
		}
		if err := opt.Step(); err != nil {
			t.Fatal(err)
		}
		l, err := loss.Item()
		if err != nil || s.Err() != nil {
			t.Fatal(err, s.Err())
		}
		if step == 0 {
			firstLoss = l
		}
		lastLoss = l
		s.Close()
		if step == 100 {
			rss100 = rssKB(t)
		}
	}
	rss1000 := rssKB(t)
	opt.Close()
	params.Close()
	end, _ := LiveTensors()
	if end != start {
		t.Fatalf("live tensors: %d before, %d after", start, end)
	}
	if grow := rss1000 - rss100; grow > 8*1024 {
		t.Fatalf("resident memory grew by %d KiB between steps 100 and 1000", grow)
	}
	if !(lastLoss < firstLoss) {
		t.Fatalf("loss did not fall: %v -> %v", firstLoss, lastLoss)
	}
	t.Logf("RSS step 100: %d KiB, step 1000: %d KiB; loss %.4f -> %.4f", rss100, rss1000, firstLoss, lastLoss)
}
