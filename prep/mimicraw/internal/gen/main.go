// Command gen writes a synthetic MIMIC-III CHARTEVENTS table of a chosen size
// for benchmarking prep/mimicraw, next to links to the other tables of the
// MIMIC-III demo, so that `mimicraw.Build(out)` runs on it.
//
// Rows follow the v1.4 layout (15 columns, quoted text, ~100 bytes a row like
// the real 33 GB / 330 M rows). A fraction -needed of rows carry ITEMIDs the
// build keeps (heart rate, blood pressure, temperature, GCS, SpO2, FiO2),
// spread over the demo's ICU stays; the rest use other common ITEMIDs, some
// with quoted commas and escaped quotes to exercise the quote-aware splitter.
//
//	go run ./prep/mimicraw/internal/gen -demo ../shared/data/mimic3-demo -out /tmp/mimicbench -size 2e9
package main

import (
	"bufio"
	"compress/gzip"
	"encoding/csv"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"
)

type stay struct {
	subject, hadm, icustay string
	intime                 time.Time
}

func main() {
	demo := flag.String("demo", "../shared/data/mimic3-demo", "MIMIC-III demo directory (all tables but CHARTEVENTS)")
	out := flag.String("out", "", "output directory (created)")
	size := flag.Float64("size", 2e9, "approximate CHARTEVENTS size in bytes (uncompressed)")
	needed := flag.Float64("needed", 0.09, "fraction of rows with ITEMIDs the build keeps (the full release has about 9%)")
	gz := flag.Bool("gzip", false, "write CHARTEVENTS.csv.gz instead of CHARTEVENTS.csv")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	if *out == "" {
		log.Fatal("gen: -out is required")
	}
	if err := run(*demo, *out, int64(*size), *needed, *gz, *seed); err != nil {
		log.Fatal(err)
	}
}

