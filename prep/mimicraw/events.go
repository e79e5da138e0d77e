package mimicraw

import (
	"math"
	"sort"
)

// Streaming the three event tables into compact per-admission events.
//
// Memory: only rows whose ITEMID is needed, whose admission (or ICU stay)
// is in the candidate cohort and which pass the spec's time and value rules
// are kept, as 16-byte events. SpO2 and charted FiO2 rows are kept only when
// they are within 2 h / 4 h before an arterial blood gas of the same ICU stay
// (the only place they are used, spec §3.2), which removes most of them.

// event is one kept row. t is seconds relative to the admission's earliest
// ICU INTIME; stay is the ordinal of its ICU stay in the admission (chart and
// urine rows; 0 for labs, which join on HADM_ID only).
type event struct {
	val  float64 // NaN = SQL NULL (kept only where a NULL row still matters)
	t    int32
	kind kind
	stay uint16
}

// specimen is a blood-gas SPECIMEN (50800) text value.
type specimen struct {
	t int32
	v string
}

// dropReason counts rows removed by the spec's rules (reported in metadata).
type dropReason int

const (
	dropOutOfCohort     dropReason = iota // admission / ICU stay not a cohort candidate
	dropNoStay                            // NULL ICUSTAY_ID (the joins exclude it)
	dropIDMismatch                        // SUBJECT_ID/HADM_ID disagree with the ICU stay
	dropNullTime                          // NULL CHARTTIME
	dropBeforeWindow                      // before INTIME (chart, urine) or INTIME-6h (labs)
	dropErrorFlag                         // CHARTEVENTS ERROR = 1
	dropNullValue                         // NULL VALUENUM / VALUE
	dropOutOfRange                        // outside the spec's valid range
	dropFarFromBloodGas                   // SpO2/FiO2 not within 2h/4h before an arterial blood gas
	numDropReasons
)

func (d dropReason) String() string {
	return [...]string{"out_of_cohort", "null_icustay", "id_mismatch", "null_charttime", "before_window",
		"error_flag", "null_value", "out_of_range", "far_from_blood_gas"}[d]
}

// store is one worker's share of the kept events, indexed by admission.
type store struct {
	ev    [][]event
	spec  [][]specimen
	drops [numDropReasons]int64
	rows  int64 // rows that passed the ITEMID prefilter
	kept  int64
}

func newStores(workers, nAdm int) []*store {
	s := make([]*store, workers)
	for i := range s {
		s[i] = &store{ev: make([][]event, nAdm), spec: make([][]specimen, nAdm)}
	}
	return s
}

// relTime converts an absolute time to the admission-relative int32.
func relTime(r *record, col int, t, ref int64) (int32, error) {
	d := t - ref
	if d < math.MinInt32 || d > math.MaxInt32 {
		return 0, r.fail(col, "timestamp more than 68 years away from the admission's ICU INTIME")
	}
	return int32(d), nil
}

const (
	hour      = 3600
	sixHours  = 6 * hour
	spo2Back  = 2 * hour // stg2 window (spec §3.2)
	fio2Back  = 4 * hour // stg3 window (spec §3.2)
	dayLength = 24 * hour
)

// labRow handles one LABEVENTS row that passed the ITEMID filter.
// Columns: SUBJECT_ID, HADM_ID, ITEMID, CHARTTIME, VALUE, VALUENUM.
func (b *builder) labRow(st *store, r *record) error {
	st.rows++
	item, _ := atoiFast(r.f[2])
	it := b.items.lab[item]
	hadm, ok, err := r.int(1)
	if err != nil {
		return err
	}
	ai, in := b.admIdx[hadm]
	if !ok || !in {
		st.drops[dropOutOfCohort]++
		return nil
	}
	a := b.adms[ai]
	subj, _, err := r.int(0)
	if err != nil {
		return err
	}
	if subj != a.subject { // the views join on subject_id and hadm_id
		st.drops[dropIDMismatch]++
		return nil
	}
	t, ok, err := st.rowTime(r, 3)
	if !ok {
		return err
	}
	// Labs and blood gases: charttime >= intime - 6h of some ICU stay of the
	// admission, i.e. of the earliest one (spec §3 "Time windows").
	if t < a.ref-sixHours {
		st.drops[dropBeforeWindow]++
		return nil
	}
	rel, err := relTime(r, 3, t, a.ref)
	if err != nil {
		return err
	}
	if it.specimen {
		if null(r.f[4]) {
			st.drops[dropNullValue]++
			return nil
		}
		st.spec[ai] = append(st.spec[ai], specimen{t: rel, v: string(r.f[4])})
		st.kept++
		return nil
	}
	v, ok, err := st.value(r, 5)
	if !ok {
		return err
	}
	// Lab view: valuenum > 0 and <= its upper limit; blood gas: <= 0 -> NULL
	// and the listed upper limits -> NULL (spec §3.2).
	if v <= 0 || (it.upper > 0 && v > it.upper) {
		st.drops[dropOutOfRange]++
		return nil
	}
	st.ev[ai] = append(st.ev[ai], event{val: v, t: rel, kind: it.kind})
	st.kept++
	return nil
}

