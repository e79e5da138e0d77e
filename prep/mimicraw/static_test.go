package mimicraw

import (
	"slices"
	"testing"
)

func mustTime(t *testing.T, s string) int64 {
	t.Helper()
	v, ok := parseTime([]byte(s))
	if !ok {
		t.Fatalf("parseTime(%q) failed", s)
	}
	return v
}

// Spec §5 row 0: whole-day date difference, round(days/365.242, 2) half away
// from zero, times 365.242; not capped for shifted ages over 89.
func TestAgeDays(t *testing.T) {
	tests := []struct {
		dob, intime string
		want        float64 // from Python: float(Decimal(round)) * 365.242
	}{
		{"2100-01-01 00:00:00", "2150-01-01 10:00:00", 18262.100000000002}, // 18262 d -> 50.00 y
		{"2000-01-01 00:00:00", "2088-04-22 08:00:00", 32254.521020000004}, // 32254 d -> 88.31 y (spec's example)
		{"2100-01-01 23:59:59", "2100-07-03 00:00:01", 182.621},            // dates differ by 183 d -> 0.50 y
		{"1850-06-01 00:00:00", "2150-06-01 12:00:00", 109572.6},           // shifted >89: ~300 y
	}
	for _, tc := range tests {
		got := ageDays(mustTime(t, tc.intime), mustTime(t, tc.dob))
		if got != tc.want {
			t.Errorf("ageDays(dob %s, intime %s) = %v, want %v", tc.dob, tc.intime, got, tc.want)
		}
	}
}

// Spec §5 rows 1-3: bpchar range tests on the code cast to char(5).
func TestComorbidities(t *testing.T) {
	tests := []struct {
		code            string
		aids, hem, mets float64
	}{
		{"042", 1, 0, 0}, {"0420", 1, 0, 0}, {"0431", 1, 0, 0}, {"0449", 1, 0, 0},
		{"04490", 0, 0, 0}, {"0419", 0, 0, 0},
		{"20000", 0, 1, 0}, {"20238", 0, 1, 0}, {"20239", 0, 0, 0}, {"20240", 0, 1, 0},
		{"20302", 0, 1, 0}, {"20382", 0, 1, 0}, {"20383", 0, 0, 0}, {"20892", 0, 1, 0},
		{"2386", 0, 1, 0}, {"23860", 0, 0, 0}, {"2733", 0, 1, 0},
		{"1960", 0, 0, 1}, {"1991", 0, 0, 1}, {"19910", 0, 0, 0}, {"1970", 0, 0, 1},
		{"20970", 0, 0, 1}, {"20975", 0, 0, 1}, {"20976", 0, 0, 0}, {"20979", 0, 0, 1}, {"78951", 0, 0, 1},
		{"V1582", 0, 0, 0}, {"E8788", 0, 0, 0}, {"", 0, 0, 0},
	}
	for _, tc := range tests {
		a, h, m := comorbidities([]string{tc.code})
		if a != tc.aids || h != tc.hem || m != tc.mets {
			t.Errorf("comorbidities(%q) = %v,%v,%v, want %v,%v,%v", tc.code, a, h, m, tc.aids, tc.hem, tc.mets)
		}
	}
	if a, h, m := comorbidities([]string{"4019", "0420", "20300", "1985"}); a != 1 || h != 1 || m != 1 {
		t.Errorf("any code of the admission counts: got %v %v %v", a, h, m)
	}
}

// Spec §5 row 4.
func TestAdmissionType(t *testing.T) {
	tests := []struct {
		admType, service string
		has              bool
		want             float64
	}{
		{"ELECTIVE", "SURG", true, 1},
		{"ELECTIVE", "CSURG", true, 1},
		{"EMERGENCY", "NSURG", true, 2},
		{"URGENT", "TSURG", true, 2},
		{"ELECTIVE", "MED", true, 0},
		{"EMERGENCY", "CMED", true, 0},
		{"ELECTIVE", "", false, 0}, // no SERVICES row: Medical
		{"", "SURG", true, 0},      // NULL admission type: both SQL tests are NULL
	}
	for _, tc := range tests {
		if got := admissionType(tc.admType, tc.service, tc.has); got != tc.want {
			t.Errorf("admissionType(%q, %q, %v) = %v, want %v", tc.admType, tc.service, tc.has, got, tc.want)
		}
	}
}

// The first SERVICES row by TRANSFERTIME decides, whatever the file order.
func TestAdmissionTypeUsesFirstService(t *testing.T) {
	w := newWorld()
	w.admissions[0][5] = "ELECTIVE"
	w.services = [][]string{{"100", at(2), "MED"}, {"100", at(-1), "SURG"}}
	arr, _ := w.build(t)
	if got := arr.Static[4]; got != 1 {
		t.Errorf("admission type = %v, want 1 (ScheduledSurgical)", got)
	}
	want := []float64{18262.100000000002, 0, 0, 0, 1} // DOB 2100-01-01, INTIME 2150-01-01
	if !slices.Equal(arr.Static, want) {
		t.Errorf("static = %v, want %v", arr.Static, want)
	}
}

