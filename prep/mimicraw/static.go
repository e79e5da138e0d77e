package mimicraw

import (
	"sort"
	"strconv"
	"strings"
)

// Static features (spec §5), mortality labels (spec §6.1) and ICD-9
// categories (spec §6.2), as pure functions of the small tables.

// ageDays is adm_features_all[:,0] (spec §5 row 0): the whole-day difference
// of the dates of the earliest ICU INTIME and DOB (Postgres date - date),
// divided by 365.242, rounded to 2 decimals half away from zero (numeric
// round), then multiplied back by 365.242 in float64 (Python, L122).
func ageDays(intime, dob int64) float64 {
	days := dayOf(intime) - dayOf(dob)
	// round(days/365.242, 2) = round(days*100000/365242) / 100, computed on
	// integers so it is exact, as Postgres numeric is.
	num, den := days*100000, int64(365242)
	neg := num < 0
	if neg {
		num = -num
	}
	q := (2*num + den) / (2 * den)
	if neg {
		q = -q
	}
	years := float64(q) / 100 // the double nearest to the numeric, as float(Decimal) gives
	return years * 365.242
}

// icdCompareKey is cast(icd9_code as char(5)) compared as bpchar: truncate to
// 5 characters, ignore trailing spaces (spec §5).
func icdCompareKey(code string) string {
	if len(code) > 5 {
		code = code[:5]
	}
	return strings.TrimRight(code, " ")
}

func icdBetween(c, lo, hi string) bool { return c >= lo && c <= hi }

// comorbidities returns (AIDS, HEM, METS) as 0/1 over all diagnosis codes of
// the admission (spec §5 rows 1-3; SQL comorb, L47-66).
func comorbidities(codes []string) (aids, hem, mets float64) {
	for _, raw := range codes {
		if raw == "" {
			continue
		}
		c := icdCompareKey(raw)
		if icdBetween(c, "042", "0449") {
			aids = 1
		}
		if icdBetween(c, "20000", "20238") || icdBetween(c, "20240", "20248") ||
			icdBetween(c, "20250", "20302") || icdBetween(c, "20310", "20312") ||
			icdBetween(c, "20302", "20382") || icdBetween(c, "20400", "20522") ||
			icdBetween(c, "20580", "20702") || icdBetween(c, "20720", "20892") ||
			c == "2386" || c == "2733" {
			hem = 1
		}
		if icdBetween(c, "1960", "1991") || icdBetween(c, "20970", "20975") || c == "20979" || c == "78951" {
			mets = 1
		}
	}
	return aids, hem, mets
}

// admissionType is adm_features_all[:,4] (spec §5 row 4): 0 Medical,
// 1 ScheduledSurgical, 2 UnscheduledSurgical. surgical = the first SERVICES
// row's CURR_SERVICE contains "surg" case-insensitively; no row -> Medical.
// A NULL ADMISSION_TYPE makes both SQL comparisons NULL -> Medical.
func admissionType(admType string, firstService string, hasService bool) float64 {
	if !hasService || !strings.Contains(strings.ToLower(firstService), "surg") || admType == "" {
		return 0
	}
	if admType == "ELECTIVE" {
		return 1
	}
	return 2
}

// mortalityLabels is adm_labels_all (spec §6.1): mor, mor24, mor48, mor72,
// mor30d, mor1y. start is the INTIME of the first ICU stay.
func mortalityLabels(a *admissionRow, p patient, start int64) [6]float64 {
	var l [6]float64
	if a.hasDeath {
		l[0] = 1
		tlen := float64(a.death - start)
		for i, h := range []float64{24, 48, 72} {
			if tlen <= h*60*60 {
				l[1+i] = 1
			}
		}
	}
	if p.hasDOD && a.hasDisch {
		live := float64(p.dod - a.disch)
		// Python evaluates 365.245 * 24 * 60 * 60 left to right in doubles;
		// a variable keeps Go from folding the constant exactly.
		year := 365.245
		year = year * 24 * 60 * 60
		if live <= 30*24*60*60 {
			l[4] = 1
		}
		if live <= year {
			l[5] = 1
		}
	}
	return l
}

// icd9Category maps one code to its category 0..20 (processing.py ICD9,
// spec §6.2); ok is false when no branch matches (e.g. 678-679, 000).
// bad is true when the code is not parseable the way Python's float()
// needs (the admission then fails processing).
func icd9Category(code string) (cat int, ok bool, bad bool) {
	switch code[0] {
	case 'V':
		return 19, true, false
	case 'E':
		return 20, true, false
	}
	head := code
	if len(head) > 3 {
		head = head[:3]
	}
	num, err := strconv.ParseFloat(strings.TrimSpace(head), 64)
	if err != nil {
		return 0, false, true
	}
	bounds := [...]struct{ lo, hi float64 }{
		{1, 139}, {140, 239}, {240, 279}, {280, 289}, {290, 319}, {320, 389}, {390, 459},
		{460, 519}, {520, 579}, {580, 629}, {630, 677}, {680, 709}, {710, 739}, {740, 759},
		{760, 779}, {780, 789}, {790, 796}, {797, 799}, {800, 999},
	}
	for i, b := range bounds {
		if num >= b.lo && num <= b.hi { // the index is the category; 678-679 fall between 10 and 11
			return i, true, false
		}
	}
	return 0, false, false
}

// icd9Categories returns the category of every non-NULL diagnosis row in
// SEQ_NUM order (NULL SEQ_NUM last, then file order). A code with no category
// keeps the previous code's category; when it is the first code, Python
// raises UnboundLocalError and the admission drops out (spec §2.3, §6.2):
// ok=false. An unparseable code also drops the admission.
func icd9Categories(diags []diagnosisRow) (cats []int, ok bool) {
	d := append([]diagnosisRow(nil), diags...)
	sort.SliceStable(d, func(i, j int) bool {
		if d[i].hasSeq != d[j].hasSeq {
			return d[i].hasSeq
		}
		if d[i].seq != d[j].seq {
			return d[i].seq < d[j].seq
		}
		return d[i].line < d[j].line
	})
	prev := -1
	for _, r := range d {
		if r.code == "" {
			continue
		}
		c, hit, bad := icd9Category(r.code)
		if bad {
			return nil, false
		}
		if !hit {
			if prev < 0 {
				return nil, false
			}
			c = prev
		}
		cats = append(cats, c)
		prev = c
	}
	return cats, true
}

// icd9Column maps a category to its y_icd9 column under the fixed mapping the
// spec recommends (§6.2): every category except 14 (perinatal, 760-779).
func icd9Column(cat int) int {
	switch {
	case cat < 14:
		return cat
	case cat == 14:
		return -1
	default:
		return cat - 1
	}
}

// icd9Cols is the width of y_icd9.
const icd9Cols = 20
