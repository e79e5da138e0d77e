package mimicraw

import (
	"compress/gzip"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/m2mix/m2mix/prep/mimic"
)

// A small hand-built MIMIC-III world for unit tests. Every table is written
// the way PhysioNet ships it (ROW_ID first, quoted upper-case headers, quoted
// text), except where a test asks for lower-case headers or gzip.

// t0 is the INTIME of the default ICU stay; times in tests are hours from it.
func t0() time.Time { return time.Date(2150, 1, 1, 0, 0, 0, 0, time.UTC) }

// at formats t0 + h hours (h may be fractional; minute resolution).
func at(h float64) string {
	return t0().Add(time.Duration(math.Round(h*60)) * time.Minute).Format("2006-01-02 15:04:05")
}

type world struct {
	patients   [][]string // SUBJECT_ID, DOB, DOD
	admissions [][]string // SUBJECT_ID, HADM_ID, ADMITTIME, DISCHTIME, DEATHTIME, ADMISSION_TYPE
	icustays   [][]string // SUBJECT_ID, HADM_ID, ICUSTAY_ID, INTIME
	transfers  [][]string // HADM_ID
	services   [][]string // HADM_ID, TRANSFERTIME, CURR_SERVICE
	diagnoses  [][]string // HADM_ID, SEQ_NUM, ICD9_CODE
	labs       [][]string // SUBJECT_ID, HADM_ID, ITEMID, CHARTTIME, VALUE, VALUENUM
	outputs    [][]string // SUBJECT_ID, HADM_ID, ICUSTAY_ID, CHARTTIME, ITEMID, VALUE
	charts     [][]string // SUBJECT_ID, HADM_ID, ICUSTAY_ID, ITEMID, CHARTTIME, VALUE, VALUENUM, ERROR
	lowerCase  map[string]bool
	gz         map[string]bool
}

// newWorld has one adult patient (subject 1, admission 100, ICU stay 1000 at
// t0), a medical admission, one diagnosis, and BUN labs at 0 h and 25 h so the
// observation span exceeds 24 h.
func newWorld() *world {
	w := &world{lowerCase: map[string]bool{}, gz: map[string]bool{}}
	w.patients = [][]string{{"1", "2100-01-01 00:00:00", ""}}
	w.admissions = [][]string{{"1", "100", at(-2), at(240), "", "EMERGENCY"}}
	w.icustays = [][]string{{"1", "100", "1000", at(0)}}
	w.transfers = [][]string{{"100"}}
	w.services = [][]string{{"100", at(-2), "MED"}}
	w.diagnoses = [][]string{{"100", "1", "4019"}}
	w.labs = [][]string{
		{"1", "100", "51006", at(0), "20", "20"},
		{"1", "100", "51006", at(25), "30", "30"},
	}
	return w
}

func (w *world) lab(item int, h float64, v string) {
	w.labs = append(w.labs, []string{"1", "100", strconv.Itoa(item), at(h), v, v})
}

func (w *world) chart(stay string, item int, h float64, value, valuenum, errFlag string) {
	w.charts = append(w.charts, []string{"1", "100", stay, strconv.Itoa(item), at(h), value, valuenum, errFlag})
}

func (w *world) output(stay string, item int, h float64, v string) {
	w.outputs = append(w.outputs, []string{"1", "100", stay, at(h), strconv.Itoa(item), v})
}

// csvField quotes text the way the PhysioNet export does.
func csvField(s string) string {
	if s == "" {
		return ""
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

func (w *world) write(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	tables := []struct {
		name string
		cols []string
		rows [][]string
	}{
		{"PATIENTS", []string{"SUBJECT_ID", "GENDER", "DOB", "DOD"}, nil},
		{"ADMISSIONS", neededColumns("ADMISSIONS"), w.admissions},
		{"ICUSTAYS", neededColumns("ICUSTAYS"), w.icustays},
		{"TRANSFERS", neededColumns("TRANSFERS"), w.transfers},
		{"SERVICES", neededColumns("SERVICES"), w.services},
		{"DIAGNOSES_ICD", neededColumns("DIAGNOSES_ICD"), w.diagnoses},
		{"LABEVENTS", neededColumns("LABEVENTS"), w.labs},
		{"OUTPUTEVENTS", neededColumns("OUTPUTEVENTS"), w.outputs},
		{"CHARTEVENTS", neededColumns("CHARTEVENTS"), w.charts},
	}
	// PATIENTS gets an extra column between the needed ones.
	for _, p := range w.patients {
		tables[0].rows = append(tables[0].rows, []string{p[0], "F", p[1], p[2]})
	}
	for _, tb := range tables {
		var b strings.Builder
		b.WriteString(`"ROW_ID"`)
		for _, c := range tb.cols {
			if w.lowerCase[tb.name] {
				c = strings.ToLower(c)
			}
			b.WriteString(`,"` + c + `"`)
		}
		b.WriteString("\n")
		for i, r := range tb.rows {
			b.WriteString(strconv.Itoa(i + 1))
			for _, v := range r {
				b.WriteString("," + csvField(v))
			}
			b.WriteString("\n")
		}
		writeTable(t, dir, tb.name, b.String(), w.gz[tb.name])
	}
	return dir
}

func writeTable(t *testing.T, dir, name, content string, gz bool) {
	t.Helper()
	path := filepath.Join(dir, name+".csv")
	if gz {
		path += ".gz"
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	var out io.Writer = f
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(f)
		out = zw
	}
	if _, err := io.WriteString(out, content); err != nil {
		t.Fatal(err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// build writes the world and runs Build with quiet progress.
func (w *world) build(t *testing.T) (*mimic.Arrays, map[string]string) {
	t.Helper()
	arr, meta, err := Build(w.write(t), Options{Workers: 2, Progress: io.Discard})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return arr, meta
}

// col extracts one ep_tdata column (24 hours) of sample n.
func col(arr *mimic.Arrays, n, c int) []float64 {
	out := make([]float64, hours)
	for h := range out {
		out[h] = arr.TimeSeries[(n*hours+h)*nSeries+c]
	}
	return out
}

// hoursOf builds an expected 24-hour column from (first hour, value) steps:
// steps must start at hour 0; each value holds until the next step.
func hoursOf(steps ...float64) []float64 {
	out := make([]float64, hours)
	for i := 0; i+1 < len(steps); i += 2 {
		from := int(steps[i])
		for h := from; h < hours; h++ {
			out[h] = steps[i+1]
		}
	}
	return out
}

func assertColumn(t *testing.T, name string, got, want []float64) {
	t.Helper()
	for h := range want {
		if !near(got[h], want[h]) {
			t.Errorf("%s: hour %d = %v, want %v\n got  %v\n want %v", name, h, got[h], want[h], fmtVals(got), fmtVals(want))
			return
		}
	}
}

func near(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b))
}

func fmtVals(v []float64) string {
	var s []string
	for _, x := range v {
		s = append(s, fmt.Sprintf("%.4g", x))
	}
	return strings.Join(s, " ")
}
