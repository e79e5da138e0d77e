package mimicraw

import "strings"

// The small tables (spec §10 "Small tables"), read whole into memory. They
// are a few hundred thousand rows at most in the full release.

type patient struct {
	dob, dod int64
	hasDOD   bool
}

type admissionRow struct {
	hadm, subject int64
	admit         int64
	hasAdmit      bool
	disch         int64
	hasDisch      bool
	death         int64
	hasDeath      bool
	admType       string
	line          int64
}

type icustayRow struct {
	id, subject, hadm int64
	intime            int64
	line              int64
}

type serviceRow struct {
	t    int64
	hasT bool
	line int64
	curr string
}

type diagnosisRow struct {
	seq    int64
	hasSeq bool
	line   int64
	code   string // "" for NULL
}

type smallTables struct {
	patients        map[int64]patient
	admissions      map[int64]*admissionRow
	stays           []icustayRow // rows with a non-NULL INTIME (a NULL INTIME joins nothing)
	staysNoIntime   int
	transfers       map[int64]bool       // HADM_IDs present in TRANSFERS
	firstService    map[int64]serviceRow // per HADM_ID, first by TRANSFERTIME
	diagnoses       map[int64][]diagnosisRow
	patientsDupRows int
}

// neededColumns lists the columns read from each table (spec §10).
func neededColumns(table string) []string {
	switch table {
	case "PATIENTS":
		return []string{"SUBJECT_ID", "DOB", "DOD"}
	case "ADMISSIONS":
		return []string{"SUBJECT_ID", "HADM_ID", "ADMITTIME", "DISCHTIME", "DEATHTIME", "ADMISSION_TYPE"}
	case "ICUSTAYS":
		return []string{"SUBJECT_ID", "HADM_ID", "ICUSTAY_ID", "INTIME"}
	case "TRANSFERS":
		return []string{"HADM_ID"}
	case "SERVICES":
		return []string{"HADM_ID", "TRANSFERTIME", "CURR_SERVICE"}
	case "DIAGNOSES_ICD":
		return []string{"HADM_ID", "SEQ_NUM", "ICD9_CODE"}
	case "LABEVENTS":
		return []string{"SUBJECT_ID", "HADM_ID", "ITEMID", "CHARTTIME", "VALUE", "VALUENUM"}
	case "OUTPUTEVENTS":
		return []string{"SUBJECT_ID", "HADM_ID", "ICUSTAY_ID", "CHARTTIME", "ITEMID", "VALUE"}
	case "CHARTEVENTS":
		return []string{"SUBJECT_ID", "HADM_ID", "ICUSTAY_ID", "ITEMID", "CHARTTIME", "VALUE", "VALUENUM", "ERROR"}
	}
	panic("mimicraw: unknown table " + table)
}

// tableNames are the nine tables a build reads (spec §8), small ones first.
func tableNames() []string {
	return []string{"PATIENTS", "ADMISSIONS", "ICUSTAYS", "TRANSFERS", "SERVICES", "DIAGNOSES_ICD", "LABEVENTS", "OUTPUTEVENTS", "CHARTEVENTS"}
}

