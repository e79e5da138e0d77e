package mimic

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/dataset"
	mimicprep "github.com/m2mix/m2mix/prep/mimic"
	"github.com/m2mix/m2mix/prep/mimic/mimictest"
)

// smallExpected mirrors testdata/small_expected.json, computed with numpy
// and CPython's random by testdata/make_expected.py.
type smallExpected struct {
	N              int                  `json:"n"`
	NonFinite      map[string]NonFinite `json:"nonfinite"`
	StaticMean     []float64            `json:"static_mean"`
	StaticStd      []float64            `json:"static_std"`
	TimeMean       []float64            `json:"timeseries_mean"`
	TimeStd        []float64            `json:"timeseries_std"`
	Labels         []int64              `json:"labels"`
	Validation     []int                `json:"validation"`
	Test           []int                `json:"test"`
	Train          []int                `json:"train"`
	Static         [][]float64          `json:"static"`
	TimeSeriesRows []int                `json:"timeseries_rows"`
	TimeSeries     [][]float64          `json:"timeseries"`
}

func readJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func closeTo(a, b, tol float64) bool {
	return math.Abs(a-b) <= tol*math.Max(1, math.Abs(b))
}

// splitTables reads the three datasets Prepare wrote.
func splitTables(t testing.TB, dir string) map[string]*dataset.Table {
	t.Helper()
	out := map[string]*dataset.Table{}
	for name, file := range map[string]string{"train": TrainFile, "validation": ValidationFile, "test": TestFile} {
		tb, err := dataset.Read(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		out[name] = tb
	}
	return out
}

func col(t testing.TB, tb *dataset.Table, name string) *dataset.Column {
	t.Helper()
	c, err := tb.Column(name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPrepareMatchesNumpy prepares a numpy-made im.pk and compares every
// output with what numpy and CPython computed from the same file.
func TestPrepareMatchesNumpy(t *testing.T) {
	var want smallExpected
	readJSON(t, "testdata/small_expected.json", &want)
	a, err := mimicprep.ReadPickle("testdata/small.pk")
	if err != nil {
		t.Fatal(err)
	}
	before := slices.Clone(a.TimeSeries)
	dir := t.TempDir()
	rep, err := Prepare(a, dir, Source{Kind: "pk", SHA256: "abc"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(a.TimeSeries, before, func(x, y float64) bool { return x == y || (math.IsNaN(x) && math.IsNaN(y)) }) {
		t.Error("Prepare modified its input arrays")
	}
	for k, w := range want.NonFinite {
		if rep.NonFinite[k] != w {
			t.Errorf("non-finite %s = %+v, numpy counted %+v", k, rep.NonFinite[k], w)
		}
	}
	for _, c := range []struct {
		name      string
		got, want []float64
	}{
		{"static mean", rep.StaticMean, want.StaticMean}, {"static std", rep.StaticStd, want.StaticStd},
		{"time mean", rep.TimeMean, want.TimeMean}, {"time std", rep.TimeStd, want.TimeStd},
	} {
		if len(c.got) != len(c.want) {
			t.Fatalf("%s: %d values, want %d", c.name, len(c.got), len(c.want))
		}
		for i := range c.got {
			if !closeTo(c.got[i], c.want[i], 1e-12) {
				t.Errorf("%s[%d] = %v, numpy %v", c.name, i, c.got[i], c.want[i])
			}
		}
	}
	if !slices.Equal(rep.ZeroStd, []string{"static[3]", "timeseries[5]"}) {
		t.Errorf("zero-std features %v, want static[3] and timeseries[5]", rep.ZeroStd)
	}

	tables := splitTables(t, dir)
	for name, rows := range map[string][]int{"train": want.Train, "validation": want.Validation, "test": want.Test} {
		tb := tables[name]
		ri := col(t, tb, ColRowIndex).Int64
		got := make([]int, len(ri))
		for i, r := range ri {
			got[i] = int(r)
		}
		if !slices.Equal(got, rows) {
			t.Fatalf("%s rows %v, CPython's split %v", name, got, rows)
		}
		st := col(t, tb, ColStatic).Float32
		ts := col(t, tb, ColTimeSeries).Float32
		lb := col(t, tb, ColLabel).Int64
		for i, r := range rows {
			if lb[i] != want.Labels[r] {
				t.Errorf("%s row %d (im.pk row %d): label %d, want %d", name, i, r, lb[i], want.Labels[r])
			}
			for f := range 5 {
				if !closeTo(float64(st[i*5+f]), want.Static[r][f], 1e-6) {
					t.Errorf("static[%d][%d] = %v, numpy %v", r, f, st[i*5+f], want.Static[r][f])
				}
			}
			if k := slices.Index(want.TimeSeriesRows, r); k >= 0 {
				for j := range 288 {
					if !closeTo(float64(ts[i*288+j]), want.TimeSeries[k][j], 1e-6) {
						t.Fatalf("timeseries row %d [h %d f %d] = %v, numpy %v", r, j/12, j%12, ts[i*288+j], want.TimeSeries[k][j])
					}
				}
			}
		}
	}
}

func TestDatasetSchemaMetadataAndManifest(t *testing.T) {
	a := mimictest.Synthetic(57, 1)
	dir := t.TempDir()
	rep, err := Prepare(a, dir, Source{Kind: "raw", SHA256: "feed", Meta: map[string]string{"hadm_order": "ascending"}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Validation != 5 || rep.Test != 6 || rep.Train != 46 {
		t.Errorf("split sizes %d/%d/%d, want 5/6/46 (n//10, n//5 - n//10, rest)", rep.Validation, rep.Test, rep.Train)
	}
	var man artifact.Manifest
	if err := artifact.ReadJSON(filepath.Join(dir, ManifestFile), &man); err != nil {
		t.Fatal(err)
	}
	if man.Inputs["raw"] != "feed" || man.Stage != "prep-mimic" {
		t.Errorf("manifest inputs %v stage %q", man.Inputs, man.Stage)
	}
	for name, tb := range splitTables(t, dir) {
		file := map[string]string{"train": TrainFile, "validation": ValidationFile, "test": TestFile}[name]
		sum, err := artifact.SHA256File(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if man.Outputs[file] != sum || rep.Outputs[file] != sum {
			t.Errorf("%s: manifest sha256 %q, report %q, file %q", file, man.Outputs[file], rep.Outputs[file], sum)
		}
		var names []string
		for _, c := range tb.Columns {
			names = append(names, c.Name)
		}
		if !slices.Equal(names, []string{"static", "timeseries", "label", "row_index"}) {
			t.Fatalf("%s columns %v", name, names)
		}
		if w := col(t, tb, ColStatic).Width; w != 5 {
			t.Errorf("static width %d", w)
		}
		if w := col(t, tb, ColTimeSeries).Width; w != 288 {
			t.Errorf("timeseries width %d", w)
		}
		if col(t, tb, ColLabel).Int64 == nil || col(t, tb, ColRowIndex).Int64 == nil {
			t.Error("label and row_index must be int64")
		}
		m := tb.Meta
		for k, v := range map[string]string{
			"split": name, "split_seed": "10", "source_kind": "raw", "source_sha256": "feed",
			"source.hadm_order": "ascending", "n_total": "57", "rows": strconv.Itoa(tb.Rows),
		} {
			if m[k] != v {
				t.Errorf("%s metadata %s = %q, want %q", name, k, m[k], v)
			}
		}
		var sm []float64
		if err := json.Unmarshal([]byte(m["static_mean"]), &sm); err != nil || !slices.Equal(sm, rep.StaticMean) {
			t.Errorf("static_mean metadata %q (%v)", m["static_mean"], err)
		}
		var nf map[string]NonFinite
		if err := json.Unmarshal([]byte(m["nonfinite"]), &nf); err != nil || nf[mimicprep.TimeSeriesKey] != rep.NonFinite[mimicprep.TimeSeriesKey] {
			t.Errorf("nonfinite metadata %q (%v)", m["nonfinite"], err)
		}
		for _, k := range []string{"static_std", "timeseries_mean", "timeseries_std"} {
			if !strings.HasPrefix(m[k], "[") {
				t.Errorf("metadata %s = %q", k, m[k])
			}
		}
		// Hour-major: the value at h*12+f must be the z-score of ep_tdata[row, h, f].
		ts := col(t, tb, ColTimeSeries).Float32
		ri := col(t, tb, ColRowIndex).Int64
		if tb.Rows > 0 {
			r, h, f := int(ri[0]), 7, 3
			x := a.TimeSeries[r*288+h*12+f]
			if !math.IsNaN(x) && !math.IsInf(x, 0) {
				z := (x - rep.TimeMean[f]) / rep.TimeStd[f]
				if got := float64(ts[h*12+f]); !closeTo(got, z, 1e-6) {
					t.Errorf("%s: timeseries[h=7,f=3] = %v, want %v", name, got, z)
				}
			}
		}
	}
}

// TestRealSizeSplitMatchesCPython converts a synthetic im.pk of the real
// size end to end and checks the split against CPython's (made by
// testdata/make_expected.py): 3,261 validation, 3,262 test, 26,093 train
// rows, in the same order.
func TestRealSizeSplitMatchesCPython(t *testing.T) {
	if testing.Short() {
		t.Skip("writes an 80 MB pickle")
	}
	var want map[string]json.RawMessage
	readJSON(t, "testdata/split_32616.json", &want)
	dir := t.TempDir()
	pk := filepath.Join(dir, "im.pk")
	if err := mimictest.WritePickleFile(pk, mimictest.Synthetic(mimictest.RealN, 2)); err != nil {
		t.Fatal(err)
	}
	a, err := mimicprep.ReadPickle(pk)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Prepare(a, filepath.Join(dir, "out"), Source{Kind: "pk"}); err != nil {
		t.Fatal(err)
	}
	tables := splitTables(t, filepath.Join(dir, "out"))
	for _, name := range []string{"validation", "test", "train"} {
		var part struct {
			Rows   int    `json:"rows"`
			SHA256 string `json:"sha256"`
		}
		if err := json.Unmarshal(want[name], &part); err != nil {
			t.Fatal(err)
		}
		ri := col(t, tables[name], ColRowIndex).Int64
		s := make([]string, len(ri))
		for i, r := range ri {
			s[i] = strconv.FormatInt(r, 10)
		}
		sum := sha256.Sum256([]byte(strings.Join(s, ",")))
		if len(ri) != part.Rows || hex.EncodeToString(sum[:]) != part.SHA256 {
			t.Errorf("%s: %d rows (sha256 %x), CPython %d rows (%s)", name, len(ri), sum, part.Rows, part.SHA256)
		}
	}
}

func TestLabelOf(t *testing.T) {
	nan := math.NaN()
	cases := []struct {
		row  []float64
		want int64
	}{
		{[]float64{0, 0, 0, 0, 0, 0}, 0},
		{[]float64{1, 0, 0, 0, 0, 0}, 0}, // column 0 is ignored
		{[]float64{0, 1, 1, 1, 1, 1}, 1}, // first positive wins
		{[]float64{0, 0, 0, 0, 0, 2}, 5},
		{[]float64{0, 0, 0.5, 0, 0, 0, 1}, 2},
		{[]float64{0, 0, 0, 0, 0, 0, 1}, 0}, // columns past 5 are ignored
		{[]float64{0, -1, 0, 3, 0, 0}, 3},   // negative is not positive
		{[]float64{0, nan, 0, 0, 1, 0}, 4},  // NaN > 0 is false
	}
	for _, c := range cases {
		if got := LabelOf(c.row); got != c.want {
			t.Errorf("LabelOf(%v) = %d, want %d", c.row, got, c.want)
		}
	}
}

func TestZeroNonFinite(t *testing.T) {
	inf := math.Inf(1)
	v := []float64{1, math.NaN(), inf, -inf, -2, math.NaN()}
	c := ZeroNonFinite(v)
	if c != (NonFinite{NaN: 2, PosInf: 1, NegInf: 1}) || c.Total() != 4 {
		t.Errorf("counts %+v", c)
	}
	if !slices.Equal(v, []float64{1, 0, 0, 0, -2, 0}) {
		t.Errorf("cleaned %v", v)
	}
}

func TestZScore(t *testing.T) {
	// Two columns: [1 2 3 4] (mean 2.5, population std sqrt(1.25)) and a
	// constant column, which must become 0 rather than NaN.
	v := []float64{1, 7, 2, 7, 3, 7, 4, 7}
	mean, std := ZScore(v, 2)
	if mean[0] != 2.5 || mean[1] != 7 || std[0] != math.Sqrt(1.25) || std[1] != 0 {
		t.Fatalf("mean %v std %v", mean, std)
	}
	s := math.Sqrt(1.25)
	want := []float64{-1.5 / s, 0, -0.5 / s, 0, 0.5 / s, 0, 1.5 / s, 0}
	for i := range v {
		if !closeTo(v[i], want[i], 1e-15) {
			t.Errorf("v[%d] = %v, want %v", i, v[i], want[i])
		}
	}
	if m, s := ZScore(nil, 3); len(m) != 3 || len(s) != 3 {
		t.Error("empty input must still give one statistic per feature")
	}
}

func TestSplitSizes(t *testing.T) {
	cases := []struct{ n, val, test, train int }{
		{0, 0, 0, 0}, {1, 0, 0, 1}, {9, 0, 1, 8}, {10, 1, 1, 8}, {15, 1, 2, 12}, {32616, 3261, 3262, 26093},
	}
	for _, c := range cases {
		s := Split(c.n, SplitSeed)
		if len(s.Validation) != c.val || len(s.Test) != c.test || len(s.Train) != c.train {
			t.Errorf("n=%d: %d/%d/%d, want %d/%d/%d", c.n, len(s.Validation), len(s.Test), len(s.Train), c.val, c.test, c.train)
		}
	}
}

func TestPrepareRejectsBadArrays(t *testing.T) {
	good := func() *mimicprep.Arrays { return mimictest.Synthetic(4, 1) }
	cases := []struct {
		name string
		edit func(a *mimicprep.Arrays)
		src  Source
		want string
	}{
		{"short time series", func(a *mimicprep.Arrays) { a.TimeSeries = a.TimeSeries[:10] }, Source{Kind: "pk"}, "ep_tdata"},
		{"short static", func(a *mimicprep.Arrays) { a.Static = a.Static[:3] }, Source{Kind: "pk"}, "adm_features_all"},
		{"few label columns", func(a *mimicprep.Arrays) { a.LabelCols = 5 }, Source{Kind: "pk"}, "adm_labels_all"},
		{"label length", func(a *mimicprep.Arrays) { a.Labels = a.Labels[:1] }, Source{Kind: "pk"}, "adm_labels_all"},
		{"bad kind", func(*mimicprep.Arrays) {}, Source{Kind: "csv"}, "source kind"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := good()
			c.edit(a)
			dir := t.TempDir()
			_, err := Prepare(a, dir, c.src)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one naming %q", err, c.want)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("wrote %d files despite the error", len(entries))
			}
		})
	}
	if _, err := Prepare(nil, t.TempDir(), Source{Kind: "pk"}); err == nil {
		t.Error("nil arrays accepted")
	}
}

// BenchmarkConvertRealSize is the conversion the CLI runs, on a synthetic
// im.pk of the real size (32,616 samples): read and decode the pickle,
// clean, normalise, split, and write the three Arrow files and manifest.
func BenchmarkConvertRealSize(b *testing.B) {
	dir := b.TempDir()
	pk := filepath.Join(dir, "im.pk")
	if err := mimictest.WritePickleFile(pk, mimictest.Synthetic(mimictest.RealN, 2)); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		sum, err := artifact.SHA256File(pk)
		if err != nil {
			b.Fatal(err)
		}
		a, err := mimicprep.ReadPickle(pk)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Prepare(a, filepath.Join(dir, "out"), Source{Kind: "pk", SHA256: sum}); err != nil {
			b.Fatal(err)
		}
	}
}
