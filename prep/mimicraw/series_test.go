package mimicraw

import (
	"math"
	"testing"
)

// Output columns of ep_tdata (spec §4 step 7).
const (
	cGCS = iota
	cSBP
	cHR
	cTemp
	cPF
	cUO
	cBUN
	cWBC
	cHCO3
	cNa
	cK
	cBili
)

// Spec §4 step 3: bin k holds k*3600 <= t-ts0 <= (k+1)*3600, so the HR at
// exactly 1 h counts in bins 0 and 1; a series never observed stays NaN.
func TestBinEdgesAreClosed(t *testing.T) {
	w := newWorld()
	w.chart("1000", 211, 0, "60", "60", "")
	w.chart("1000", 211, 1, "90", "90", "")
	w.chart("1000", 211, 1.5, "120", "120", "")
	arr, _ := w.build(t)
	if arr.N != 1 {
		t.Fatalf("N = %d, want 1", arr.N)
	}
	assertColumn(t, "HR", col(arr, 0, cHR), hoursOf(0, (60+90)/2.0, 1, (90+120)/2.0))
	assertColumn(t, "BUN", col(arr, 0, cBUN), hoursOf(0, 20)) // 30 at 25 h is beyond hour 24
	assertColumn(t, "GCS (never observed)", col(arr, 0, cGCS), hoursOf(0, math.NaN()))
	assertColumn(t, "UO (never observed)", col(arr, 0, cUO), hoursOf(0, math.NaN()))
}

// Spec §4 step 3: bins start at the first observation, here a potassium lab
// 3 h before INTIME (labs count from INTIME-6h); a lab 7 h before is dropped.
func TestSeriesAnchoredAtFirstObservation(t *testing.T) {
	w := newWorld()
	w.lab(50971, -3, "4.0")
	w.lab(50983, -7, "140") // outside INTIME-6h: dropped, must not move the anchor
	w.chart("1000", 211, 0, "60", "60", "")
	w.chart("1000", 211, 0.5, "80", "80", "")
	arr, meta := w.build(t)
	// ts0 = -3h: HR at 0h is 3h in (bins 2 and 3), HR at 0.5h is in bin 3.
	assertColumn(t, "HR", col(arr, 0, cHR), hoursOf(0, 60, 3, 70))
	assertColumn(t, "K", col(arr, 0, cK), hoursOf(0, 4))
	assertColumn(t, "Na", col(arr, 0, cNa), hoursOf(0, math.NaN()))
	if got := meta["rows.LABEVENTS.before_window"]; got != "1" {
		t.Errorf("rows.LABEVENTS.before_window = %q, want 1", got)
	}
}

// Spec §4 step 5: forward then backward fill for all but urine output; urine
// gaps get the mean of the un-imputed hourly values over the whole stay.
func TestFillForwardBackwardAndUrineMean(t *testing.T) {
	w := newWorld()
	w.chart("1000", 676, 5, "37", "37", "")
	w.chart("1000", 676, 10.5, "39", "39", "")
	w.output("1000", 40055, 2, "100")
	w.output("1000", 40055, 30, "300") // span 30 h: T = 30 bins; 30 h lands only in bin 29
	arr, _ := w.build(t)
	assertColumn(t, "Temp", col(arr, 0, cTemp), hoursOf(0, 37, 10, 39))
	mean := (100.0 + 100 + 300) / 3 // bins 1, 2 and 29
	assertColumn(t, "UO", col(arr, 0, cUO), hoursOf(0, mean, 1, 100, 3, mean))
}

// Spec §3 row 5: urine is summed per (ICU stay, charttime) with GU irrigant
// in (227488) negated, averaged over stays per charttime, and the hourly
// value is a mean, not a sum. Rows before their own stay's INTIME, NULL
// values and rows whose HADM_ID disagrees with the stay are dropped.
func TestUrineOutputAveragedAndIrrigantNegated(t *testing.T) {
	w := newWorld()
	w.icustays = append(w.icustays, []string{"1", "100", "1001", at(0.5)})
	w.output("1000", 40055, 1, "100")
	w.output("1000", 227488, 1, "30")
	w.output("1001", 226559, 1, "50")
	w.output("1000", 40055, 1.5, "200")
	w.output("1000", 40055, 1.5, "")      // NULL: ignored by sum()
	w.output("1001", 226559, 0.25, "999") // before stay 1001's INTIME
	w.outputs = append(w.outputs, []string{"1", "999", "1000", at(1.5), "40055", "5000"})
	arr, meta := w.build(t)
	at1 := ((100.0 - 30) + 50) / 2 // avg over the two stays
	bin0, bin1 := at1, (at1+200)/2
	mean := (bin0 + bin1) / 2 // T = 25 bins, only two observed
	assertColumn(t, "UO", col(arr, 0, cUO), hoursOf(0, bin0, 1, bin1, 2, mean))
	for k, want := range map[string]string{
		"rows.OUTPUTEVENTS.before_window": "1",
		"rows.OUTPUTEVENTS.null_value":    "1",
		"rows.OUTPUTEVENTS.id_mismatch":   "1",
	} {
		if meta[k] != want {
			t.Errorf("%s = %q, want %s", k, meta[k], want)
		}
	}
}

