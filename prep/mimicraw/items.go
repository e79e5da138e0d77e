package mimicraw

// ITEMID classification (spec §3 table, §3.1, §3.2, §10). The lookup tables
// are built by newItemTables, never shared mutable state.

// itemClass says what a raw ITEMID is and which per-item rule applies.
type itemClass uint8

const (
	icNone itemClass = iota
	// CHARTEVENTS
	icSBP
	icHR
	icTempF
	icTempC
	icGCSMotor
	icGCSVerbalCV // 723: '1.0 ET/Trach' means intubated (verbal 0)
	icGCSVerbalMV // 223900: 'No Response-ETT' means intubated
	icGCSEyes
	icSpO2
	icFiO2MV   // 223835: fraction or percent
	icFiO2Raw  // 3420, 3422: taken as is
	icFiO2CV   // 190: fraction
	icLab      // LABEVENTS, see labKind
	icUrine    // OUTPUTEVENTS urine
	icUrineNeg // 227488 GU irrigant in, negated
)

// kind is what a stored event holds, after unit handling.
type kind uint8

const (
	kSBP kind = iota
	kHR
	kTemp // degrees C
	kGCSMotor
	kGCSVerbal
	kGCSEyes
	kSpO2
	kFiO2Chart
	// mengcz_labs_ts (spec §3 rows 6-11)
	kBUN
	kWBC
	kHCO3
	kNa
	kK
	kBili
	// blood gas fields used by the specimen model (spec §3.2)
	kBgAADO2
	kBgBicarb
	kBgTotalCO2
	kBgHemoglobin
	kBgLactate
	kBgO2Flow
	kBgFiO2
	kBgSO2
	kBgPCO2
	kBgPH
	kBgPO2
	kUrine
	numKinds
)

// labItem is the rule for one LABEVENTS ITEMID.
type labItem struct {
	kind     kind
	upper    float64 // values > upper become NULL; 0 means no upper limit
	specimen bool    // 50800: the text VALUE is used
}

type itemTables struct {
	chart     []itemClass // by ITEMID
	chartKeep []bool
	lab       map[int64]labItem
	labKeep   []bool
	out       []itemClass
	outKeep   []bool
}

func newItemTables() *itemTables {
	t := &itemTables{lab: map[int64]labItem{}}
	chart := map[int64]itemClass{
		51: icSBP, 442: icSBP, 455: icSBP, 6701: icSBP, 220050: icSBP, 220179: icSBP,
		211: icHR, 220045: icHR,
		678: icTempF, 223761: icTempF, 676: icTempC, 223762: icTempC,
		454: icGCSMotor, 223901: icGCSMotor,
		723: icGCSVerbalCV, 223900: icGCSVerbalMV,
		184: icGCSEyes, 220739: icGCSEyes,
		646: icSpO2, 220277: icSpO2,
		223835: icFiO2MV, 3420: icFiO2Raw, 3422: icFiO2Raw, 190: icFiO2CV,
	}
	t.chart, t.chartKeep = classTable(chart)

	// Lab view items: upper limits from gen_lab_ts.sql (spec §3 rows 6-11).
	for id, it := range map[int64]labItem{
		51006: {kind: kBUN, upper: 300},
		51300: {kind: kWBC, upper: 1000}, 51301: {kind: kWBC, upper: 1000},
		50882: {kind: kHCO3, upper: 10000},
		50983: {kind: kNa, upper: 200}, 50824: {kind: kNa, upper: 200},
		50971: {kind: kK, upper: 30}, 50822: {kind: kK, upper: 30},
		50885: {kind: kBili, upper: 150},
		// Blood gas (spec §3.2): values <= 0 become NULL everywhere; these limits too.
		50800: {specimen: true},
		50801: {kind: kBgAADO2},
		50803: {kind: kBgBicarb},
		50804: {kind: kBgTotalCO2},
		50811: {kind: kBgHemoglobin},
		50813: {kind: kBgLactate},
		50815: {kind: kBgO2Flow, upper: 70},
		50816: {kind: kBgFiO2, upper: 100},
		50817: {kind: kBgSO2, upper: 100},
		50818: {kind: kBgPCO2},
		50820: {kind: kBgPH},
		50821: {kind: kBgPO2, upper: 800},
	} {
		t.lab[id] = it
	}
	labClass := map[int64]itemClass{}
	for id := range t.lab {
		labClass[id] = icLab
	}
	_, t.labKeep = classTable(labClass)

	out := map[int64]itemClass{227488: icUrineNeg}
	for _, id := range []int64{
		40055, 43175, 40069, 40094, 40715, 40473, 40085, 40057, 40056, 40405, 40428, 40086, 40096, 40651,
		226559, 226560, 226561, 226584, 226563, 226564, 226565, 226567, 226557, 226558, 227489,
	} {
		out[id] = icUrine
	}
	t.out, t.outKeep = classTable(out)
	return t
}

func classTable(m map[int64]itemClass) ([]itemClass, []bool) {
	var hi int64
	for id := range m {
		hi = max(hi, id)
	}
	cls := make([]itemClass, hi+1)
	keep := make([]bool, hi+1)
	for id, c := range m {
		cls[id] = c
		keep[id] = true
	}
	return cls, keep
}

// fio2Chart applies stg_fio2's per-item rule (spec §3.2). ok=false is NULL.
func fio2Chart(c itemClass, v float64) (float64, bool) {
	switch c {
	case icFiO2MV:
		switch {
		case v > 0 && v <= 1:
			return v * 100, true
		case v >= 21 && v <= 100:
			return v, true
		}
		return 0, false
	case icFiO2Raw:
		return v, true
	case icFiO2CV:
		if v > 0.20 && v < 1 {
			return v * 100, true
		}
	}
	return 0, false
}

// vitalValue applies mengcz_vital_ts's range checks and F->C conversion
// (spec §3 rows 1-3). ok=false means the row contributes nothing.
func vitalValue(c itemClass, v float64) (kind, float64, bool) {
	switch c {
	case icSBP:
		return kSBP, v, v > 0 && v < 400
	case icHR:
		return kHR, v, v > 0 && v < 300
	case icTempF: // range checked on Fahrenheit, before conversion
		return kTemp, (v - 32) / 1.8, v > 70 && v < 120
	case icTempC:
		return kTemp, v, v > 10 && v < 50
	}
	return 0, 0, false
}
