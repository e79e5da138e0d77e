package torch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The PyTorch comparisons run Debian's python3-torch (1.13) as an
// independent reference, as model's cross-implementation tests do.

// refPython is the interpreter with Debian's python3-torch; a python3 earlier
// on PATH (a virtual environment) may lack it.
const refPython = "/usr/bin/python3"

// skipTorchRefEnv, set to 1, skips the tests that need PyTorch.
const skipTorchRefEnv = "M2MIX_SKIP_TORCH_REF"

// requireTorchPython fails the test when refPython cannot import torch,
// unless skipTorchRefEnv=1 (then it skips).
func requireTorchPython(t *testing.T) {
	t.Helper()
	if os.Getenv(skipTorchRefEnv) == "1" {
		t.Skipf("%s=1: skipping the comparison with PyTorch", skipTorchRefEnv)
	}
	if out, err := exec.Command(refPython, "-c", "import torch").CombinedOutput(); err != nil {
		t.Fatalf("%s cannot import torch (%v: %s): run `make deps` (it installs python3-torch), or set %s=1 to skip the PyTorch comparisons",
			refPython, err, strings.TrimSpace(string(out)), skipTorchRefEnv)
	}
}

// runTorchRef runs testdata/script with in, JSON-encoded, on its standard
// input and decodes its standard output into out.
func runTorchRef(t *testing.T, script string, in, out any) {
	t.Helper()
	requireTorchPython(t)
	body, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, refPython, filepath.Join("testdata", script))
	cmd.Stdin = bytes.NewReader(body)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	res, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", refPython, script, err, stderr.String())
	}
	if err := json.Unmarshal(res, out); err != nil {
		t.Fatalf("%s %s: reading its output: %v", refPython, script, err)
	}
}

// relDiff is ||a - b|| / max(||b||, tiny): the norm-wise relative error of a
// against the reference b, or an explanation when the sizes differ.
func relDiff(a, b []float64) (float64, error) {
	if len(a) != len(b) {
		return 0, fmt.Errorf("%d values, reference %d", len(a), len(b))
	}
	var d, n float64
	for i := range a {
		d += (a[i] - b[i]) * (a[i] - b[i])
		n += b[i] * b[i]
	}
	if n < 1e-300 {
		n = 1e-300
	}
	return math.Sqrt(d / n), nil
}
