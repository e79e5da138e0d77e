package mimicraw

import (
	"cmp"
	"math"
	"slices"
	"sort"
)

// From kept events to the per-timestamp values of the 13 raw series (spec §3,
// the SQL views) and then to the 24 x 12 hourly block (spec §4).

// Raw series columns, in the extraction order of spec §3/§4 (13 columns:
// PaO2 and FiO2 separate; the ratio replaces them at the end).
const (
	fGCS = iota
	fSBP
	fHR
	fTemp
	fPaO2
	fFiO2
	fUO
	fBUN
	fWBC
	fHCO3
	fNa
	fK
	fBili
	nRaw
)

// Output shape of ep_tdata per admission.
const (
	hours   = 24
	nSeries = 12
)

// obs is one non-NULL value of one raw series at one (hadm, charttime).
type obs struct {
	t int32
	f int
	v float64
}

func nanLess(a, b float64) int {
	an, bn := math.IsNaN(a), math.IsNaN(b)
	switch {
	case an && bn:
		return 0
	case an:
		return -1
	case bn:
		return 1
	}
	return cmp.Compare(a, b)
}

// maxNaN is SQL max() where NaN is NULL.
func maxNaN(acc, v float64) float64 {
	if math.IsNaN(acc) || v > acc {
		return v
	}
	return acc
}

type gcsBase struct {
	t       int32
	m, v, e float64 // NaN = NULL
}

type chartPoint struct {
	t int32
	v float64 // NaN = NULL
}

type bgGroup struct {
	t        int32
	fields   [numKinds]float64 // only the kBg* entries are used; NaN = NULL
	specimen string
	hasSpec  bool
}

// observations derives the per-timestamp values of the 13 raw series for one
// admission from its kept events (the SQL views of spec §3).
func (a *admInfo) observations() []obs {
	ev := a.events
	slices.SortFunc(ev, func(x, y event) int {
		return cmp.Or(cmp.Compare(x.t, y.t), cmp.Compare(x.kind, y.kind), cmp.Compare(x.stay, y.stay), nanLess(x.val, y.val))
	})
	spec := a.specimens
	slices.SortFunc(spec, func(x, y specimen) int { return cmp.Or(cmp.Compare(x.t, y.t), cmp.Compare(x.v, y.v)) })

	nst := len(a.stays)
	gcs := make([][]gcsBase, nst)
	spo2 := make([][]chartPoint, nst)
	fio2 := make([][]chartPoint, nst)
	var bgs []bgGroup
	var out []obs
	sp := 0

	for i := 0; i < len(ev); {
		t := ev[i].t
		j := i
		for j < len(ev) && ev[j].t == t {
			j++
		}
		g := ev[i:j]
		i = j

		var vSum [3]float64 // SBP, HR, Temp: avg over all rows at (hadm, t)
		var vCnt [3]int
		var lab [6]float64 // BUN..Bili: min over rows at (hadm, t)
		for k := range lab {
			lab[k] = math.NaN()
		}
		var uoSum float64 // urine: per-stay sums, then avg over stays
		var uoN int
		var bg bgGroup
		hasBG := false
		for k := range bg.fields {
			bg.fields[k] = math.NaN()
		}
		var base []gcsBase // per stay at this t, indexed via baseStay
		var baseStay []uint16

		for p := 0; p < len(g); {
			q := p
			for q < len(g) && g[q].kind == g[p].kind && g[q].stay == g[p].stay {
				q++
			}
			sub := g[p:q]
			k, s := g[p].kind, g[p].stay
			p = q
			switch {
			case k == kSBP || k == kHR || k == kTemp:
				for _, e := range sub {
					vSum[k-kSBP] += e.val
					vCnt[k-kSBP]++
				}
			case k >= kBUN && k <= kBili:
				for _, e := range sub {
					if math.IsNaN(lab[k-kBUN]) || e.val < lab[k-kBUN] {
						lab[k-kBUN] = e.val
					}
				}
			case k == kUrine:
				var sum float64
				for _, e := range sub {
					sum += e.val
				}
				uoSum += sum
				uoN++
			case k == kGCSMotor || k == kGCSVerbal || k == kGCSEyes:
				bi := slices.Index(baseStay, s)
				if bi < 0 {
					baseStay = append(baseStay, s)
					base = append(base, gcsBase{t: t, m: math.NaN(), v: math.NaN(), e: math.NaN()})
					bi = len(base) - 1
				}
				for _, e := range sub {
					switch k {
					case kGCSMotor:
						base[bi].m = maxNaN(base[bi].m, e.val)
					case kGCSVerbal:
						base[bi].v = maxNaN(base[bi].v, e.val)
					default:
						base[bi].e = maxNaN(base[bi].e, e.val)
					}
				}
			case k >= kBgAADO2 && k <= kBgPO2:
				hasBG = true
				for _, e := range sub {
					bg.fields[k] = maxNaN(bg.fields[k], e.val)
				}
			case k == kSpO2 || k == kFiO2Chart:
				v := math.NaN()
				for _, e := range sub {
					if !math.IsNaN(e.val) {
						v = maxNaN(v, e.val)
					}
				}
				if k == kSpO2 {
					spo2[s] = append(spo2[s], chartPoint{t, v})
				} else {
					fio2[s] = append(fio2[s], chartPoint{t, v})
				}
			}
		}
		for k := 0; k < 3; k++ {
			if vCnt[k] > 0 {
				out = append(out, obs{t, fSBP + k, vSum[k] / float64(vCnt[k])})
			}
		}
		for k := 0; k < 6; k++ {
			if !math.IsNaN(lab[k]) {
				out = append(out, obs{t, fBUN + k, lab[k]})
			}
		}
		if uoN > 0 {
			out = append(out, obs{t, fUO, uoSum / float64(uoN)})
		}
		for bi, s := range baseStay {
			gcs[s] = append(gcs[s], base[bi])
		}
		// stg2 keeps only blood gases with a PO2.
		if hasBG && !math.IsNaN(bg.fields[kBgPO2]) {
			for sp < len(spec) && spec[sp].t < t {
				sp++
			}
			for ; sp < len(spec) && spec[sp].t == t; sp++ {
				if !bg.hasSpec || spec[sp].v > bg.specimen { // max(value)
					bg.specimen, bg.hasSpec = spec[sp].v, true
				}
			}
			bg.t = t
			bgs = append(bgs, bg)
		}
	}

	out = append(out, a.gcsObservations(gcs)...)
	out = append(out, a.bloodGasObservations(bgs, spo2, fio2)...)
	return out
}

