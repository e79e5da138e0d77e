package mimicraw

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/m2mix/m2mix/prep/npy"
)

func TestRecordCut(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"a,b\nc,d\ne", 8},
		{"a,b\n", 4},
		{"no newline", -1},
		{"a,\"x\ny\"\nb,\"open\n", 8},    // the last newline is inside quotes
		{"a,\"x\"\"\ny\"\n", 10},         // escaped quote, then a quoted newline
		{"\"only\nquoted\nnewlines", -1}, // every newline is inside quotes
	}
	for _, tc := range tests {
		if got := recordCut([]byte(tc.in)); got != tc.want {
			t.Errorf("recordCut(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

type scanned struct {
	line   int64
	fields []string
}

func scanAll(t *testing.T, path string, spec scanSpec, workers int) ([]scanned, error) {
	t.Helper()
	tf := &tableFile{name: "T", path: path, gz: strings.HasSuffix(path, ".gz")}
	var mu sync.Mutex
	var out []scanned
	err := scanTable(tf, spec, workers, nil, func(_ int, r *record) error {
		s := scanned{line: r.line}
		for _, f := range r.f {
			s.fields = append(s.fields, string(f))
		}
		mu.Lock()
		out = append(out, s)
		mu.Unlock()
		return nil
	})
	slices.SortFunc(out, func(a, b scanned) int { return int(a.line - b.line) })
	return out, err
}

// Quoted commas, escaped quotes, embedded newlines, CRLF, a lower-case header,
// the ITEMID prefilter and a missing final newline.
func TestScanTableFields(t *testing.T) {
	content := "row_id,\"ItemID\",\"VALUE\",charttime\r\n" +
		"1,211,\"a,b\",2150-01-01 00:00:00\r\n" +
		"2,999,\"skipped \"\"x\"\"\nstill skipped\",2150-01-01 00:00:00\n" +
		"3,211,\"say \"\"hi\"\"\",2150-01-02 00:00:00\n" +
		"\n" +
		"4,211,\"two\nlines\",2150-01-03 00:00:00\n" +
		"5,211,,2150-01-04 00:00:00"
	for _, gz := range []bool{false, true} {
		dir := t.TempDir()
		writeTable(t, dir, "T", content, gz)
		name := "T.csv"
		if gz {
			name += ".gz"
		}
		keep := make([]bool, 300)
		keep[211] = true
		got, err := scanAll(t, filepath.Join(dir, name), scanSpec{cols: []string{"CHARTTIME", "VALUE", "ITEMID"}, filter: 2, keep: keep}, 2)
		if err != nil {
			t.Fatal(err)
		}
		want := []scanned{
			{2, []string{"2150-01-01 00:00:00", "a,b", "211"}},
			{5, []string{"2150-01-02 00:00:00", `say "hi"`, "211"}},
			{7, []string{"2150-01-03 00:00:00", "two\nlines", "211"}},
			{9, []string{"2150-01-04 00:00:00", "", "211"}},
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("gz=%v:\n got  %v\n want %v", gz, got, want)
		}
	}
}

// A table bigger than several chunks, with quoted newlines spread through
// it, parsed on 2 workers: every wanted row arrives once with its line.
func TestScanTableManyChunks(t *testing.T) {
	var b strings.Builder
	b.WriteString("ROW_ID,ITEMID,VALUE\n")
	line := int64(1)
	var wantLines []int64
	var wantSum int
	for i := 0; b.Len() < 3*chunkSize; i++ {
		line++
		item := []int{211, 51, 999999}[i%3]
		if i%7 == 0 {
			fmt.Fprintf(&b, "%d,%d,\"multi\nline %d\"\n", i, item, i)
			if item != 999999 {
				wantLines = append(wantLines, line)
				wantSum += i
			}
			line++
			continue
		}
		fmt.Fprintf(&b, "%d,%d,\"v%d\"\n", i, item, i)
		if item != 999999 {
			wantLines = append(wantLines, line)
			wantSum += i
		}
	}
	dir := t.TempDir()
	writeTable(t, dir, "T", b.String(), false)
	keep := make([]bool, 1000)
	keep[211], keep[51] = true, true
	got, err := scanAll(t, filepath.Join(dir, "T.csv"), scanSpec{cols: []string{"ITEMID", "ROW_ID"}, filter: 0, keep: keep}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(wantLines) {
		t.Fatalf("rows = %d, want %d", len(got), len(wantLines))
	}
	sum := 0
	for i, s := range got {
		if s.line != wantLines[i] {
			t.Fatalf("row %d: line %d, want %d", i, s.line, wantLines[i])
		}
		v, _ := atoiFast([]byte(s.fields[1]))
		sum += int(v)
	}
	if sum != wantSum {
		t.Errorf("sum of ROW_IDs = %d, want %d", sum, wantSum)
	}
}

func TestParseTime(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1970-01-01 00:00:00", 0, true},
		{"1970-01-02", 86400, true},
		{"1969-12-31 23:59:59", -1, true},
		{"2000-03-01 00:00:00", 951868800, true},
		{"2150-01-01 12:30", 5680326600, true}, // values from Python calendar.timegm
		{"2100-02-29 00:00:00", 0, false},      // 2100 is not a leap year
		{"2104-02-29 00:00:00", 4233686400, true},
		{"2150-13-01 00:00:00", 0, false},
		{"2150-01-01 24:00:00", 0, false},
		{"2150/01/01 00:00:00", 0, false},
		{"", 0, false},
	}
	for _, tc := range tests {
		got, ok := parseTime([]byte(tc.in))
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("parseTime(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// Bad input names table, line and column (issue 7, "Bad input").
func TestBadInput(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(w *world, dir string)
		table  string
		line   int64
		column string
		reason string
	}{
		{"missing table", func(_ *world, dir string) { os.Remove(filepath.Join(dir, "CHARTEVENTS.csv")) },
			"CHARTEVENTS", 0, "", "missing table"},
		{"missing column", func(_ *world, dir string) {
			writeTable(t, dir, "LABEVENTS", "ROW_ID,SUBJECT_ID,HADM_ID,ITEMID,CHARTTIME,VALUE\n", false)
		}, "LABEVENTS", 1, "VALUENUM", "missing column"},
		{"bad timestamp", func(w *world, _ string) { w.labs[1][3] = "2150-13-01 00:00:00" },
			"LABEVENTS", 3, "CHARTTIME", "not a timestamp"},
		{"bad number", func(w *world, _ string) { w.chart("1000", 211, 1, "x", "abc", "") },
			"CHARTEVENTS", 3, "VALUENUM", "not a number"},
		{"bad DOB", func(w *world, _ string) { w.patients[0][1] = "yesterday" },
			"PATIENTS", 2, "DOB", "not a timestamp"},
		{"bad HADM_ID", func(w *world, _ string) { w.admissions[0][1] = "1x" },
			"ADMISSIONS", 2, "HADM_ID", "not an integer"},
		{"unterminated quote", func(_ *world, dir string) {
			writeTable(t, dir, "OUTPUTEVENTS", "ROW_ID,SUBJECT_ID,HADM_ID,ICUSTAY_ID,CHARTTIME,ITEMID,VALUE\n1,1,100,1000,\"2150-01-01,40055,1\n", false)
		}, "OUTPUTEVENTS", 2, "", "unterminated quoted field"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld()
			w.chart("1000", 211, 0, "60", "60", "")
			var dir string
			if strings.HasPrefix(tc.name, "bad") {
				tc.mutate(w, "")
				dir = w.write(t)
			} else {
				dir = w.write(t)
				tc.mutate(w, dir)
			}
			_, _, err := Build(dir, Options{Workers: 2, Progress: io.Discard})
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("err = %v, want an *InputError", err)
			}
			if ie.Table != tc.table || ie.Line != tc.line || ie.Column != tc.column || !strings.Contains(ie.Reason, tc.reason) {
				t.Errorf("err = %+v (%v), want table %s line %d column %q reason ~%q", *ie, err, tc.table, tc.line, tc.column, tc.reason)
			}
		})
	}
}

// A malformed value in a row whose ITEMID is not needed is never parsed.
func TestUnneededRowsAreNotParsed(t *testing.T) {
	w := newWorld()
	w.chart("1000", 211, 0, "60", "60", "")
	w.charts = append(w.charts, []string{"x", "y", "z", "123456", "not a time", "v", "not a number", "e"})
	arr, meta := w.build(t)
	if arr.N != 1 || meta["rows.CHARTEVENTS.rows_with_needed_itemid"] != "1" {
		t.Errorf("N = %d, rows with needed ITEMID = %s; want 1, 1", arr.N, meta["rows.CHARTEVENTS.rows_with_needed_itemid"])
	}
}

// Gzip tables and lower-case headers read the same as plain upper-case ones.
func TestGzipAndLowerCaseHeaders(t *testing.T) {
	w := newWorld()
	w.chart("1000", 211, 0, "60", "60", "")
	plain, _ := w.build(t)
	for _, name := range tableNames() {
		w.gz[name] = true
		w.lowerCase[name] = true
	}
	other, _ := w.build(t)
	if fmt.Sprint(plain) != fmt.Sprint(other) {
		t.Errorf("gzip/lower-case build differs:\n%v\n%v", plain, other)
	}
}

func TestWriteNPY(t *testing.T) {
	w := newWorld()
	w.chart("1000", 211, 0, "60", "60", "")
	w.admissions[0][4] = at(30) // died 30 h after INTIME
	arr, _ := w.build(t)
	dir := filepath.Join(t.TempDir(), "raw-npy")
	if err := WriteNPY(arr, dir); err != nil {
		t.Fatal(err)
	}
	check := func(name string, kind npy.Kind, shape []int, want []float64) {
		a, err := npy.Read(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if a.Kind != kind || !slices.Equal(a.Shape, shape) {
			t.Errorf("%s: kind %v shape %v, want %v %v", name, a.Kind, a.Shape, kind, shape)
		}
		if got := a.AsFloat64(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: values differ", name)
		}
	}
	check(NPYTimeSeries, npy.Float64, []int{1, 24, 12}, arr.TimeSeries)
	check(NPYStatic, npy.Float64, []int{1, 5}, arr.Static)
	check(NPYLabels, npy.Int64, []int{1, 6}, []float64{1, 0, 1, 1, 0, 0}) // no DOD
	check(NPYICD9, npy.Int64, []int{1, 20}, arr.ICD9)
	arr.N = 2
	if err := WriteNPY(arr, dir); err == nil {
		t.Error("WriteNPY accepted arrays whose lengths do not match N")
	}
}

// The memory guard stops a build that would keep too many events.
func TestMaxKeptEvents(t *testing.T) {
	w := newWorld() // 2 BUN labs
	for h := 0; h < 10; h++ {
		w.chart("1000", 211, float64(h), "60", "60", "")
	}
	dir := w.write(t)
	_, _, err := Build(dir, Options{Workers: 1, Progress: io.Discard, MaxKeptEvents: 8})
	var ie *InputError
	if !errors.As(err, &ie) || ie.Table != "CHARTEVENTS" || !strings.Contains(ie.Reason, "memory bound") {
		t.Errorf("err = %v, want a CHARTEVENTS memory-bound error", err)
	}
	if _, _, err := Build(dir, Options{Workers: 1, Progress: io.Discard, MaxKeptEvents: 12}); err != nil {
		t.Errorf("12 events allowed: %v", err)
	}
}
