// Package mimicraw builds MIMIC-III's im.pk arrays (ep_tdata, adm_features_all,
// adm_labels_all, y_icd9) from the raw PhysioNet MIMIC-III v1.4 CSV tables,
// without a database, following shared/docs/mimic-raw.md ("the spec") rule by
// rule, including the reference pipeline's deliberate oddities (closed hourly
// bins, averaged urine output, forward then backward fill, series anchored at
// the first observation).
//
// The large event tables are streamed: one goroutine reads and decompresses
// chunks cut at record boundaries, the others parse them, skipping rows whose
// ITEMID is not needed after reading only the first few fields. Only the rows
// the spec's views can use are kept, as 16-byte events per cohort admission.
//
// Where the spec lists an uncertainty, the choice is documented next to the
// code (search "Choice") and returned in the metadata (keys "choice.*").
package mimicraw

import (
	"fmt"
	"io"
	"math"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/m2mix/m2mix/prep/mimic"
	"github.com/m2mix/m2mix/progress"
)

// Options tune a build from the raw tables.
type Options struct {
	Workers int // parallel workers; 0 means all cores
	// Progress, when non-nil, receives plain progress lines instead of the
	// default byte progress bar on stderr.
	Progress io.Writer
	// MaxKeptEvents bounds the events kept in memory over all tables; 0 means
	// DefaultMaxKeptEvents. Exceeding it is an error, not an out-of-memory.
	MaxKeptEvents int64
}

// stayRef locates an ICU stay: its admission and its ordinal there.
type stayRef struct {
	adm int32
	ord uint16
}

// admInfo is one candidate admission and everything kept for it.
type admInfo struct {
	hadm, subject int64
	row           *admissionRow
	pat           patient
	stays         []icustayRow // by INTIME, then line; stays[0] is the first ICU stay
	ref           int64        // stays[0].intime: origin of event times
	cats          []int        // ICD-9 category per diagnosis row
	codes         []string     // all diagnosis codes (comorbidities)
	service       serviceRow
	hasService    bool

	bgTimes   [][]int32 // per stay: blood gases with a PO2 (SpO2/FiO2 prefilter)
	events    []event
	specimens []specimen
}

type builder struct {
	dir        string
	opts       Options
	workers    int
	files      map[string]*tableFile
	items      *itemTables
	adms       []*admInfo // ascending HADM_ID
	admIdx     map[int64]int32
	stayIdx    map[int64]stayRef
	kept       []*admInfo // the final cohort, ascending HADM_ID
	keptEvents int64      // events kept by the tables streamed so far
	drops      map[string]int64
	meta       map[string]string
}

// Build reads the MIMIC-III v1.4 tables in dir and returns the arrays, rows
// in ascending HADM_ID, plus metadata describing the choices made and the
// counts of the cohort funnel and of dropped rows.
func Build(dir string, opts Options) (*mimic.Arrays, map[string]string, error) {
	b := &builder{
		dir:     dir,
		opts:    opts,
		workers: opts.Workers,
		files:   map[string]*tableFile{},
		items:   newItemTables(),
		drops:   map[string]int64{},
		meta:    map[string]string{},
	}
	if b.workers <= 0 {
		b.workers = runtime.GOMAXPROCS(0)
	}
	// Locate every table and validate every header first, so a missing
	// table or column is reported before the long reads.
	for _, name := range tableNames() {
		tf, err := locateTable(dir, name)
		if err != nil {
			return nil, nil, err
		}
		if err := peekHeader(tf, neededColumns(name)); err != nil {
			return nil, nil, err
		}
		b.files[name] = tf
	}
	small, err := loadSmallTables(b.files)
	if err != nil {
		return nil, nil, err
	}
	b.selectCohort(small)
	if len(b.adms) == 0 {
		// Before the event tables: they are hours of reading for nothing.
		return nil, nil, b.emptyCohort()
	}

	if err := b.scanEvents("LABEVENTS", 2, b.items.labKeep, b.labRow); err != nil {
		return nil, nil, err
	}
	if err := b.scanEvents("OUTPUTEVENTS", 4, b.items.outKeep, b.outputRow); err != nil {
		return nil, nil, err
	}
	b.computeBloodGasTimes()
	if err := b.scanEvents("CHARTEVENTS", 3, b.items.chartKeep, b.chartRow); err != nil {
		return nil, nil, err
	}
	arr := b.assemble()
	if arr.N == 0 {
		return nil, nil, b.emptyCohort()
	}
	b.describe(arr)
	return arr, b.meta, nil
}

