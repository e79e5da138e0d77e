package mimicraw

import (
	"compress/gzip"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// demoDir is the public MIMIC-III demo v1.4 (without CHARTEVENTS).
const demoDir = "../../../shared/data/mimic3-demo"

// demoWithCharts links the demo tables into a temp dir and adds a synthetic
// CHARTEVENTS.csv with the given rows (SUBJECT_ID, HADM_ID, ICUSTAY_ID,
// ITEMID, CHARTTIME, VALUE, VALUENUM, ERROR).
func demoWithCharts(t *testing.T, rows [][]string) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(demoDir, "ADMISSIONS.csv.gz")); err != nil {
		t.Skipf("MIMIC-III demo not available: %v", err)
	}
	abs, err := filepath.Abs(demoDir)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, name := range tableNames() {
		if name == "CHARTEVENTS" {
			continue
		}
		if err := os.Symlink(filepath.Join(abs, name+".csv.gz"), filepath.Join(dir, name+".csv.gz")); err != nil {
			t.Fatal(err)
		}
	}
	var b strings.Builder
	b.WriteString(`"ROW_ID","SUBJECT_ID","HADM_ID","ICUSTAY_ID","ITEMID","CHARTTIME","STORETIME","CGID","VALUE","VALUENUM","VALUEUOM","WARNING","ERROR","RESULTSTATUS","STOPPED"` + "\n")
	for i, r := range rows {
		fmt.Fprintf(&b, "%d,%s,%s,%s,%s,%s,,,%s,%s,,,%s,,\n", i+1, r[0], r[1], r[2], r[3], r[4], csvField(r[5]), r[6], r[7])
	}
	writeTable(t, dir, "CHARTEVENTS", b.String(), false)
	return dir
}

// demoStays reads (SUBJECT_ID, HADM_ID, ICUSTAY_ID, INTIME) from the demo.
func demoStays(t *testing.T) [][4]string {
	t.Helper()
	f, err := os.Open(filepath.Join(demoDir, "ICUSTAYS.csv.gz"))
	if err != nil {
		t.Skipf("MIMIC-III demo not available: %v", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(zr).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var out [][4]string
	for _, r := range recs[1:] { // ROW_ID,SUBJECT_ID,HADM_ID,ICUSTAY_ID,...,INTIME(9)
		out = append(out, [4]string{r[1], r[2], r[3], r[9]})
	}
	return out
}

func shift(t *testing.T, ts string, d time.Duration) string {
	t.Helper()
	v, err := time.Parse("2006-01-02 15:04:05", ts)
	if err != nil {
		t.Fatal(err)
	}
	return v.Add(d).Format("2006-01-02 15:04:05")
}

// Spec §8: on the demo, every one of the 100 first admissions has an ICU stay
// and is adult; with a synthetic heart rate 1 min and 25 h after every ICU
// INTIME all 100 pass the span rule, and the statics and labels must match
// the counts the spec computed from the same tables.
func TestDemoEndToEnd(t *testing.T) {
	var rows [][]string
	for _, s := range demoStays(t) {
		rows = append(rows,
			[]string{s[0], s[1], s[2], "211", shift(t, s[3], time.Minute), "77", "77", ""},
			[]string{s[0], s[1], s[2], "220045", shift(t, s[3], 25*time.Hour), "77", "77", "0"},
			[]string{s[0], s[1], s[2], "678", shift(t, s[3], 2*time.Hour), "98.6", "98.6", ""})
	}
	arr, meta, err := Build(demoWithCharts(t, rows), Options{Progress: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if arr.N != 100 {
		t.Fatalf("N = %d, want 100 (all first admissions)", arr.N)
	}
	for n := 0; n < arr.N; n++ {
		hr, temp := col(arr, n, cHR), col(arr, n, cTemp)
		for h := 0; h < hours; h++ {
			if hr[h] != 77 || !near(temp[h], 37) {
				t.Fatalf("sample %d hour %d: HR %v Temp %v, want 77 and 37 (synthetic rows)", n, h, hr[h], temp[h])
			}
		}
	}
	var aids, hem, mets int
	var adm [3]int
	var class [6]int
	for n := 0; n < arr.N; n++ {
		s := arr.Static[n*5 : n*5+5]
		aids += int(s[1])
		hem += int(s[2])
		mets += int(s[3])
		adm[int(s[4])]++
		// MultiBench's 6-class target: first positive of columns 1..5 (spec §6.1).
		c := 0
		for j := 1; j <= 5; j++ {
			if arr.Labels[n*6+j] > 0 {
				c = j
				break
			}
		}
		class[c]++
		if arr.Static[n*5] < 15*365.242*0.99 {
			t.Errorf("sample %d: age %v days, want >= 15 years", n, arr.Static[n*5])
		}
	}
	if aids != 0 || hem != 6 || mets != 19 {
		t.Errorf("AIDS/HEM/METS = %d/%d/%d, want 0/6/19 (spec §8)", aids, hem, mets)
	}
	if adm != [3]int{79, 6, 15} {
		t.Errorf("admission types = %v, want [79 6 15] (spec §8)", adm)
	}
	if class != [6]int{27, 9, 1, 8, 27, 28} {
		t.Errorf("6-class mortality = %v, want [27 9 1 8 27 28] (spec §8)", class)
	}
	if got := meta["icd9.categories_over_10_rows"]; got != "0,1,2,3,4,5,6,7,8,9,11,12,15,16,18,19,20" {
		t.Errorf("ICD-9 categories with > 10 rows = %s, want 0-9,11,12,15,16,18,19,20 (spec §8)", got)
	}
	if meta["cohort.first_admissions"] != "100" || meta["cohort.admissions"] != "129" {
		t.Errorf("cohort funnel: admissions %s, first %s; want 129, 100", meta["cohort.admissions"], meta["cohort.first_admissions"])
	}
	var over89 int
	for n := 0; n < arr.N; n++ {
		if arr.Static[n*5] > 89*365.242 {
			over89++
		}
	}
	if over89 != 8 {
		t.Errorf("%d admissions with shifted ages > 89, want 8 (spec §8)", over89)
	}
}

// Without charted data the span rule keeps the admissions whose labs, urine
// and blood gases already span > 24 h: spec §8 counts 90 from labs and urine
// alone (a lower bound); arterial blood-gas times add one more.
func TestDemoWithoutChartevents(t *testing.T) {
	arr, meta, err := Build(demoWithCharts(t, nil), Options{Progress: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if arr.N != 91 || meta["cohort.dropped_span_le_24h"] != "9" {
		t.Errorf("N = %d, dropped for span = %s; want 91 and 9", arr.N, meta["cohort.dropped_span_le_24h"])
	}
}
