// Package mimic turns MIMIC-III, as the arrays of MultiBench's im.pk, into
// the paper's three Arrow datasets (reproduction.md §4): non-finite values
// replaced by 0, z-scores over the whole dataset, the 6-class label, and
// the train/validation/test split that CPython's random.seed(10) +
// random.shuffle gives the reference loader.
//
// Both sources (prep/mimic.ReadPickle for im.pk, prep/mimicraw.Build for the
// raw tables) feed Prepare, which the CLI and the pipeline call.
package mimic

import (
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"strconv"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/dataset"
	"github.com/m2mix/m2mix/features/pyrandom"
	mimicprep "github.com/m2mix/m2mix/prep/mimic"
)

// Dir is the folder, under the data folder, that holds the datasets.
const Dir = "mimic"

// The datasets Prepare writes into its folder, and its manifest.
const (
	TrainFile      = "train.arrow"
	ValidationFile = "validation.arrow"
	TestFile       = "test.arrow"
	ManifestFile   = "manifest.json"
)

// Column names and widths of every dataset.
const (
	ColStatic     = "static"     // float32 x 5, z-scored
	ColTimeSeries = "timeseries" // float32 x 288, z-scored, hour-major (h*12 + f)
	ColLabel      = "label"      // int64, 0..5
	ColRowIndex   = "row_index"  // int64, the sample's row in im.pk
)

// SplitSeed is the seed MultiBench passes to random.seed before shuffling.
const SplitSeed = 10

// Classes is the number of label classes of the mortality task.
const Classes = 6

// SkipHint is the line to show when no MIMIC-III source was given.
const SkipHint = "MIMIC-III skipped: no im.pk given. MIMIC-III is credentialed (PhysioNet); " +
	"put MultiBench's im.pk somewhere and run `m2mix prep mimic --pk PATH` " +
	"(or `--raw DIR` with the MIMIC-III v1.4 tables)."

// Source describes where the arrays came from; it is recorded in every
// dataset's metadata and in the manifest.
type Source struct {
	Kind   string            // "pk" (MultiBench's im.pk) or "raw" (built from the tables)
	SHA256 string            // of im.pk, or whatever the raw build fingerprints its inputs by
	Meta   map[string]string // extra facts to record, e.g. the raw build's choices
}

// NonFinite counts the NaN and infinite values found in one array.
type NonFinite struct {
	NaN    int `json:"nan"`
	PosInf int `json:"posinf"`
	NegInf int `json:"neginf"`
}

// Total is NaN + PosInf + NegInf.
func (c NonFinite) Total() int { return c.NaN + c.PosInf + c.NegInf }

// Report is what Prepare did.
type Report struct {
	N int
	// NonFinite is keyed by im.pk's array names. Time series and static
	// values are replaced by 0; labels are counted only (see LabelOf).
	NonFinite                map[string]NonFinite
	StaticMean, StaticStd    []float64 // per static feature (5), after cleaning
	TimeMean, TimeStd        []float64 // per time-series feature (12), over all patients and hours
	ZeroStd                  []string  // features whose std is 0 (left at 0 after centring)
	Train, Validation, Test  int       // rows per split
	LabelCounts              map[string][Classes]int
	Outputs                  map[string]string // file name -> sha256
	Dir                      string
	SourceKind, SourceSHA256 string
}