// gcsValue is the GCS of one base row given the previous base row of the same
// ICU stay within 6 h (prev nil otherwise): spec §3.1, gen_gcs_ts.sql L99-116.
func gcsValue(cur gcsBase, prev *gcsBase) float64 {
	pv, pm, pe := math.NaN(), math.NaN(), math.NaN()
	if prev != nil {
		pv, pm, pe = prev.v, prev.m, prev.e
	}
	switch {
	case cur.v == 0:
		return 15
	case math.IsNaN(cur.v) && pv == 0:
		return 15
	case pv == 0:
		return coalesce(cur.m, 6) + coalesce(cur.v, 5) + coalesce(cur.e, 4)
	}
	return coalesce(cur.m, coalesce(pm, 6)) + coalesce(cur.v, coalesce(pv, 5)) + coalesce(cur.e, coalesce(pe, 4))
}

func coalesce(v, d float64) float64 {
	if math.IsNaN(v) {
		return d
	}
	return v
}

// gcsObservations applies the previous-row rule per ICU stay and takes the
// max over stays per charttime.
func (a *admInfo) gcsObservations(gcs [][]gcsBase) []obs {
	var vals []chartPoint
	for _, rows := range gcs {
		for i, cur := range rows {
			var prev *gcsBase
			// b2.rn = b.rn - 1 and b2.charttime > b.charttime - 6h
			if i > 0 && int64(rows[i-1].t) > int64(cur.t)-sixHours {
				prev = &rows[i-1]
			}
			vals = append(vals, chartPoint{cur.t, gcsValue(cur, prev)})
		}
	}
	sort.Slice(vals, func(i, j int) bool { return vals[i].t < vals[j].t })
	var out []obs
	for i, v := range vals {
		if i > 0 && vals[i-1].t == v.t {
			out[len(out)-1].v = math.Max(out[len(out)-1].v, v.v)
			continue
		}
		out = append(out, obs{v.t, fGCS, v.v})
	}
	return out
}