// outputRow handles one OUTPUTEVENTS row that passed the ITEMID filter.
// Columns: SUBJECT_ID, HADM_ID, ICUSTAY_ID, CHARTTIME, ITEMID, VALUE.
func (b *builder) outputRow(st *store, r *record) error {
	st.rows++
	item, _ := atoiFast(r.f[4])
	cls := b.items.out[item]
	a, sr, s, ok, err := b.stayOf(st, r, 2)
	if err != nil || !ok {
		return err
	}
	if ok, err := st.sameStay(r, s); !ok {
		return err
	}
	t, ok, err := st.rowTime(r, 3)
	if !ok {
		return err
	}
	if t < s.intime { // charttime >= intime of the row's own ICU stay
		st.drops[dropBeforeWindow]++
		return nil
	}
	v, ok, err := st.value(r, 5) // sum() ignores NULL; a group of NULLs is NULL and then skipped
	if !ok {
		return err
	}
	if cls == icUrineNeg { // GU irrigant in counts negative (spec §3 row 5)
		v = -v
	}
	rel, err := relTime(r, 3, t, a.ref)
	if err != nil {
		return err
	}
	st.ev[sr.adm] = append(st.ev[sr.adm], event{val: v, t: rel, kind: kUrine, stay: sr.ord})
	st.kept++
	return nil
}

// chartRow handles one CHARTEVENTS row that passed the ITEMID filter.
// Columns: SUBJECT_ID, HADM_ID, ICUSTAY_ID, ITEMID, CHARTTIME, VALUE, VALUENUM, ERROR.
func (b *builder) chartRow(st *store, r *record) error {
	st.rows++
	item, _ := atoiFast(r.f[3])
	cls := b.items.chart[item]
	a, sr, s, ok, err := b.stayOf(st, r, 2)
	if err != nil || !ok {
		return err
	}
	t, ok, err := st.rowTime(r, 4)
	if !ok {
		return err
	}
	rel, err := relTime(r, 4, t, a.ref)
	if err != nil {
		return err
	}
	// error IS DISTINCT FROM 1 (not applied to SpO2, whose view has no such filter).
	errFlag := false
	if !null(r.f[7]) {
		e, ok := parseFloat(r.f[7])
		if !ok {
			return r.fail(7, "not a number")
		}
		errFlag = e == 1
	}
	keep := func(k kind, v float64) {
		st.ev[sr.adm] = append(st.ev[sr.adm], event{val: v, t: rel, kind: k, stay: sr.ord})
		st.kept++
	}
	switch cls {
	case icSBP, icHR, icTempF, icTempC:
		// mengcz_vital_ts joins on subject, hadm and icustay, charttime >= intime.
		if ok, err := st.sameStay(r, s); !ok {
			return err
		}
		if t < s.intime {
			st.drops[dropBeforeWindow]++
			return nil
		}
		if errFlag {
			st.drops[dropErrorFlag]++
			return nil
		}
		v, ok, err := st.value(r, 6)
		if !ok {
			return err
		}
		k, cv, valid := vitalValue(cls, v)
		if !valid {
			st.drops[dropOutOfRange]++
			return nil
		}
		keep(k, cv)
	case icGCSMotor, icGCSVerbalCV, icGCSVerbalMV, icGCSEyes:
		// gen_gcs_ts joins on icustay_id only, charttime >= intime, error != 1.
		// A row with a NULL VALUENUM still makes a base row (all components
		// NULL), which counts for the row number and yields GCS 15 by default.
		if t < s.intime {
			st.drops[dropBeforeWindow]++
			return nil
		}
		if errFlag {
			st.drops[dropErrorFlag]++
			return nil
		}
		k := kGCSVerbal
		switch cls {
		case icGCSMotor:
			k = kGCSMotor
		case icGCSEyes:
			k = kGCSEyes
		}
		text := string(r.f[5])
		if (cls == icGCSVerbalCV && text == "1.0 ET/Trach") || (cls == icGCSVerbalMV && text == "No Response-ETT") {
			keep(k, 0) // intubated: verbal 0, GCS 15 (spec §3.1)
			return nil
		}
		v, ok, err := r.float(6)
		if err != nil {
			return err
		}
		if !ok {
			v = math.NaN()
		}
		keep(k, v)
	case icSpO2:
		// stg_spo2: no ERROR filter, no INTIME bound, joined on icustay_id.
		if !b.nearBloodGas(sr, rel, spo2Back) {
			st.drops[dropFarFromBloodGas]++
			return nil
		}
		v, ok, err := r.float(6)
		if err != nil {
			return err
		}
		if !ok || v <= 0 || v > 100 {
			v = math.NaN() // the row still counts as "the latest SpO2 row"
		}
		keep(kSpO2, v)
	case icFiO2MV, icFiO2Raw, icFiO2CV:
		// stg_fio2: error != 1, no INTIME bound, joined on icustay_id.
		if errFlag {
			st.drops[dropErrorFlag]++
			return nil
		}
		if !b.nearBloodGas(sr, rel, fio2Back) {
			st.drops[dropFarFromBloodGas]++
			return nil
		}
		v, ok, err := r.float(6)
		if err != nil {
			return err
		}
		f, valid := fio2Chart(cls, v)
		if !ok || !valid {
			f = math.NaN() // the latest FiO2 row is taken even when NULL
		}
		keep(kFiO2Chart, f)
	}
	return nil
}

