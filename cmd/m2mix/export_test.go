package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/runrecord"
	"github.com/m2mix/m2mix/torch"
)

// runOut executes the m2mix command in-process and returns its output.
func runOut(args ...string) (string, error) {
	root := newRootCmd()
	root.SetArgs(args)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&bytes.Buffer{})
	err := root.Execute()
	return out.String(), err
}

// TestExportCommands: export writes the file it names and says what it
// wrote; missing flags, unknown datasets and unprepared data are refused.
func TestExportCommands(t *testing.T) {
	run := filepath.Join(t.TempDir(), "runs", "m2mixer_h", "3")
	w := []byte{0, 0, 128, 63} // 1.0
	if err := torch.WriteSafetensors(filepath.Join(run, "best.safetensors"),
		map[string]torch.RawTensor{"hs.bias": {DType: torch.Float32, Shape: []int64{1}, Data: w}}, map[string]string{"config": "m2mixer_h"}); err != nil {
		t.Fatal(err)
	}
	if err := artifact.WriteJSON(filepath.Join(run, runrecord.FileName), runrecord.Record{Config: "m2mixer_h", Seed: 3, Final: &runrecord.Metrics{}}); err != nil {
		t.Fatal(err)
	}
	pt := filepath.Join(t.TempDir(), "h.pt")
	out, err := runOut("export", "--run", run, "--out", pt)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "m2mixer_h seed 3: 1 tensors, 1 parameters, as MimicMixerMultiLoss's names") || !strings.Contains(out, pt) {
		t.Errorf("output %q", out)
	}
	if _, err := os.Stat(pt); err != nil {
		t.Error(err)
	}
	data := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"export", "--run", run}, "give --run runs/<config>/<seed> and --out FILE"},
		{[]string{"export", "--run", run, "--out", pt, "--format", "onnx"}, `format "onnx"`},
		{[]string{"export-npy", "mnist"}, `dataset "mnist"`},
		{[]string{"export-npy", "avmnist"}, "m2mix prep avmnist"},
		{[]string{"export-npy"}, "accepts 1 arg"},
	} {
		if _, err := runOut(append(c.args, "--data", data)...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error containing %q", c.args, err, c.want)
		}
	}
}