// Prepare cleans, normalises, labels and splits a, and writes
// train/validation/test.arrow and manifest.json into outDir (normally
// <data>/mimic). a is not modified.
func Prepare(a *mimicprep.Arrays, outDir string, src Source) (*Report, error) {
	if err := check(a); err != nil {
		return nil, fmt.Errorf("prepare MIMIC-III: %w", err)
	}
	if src.Kind != "pk" && src.Kind != "raw" {
		return nil, fmt.Errorf("prepare MIMIC-III: source kind %q, want \"pk\" or \"raw\"", src.Kind)
	}
	if err := checkRows(a.N); err != nil {
		return nil, fmt.Errorf("prepare MIMIC-III (source %s): %w", src.Kind, err)
	}
	n := a.N
	ts := append([]float64(nil), a.TimeSeries...)
	st := append([]float64(nil), a.Static...)
	rep := &Report{
		N:            n,
		Dir:          outDir,
		SourceKind:   src.Kind,
		SourceSHA256: src.SHA256,
		NonFinite: map[string]NonFinite{
			mimicprep.TimeSeriesKey: ZeroNonFinite(ts),
			mimicprep.StaticKey:     ZeroNonFinite(st),
			mimicprep.LabelsKey:     CountNonFinite(a.Labels),
		},
	}
	rep.StaticMean, rep.StaticStd = ZScore(st, mimicprep.StaticFeatures)
	rep.TimeMean, rep.TimeStd = ZScore(ts, mimicprep.TimeFeatures)
	for f, s := range rep.StaticStd {
		if s == 0 {
			rep.ZeroStd = append(rep.ZeroStd, fmt.Sprintf("static[%d]", f))
		}
	}
	for f, s := range rep.TimeStd {
		if s == 0 {
			rep.ZeroStd = append(rep.ZeroStd, fmt.Sprintf("timeseries[%d]", f))
		}
	}
	labels := make([]int64, n)
	for i := range labels {
		labels[i] = LabelOf(a.Labels[i*a.LabelCols : (i+1)*a.LabelCols])
	}

	sp := Split(n, SplitSeed)
	rep.Train, rep.Validation, rep.Test = len(sp.Train), len(sp.Validation), len(sp.Test)

	meta, err := metadata(rep, src)
	if err != nil {
		return nil, fmt.Errorf("prepare MIMIC-III: %w", err)
	}
	rep.LabelCounts = map[string][Classes]int{}
	const tsw = mimicprep.Hours * mimicprep.TimeFeatures
	for _, part := range []struct {
		name, file string
		rows       []int
	}{{"train", TrainFile, sp.Train}, {"validation", ValidationFile, sp.Validation}, {"test", TestFile, sp.Test}} {
		cols := []dataset.Column{
			{Name: ColStatic, Width: mimicprep.StaticFeatures, Float32: gather(st, mimicprep.StaticFeatures, part.rows)},
			{Name: ColTimeSeries, Width: tsw, Float32: gather(ts, tsw, part.rows)},
			{Name: ColLabel, Int64: make([]int64, len(part.rows))},
			{Name: ColRowIndex, Int64: make([]int64, len(part.rows))},
		}
		var counts [Classes]int
		for i, r := range part.rows {
			cols[2].Int64[i] = labels[r]
			cols[3].Int64[i] = int64(r)
			counts[labels[r]]++
		}
		rep.LabelCounts[part.name] = counts
		m := map[string]string{"split": part.name, "rows": strconv.Itoa(len(part.rows))}
		for k, v := range meta {
			m[k] = v
		}
		path := filepath.Join(outDir, part.file)
		if err := dataset.Write(path, cols, m); err != nil {
			return nil, fmt.Errorf("prepare MIMIC-III: %w", err)
		}
	}

	man := artifact.Manifest{
		Stage: "prep-mimic",
		Params: map[string]any{
			"split_seed":  SplitSeed,
			"split_rule":  splitRule,
			"label_rule":  labelRule,
			"source_kind": src.Kind,
		},
		Inputs: map[string]string{},
		Notes: map[string]any{
			"n":            n,
			"nonfinite":    rep.NonFinite,
			"rows":         map[string]int{"train": rep.Train, "validation": rep.Validation, "test": rep.Test},
			"label_counts": rep.LabelCounts,
			"zero_std":     rep.ZeroStd,
		},
	}
	if src.SHA256 != "" {
		man.Inputs[inputName(src.Kind)] = src.SHA256
	}
	if len(src.Meta) > 0 {
		man.Notes["source"] = src.Meta
	}
	if err := man.HashOutputs(outDir, TrainFile, ValidationFile, TestFile); err != nil {
		return nil, fmt.Errorf("prepare MIMIC-III: %w", err)
	}
	if err := artifact.WriteJSON(filepath.Join(outDir, ManifestFile), man); err != nil {
		return nil, fmt.Errorf("prepare MIMIC-III: %w", err)
	}
	rep.Outputs = man.Outputs
	return rep, nil
}

func inputName(kind string) string {
	if kind == "pk" {
		return "im.pk"
	}
	return kind
}

const (
	splitRule = "random.seed(10); order = list(range(N)); random.shuffle(order) (CPython); " +
		"validation = order[:N//10], test = order[N//10:N//5], train = order[N//5:]"
	labelRule = "first c in 1..5 with adm_labels_all[:, c] > 0, else 0"
)

// metadata is what every dataset file records besides its split.
func metadata(rep *Report, src Source) (map[string]string, error) {
	m := map[string]string{
		"dataset":           "mimic-iii",
		"n_total":           strconv.Itoa(rep.N),
		"split_seed":        strconv.Itoa(SplitSeed),
		"split_rule":        splitRule,
		"label_rule":        labelRule,
		"source_kind":       src.Kind,
		"source_sha256":     src.SHA256,
		"timeseries_layout": "hour-major: index h*12 + f, 24 hours x 12 features",
	}
	for k, v := range map[string]any{
		"static_mean":     rep.StaticMean,
		"static_std":      rep.StaticStd,
		"timeseries_mean": rep.TimeMean,
		"timeseries_std":  rep.TimeStd,
		"nonfinite":       rep.NonFinite,
		"zero_std":        rep.ZeroStd,
	} {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("metadata %s: %w", k, err)
		}
		m[k] = string(b)
	}
	for k, v := range src.Meta {
		m["source."+k] = v
	}
	return m, nil
}

