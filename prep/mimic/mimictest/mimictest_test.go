package mimictest

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/m2mix/m2mix/prep/mimic"
)

// A 0-row file is a valid pickle that the reader refuses ("no rows").
func TestZeroRowsRefusedByReader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "im.pk")
	if err := WritePickleFile(path, Synthetic(0, 3)); err != nil {
		t.Fatal(err)
	}
	a, err := mimic.ReadPickle(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "no rows") {
		t.Fatalf("ReadPickle of a 0-row im.pk: %v, %v; want an error naming %s and 'no rows'", a, err, path)
	}
}

func TestRoundTripThroughReader(t *testing.T) {
	for _, n := range []int{1, 7, 1000} {
		a := Synthetic(n, 3)
		a.ICD9 = make([]float64, n*mimic.ICD9Cols)
		for i := range a.ICD9 {
			a.ICD9[i] = float64(i % 2)
		}
		path := filepath.Join(t.TempDir(), "im.pk")
		if err := WritePickleFile(path, a); err != nil {
			t.Fatal(err)
		}
		got, err := mimic.ReadPickle(path)
		if err != nil {
			t.Fatal(err)
		}
		if got.N != n || got.LabelCols != 6 {
			t.Fatalf("n=%d: read N=%d cols=%d", n, got.N, got.LabelCols)
		}
		for _, c := range []struct {
			name      string
			got, want []float64
		}{{"ts", got.TimeSeries, a.TimeSeries}, {"static", got.Static, a.Static}, {"labels", got.Labels, a.Labels}, {"icd9", got.ICD9, a.ICD9}} {
			if len(c.got) != len(c.want) {
				t.Fatalf("n=%d %s: %d values, wrote %d", n, c.name, len(c.got), len(c.want))
			}
			for i := range c.got {
				if math.Float64bits(c.got[i]) != math.Float64bits(c.want[i]) {
					t.Fatalf("n=%d %s[%d] = %v, wrote %v", n, c.name, i, c.got[i], c.want[i])
				}
			}
		}
	}
}

// TestNumpyLoadsIt checks the writer against numpy itself: the file must
// unpickle to arrays of the right shapes and values. Skipped where no
// python3 with numpy is installed.
func TestNumpyLoadsIt(t *testing.T) {
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Skip("no /usr/bin/python3")
	}
	if err := exec.Command(py, "-c", "import numpy").Run(); err != nil {
		t.Skip("python3 has no numpy")
	}
	a := Synthetic(50, 9)
	path := filepath.Join(t.TempDir(), "im.pk")
	if err := WritePickleFile(path, a); err != nil {
		t.Fatal(err)
	}
	script := `
import pickle, sys, numpy as np
d = pickle.load(open(sys.argv[1], "rb"))
for k in ["ep_tdata", "adm_features_all", "adm_labels_all"]:
    v = d[k]
    print(k, v.dtype.str, v.shape, repr(float(np.nansum(np.where(np.isinf(v), 0, v)))), int(np.isnan(v).sum()), repr(float(v.ravel()[1])))
`
	out, err := exec.Command(py, "-c", script, path).CombinedOutput()
	if err != nil {
		t.Fatalf("numpy could not load it: %v\n%s", err, out)
	}
	var want strings.Builder
	for _, c := range []struct {
		key   string
		vals  []float64
		shape string
	}{
		{"ep_tdata", a.TimeSeries, "(50, 24, 12)"},
		{"adm_features_all", a.Static, "(50, 5)"},
		{"adm_labels_all", a.Labels, "(50, 6)"},
	} {
		// numpy's nansum is pairwise, so compare the sum loosely below.
		sum, nans := 0.0, 0
		for _, v := range c.vals {
			switch {
			case math.IsNaN(v):
				nans++
			case !math.IsInf(v, 0):
				sum += v
			}
		}
		fmt.Fprintf(&want, "%s <f8 %s %v %d %v\n", c.key, c.shape, sum, nans, c.vals[1])
	}
	gotLines := strings.Split(strings.TrimSpace(string(out)), "\n")
	wantLines := strings.Split(strings.TrimSpace(want.String()), "\n")
	if len(gotLines) != len(wantLines) {
		t.Fatalf("numpy printed %q", out)
	}
	for i := range wantLines {
		// fields: key dtype shape(several) sum nans second-value
		g, w := strings.Fields(gotLines[i]), strings.Fields(wantLines[i])
		if len(g) != len(w) {
			t.Fatalf("numpy says %q, want %q", gotLines[i], wantLines[i])
		}
		for j := range g {
			var gf, wf float64
			_, e1 := fmt.Sscan(g[j], &gf)
			_, e2 := fmt.Sscan(w[j], &wf)
			if e1 == nil && e2 == nil {
				// the sum is loose: numpy's nansum adds pairwise
				if math.Abs(gf-wf) > 1e-9*math.Max(1, math.Abs(wf)) {
					t.Errorf("numpy says %q, want %q", gotLines[i], wantLines[i])
				}
			} else if g[j] != w[j] {
				t.Errorf("numpy says %q, want %q", gotLines[i], wantLines[i])
			}
		}
	}
}
