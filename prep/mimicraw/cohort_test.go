package mimicraw

import (
	"strconv"
	"testing"
	"time"
)

// addSubject adds a patient with one admission (HADM_ID hadm) admitted 2 h
// before t0, an ICU stay at t0 if stay != "", and a heart rate of hr at t0
// and at spanH hours (when spanH >= 0).
func (w *world) addSubject(subj, hadm int, dob time.Time, admitH float64, stay string, diag string, hr string, spanH float64) {
	s, h := strconv.Itoa(subj), strconv.Itoa(hadm)
	w.patients = append(w.patients, []string{s, dob.Format("2006-01-02 15:04:05"), ""})
	w.admissions = append(w.admissions, []string{s, h, at(admitH), at(240), "", "EMERGENCY"})
	w.transfers = append(w.transfers, []string{h})
	w.diagnoses = append(w.diagnoses, []string{h, "1", diag})
	if stay == "" {
		return
	}
	w.icustays = append(w.icustays, []string{s, h, stay, at(0)})
	if spanH >= 0 {
		w.charts = append(w.charts,
			[]string{s, h, stay, "211", at(0), hr, hr, ""},
			[]string{s, h, stay, "211", at(spanH), hr, hr, ""})
	}
}

// Spec §2: candidates from ICUSTAYS/TRANSFERS, first admission per subject
// only (no fallback), the 678-679 first-code failure, age >= 15 y, an ICU
// stay, an observation, and a span strictly over 24 h; rows ascending HADM_ID.
func TestCohortRules(t *testing.T) {
	w := newWorld() // subject 1, HADM 100: kept
	w.chart("1000", 211, 0, "61", "61", "")
	adult := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
	admit := t0().Add(-2 * time.Hour)
	fifteen := time.Duration(15*365.25*24) * time.Hour

	// Subject 2: the first admission (in TRANSFERS, no ICU stay) drops the
	// subject; the later admission with an ICU stay is not used.
	w.addSubject(2, 200, adult, -30*24, "", "4019", "", -1)
	w.patients = w.patients[:len(w.patients)-1] // addSubject below re-adds the patient
	w.addSubject(2, 201, adult, -2, "2010", "4019", "62", 30)
	// Subject 3: 1 minute younger than 15 years at admission.
	w.addSubject(3, 300, admit.Add(-fifteen+time.Minute), -2, "3000", "4019", "63", 30)
	// Subject 4: first diagnosis 678.x.
	w.addSubject(4, 400, adult, -2, "4000", "6780", "64", 30)
	// Subject 5: span exactly 24 h.
	w.addSubject(5, 500, adult, -2, "5000", "4019", "65", 24)
	// Subject 6: span 24 h + 1 min.
	w.addSubject(6, 600, adult, -2, "6000", "4019", "66", 24+1.0/60)
	// Subject 7: an ICU stay, no observation at all.
	w.addSubject(7, 700, adult, -2, "7000", "4019", "", -1)
	// Subject 8: two admissions at the same ADMITTIME: the lower HADM_ID wins.
	w.addSubject(8, 801, adult, -2, "8010", "4019", "81", 30)
	w.patients = w.patients[:len(w.patients)-1]
	w.addSubject(8, 800, adult, -2, "8000", "4019", "80", 30)
	// Subject 9: an admission in neither ICUSTAYS nor TRANSFERS.
	w.addSubject(9, 900, adult, -2, "", "4019", "", -1)
	w.transfers = w.transfers[:len(w.transfers)-1]
	// Subject 10: exactly 15 * 365.25 days old: kept.
	w.addSubject(10, 1000, admit.Add(-fifteen), -2, "10000", "4019", "70", 30)

	arr, meta := w.build(t)
	wantHR := []float64{61, 66, 80, 70} // HADM 100, 600, 800, 1000 in that order
	if arr.N != len(wantHR) {
		t.Fatalf("N = %d, want %d", arr.N, len(wantHR))
	}
	for n, hr := range wantHR {
		if got := col(arr, n, cHR)[0]; got != hr {
			t.Errorf("sample %d: HR = %v, want %v", n, got, hr)
		}
	}
	for k, want := range map[string]int{
		"cohort.admissions":               12,
		"cohort.candidate_admissions":     11,
		"cohort.first_admissions":         9, // subjects 1-8 and 10
		"cohort.dropped_no_icustay":       1,
		"cohort.dropped_age_under_15":     1,
		"cohort.dropped_icd9_first_code":  1,
		"cohort.candidates_before_events": 6,
		"cohort.dropped_no_observation":   1,
		"cohort.dropped_span_le_24h":      1,
		"cohort.n":                        4,
	} {
		if meta[k] != strconv.Itoa(want) {
			t.Errorf("%s = %q, want %d", k, meta[k], want)
		}
	}
}