// stayOf resolves the ICUSTAY_ID in column col to a cohort ICU stay.
func (b *builder) stayOf(st *store, r *record, col int) (*admInfo, stayRef, *icustayRow, bool, error) {
	icu, ok, err := r.int(col)
	if err != nil {
		return nil, stayRef{}, nil, false, err
	}
	if !ok {
		st.drops[dropNoStay]++
		return nil, stayRef{}, nil, false, nil
	}
	sr, in := b.stayIdx[icu]
	if !in {
		st.drops[dropOutOfCohort]++
		return nil, stayRef{}, nil, false, nil
	}
	a := b.adms[sr.adm]
	return a, sr, &a.stays[sr.ord], true, nil
}

// Each of the readers below returns ok = false for a row to leave out, and
// counts why: a NULL time, IDs that disagree with the ICU stay, a NULL value.
// ok is false on an error too, so callers write `if !ok { return err }`.

// rowTime reads the time in column col.
func (st *store) rowTime(r *record, col int) (int64, bool, error) {
	t, ok, err := r.time(col)
	if err == nil && !ok {
		st.drops[dropNullTime]++
	}
	return t, ok && err == nil, err
}

// sameStay checks the row's SUBJECT_ID and HADM_ID (columns 0 and 1)
// against the ICU stay.
func (st *store) sameStay(r *record, s *icustayRow) (bool, error) {
	ok, err := sameIDs(r, 0, 1, s)
	if err == nil && !ok {
		st.drops[dropIDMismatch]++
	}
	return ok && err == nil, err
}

// value reads the number in column col.
func (st *store) value(r *record, col int) (float64, bool, error) {
	v, ok, err := r.float(col)
	if err == nil && !ok {
		st.drops[dropNullValue]++
	}
	return v, ok && err == nil, err
}

// sameIDs checks SUBJECT_ID and HADM_ID of the row against the ICU stay.
func sameIDs(r *record, subjCol, hadmCol int, s *icustayRow) (bool, error) {
	subj, ok1, err := r.int(subjCol)
	if err != nil {
		return false, err
	}
	hadm, ok2, err := r.int(hadmCol)
	if err != nil {
		return false, err
	}
	return ok1 && ok2 && subj == s.subject && hadm == s.hadm, nil
}

// nearBloodGas reports whether some arterial-candidate blood gas of the stay
// is at b with t <= b <= t+window.
func (b *builder) nearBloodGas(sr stayRef, t int32, window int32) bool {
	times := b.adms[sr.adm].bgTimes[sr.ord]
	i := sort.Search(len(times), func(i int) bool { return times[i] >= t })
	return i < len(times) && int64(times[i]) <= int64(t)+int64(window)
}

// mergeStores moves every worker's events of each admission into the
// admission, then frees the worker slices.
func (b *builder) mergeStores(stores []*store, table string) {
	var rows, kept int64
	for _, st := range stores {
		rows += st.rows
		kept += st.kept
		for d := dropReason(0); d < numDropReasons; d++ {
			if st.drops[d] > 0 {
				b.drops[table+"."+d.String()] += st.drops[d]
			}
		}
	}
	b.drops[table+".rows_with_needed_itemid"] += rows
	b.drops[table+".rows_kept"] += kept
	b.keptEvents += kept
	for i, a := range b.adms {
		n := len(a.events)
		for _, st := range stores {
			n += len(st.ev[i])
		}
		if n > len(a.events) {
			merged := make([]event, 0, n)
			merged = append(merged, a.events...)
			for _, st := range stores {
				merged = append(merged, st.ev[i]...)
				st.ev[i] = nil
			}
			a.events = merged
		}
		for _, st := range stores {
			a.specimens = append(a.specimens, st.spec[i]...)
			st.spec[i] = nil
		}
	}
}

// computeBloodGasTimes lists, per ICU stay, the times of blood-gas groups with
// a valid PO2 inside the stay's window (charttime >= intime - 6h): the only
// times at which SpO2/FiO2 chart rows can matter.
func (b *builder) computeBloodGasTimes() {
	for _, a := range b.adms {
		a.bgTimes = make([][]int32, len(a.stays))
		var po2 []int32
		for _, e := range a.events {
			if e.kind == kBgPO2 {
				po2 = append(po2, e.t)
			}
		}
		sort.Slice(po2, func(i, j int) bool { return po2[i] < po2[j] })
		for si := range a.stays {
			lo := a.stays[si].intime - a.ref - sixHours
			var ts []int32
			for i, t := range po2 {
				if int64(t) >= lo && (i == 0 || t != po2[i-1]) {
					ts = append(ts, t)
				}
			}
			a.bgTimes[si] = ts
		}
	}
}