// funnelKeys are the cohort counts, in the order the rules apply.
var funnelKeys = []string{
	"admissions", "candidate_admissions", "first_admissions",
	"dropped_no_admittime", "dropped_icd9_first_code", "dropped_no_patient",
	"dropped_age_under_15", "dropped_no_icustay", "candidates_before_events",
	"dropped_no_observation", "dropped_span_le_24h",
}

// emptyCohort is the error for a build whose cohort rules left nothing: a
// 0-row dataset is never a result.
func (b *builder) emptyCohort() error {
	var parts []string
	for _, k := range funnelKeys {
		if v, ok := b.meta["cohort."+k]; ok {
			parts = append(parts, k+"="+v)
		}
	}
	return fmt.Errorf("mimicraw: %s: no admissions left after filtering by the cohort rules (%s); are these the MIMIC-III v1.4 tables?", b.dir, strings.Join(parts, ", "))
}

// scanEvents streams one event table through handle with per-worker stores.
func (b *builder) scanEvents(table string, filterCol int, keep []bool, handle func(*store, *record) error) error {
	tf := b.files[table]
	desc := "mimic raw: " + table
	var bar interface {
		Add(int64)
		Finish()
	}
	if b.opts.Progress != nil {
		bar = progress.NewTo(b.opts.Progress, tf.size, desc)
	} else {
		bar = progress.NewBytes(tf.size, desc)
	}
	stores := newStores(b.workers, len(b.adms))
	spec := scanSpec{cols: neededColumns(table), filter: filterCol, keep: keep}
	// Memory guard: kept events cost about 33 bytes each (16-byte event plus
	// slice growth and the merge copy); fail clearly instead of running out
	// of memory.
	limit := b.opts.MaxKeptEvents
	if limit <= 0 {
		limit = DefaultMaxKeptEvents
	}
	perWorker := (limit - b.keptEvents) / int64(b.workers)
	err := scanTable(tf, spec, b.workers, bar.Add, func(w int, r *record) error {
		st := stores[w]
		if err := handle(st, r); err != nil {
			return err
		}
		if st.kept > perWorker {
			return &InputError{Table: table, Line: r.line, Reason: fmt.Sprintf("more than %d events kept in all; the memory bound would be exceeded (Options.MaxKeptEvents)", limit)}
		}
		return nil
	})
	bar.Finish()
	if err != nil {
		return err
	}
	b.mergeStores(stores, table)
	return nil
}

// DefaultMaxKeptEvents bounds the events kept over all tables: at about 33
// bytes each (measured, docs/BENCHMARKS.md) it keeps a build under
// ~4 GiB. The full MIMIC-III v1.4 release keeps an estimated 20-30 million.
const DefaultMaxKeptEvents = 100_000_000