func check(a *mimicprep.Arrays) error {
	if a == nil {
		return fmt.Errorf("no arrays")
	}
	const tsw = mimicprep.Hours * mimicprep.TimeFeatures
	switch {
	case a.N < 0:
		return fmt.Errorf("N = %d", a.N)
	case a.LabelCols < mimicprep.MinLabelCols:
		return fmt.Errorf("%s has %d columns, want >= %d", mimicprep.LabelsKey, a.LabelCols, mimicprep.MinLabelCols)
	case len(a.TimeSeries) != a.N*tsw:
		return fmt.Errorf("%s holds %d values, want N x 24 x 12 = %d", mimicprep.TimeSeriesKey, len(a.TimeSeries), a.N*tsw)
	case len(a.Static) != a.N*mimicprep.StaticFeatures:
		return fmt.Errorf("%s holds %d values, want N x 5 = %d", mimicprep.StaticKey, len(a.Static), a.N*mimicprep.StaticFeatures)
	case len(a.Labels) != a.N*a.LabelCols:
		return fmt.Errorf("%s holds %d values, want N x %d = %d", mimicprep.LabelsKey, len(a.Labels), a.LabelCols, a.N*a.LabelCols)
	}
	return nil
}

// MinRows is the fewest samples Prepare accepts: with fewer, the split
// (validation N//10, test N//5 - N//10) leaves the validation split empty.
const MinRows = 10

// checkRows refuses sample counts that would write an empty dataset.
func checkRows(n int) error {
	if n == 0 {
		return fmt.Errorf("no rows (N = 0): nothing to prepare")
	}
	if n < MinRows {
		return fmt.Errorf("N = %d rows is too few: the split gives validation %d, test %d, train %d rows; at least %d are needed so that every split has one",
			n, n/10, n/5-n/10, n-n/5, MinRows)
	}
	return nil
}

// CountNonFinite counts NaN and infinite values in v.
func CountNonFinite(v []float64) NonFinite {
	var c NonFinite
	for _, x := range v {
		switch {
		case math.IsNaN(x):
			c.NaN++
		case math.IsInf(x, 1):
			c.PosInf++
		case math.IsInf(x, -1):
			c.NegInf++
		}
	}
	return c
}

// ZeroNonFinite replaces NaN and +-Inf in v by 0 and returns their counts.
func ZeroNonFinite(v []float64) NonFinite {
	c := CountNonFinite(v)
	if c.Total() > 0 {
		for i, x := range v {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				v[i] = 0
			}
		}
	}
	return c
}

// ZScore normalises v, read as rows of width features, column by column
// with the mean and population standard deviation of that column over all
// rows (for the time series, a row is one hour of one patient, so each
// feature is normalised over all patients and hours). A column with
// std 0 is only centred (it becomes 0) instead of divided by zero, which
// in the reference would give NaN. Statistics are computed in float64 with
// two passes, so they do not depend on the row order.
func ZScore(v []float64, width int) (mean, std []float64) {
	mean = make([]float64, width)
	std = make([]float64, width)
	rows := len(v) / width
	if rows == 0 {
		return mean, std
	}
	for i, x := range v {
		mean[i%width] += x
	}
	for f := range mean {
		mean[f] /= float64(rows)
	}
	for i, x := range v {
		d := x - mean[i%width]
		std[i%width] += d * d
	}
	for f := range std {
		std[f] = math.Sqrt(std[f] / float64(rows))
	}
	for i, x := range v {
		f := i % width
		if s := std[f]; s != 0 {
			v[i] = (x - mean[f]) / s
		} else {
			v[i] = x - mean[f]
		}
	}
	return mean, std
}

// LabelOf is the 6-class mortality label of one row of adm_labels_all:
// the first c in 1..5 with row[c] > 0, else 0; column 0 is ignored. A NaN
// compares false (so it counts as 0), as it does in numpy.
func LabelOf(row []float64) int64 {
	for c := 1; c < Classes; c++ {
		if row[c] > 0 {
			return int64(c)
		}
	}
	return 0
}

// Splits lists original row indices per split, in the shuffled order the
// reference loader iterates them.
type Splits struct {
	Train, Validation, Test []int
}

// Split orders range(n) as CPython's random.seed(seed) + random.shuffle
// does and cuts it the way MultiBench's loader slices its shuffled list:
// validation = [0, n//10), test = [n//10, n//5), train = [n//5, n). For
// n = 32,616 that is 3,261 / 3,262 / 26,093 rows (the test split gets the
// extra row because n//5 is not 2*(n//10)).
func Split(n int, seed int64) Splits {
	order := pyrandom.ShuffledRange(seed, n)
	v, t := n/10, n/5
	return Splits{Validation: order[:v], Test: order[v:t], Train: order[t:]}
}

// gather copies the rows of a width-wide matrix, in the given order, as float32.
func gather(v []float64, width int, rows []int) []float32 {
	out := make([]float32, len(rows)*width)
	for i, r := range rows {
		src := v[r*width : (r+1)*width]
		dst := out[i*width : (i+1)*width]
		for j, x := range src {
			dst[j] = float32(x)
		}
	}
	return out
}