// latestIn returns the latest point with t-window <= p.t <= t (the row that
// ROW_NUMBER() ... ORDER BY charttime DESC = 1 picks), NaN when none.
func latestIn(pts []chartPoint, t int32, window int64) float64 {
	i := sort.Search(len(pts), func(i int) bool { return pts[i].t > t })
	if i == 0 || int64(pts[i-1].t) < int64(t)-window {
		return math.NaN()
	}
	return pts[i-1].v
}

// specimenProb is the arterial-specimen logistic model of gen_pao2_fio2.sql
// (spec §3.2), with C(x, d) = x when x is not NULL, else d.
func specimenProb(f *[numKinds]float64, spo2, fio2Chart float64) float64 {
	c := func(coef, x, mean, off float64) float64 {
		if math.IsNaN(x) {
			return coef*mean + off
		}
		return coef * x
	}
	z := -0.02544 + 0.04598*f[kBgPO2] +
		c(-0.15356, spo2, 97.49420, 0.13429) +
		c(0.00621, fio2Chart, 51.49550, -0.24958) +
		c(0.10559, f[kBgHemoglobin], 10.32307, 0.05954) +
		c(0.13251, f[kBgSO2], 93.66539, -0.23172) +
		c(-0.01511, f[kBgPCO2], 42.08866, -0.01630) +
		c(0.01480, f[kBgFiO2], 63.97836, -0.31142) +
		c(-0.00200, f[kBgAADO2], 442.21186, -0.01328) +
		c(-0.03220, f[kBgBicarb], 22.96894, -0.06535) +
		c(0.05384, f[kBgTotalCO2], 24.72632, -0.01405) +
		c(0.08202, f[kBgLactate], 3.06436, 0.06038) +
		c(0.10956, f[kBgPH], 7.36233, -0.00617) +
		c(0.00848, f[kBgO2Flow], 7.59362, -0.35803)
	return 1 / (1 + math.Exp(-z))
}

// bloodGasObservations builds mengcz_pao2fio2_ts: per ICU stay whose window
// (charttime >= intime - 6h) holds the blood gas, attach the latest SpO2 row
// within 2 h and the latest FiO2 row within 4 h, keep arterial rows
// (SPECIMEN = 'ART' or p > 0.75), then avg(PO2) and avg(FIO2gen) per
// charttime over the kept stay rows.
func (a *admInfo) bloodGasObservations(bgs []bgGroup, spo2, fio2 [][]chartPoint) []obs {
	var out []obs
	for gi := range bgs {
		g := &bgs[gi]
		var po2Sum, fSum float64
		var po2N, fN int
		for s := range a.stays {
			if int64(g.t) < a.stays[s].intime-a.ref-sixHours {
				continue
			}
			sp := latestIn(spo2[s], g.t, spo2Back)
			fc := latestIn(fio2[s], g.t, fio2Back)
			p := specimenProb(&g.fields, sp, fc)
			if !((g.hasSpec && g.specimen == "ART") || p > 0.75) {
				continue
			}
			po2Sum += g.fields[kBgPO2]
			po2N++
			fgen := coalesce(g.fields[kBgFiO2], fc) // coalesce(lab FIO2, fio2_chartevents)
			if !math.IsNaN(fgen) {
				fSum += fgen
				fN++
			}
		}
		if po2N > 0 {
			out = append(out, obs{g.t, fPaO2, po2Sum / float64(po2N)})
		}
		if fN > 0 {
			out = append(out, obs{g.t, fFiO2, fSum / float64(fN)})
		}
	}
	return out
}

// timeRows turns observations into the sorted unique timestamps and one row
// of 13 values (NaN = missing) per timestamp (spec §4 steps 1-2).
func timeRows(o []obs) ([]int64, [][nRaw]float64) {
	slices.SortStableFunc(o, func(x, y obs) int { return cmp.Compare(x.t, y.t) })
	var ts []int64
	var rows [][nRaw]float64
	for _, x := range o {
		if len(ts) == 0 || ts[len(ts)-1] != int64(x.t) {
			ts = append(ts, int64(x.t))
			var r [nRaw]float64
			for k := range r {
				r[k] = math.NaN()
			}
			rows = append(rows, r)
		}
		rows[len(rows)-1][x.f] = x.v
	}
	return ts, rows
}