// selectCohort applies spec §2 steps 1-5a (the steps that need no events).
func (b *builder) selectCohort(st *smallTables) {
	c := func(k string, n int) { b.meta["cohort."+k] = strconv.Itoa(n) }
	c("admissions", len(st.admissions))

	// Step 1: candidates = HADM_IDs in ICUSTAYS or TRANSFERS.
	cand := map[int64]bool{}
	for _, s := range st.stays {
		cand[s.hadm] = true
	}
	for h := range st.transfers {
		cand[h] = true
	}

	// Step 2: each subject's first admission by ADMITTIME (NULLs last, as
	// Postgres ORDER BY ASC). Choice (U1): the 2020 query (ORDER BY
	// subject_id, admittime), ties broken by HADM_ID; no fallback to a later
	// admission when the first has no ICU stay.
	first := map[int64]*admissionRow{}
	for _, a := range st.admissions {
		cur, ok := first[a.subject]
		if !ok || admBefore(a, cur) {
			first[a.subject] = a
		}
	}
	var hadms []int64
	for _, a := range first {
		if cand[a.hadm] {
			hadms = append(hadms, a.hadm)
		}
	}
	sort.Slice(hadms, func(i, j int) bool { return hadms[i] < hadms[j] })
	c("candidate_admissions", len(cand))
	c("first_admissions", len(hadms))

	staysOf := map[int64][]icustayRow{}
	for _, s := range st.stays {
		staysOf[s.hadm] = append(staysOf[s.hadm], s)
	}
	var noAdmit, icdFail, noPatient, young, noStay int
	b.admIdx = map[int64]int32{}
	b.stayIdx = map[int64]stayRef{}
	for _, h := range hadms {
		a := st.admissions[h]
		// Step 3: processing() needs ADMITTIME, and raises on an admission
		// whose first diagnosis code has no ICD-9 category (678-679).
		if !a.hasAdmit {
			noAdmit++
			continue
		}
		cats, ok := icd9Categories(st.diagnoses[h])
		if !ok {
			icdFail++
			continue
		}
		p, ok := st.patients[a.subject]
		if !ok {
			noPatient++
			continue
		}
		// Step 4: age >= 15 years, (ADMITTIME - DOB) in days >= 15*365.25.
		if float64(a.admit-p.dob)/86400 < 15*365.25 {
			young++
			continue
		}
		// Step 5a: at least one ICU stay (with an INTIME).
		stays := staysOf[h]
		if len(stays) == 0 {
			noStay++
			continue
		}
		sort.Slice(stays, func(i, j int) bool {
			if stays[i].intime != stays[j].intime {
				return stays[i].intime < stays[j].intime
			}
			return stays[i].line < stays[j].line
		})
		info := &admInfo{hadm: h, subject: a.subject, row: a, pat: p, stays: stays, ref: stays[0].intime, cats: cats}
		for _, d := range st.diagnoses[h] {
			info.codes = append(info.codes, d.code)
		}
		info.service, info.hasService = st.firstService[h]
		idx := int32(len(b.adms))
		b.adms = append(b.adms, info)
		b.admIdx[h] = idx
		for o, s := range stays {
			b.stayIdx[s.id] = stayRef{adm: idx, ord: uint16(o)}
		}
	}
	c("dropped_no_admittime", noAdmit)
	c("dropped_icd9_first_code", icdFail)
	c("dropped_no_patient", noPatient)
	c("dropped_age_under_15", young)
	c("dropped_no_icustay", noStay)
	c("candidates_before_events", len(b.adms))
	if st.staysNoIntime > 0 {
		c("icustays_without_intime", st.staysNoIntime)
	}
	if st.patientsDupRows > 0 {
		c("patients_duplicate_rows", st.patientsDupRows)
	}
}

// admBefore orders a subject's admissions by ADMITTIME (NULLs last), then HADM_ID.
func admBefore(a, b *admissionRow) bool {
	if a.hasAdmit != b.hasAdmit {
		return a.hasAdmit
	}
	if a.hasAdmit && a.admit != b.admit {
		return a.admit < b.admit
	}
	return a.hadm < b.hadm
}

// admResult is one admission's output row, or why it dropped out.
type admResult struct {
	series []float64 // nil when dropped
	noObs  bool
}

