package mimicraw

import (
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Injected input faults: each must stop Build with an *InputError that
// names the file (and the line where there is one), never a smaller
// dataset.

// buildErr runs Build on dir and returns its *InputError, failing the test
// when Build succeeds or fails some other way.
func buildErr(t *testing.T, dir string) *InputError {
	t.Helper()
	arr, _, err := Build(dir, Options{Workers: 2, Progress: io.Discard})
	if err == nil {
		t.Fatalf("Build succeeded (N = %d) on faulty input", arr.N)
	}
	if arr != nil {
		t.Errorf("Build returned arrays together with the error %v", err)
	}
	var ie *InputError
	if !errors.As(err, &ie) {
		t.Fatalf("err = %v (%T), want an *InputError", err, err)
	}
	return ie
}

// wantErr checks that the error names path (and line, when > 0) and that
// its message contains every fragment.
func wantErr(t *testing.T, ie *InputError, path string, line int64, fragments ...string) {
	t.Helper()
	msg := ie.Error()
	if ie.Path != path || !strings.Contains(msg, path) {
		t.Errorf("error %q names path %q, want %q", msg, ie.Path, path)
	}
	if line > 0 && (ie.Line != line || !strings.Contains(msg, fmt.Sprintf("line %d", line))) {
		t.Errorf("error %q is about line %d, want line %d", msg, ie.Line, line)
	}
	for _, f := range fragments {
		if !strings.Contains(msg, f) {
			t.Errorf("error %q does not mention %q", msg, f)
		}
	}
}

// bigLabs adds n LABEVENTS rows with an ITEMID the build does not keep and
// random text, so the gzip file is several kB and cutting it loses rows.
func bigLabs(w *world, n int) {
	rng := rand.New(rand.NewPCG(7, 7))
	for i := 0; i < n; i++ {
		w.labs = append(w.labs, []string{"1", "100", "99999", at(float64(i % 30)), fmt.Sprintf("x%016x", rng.Uint64()), ""})
	}
}

func TestTruncatedOrCorruptGzipTable(t *testing.T) {
	cases := []struct {
		name  string
		edit  func(b []byte) []byte
		wants []string
	}{
		{"first 3500 bytes", func(b []byte) []byte { return b[:3500] }, []string{"truncated gzip stream"}},
		{"half the file", func(b []byte) []byte { return b[:len(b)/2] }, []string{"truncated gzip stream"}},
		{"no trailer", func(b []byte) []byte { return b[:len(b)-8] }, []string{"truncated gzip stream"}},
		{"no size", func(b []byte) []byte { return b[:len(b)-4] }, []string{"truncated gzip stream"}},
		{"last byte cut", func(b []byte) []byte { return b[:len(b)-1] }, []string{"truncated gzip stream"}},
		{"bad CRC", func(b []byte) []byte { b[len(b)-8] ^= 0xff; return b }, []string{"corrupt gzip stream"}},
		{"bad size", func(b []byte) []byte { b[len(b)-1] ^= 0x01; return b }, []string{"corrupt gzip stream"}},
	}
	for _, table := range []string{"LABEVENTS", "ADMISSIONS"} {
		for _, c := range cases {
			t.Run(table+"/"+c.name, func(t *testing.T) {
				w := newWorld()
				w.chart("1000", 211, 0, "60", "60", "")
				bigLabs(w, 3000)
				// Many admissions of other subjects (in no ICU stay): the
				// admission kept is near the start, so a cut loses only the
				// rest and the build would otherwise succeed.
				for i := 0; i < 3000; i++ {
					w.admissions = append(w.admissions, []string{fmt.Sprint(5000 + i), fmt.Sprint(50000 + i), at(-2), at(240), "", fmt.Sprintf("ELECTIVE %x", i*7919)})
				}
				w.gz[table] = true
				dir := w.write(t)
				path := filepath.Join(dir, table+".csv.gz")
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if len(b) < 7000 {
					t.Fatalf("%s is only %d bytes; the test needs a bigger file", path, len(b))
				}
				if err := os.WriteFile(path, c.edit(b), 0o644); err != nil {
					t.Fatal(err)
				}
				wantErr(t, buildErr(t, dir), path, 0, c.wants...)
			})
		}
	}
}

// The brief's case on the real demo tables: the first 3500 bytes of
// ADMISSIONS.csv.gz.
func TestDemoTruncatedAdmissions(t *testing.T) {
	dir := demoWithCharts(t, nil)
	path := filepath.Join(dir, "ADMISSIONS.csv.gz")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil { // a symlink into the shared demo
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b[:3500], 0o644); err != nil {
		t.Fatal(err)
	}
	wantErr(t, buildErr(t, dir), path, 0, "truncated gzip stream")
}

// replaceTable writes content as dir/NAME.csv, replacing the world's table.
func replaceTable(t *testing.T, dir, name, content string) string {
	t.Helper()
	writeTable(t, dir, name, content, false)
	return filepath.Join(dir, name+".csv")
}

var admissionsHeader = `"ROW_ID","SUBJECT_ID","HADM_ID","ADMITTIME","DISCHTIME","DEATHTIME","ADMISSION_TYPE","HOSPITAL_EXPIRE_FLAG"` + "\n"

func admissionsRow(rowID int, subj, hadm string) string {
	return fmt.Sprintf("%d,%s,%s,%q,%q,,\"EMERGENCY\",0\n", rowID, subj, hadm, at(-2), at(240))
}

// A plain .csv cut in the middle of a row: the short last row is an error
// naming the file and the line, whether or not the needed columns are in it.
func TestTruncatedPlainCSV(t *testing.T) {
	last := admissionsRow(3, "3", "300")
	full := admissionsHeader + admissionsRow(1, "1", "100") + admissionsRow(2, "2", "200")
	cases := []struct {
		name  string
		keep  int // bytes of the last row left
		wants []string
	}{
		{"cut in HADM_ID", len("3,3,30"), []string{"row has 3 fields", "fewer than the 8 of the header"}},
		{"cut before the last column", strings.LastIndex(last, ",0"), []string{"row has 7 fields", "fewer than the 8 of the header"}},
		{"cut in a quoted field", strings.LastIndex(last, "GENCY"), []string{"unterminated quoted field"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld()
			w.chart("1000", 211, 0, "60", "60", "")
			dir := w.write(t)
			path := replaceTable(t, dir, "ADMISSIONS", full+last[:c.keep])
			wantErr(t, buildErr(t, dir), path, 4, c.wants...)
		})
	}
}

// Rows with more or fewer fields than the header are errors naming file
// and line: in rows the build uses and in rows the ITEMID prefilter skips.
func TestRowFieldCount(t *testing.T) {
	labHeader := "ROW_ID,SUBJECT_ID,HADM_ID,ITEMID,CHARTTIME,VALUE,VALUENUM,VALUEUOM\n"
	lab := func(item, extra string) string {
		return "1,1,100," + item + ",\"" + at(0) + "\",\"20\",20,\"mg/dL\"" + extra + "\n"
	}
	okRows := lab("51006", "") + strings.Replace(lab("51006", ""), at(0), at(25), 1)
	cases := []struct {
		name, table, content string
		line                 int64
		wants                []string
	}{
		{"extra field, used row", "ADMISSIONS",
			admissionsHeader + strings.TrimSuffix(admissionsRow(1, "1", "100"), "\n") + ",\"surplus\"\n", 2,
			[]string{"row has 9 fields", "more than the 8 of the header"}},
		{"extra empty field", "ADMISSIONS",
			admissionsHeader + strings.TrimSuffix(admissionsRow(1, "1", "100"), "\n") + ",\n", 2,
			[]string{"row has 9 fields"}},
		{"extra field, skipped row", "LABEVENTS",
			labHeader + okRows + lab("99999", `,"a,b"`), 4,
			[]string{"row has 9 fields", "more than the 8 of the header"}},
		{"extra field after a quoted newline", "LABEVENTS",
			labHeader + okRows + "3,1,100,99999,\"" + at(1) + "\",\"two\nlines, and a comma\",1,\"x\",\"y\"\n", 4,
			[]string{"row has 9 fields"}},
		{"short skipped row", "LABEVENTS",
			labHeader + okRows + "3,1,100,99999\n", 4,
			[]string{"row has 4 fields", "fewer than the 8 of the header"}},
		{"short used row", "LABEVENTS",
			labHeader + "1,1,100,51006,\"" + at(0) + "\",\"20\",20\n" + okRows, 2,
			[]string{"row has 7 fields", "fewer than the 8 of the header"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld()
			w.chart("1000", 211, 0, "60", "60", "")
			dir := w.write(t)
			path := replaceTable(t, dir, c.table, c.content)
			wantErr(t, buildErr(t, dir), path, c.line, c.wants...)
		})
	}
	// Quoted commas and newlines in skipped rows are not field separators.
	w := newWorld()
	w.chart("1000", 211, 0, "60", "60", "")
	dir := w.write(t)
	replaceTable(t, dir, "LABEVENTS", labHeader+okRows+
		"3,1,100,99999,\""+at(1)+"\",\"a,b\nc,\"\"d,e\"\"\",1,\"x,y\"\n"+
		"4,1,100,99999,,,,\n")
	if _, _, err := Build(dir, Options{Workers: 2, Progress: io.Discard}); err != nil {
		t.Fatalf("well-formed rows with quoted commas rejected: %v", err)
	}
}

// Both TABLE.csv and TABLE.csv.gz (or two spellings of one name): which one
// is meant is unknown, so Build refuses and names both.
func TestAmbiguousTableFiles(t *testing.T) {
	for _, other := range []string{"ADMISSIONS.csv.gz", "admissions.csv", "Admissions.CSV.GZ"} {
		t.Run(other, func(t *testing.T) {
			w := newWorld()
			w.chart("1000", 211, 0, "60", "60", "")
			dir := w.write(t)
			b, err := os.ReadFile(filepath.Join(dir, "ADMISSIONS.csv"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, other), b, 0o644); err != nil {
				t.Fatal(err)
			}
			_, _, err = Build(dir, Options{Workers: 2, Progress: io.Discard})
			if err == nil {
				t.Fatal("Build chose one of two ADMISSIONS files silently")
			}
			for _, want := range []string{filepath.Join(dir, "ADMISSIONS.csv"), filepath.Join(dir, other), "ambiguous"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

// Header-only tables and a cohort that ends up empty are errors before any
// output exists, not a 0-row dataset.
func TestEmptyInputs(t *testing.T) {
	for _, table := range []string{"PATIENTS", "ADMISSIONS", "ICUSTAYS", "TRANSFERS", "SERVICES", "DIAGNOSES_ICD"} {
		t.Run("header-only "+table, func(t *testing.T) {
			w := newWorld()
			w.chart("1000", 211, 0, "60", "60", "")
			dir := w.write(t)
			header := "ROW_ID," + strings.Join(neededColumns(table), ",") + "\n"
			for _, gz := range []bool{false, true} {
				os.Remove(filepath.Join(dir, table+".csv"))
				os.Remove(filepath.Join(dir, table+".csv.gz"))
				writeTable(t, dir, table, header, gz)
				path := filepath.Join(dir, table+".csv")
				if gz {
					path += ".gz"
				}
				wantErr(t, buildErr(t, dir), path, 0, "no rows")
			}
		})
	}
	t.Run("empty file", func(t *testing.T) {
		w := newWorld()
		dir := w.write(t)
		path := replaceTable(t, dir, "ADMISSIONS", "")
		wantErr(t, buildErr(t, dir), path, 1, "empty table")
	})
	t.Run("no candidate admissions", func(t *testing.T) {
		w := newWorld()
		w.chart("1000", 211, 0, "60", "60", "")
		w.patients[0][1] = at(-24 * 365) // 1 year old
		_, _, err := Build(w.write(t), Options{Workers: 2, Progress: io.Discard})
		if err == nil || !strings.Contains(err.Error(), "no admissions left") || !strings.Contains(err.Error(), "dropped_age_under_15=1") {
			t.Fatalf("err = %v, want a 'no admissions left' error with the funnel", err)
		}
	})
	t.Run("no admission spans 24 h", func(t *testing.T) {
		w := newWorld()
		w.labs = w.labs[:1]
		_, _, err := Build(w.write(t), Options{Workers: 2, Progress: io.Discard})
		if err == nil || !strings.Contains(err.Error(), "no admissions left") || !strings.Contains(err.Error(), "dropped_span_le_24h=1") {
			t.Fatalf("err = %v, want a 'no admissions left' error with the funnel", err)
		}
	})
}

func TestWriteNPYRefusesNoRows(t *testing.T) {
	w := newWorld()
	w.chart("1000", 211, 0, "60", "60", "")
	arr, _ := w.build(t)
	arr.N = 0
	arr.TimeSeries, arr.Static, arr.Labels, arr.ICD9 = nil, nil, nil, nil
	dir := filepath.Join(t.TempDir(), "npy")
	err := WriteNPY(arr, dir)
	if err == nil || !strings.Contains(err.Error(), "no rows") {
		t.Fatalf("err = %v, want a 'no rows' error", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("WriteNPY created %s despite the error", dir)
	}
}

// FuzzScanTable feeds arbitrary CSV bytes (plain or gzip) through the
// chunked scanner: nothing may panic, a cut gzip stream is always an error
// naming the file, and whatever is accepted that encoding/csv also parses
// has the same number of fields in every record (encoding/csv reports
// ErrFieldCount otherwise).
func FuzzScanTable(f *testing.F) {
	f.Add([]byte("A,B,C\n1,2,3\n4,\"x,y\",6\n"), false)
	f.Add([]byte("A,B,C\n1,2,3,4\n"), false)
	f.Add([]byte("A,B,C\n1,2\n"), true)
	f.Add([]byte("A,B,C\r\n1,\"a\nb\",3\r\n\r\n7,8,9"), false)
	f.Add([]byte("A,B,C\n1,\"unterminated\n"), true)
	f.Add([]byte("A,B,C\n5,\"q\"\"q\",\"\"\n"), false)
	f.Add([]byte("A,B,C\n2,\"x\ny,z\",3,4\n"), false)
	dir := f.TempDir() // one per fuzzing process, which runs inputs one at a time
	f.Fuzz(func(t *testing.T, content []byte, gz bool) {
		path := filepath.Join(dir, "T.csv")
		data := content
		cut := gz && len(content)%3 == 1
		if gz {
			path += ".gz"
			data = gzipBytes(t, content)
			if cut {
				data = data[:len(data)-1-len(content)%7]
			}
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		keep := make([]bool, 10)
		keep[1], keep[4] = true, true
		_, err := scanAll(t, path, scanSpec{cols: []string{"A", "C"}, filter: 0, keep: keep}, 2)
		if err != nil {
			var ie *InputError
			if !errors.As(err, &ie) || ie.Path != path || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %v does not name %s", err, path)
			}
			return
		}
		if cut {
			t.Fatalf("cut gzip stream accepted")
		}
		if bytes.HasPrefix(content, []byte("\n")) || bytes.HasPrefix(content, []byte("\r")) {
			return // encoding/csv skips a blank first line; the scanner takes it as the header
		}
		r := csv.NewReader(bytes.NewReader(content))
		for {
			_, err := r.Read()
			if err == io.EOF {
				break
			}
			if errors.Is(err, csv.ErrFieldCount) {
				t.Fatalf("accepted records with different field counts: %v in %q", err, content)
			}
			if err != nil {
				break // a quoting encoding/csv is stricter about; no reference
			}
		}
	})
}

func gzipBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
