package main

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readStays refuses an ICUSTAYS table with no rows, a short row or a cut
// gzip stream, naming the file, instead of panicking or reading part of it.
func TestReadStaysFaults(t *testing.T) {
	header := "ROW_ID,SUBJECT_ID,HADM_ID,ICUSTAY_ID,DBSOURCE,FIRST_CAREUNIT,LAST_CAREUNIT,FIRST_WARDID,LAST_WARDID,INTIME,OUTTIME,LOS\n"
	row := "1,2,3,4,carevue,MICU,MICU,1,1,2100-01-01 00:00:00,2100-01-02 00:00:00,1\n"
	gz := func(s string) []byte {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		w.Write([]byte(s))
		w.Close()
		return b.Bytes()
	}
	full := gz(header + row)
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"header only", gz(header), "no rows"},
		{"short row", gz(header + "1,2,3\n"), "fields"},
		{"cut gzip", full[:len(full)-6], "unexpected EOF"},
	}
	dir := t.TempDir()
	for _, c := range cases {
		p := filepath.Join(dir, "ICUSTAYS.csv.gz")
		if err := os.WriteFile(p, c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := readStays(p)
		if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want one naming %s and saying %q", c.name, err, p, c.want)
		}
	}
	p := filepath.Join(dir, "ICUSTAYS.csv.gz")
	os.WriteFile(p, full, 0o644)
	if s, err := readStays(p); err != nil || len(s) != 1 {
		t.Fatalf("good table: %v %v", s, err)
	}
}