// assemble computes every admission's series in parallel and keeps those
// that pass spec §2 steps 5b-6, in ascending HADM_ID.
func (b *builder) assemble() *mimic.Arrays {
	res := make([]admResult, len(b.adms))
	var wg sync.WaitGroup
	next := make(chan int, len(b.adms))
	for i := range b.adms {
		next <- i
	}
	close(next)
	for w := 0; w < b.workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				a := b.adms[i]
				o := a.observations()
				a.events, a.specimens = nil, nil // free as we go
				if len(o) == 0 {
					res[i].noObs = true
					continue
				}
				ts, rows := timeRows(o)
				// Step 6: observation span strictly over 24 h.
				if ts[len(ts)-1]-ts[0] <= dayLength {
					continue
				}
				res[i].series = hourly(ts, rows)
			}
		}()
	}
	wg.Wait()

	arr := &mimic.Arrays{LabelCols: 6}
	var noObs, short int
	for i, a := range b.adms {
		r := res[i]
		if r.series == nil {
			if r.noObs {
				noObs++
			} else {
				short++
			}
			continue
		}
		arr.N++
		b.kept = append(b.kept, a)
		arr.TimeSeries = append(arr.TimeSeries, r.series...)
		aids, hem, mets := comorbidities(a.codes)
		arr.Static = append(arr.Static,
			ageDays(a.stays[0].intime, a.pat.dob), aids, hem, mets,
			admissionType(a.row.admType, a.service.curr, a.hasService))
		lab := mortalityLabels(a.row, a.pat, a.stays[0].intime)
		arr.Labels = append(arr.Labels, lab[:]...)
		var y [icd9Cols]float64
		for _, c := range a.cats {
			if col := icd9Column(c); col >= 0 {
				y[col] = 1
			}
		}
		arr.ICD9 = append(arr.ICD9, y[:]...)
	}
	b.meta["cohort.dropped_no_observation"] = strconv.Itoa(noObs)
	b.meta["cohort.dropped_span_le_24h"] = strconv.Itoa(short)
	b.meta["cohort.n"] = strconv.Itoa(arr.N)
	return arr
}

// describe fills the metadata: choices for the spec's uncertainties, row
// drop counts, ICD-9 category counts and label / static summaries.
func (b *builder) describe(arr *mimic.Arrays) {
	m := b.meta
	m["source"] = "MIMIC-III v1.4 raw CSV tables (prep/mimicraw, spec shared/docs/mimic-raw.md)"
	m["tables_dir"] = b.dir
	for _, name := range tableNames() {
		m["table."+name] = b.files[name].path
	}
	for _, c := range choices() {
		m["choice."+c.key] = c.text
	}
	keys := make([]string, 0, len(b.drops))
	for k := range b.drops {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		m["rows."+k] = strconv.FormatInt(b.drops[k], 10)
	}

	// ICD-9: rows per category over the final cohort, and which categories
	// pass the original "> 10 rows" rule (informational: the columns are fixed).
	var catRows [21]int
	for _, a := range b.kept {
		for _, c := range a.cats {
			catRows[c]++
		}
	}
	var rows, over []string
	for c, n := range catRows {
		rows = append(rows, fmt.Sprintf("%d:%d", c, n))
		if n > 10 {
			over = append(over, strconv.Itoa(c))
		}
	}
	m["icd9.columns"] = "categories 0-13,15-20 (category 14, perinatal 760-779, dropped)"
	m["icd9.category_rows"] = strings.Join(rows, ",")
	m["icd9.categories_over_10_rows"] = strings.Join(over, ",")

	// Label and static summaries (spec §8 checks).
	var labelSum [6]int
	var aids, hem, mets int
	var adm [3]int
	for i := 0; i < arr.N; i++ {
		for j := 0; j < 6; j++ {
			if arr.Labels[i*6+j] > 0 {
				labelSum[j]++
			}
		}
		s := arr.Static[i*5 : i*5+5]
		aids += int(s[1])
		hem += int(s[2])
		mets += int(s[3])
		adm[int(s[4])]++
	}
	names := []string{"mor", "mor24", "mor48", "mor72", "mor30d", "mor1y"}
	for j, n := range names {
		m["labels.positive."+n] = strconv.Itoa(labelSum[j])
	}
	m["static.aids"] = strconv.Itoa(aids)
	m["static.hem"] = strconv.Itoa(hem)
	m["static.mets"] = strconv.Itoa(mets)
	m["static.admission_type"] = fmt.Sprintf("medical:%d,scheduled_surgical:%d,unscheduled_surgical:%d", adm[0], adm[1], adm[2])
	nan := 0
	for _, v := range arr.TimeSeries {
		if math.IsNaN(v) {
			nan++
		}
	}
	m["ep_tdata.nan_cells"] = strconv.Itoa(nan)
}