// hourly is spec §4 steps 3-7 on one admission: ts are the sorted unique
// observation times in seconds, rows their 13 raw values. It requires a span
// ts[last]-ts[0] > 24 h (the cohort rule), so there are at least 25 bins.
// The result is 24 x 12, hour-major, columns
// [GCS, SBP, HR, Temp, PaO2/FiO2, UO, BUN, WBC, HCO3, Na, K, Bili].
func hourly(ts []int64, rows [][nRaw]float64) []float64 {
	ts0 := ts[0]
	span := ts[len(ts)-1] - ts0
	nb := int((span + hour - 1) / hour) // T = ceil(span / 3600)

	// Step 3-4: bin k holds rows with k*3600 <= t-ts0 <= (k+1)*3600 (both
	// ends closed: a row on an hour boundary counts in two bins); the value
	// is the unweighted mean of the rows' values, summed in time order as
	// numpy's nanmean does.
	sum := make([][nRaw]float64, nb)
	cnt := make([][nRaw]int, nb)
	add := func(k int, r *[nRaw]float64) {
		if k < 0 || k >= nb {
			return
		}
		for f, v := range r {
			if !math.IsNaN(v) {
				sum[k][f] += v
				cnt[k][f]++
			}
		}
	}
	for i, t := range ts {
		d := t - ts0
		k := int(d / hour)
		if d%hour == 0 {
			add(k-1, &rows[i])
		}
		add(k, &rows[i])
	}
	miss := make([][nRaw]float64, nb)
	for k := range miss {
		for f := 0; f < nRaw; f++ {
			if cnt[k][f] > 0 {
				miss[k][f] = sum[k][f] / float64(cnt[k][f])
			} else {
				miss[k][f] = math.NaN()
			}
		}
	}

	// Step 5: mean over all T un-imputed bins; forward then backward fill for
	// every series except urine output; remaining gaps get the mean (NaN if
	// the series was never observed).
	var mean [nRaw]float64
	for f := 0; f < nRaw; f++ {
		var s float64
		n := 0
		for k := 0; k < nb; k++ {
			if !math.IsNaN(miss[k][f]) {
				s += miss[k][f]
				n++
			}
		}
		mean[f] = math.NaN()
		if n > 0 {
			mean[f] = s / float64(n)
		}
	}
	imp := miss // miss is not needed afterwards
	for f := 0; f < nRaw; f++ {
		if f == fUO {
			continue
		}
		for k := 1; k < nb; k++ {
			if math.IsNaN(imp[k][f]) {
				imp[k][f] = imp[k-1][f]
			}
		}
		for k := nb - 2; k >= 0; k-- {
			if math.IsNaN(imp[k][f]) {
				imp[k][f] = imp[k+1][f]
			}
		}
	}
	for k := range imp {
		for f := 0; f < nRaw; f++ {
			if math.IsNaN(imp[k][f]) {
				imp[k][f] = mean[f]
			}
		}
	}

	// Step 6-7: first 24 bins; ratio PaO2/FiO2 with +-Inf -> NaN; then the
	// ratio's own imputation: mean of the 24 ratios, forward fill, a backward
	// fill that tests the imputed PaO2 instead of the ratio (the original's
	// bug, kept), and the mean.
	out := make([]float64, hours*nSeries)
	var ratio [hours]float64
	for h := 0; h < hours; h++ {
		r := imp[h][fPaO2] / imp[h][fFiO2]
		if math.IsInf(r, 0) {
			r = math.NaN()
		}
		ratio[h] = r
	}
	var rs float64
	rn := 0
	for _, r := range ratio {
		if !math.IsNaN(r) {
			rs += r
			rn++
		}
	}
	rmean := math.NaN()
	if rn > 0 {
		rmean = rs / float64(rn)
	}
	for h := 1; h < hours; h++ {
		if math.IsNaN(ratio[h]) {
			ratio[h] = ratio[h-1]
		}
	}
	for h := hours - 2; h >= 0; h-- {
		if math.IsNaN(imp[h][fPaO2]) {
			ratio[h] = ratio[h+1]
		}
	}
	for h := range ratio {
		if math.IsNaN(ratio[h]) {
			ratio[h] = rmean
		}
	}
	for h := 0; h < hours; h++ {
		row := out[h*nSeries : (h+1)*nSeries]
		copy(row[:fPaO2], imp[h][:fPaO2])
		row[fPaO2] = ratio[h]
		copy(row[fPaO2+1:], imp[h][fFiO2+1:])
	}
	return out
}
