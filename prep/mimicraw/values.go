package mimicraw

import (
	"math"
	"strconv"
)

// Field value parsing. Timestamps are naive "YYYY-MM-DD HH:MM:SS" (spec §8:
// parse as naive/UTC, no DST); they become seconds since 1970-01-01 on the
// proleptic Gregorian calendar, computed by hand because time.Parse is far too
// slow for hundreds of millions of rows.

// null reports whether a field is SQL NULL (empty in the CSV export).
func null(b []byte) bool { return len(b) == 0 }

// parseTime parses YYYY-MM-DD, YYYY-MM-DD HH:MM or YYYY-MM-DD HH:MM:SS
// (a 'T' separator is accepted too).
func parseTime(b []byte) (int64, bool) {
	n := len(b)
	if n != 10 && n != 16 && n != 19 {
		return 0, false
	}
	if b[4] != '-' || b[7] != '-' {
		return 0, false
	}
	y, ok1 := digits(b[0:4])
	mo, ok2 := digits(b[5:7])
	d, ok3 := digits(b[8:10])
	if !ok1 || !ok2 || !ok3 || mo < 1 || mo > 12 || d < 1 || d > daysIn(y, mo) {
		return 0, false
	}
	var h, mi, s int64
	if n >= 16 {
		if (b[10] != ' ' && b[10] != 'T') || b[13] != ':' {
			return 0, false
		}
		var ok4, ok5 bool
		h, ok4 = digits(b[11:13])
		mi, ok5 = digits(b[14:16])
		if !ok4 || !ok5 || h > 23 || mi > 59 {
			return 0, false
		}
		if n == 19 {
			if b[16] != ':' {
				return 0, false
			}
			var ok6 bool
			s, ok6 = digits(b[17:19])
			if !ok6 || s > 59 {
				return 0, false
			}
		}
	}
	return daysFromCivil(y, mo, d)*86400 + h*3600 + mi*60 + s, true
}

func digits(b []byte) (int64, bool) {
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}

func isLeap(y int64) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

func daysIn(y, m int64) int64 {
	switch m {
	case 2:
		if isLeap(y) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil counts days from 1970-01-01 to y-m-d (proleptic Gregorian):
// shift the year to start in March so the leap day is last, then count whole
// 400-year eras plus the day of the era.
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12 // March = 0
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// dayOf is the calendar date (days since 1970-01-01) of a timestamp, i.e.
// Postgres cast(ts as date).
func dayOf(sec int64) int64 {
	d := sec / 86400
	if sec%86400 < 0 {
		d--
	}
	return d
}

// parseFloat parses a numeric field (VALUENUM, VALUE of OUTPUTEVENTS).
func parseFloat(b []byte) (float64, bool) {
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(v) {
		return 0, false
	}
	return v, true
}

// Typed accessors on a record: each returns (value, present, error) where
// present is false for NULL; a non-empty unparseable field is an InputError
// naming table, line and column.

func (r *record) int(i int) (int64, bool, error) {
	b := r.f[i]
	if null(b) {
		return 0, false, nil
	}
	v, ok := atoiFast(b)
	if !ok {
		return 0, false, r.fail(i, "not an integer")
	}
	return v, true, nil
}

func (r *record) float(i int) (float64, bool, error) {
	b := r.f[i]
	if null(b) {
		return 0, false, nil
	}
	v, ok := parseFloat(b)
	if !ok {
		return 0, false, r.fail(i, "not a number")
	}
	return v, true, nil
}

func (r *record) time(i int) (int64, bool, error) {
	b := r.f[i]
	if null(b) {
		return 0, false, nil
	}
	v, ok := parseTime(b)
	if !ok {
		return 0, false, r.fail(i, "not a timestamp YYYY-MM-DD HH:MM:SS")
	}
	return v, true, nil
}

// requireInt is int for a column that may not be NULL.
func (r *record) requireInt(i int) (int64, error) {
	v, ok, err := r.int(i)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, r.fail(i, "empty value where an integer is required")
	}
	return v, nil
}
