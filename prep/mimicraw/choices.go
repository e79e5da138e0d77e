package mimicraw

// choice is one decision taken where the spec lists an uncertainty (§9) or
// leaves a detail open. Each is returned in the metadata as "choice.<key>"
// and described in docs/mimic-raw-choices.md.
type choice struct{ key, text string }

func choices() []choice {
	return []choice{
		{"U1_first_admission", "first admission per subject by (ADMITTIME, HADM_ID), NULL ADMITTIME last: the 2020 fixed query (commit 155df1d); the older DISTINCT ON without ORDER BY is not reproducible"},
		{"U2_im_pk", "arrays equal imputed-normed-ep_1_24.npz of the 'all' folder, no further subsetting or reordering; rows in ascending HADM_ID"},
		{"U3_icd9_columns", "fixed 20 columns: ICD-9 categories 0-13 and 15-20 (category 14, perinatal 760-779, dropped) regardless of the '> 10 rows' rule"},
		{"U4_first_icu_stay", "t0, age and the mortality start use the ICU stay with the earliest INTIME (ties: earlier line in ICUSTAYS)"},
		{"U4_ties", "Postgres ties are broken deterministically: SERVICES by (TRANSFERTIME, line), DIAGNOSES_ICD by (SEQ_NUM, line) with NULL SEQ_NUM last; same-time values are summed in value order"},
		{"U4_age_rounding", "age = float(round(days/365.242, 2)) * 365.242 with days = date(INTIME) - date(DOB), rounded half away from zero on exact integers"},
		{"U5_fio2_zero", "charted FiO2 0 (items 3420/3422 have no range check) is kept as a value; the ratio's +-Inf becomes NaN and is then imputed as in the original"},
		{"U6_oddities_kept", "closed hourly bins, averaged urine output, forward then backward fill, series anchored at the first observation, no upper time bound, 40086 counted as urine, comorbidities from discharge codes"},
		{"join_keys", "vitals and urine join CHARTEVENTS/OUTPUTEVENTS on SUBJECT_ID+HADM_ID+ICUSTAY_ID; GCS, SpO2 and FiO2 on ICUSTAY_ID only; labs and blood gases on SUBJECT_ID (of ADMISSIONS)+HADM_ID, as the SQL views do"},
		{"specimen_max", "blood-gas SPECIMEN is max(VALUE) per time compared bytewise (Postgres may use a locale collation; MIMIC's values are upper-case ASCII)"},
		{"columns_kept", "all 13 raw series are always kept (no missing-rate column dropping), so positions never shift"},
		{"dtypes", "npy: ep_tdata and adm_features_all float64; adm_labels_all and y_icd9 int64, as in the original npz"},
	}
}