// Spec §3 rows 1-3: Fahrenheit items are range-checked before conversion,
// Celsius items 10 < v < 50, SBP 0 < v < 400, HR 0 < v < 300; ERROR = 1,
// rows before INTIME and rows of another admission are dropped; several
// items at one charttime are averaged.
func TestVitalsUnitsAndRanges(t *testing.T) {
	w := newWorld()
	w.chart("1000", 678, 0, "98.6", "98.6", "")      // 37 C
	w.chart("1000", 223762, 0, "38", "38", "0")      // 38 C
	w.chart("1000", 678, 1, "60", "60", "")          // < 70 F: dropped
	w.chart("1000", 676, 1, "55", "55", "")          // >= 50 C: dropped
	w.chart("1000", 223761, 1, "100.4", "100.4", "") // 38 C
	w.chart("1000", 51, 0, "400", "400", "")         // not < 400: dropped
	w.chart("1000", 455, 0, "120", "120", "")
	w.chart("1000", 220179, 0, "140", "140", "0")
	w.chart("1000", 220050, 0, "10", "10", "1") // ERROR = 1: dropped
	w.chart("1000", 442, 2, "0", "0", "")       // not > 0: dropped
	w.chart("1000", 6701, 2, "399", "399", "")
	w.chart("1000", 211, 3, "300", "300", "") // not < 300: dropped
	w.chart("1000", 220045, 3, "299", "299", "0")
	w.chart("1000", 211, -1, "50", "50", "") // before INTIME: dropped
	w.charts = append(w.charts, []string{"1", "999", "1000", "211", at(3), "70", "70", ""})
	arr, meta := w.build(t)
	assertColumn(t, "Temp", col(arr, 0, cTemp), hoursOf(0, ((37+38)/2.0+38)/2, 1, 38))
	assertColumn(t, "SBP", col(arr, 0, cSBP), hoursOf(0, 130, 1, 399))
	assertColumn(t, "HR", col(arr, 0, cHR), hoursOf(0, 299))
	for k, want := range map[string]string{
		"rows.CHARTEVENTS.out_of_range":  "5",
		"rows.CHARTEVENTS.error_flag":    "1",
		"rows.CHARTEVENTS.before_window": "1",
		"rows.CHARTEVENTS.id_mismatch":   "1",
	} {
		if meta[k] != want {
			t.Errorf("%s = %q, want %s", k, meta[k], want)
		}
	}
}

// Spec §3.1: intubated verbal (text) scores 15; a missing verbal after an
// intubated one scores 15; other components carry over from the previous
// charting of the stay only within 6 h; ERROR = 1 rows are ignored.
func TestGCSRules(t *testing.T) {
	w := newWorld()
	w.chart("1000", 454, 0, "6", "6", "")
	w.chart("1000", 723, 0, "1.0 ET/Trach", "1", "") // intubated -> verbal 0 -> 15
	w.chart("1000", 184, 0, "4", "4", "")
	w.chart("1000", 223901, 1, "5", "5", "0")                // verbal NULL, prev verbal 0 -> 15
	w.chart("1000", 223900, 2, "Confused", "4", "0")         // m from prev (5) + 4 + 3 = 12
	w.chart("1000", 220739, 2, "3", "3", "0")                //
	w.chart("1000", 454, 4, "1", "1", "1")                   // ERROR = 1: ignored
	w.chart("1000", 184, 9, "2", "2", "")                    // prev 7 h back: 6 + 5 + 2 = 13
	w.chart("1000", 454, 10, "1", "1", "")                   // 1 + 5 + e from prev (2) = 8
	w.chart("1000", 223900, 12, "No Response-ETT", "1", "0") // intubated -> 15
	w.chart("1000", 723, 13, "3", "3", "")                   // prev verbal 0: 6 + 3 + 4 = 13
	arr, _ := w.build(t)
	want := hoursOf(0, 15, 1, (15+12)/2.0, 2, 12, 8, 13, 9, (13+8)/2.0, 10, 8, 11, 15, 12, (15+13)/2.0, 13, 13)
	assertColumn(t, "GCS", col(arr, 0, cGCS), want)
}