// Spec §6.1, every column.
func TestMortalityLabels(t *testing.T) {
	const h, d = int64(3600), int64(86400)
	start := int64(1_000_000_000)
	disch := start + 10*d
	year := int64(31557168) // 365.245 days in seconds
	tests := []struct {
		name  string
		death int64 // 0 = NULL, else offset from start + 1
		dod   int64 // 0 = NULL, else offset from disch + 1
		want  [6]float64
	}{
		{"alive, no DOD", 0, 0, [6]float64{}},
		{"death at exactly 24 h", 24*h + 1, -disch + start + 24*h + 1, [6]float64{1, 1, 1, 1, 1, 1}},
		{"death at 24 h + 1 min", 24*h + 60 + 1, 1, [6]float64{1, 0, 1, 1, 1, 1}},
		{"death at 48 h + 1 min", 48*h + 60 + 1, 1, [6]float64{1, 0, 0, 1, 1, 1}},
		{"death at 72 h + 1 min", 72*h + 60 + 1, 1, [6]float64{1, 0, 0, 0, 1, 1}},
		{"death before ICU INTIME", -2*h + 1, 1, [6]float64{1, 1, 1, 1, 1, 1}},
		{"DOD 30 d after discharge", 0, 30*d + 1, [6]float64{0, 0, 0, 0, 1, 1}},
		{"DOD 30 d + 1 min after", 0, 30*d + 60 + 1, [6]float64{0, 0, 0, 0, 0, 1}},
		{"DOD at 365.245 d", 0, year + 1, [6]float64{0, 0, 0, 0, 0, 1}},
		{"DOD 1 s after 365.245 d", 0, year + 2, [6]float64{}},
	}
	for _, tc := range tests {
		a := &admissionRow{disch: disch, hasDisch: true}
		if tc.death != 0 {
			a.death, a.hasDeath = start+tc.death-1, true
		}
		var p patient
		if tc.dod != 0 {
			p.dod, p.hasDOD = disch+tc.dod-1, true
		}
		if got := mortalityLabels(a, p, start); got != tc.want {
			t.Errorf("%s: labels = %v, want %v", tc.name, got, tc.want)
		}
	}
	// DOD without DISCHTIME: Python's subtraction fails, labels stay 0.
	if got := mortalityLabels(&admissionRow{}, patient{dod: start, hasDOD: true}, start); got != [6]float64{} {
		t.Errorf("NULL DISCHTIME: labels = %v, want zeros", got)
	}
}

// Spec §6.2 and §2.3.
func TestICD9Categories(t *testing.T) {
	row := func(seq int64, code string) diagnosisRow {
		return diagnosisRow{seq: seq, hasSeq: true, code: code, line: 10 - seq}
	}
	tests := []struct {
		name  string
		rows  []diagnosisRow
		want  []int
		drops bool
	}{
		{"categories", []diagnosisRow{row(1, "4019"), row(2, "V1582"), row(3, "E8788"), row(4, "78951"), row(5, "0389"), row(6, "12")},
			[]int{6, 19, 20, 15, 0, 0}, false},
		{"SEQ_NUM order, not file order", []diagnosisRow{row(2, "7707"), row(1, "99591")}, []int{18, 14}, false},
		{"678 keeps the previous category", []diagnosisRow{row(1, "4019"), row(2, "6781")}, []int{6, 6}, false},
		{"678 first: UnboundLocalError drops the admission", []diagnosisRow{row(1, "6780"), row(2, "4019")}, nil, true},
		{"NULL codes are skipped, so 678 after one is still first", []diagnosisRow{row(1, ""), row(2, "6790")}, nil, true},
		{"NULL SEQ_NUM sorts last", []diagnosisRow{{code: "6780", line: 1}, row(1, "4280")}, []int{6, 6}, false},
		{"unparseable code drops", []diagnosisRow{row(1, "X123")}, nil, true},
	}
	for _, tc := range tests {
		got, ok := icd9Categories(tc.rows)
		if ok == tc.drops || !slices.Equal(got, tc.want) {
			t.Errorf("%s: icd9Categories = %v, ok=%v; want %v, drop=%v", tc.name, got, ok, tc.want, tc.drops)
		}
	}
	for cat, want := range map[int]int{0: 0, 13: 13, 14: -1, 15: 14, 19: 18, 20: 19} {
		if got := icd9Column(cat); got != want {
			t.Errorf("icd9Column(%d) = %d, want %d", cat, got, want)
		}
	}
}

// y_icd9 through Build: category 14 has no column; 15 moves to column 14.
func TestYICD9Columns(t *testing.T) {
	w := newWorld()
	w.diagnoses = [][]string{{"100", "1", "7707"}, {"100", "2", "78951"}, {"100", "3", "V1582"}, {"100", "4", "0389"}}
	arr, meta := w.build(t)
	want := make([]float64, icd9Cols)
	want[0], want[14], want[18] = 1, 1, 1
	if !slices.Equal(arr.ICD9, want) {
		t.Errorf("y_icd9 = %v, want %v", arr.ICD9, want)
	}
	if got := meta["icd9.category_rows"]; got != "0:1,1:0,2:0,3:0,4:0,5:0,6:0,7:0,8:0,9:0,10:0,11:0,12:0,13:0,14:1,15:1,16:0,17:0,18:0,19:1,20:0" {
		t.Errorf("icd9.category_rows = %s", got)
	}
}