func run(demo, out string, size int64, needed float64, gz bool, seed uint64) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	absDemo, err := filepath.Abs(demo)
	if err != nil {
		return err
	}
	for _, name := range []string{"PATIENTS", "ADMISSIONS", "ICUSTAYS", "TRANSFERS", "SERVICES", "DIAGNOSES_ICD", "LABEVENTS", "OUTPUTEVENTS"} {
		link := filepath.Join(out, name+".csv.gz")
		os.Remove(link)
		if err := os.Symlink(filepath.Join(absDemo, name+".csv.gz"), link); err != nil {
			return fmt.Errorf("gen: linking %s: %w", name, err)
		}
	}
	stays, err := readStays(filepath.Join(demo, "ICUSTAYS.csv.gz"))
	if err != nil {
		return err
	}
	path := filepath.Join(out, "CHARTEVENTS.csv")
	if gz {
		path += ".gz"
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var w io.Writer = f
	var zw *gzip.Writer
	if gz {
		zw, _ = gzip.NewWriterLevel(f, gzip.BestSpeed)
		w = zw
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	cw := &countWriter{w: bw}
	if err := writeRows(cw, stays, size, needed, rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "gen: wrote %s (%.2f GB uncompressed, %d stays)\n", path, float64(cw.n)/1e9, len(stays))
	return f.Close()
}

type countWriter struct {
	w *bufio.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func readStays(path string) ([]stay, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("gen: %s: %w", path, err)
	}
	recs, err := csv.NewReader(zr).ReadAll() // errors on a cut stream and on rows of the wrong width
	if err != nil {
		return nil, fmt.Errorf("gen: %s: %w", path, err)
	}
	if len(recs) < 2 {
		return nil, fmt.Errorf("gen: %s: no rows", path)
	}
	if len(recs[0]) < 10 {
		return nil, fmt.Errorf("gen: %s: %d columns, want the ICUSTAYS layout (INTIME is column 10)", path, len(recs[0]))
	}
	var out []stay
	for i, r := range recs[1:] { // ROW_ID,SUBJECT_ID,HADM_ID,ICUSTAY_ID,...,INTIME(9)
		t, err := time.Parse("2006-01-02 15:04:05", r[9])
		if err != nil {
			return nil, fmt.Errorf("gen: %s line %d: INTIME: %w", path, i+2, err)
		}
		out = append(out, stay{r[1], r[2], r[3], t})
	}
	return out, nil
}

// item is an ITEMID with a value generator: (VALUE text, VALUENUM, VALUEUOM).
type item struct {
	id  int
	gen func(r *rand.Rand) (string, string, string)
}

func num(lo, hi float64, uom string) func(r *rand.Rand) (string, string, string) {
	return func(r *rand.Rand) (string, string, string) {
		v := fmt.Sprintf("%.1f", lo+r.Float64()*(hi-lo))
		return v, v, uom
	}
}

func text(vals ...string) func(r *rand.Rand) (string, string, string) {
	return func(r *rand.Rand) (string, string, string) { return vals[r.IntN(len(vals))], "", "" }
}

func writeRows(w io.Writer, stays []stay, size int64, needed float64, r *rand.Rand) error {
	keep := []item{
		{211, num(40, 160, "BPM")}, {220045, num(40, 160, "bpm")},
		{51, num(70, 180, "mmHg")}, {455, num(70, 180, "mmHg")}, {220179, num(70, 180, "mmHg")}, {220050, num(70, 180, "mmHg")},
		{678, num(95, 103, "?F")}, {223761, num(95, 103, "?F")}, {676, num(35, 39.5, "?C")},
		{454, num(1, 6, "points")}, {184, num(1, 4, "points")}, {223901, num(1, 6, "")}, {220739, num(1, 4, "")},
		{723, func(r *rand.Rand) (string, string, string) {
			if r.IntN(4) == 0 {
				return "1.0 ET/Trach", "1", ""
			}
			return "5 Oriented", "5", ""
		}},
		{223900, func(r *rand.Rand) (string, string, string) {
			if r.IntN(4) == 0 {
				return "No Response-ETT", "1", ""
			}
			return "Oriented", "5", ""
		}},
		{646, num(85, 100, "%")}, {220277, num(85, 100, "%")},
		{190, num(0.21, 1, "")}, {3420, num(21, 100, "%")}, {223835, num(21, 100, "%")},
	}
	other := []item{
		{220210, num(8, 30, "insp/min")}, {220181, num(50, 110, "mmHg")}, {8368, num(40, 90, "mmHg")},
		{224641, text("Alarms On")}, {223834, num(0, 10, "L/min")}, {618, num(8, 30, "BPM")},
		{212, text("Sinus Rhythm", "Atrial Fib", "1st Deg AV Block", `Paced, "demand"`)},
		{161, text("Normal, Strong", "Weak, Thready", `Doppler "only"`)},
		{227969, text("Side Rails x2, Bed Alarm On")}, {220048, text("SR (Sinus Rhythm)")},
		{8441, num(40, 90, "mmHg")}, {1125, text("No Edema")}, {550, text("0.5-1.0 cm")},
	}
	header := `"ROW_ID","SUBJECT_ID","HADM_ID","ICUSTAY_ID","ITEMID","CHARTTIME","STORETIME","CGID","VALUE","VALUENUM","VALUEUOM","WARNING","ERROR","RESULTSTATUS","STOPPED"` + "\n"
	if _, err := io.WriteString(w, header); err != nil {
		return err
	}
	var written int64 = int64(len(header))
	var b strings.Builder
	for row := 1; written < size; row++ {
		s := stays[r.IntN(len(stays))]
		var it item
		if r.Float64() < needed {
			it = keep[r.IntN(len(keep))]
		} else {
			it = other[r.IntN(len(other))]
		}
		ct := s.intime.Add(time.Duration(r.IntN(10*24*60)-6*60) * time.Minute) // -6 h .. +10 d
		st := ct.Add(time.Duration(r.IntN(90)) * time.Minute)
		val, valnum, uom := it.gen(r)
		errFlag := ""
		if it.id > 200000 { // MetaVision rows carry WARNING/ERROR
			errFlag = "0"
			if r.IntN(500) == 0 {
				errFlag = "1"
			}
		}
		b.Reset()
		fmt.Fprintf(&b, "%d,%s,%s,%s,%d,%s,%s,%d,%s,%s,%s,%s,%s,,\n",
			row, s.subject, s.hadm, s.icustay, it.id, ct.Format("2006-01-02 15:04:05"), st.Format("2006-01-02 15:04:05"),
			14000+r.IntN(8000), quote(val), valnum, quote(uom), errFlag, errFlag)
		n, err := io.WriteString(w, b.String())
		if err != nil {
			return err
		}
		written += int64(n)
	}
	return nil
}

func quote(s string) string {
	if s == "" {
		return ""
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