func TestGCSValue(t *testing.T) {
	base := func(m, v, e float64) gcsBase { return gcsBase{m: m, v: v, e: e} }
	tests := []struct {
		name string
		cur  gcsBase
		prev *gcsBase
		want float64
	}{
		{"all present", base(6, 5, 4), nil, 15},
		{"intubated", base(1, 0, 1), nil, 15},
		{"defaults without prev", base(math.NaN(), math.NaN(), math.NaN()), nil, 15},
		{"verbal null after intubated", base(3, math.NaN(), 2), &gcsBase{m: 6, v: 0, e: 4}, 15},
		{"verbal present after intubated: no carry-over", base(math.NaN(), 3, math.NaN()), &gcsBase{m: 1, v: 0, e: 1}, 6 + 3 + 4},
		{"carry-over", base(math.NaN(), math.NaN(), 2), &gcsBase{m: 4, v: 3, e: 1}, 4 + 3 + 2},
		{"carry-over of NULLs falls back to defaults", base(2, math.NaN(), math.NaN()), &gcsBase{m: 1, v: math.NaN(), e: math.NaN()}, 2 + 5 + 4},
	}
	for _, tc := range tests {
		if got := gcsValue(tc.cur, tc.prev); got != tc.want {
			t.Errorf("%s: gcsValue = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// Spec §3.2: the latest SpO2 row within 2 h and the latest FiO2 row within
// 4 h (even when its value is NULL) are attached; 'ART' passes, any other
// specimen only when p > 0.75; lab FiO2 wins over charted FiO2; the ratio is
// formed per hour after imputing PaO2 and FiO2 separately.
func TestPaO2FiO2Pairing(t *testing.T) {
	w := newWorld()
	w.lab(50821, 2, "100")
	w.lab(50800, 2, "ART")
	w.lab(50821, 5, "200") // no specimen: p ~ 1 passes
	w.lab(50816, 5, "55")  // lab FiO2 wins over the chart's 70
	w.lab(50821, 7, "40")  // VEN, p = 0.654 with the latest SpO2 (100): excluded
	w.lab(50800, 7, "VEN") // (with the older SpO2 90, p would be 0.898)
	w.lab(50821, 11, "100")
	w.lab(50800, 11, "ART")
	w.chart("1000", 223835, -2.5, "0.4", "0.4", "0") // 4.5 h before 2 h: outside
	w.chart("1000", 223835, -1, "0.5", "0.5", "0")
	w.chart("1000", 223835, 1, "60", "60", "0") // latest for 2 h
	w.chart("1000", 223835, 3.5, "0.7", "0.7", "0")
	w.chart("1000", 220277, 5.5, "90", "90", "")
	w.chart("1000", 220277, 6.5, "100", "100", "")
	w.chart("1000", 223835, 8, "50", "50", "0")
	w.chart("1000", 223835, 10, "15", "15", "0") // (1,21): NULL, yet the latest row for 11 h
	w.chart("1000", 220277, 20, "95", "95", "")  // far from any blood gas
	arr, meta := w.build(t)
	want := hoursOf(0, 100.0/60, 4, 200.0/55, 10, 100.0/55)
	assertColumn(t, "PaO2/FiO2", col(arr, 0, cPF), want)
	if got := meta["rows.CHARTEVENTS.far_from_blood_gas"]; got != "2" {
		t.Errorf("far_from_blood_gas = %q, want 2 (FiO2 at -2.5 h, SpO2 at 20 h)", got)
	}
}

// Spec §9 U5: charted FiO2 0 (3420 has no range check) makes an infinite
// ratio, which becomes NaN and is forward filled by the ratio imputation.
func TestZeroFiO2RatioIsImputed(t *testing.T) {
	w := newWorld()
	w.lab(50821, 2, "100")
	w.lab(50800, 2, "ART")
	w.lab(50821, 6, "100")
	w.lab(50800, 6, "ART")
	w.chart("1000", 3420, 1, "50", "50", "")
	w.chart("1000", 3420, 5, "0", "0", "")
	arr, _ := w.build(t)
	assertColumn(t, "PaO2/FiO2", col(arr, 0, cPF), hoursOf(0, 2))
}

func TestSpecimenProbability(t *testing.T) {
	var f [numKinds]float64
	for i := range f {
		f[i] = math.NaN()
	}
	f[kBgPO2] = 40
	// Hand-computed with the coefficients of spec §3.2 (all other inputs NULL).
	tests := []struct {
		spo2, fio2 float64
		want       float64
	}{
		{math.NaN(), math.NaN(), 0.6884263575306409},
		{100, 60, 0.6401660512013111},
		{90, 60, 0.8920337149528398},
	}
	for _, tc := range tests {
		got := specimenProb(&f, tc.spo2, tc.fio2)
		if math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("specimenProb(po2=40, spo2=%v, fio2=%v) = %v, want %v", tc.spo2, tc.fio2, got, tc.want)
		}
	}
}

func TestHourlyRatioAndNeverObserved(t *testing.T) {
	// Two timestamps 25 h apart: PaO2 at both, FiO2 never: ratio NaN.
	var r0, r1 [nRaw]float64
	for i := range r0 {
		r0[i], r1[i] = math.NaN(), math.NaN()
	}
	r0[fPaO2], r1[fPaO2] = 80, 90
	out := hourly([]int64{0, 25 * hour}, [][nRaw]float64{r0, r1})
	for h := 0; h < hours; h++ {
		if !math.IsNaN(out[h*nSeries+cPF]) {
			t.Fatalf("hour %d ratio = %v, want NaN (FiO2 never observed)", h, out[h*nSeries+cPF])
		}
	}
}
