package mimicraw

import (
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/m2mix/m2mix/prep/mimic"
	"github.com/m2mix/m2mix/prep/npy"
)

// NPY file names written by WriteNPY: the four keys of im.pk (spec §1).
const (
	NPYTimeSeries = "ep_tdata.npy"
	NPYStatic     = "adm_features_all.npy"
	NPYLabels     = "adm_labels_all.npy"
	NPYICD9       = "y_icd9.npy"
)

// WriteNPY writes the four raw arrays into dir as numpy-loadable .npy files,
// with the dtypes of the original npz: ep_tdata (N,24,12) and
// adm_features_all (N,5) float64; adm_labels_all (N,LabelCols) and y_icd9
// (N,20) int64 (they hold 0/1).
func WriteNPY(arrays *mimic.Arrays, dir string) error {
	n := arrays.N
	if n <= 0 {
		return fmt.Errorf("mimicraw: WriteNPY: the arrays have no rows (N = %d); nothing written", n)
	}
	if len(arrays.TimeSeries) != n*hours*nSeries || len(arrays.Static) != n*5 ||
		arrays.LabelCols <= 0 || len(arrays.Labels) != n*arrays.LabelCols || len(arrays.ICD9) != n*icd9Cols {
		return fmt.Errorf("mimicraw: WriteNPY: arrays do not have the shapes (N,24,12), (N,5), (N,LabelCols), (N,20) for N=%d", n)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("mimicraw: WriteNPY: %w", err)
	}
	labels, err := toInt64(arrays.Labels, "adm_labels_all")
	if err != nil {
		return err
	}
	icd, err := toInt64(arrays.ICD9, "y_icd9")
	if err != nil {
		return err
	}
	writes := []func() error{
		func() error {
			return npy.WriteFloat64(filepath.Join(dir, NPYTimeSeries), []int{n, hours, nSeries}, arrays.TimeSeries)
		},
		func() error { return npy.WriteFloat64(filepath.Join(dir, NPYStatic), []int{n, 5}, arrays.Static) },
		func() error {
			return npy.WriteInt64(filepath.Join(dir, NPYLabels), []int{n, arrays.LabelCols}, labels)
		},
		func() error { return npy.WriteInt64(filepath.Join(dir, NPYICD9), []int{n, icd9Cols}, icd) },
	}
	for _, w := range writes {
		if err := w(); err != nil {
			return fmt.Errorf("mimicraw: WriteNPY: %w", err)
		}
	}
	return nil
}

func toInt64(v []float64, name string) ([]int64, error) {
	out := make([]int64, len(v))
	for i, x := range v {
		if x != math.Trunc(x) || math.IsNaN(x) {
			return nil, fmt.Errorf("mimicraw: WriteNPY: %s[%d] = %v is not an integer", name, i, x)
		}
		out[i] = int64(x)
	}
	return out, nil
}