func loadSmallTables(files map[string]*tableFile) (*smallTables, error) {
	st := &smallTables{
		patients:     map[int64]patient{},
		admissions:   map[int64]*admissionRow{},
		transfers:    map[int64]bool{},
		firstService: map[int64]serviceRow{},
		diagnoses:    map[int64][]diagnosisRow{},
	}
	// One worker: rows arrive in file order, which breaks ties the way a
	// sequential scan of the table would. Every small table must have rows:
	// a header-only PATIENTS, ADMISSIONS or ICUSTAYS leaves no cohort, and
	// a header-only TRANSFERS, SERVICES or DIAGNOSES_ICD would quietly
	// change every admission's candidates, admission type or labels.
	scan := func(table string, handle func(r *record) error) error {
		var rows int64
		tf := files[table]
		err := scanTable(tf, scanSpec{cols: neededColumns(table), filter: -1}, 1, nil, func(_ int, r *record) error {
			rows++
			return handle(r)
		})
		if err == nil && rows == 0 {
			err = tf.fail(0, "no rows: the table has a header only (a cut or placeholder file?)")
		}
		return err
	}
	err := scan("PATIENTS", func(r *record) error {
		subj, err := r.requireInt(0)
		if err != nil {
			return err
		}
		dob, ok, err := r.time(1)
		if err != nil {
			return err
		}
		if !ok {
			return r.fail(1, "empty DOB")
		}
		dod, hasDOD, err := r.time(2)
		if err != nil {
			return err
		}
		if _, dup := st.patients[subj]; dup {
			st.patientsDupRows++
			return nil // first row wins
		}
		st.patients[subj] = patient{dob: dob, dod: dod, hasDOD: hasDOD}
		return nil
	})
	if err != nil {
		return nil, err
	}

	err = scan("ADMISSIONS", func(r *record) error {
		a := &admissionRow{line: r.line}
		var err error
		if a.subject, err = r.requireInt(0); err != nil {
			return err
		}
		if a.hadm, err = r.requireInt(1); err != nil {
			return err
		}
		if a.admit, a.hasAdmit, err = r.time(2); err != nil {
			return err
		}
		if a.disch, a.hasDisch, err = r.time(3); err != nil {
			return err
		}
		if a.death, a.hasDeath, err = r.time(4); err != nil {
			return err
		}
		a.admType = string(r.f[5])
		if _, dup := st.admissions[a.hadm]; dup {
			return r.fail(1, "duplicate HADM_ID")
		}
		st.admissions[a.hadm] = a
		return nil
	})
	if err != nil {
		return nil, err
	}

	seenStay := map[int64]bool{}
	err = scan("ICUSTAYS", func(r *record) error {
		s := icustayRow{line: r.line}
		var err error
		if s.subject, err = r.requireInt(0); err != nil {
			return err
		}
		if s.hadm, err = r.requireInt(1); err != nil {
			return err
		}
		if s.id, err = r.requireInt(2); err != nil {
			return err
		}
		if seenStay[s.id] {
			return r.fail(2, "duplicate ICUSTAY_ID")
		}
		seenStay[s.id] = true
		in, ok, err := r.time(3)
		if err != nil {
			return err
		}
		if !ok {
			st.staysNoIntime++
			return nil
		}
		s.intime = in
		st.stays = append(st.stays, s)
		return nil
	})
	if err != nil {
		return nil, err
	}

	err = scan("TRANSFERS", func(r *record) error {
		h, ok, err := r.int(0)
		if err != nil {
			return err
		}
		if ok {
			st.transfers[h] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	// SQL surgflag: ROW_NUMBER() OVER (PARTITION BY HADM_ID ORDER BY
	// TRANSFERTIME) = 1. NULL times sort last (Postgres ASC); ties go to the
	// earlier line (Postgres leaves them arbitrary).
	err = scan("SERVICES", func(r *record) error {
		h, err := r.requireInt(0)
		if err != nil {
			return err
		}
		t, hasT, err := r.time(1)
		if err != nil {
			return err
		}
		s := serviceRow{t: t, hasT: hasT, line: r.line, curr: string(r.f[2])}
		if cur, ok := st.firstService[h]; !ok || serviceBefore(s, cur) {
			st.firstService[h] = s
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	err = scan("DIAGNOSES_ICD", func(r *record) error {
		h, err := r.requireInt(0)
		if err != nil {
			return err
		}
		seq, hasSeq, err := r.int(1)
		if err != nil {
			return err
		}
		st.diagnoses[h] = append(st.diagnoses[h], diagnosisRow{seq: seq, hasSeq: hasSeq, line: r.line, code: strings.Clone(string(r.f[2]))})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// serviceBefore orders SERVICES rows by TRANSFERTIME, NULLs last, then line.
func serviceBefore(a, b serviceRow) bool {
	if a.hasT != b.hasT {
		return a.hasT
	}
	if a.hasT && a.t != b.t {
		return a.t < b.t
	}
	return a.line < b.line
}
