package mimic

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// expected mirrors NAME.json, written by testdata/make_fixtures.py from the
// arrays numpy pickled into NAME.pk: the reference the reader must match.
type expected struct {
	N         int      `json:"n"`
	LabelCols int      `json:"label_cols"`
	TS        []string `json:"ep_tdata"`
	Static    []string `json:"adm_features_all"`
	Labels    []string `json:"adm_labels_all"`
	ICD9      []string `json:"y_icd9"`
}

func parseFloats(t *testing.T, ss []string) []float64 {
	t.Helper()
	out := make([]float64, len(ss))
	for i, s := range ss {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("fixture value %q: %v", s, err)
		}
		out[i] = v
	}
	return out
}

// sameFloats compares bit-for-bit except that any NaN equals any NaN.
func sameFloats(t *testing.T, what string, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, numpy wrote %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] && !(math.IsNaN(got[i]) && math.IsNaN(want[i])) {
			t.Fatalf("%s[%d] = %v, numpy wrote %v", what, i, got[i], want[i])
		}
	}
}

func TestReadPickleMatchesNumpy(t *testing.T) {
	cases := []string{
		"p2_f64", "p3_f64", "p4_f64", "p5_f64",
		"p2_f32", "p3_f32", "p4_f32", "p5_f32",
		"p2_fortran", "p3_fortran", "p4_fortran", "p5_fortran",
		"p3_bigendian", "p4_half_int", "p4_bool_labels",
		"p5_readonly", "p5_noncontiguous", "p4_nan_inf",
		"numpy2_p2", "numpy2_p4", "numpy2_p5",
	}
	for _, name := range cases {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			var want expected
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatal(err)
			}
			a, err := ReadPickle(filepath.Join("testdata", name+".pk"))
			if err != nil {
				t.Fatal(err)
			}
			if a.N != want.N || a.LabelCols != want.LabelCols {
				t.Fatalf("N=%d LabelCols=%d, numpy wrote N=%d cols=%d", a.N, a.LabelCols, want.N, want.LabelCols)
			}
			sameFloats(t, "ep_tdata", a.TimeSeries, parseFloats(t, want.TS))
			sameFloats(t, "adm_features_all", a.Static, parseFloats(t, want.Static))
			sameFloats(t, "adm_labels_all", a.Labels, parseFloats(t, want.Labels))
			if want.ICD9 != nil {
				sameFloats(t, "y_icd9", a.ICD9, parseFloats(t, want.ICD9))
			} else if a.ICD9 != nil {
				t.Fatalf("ICD9 set although the file has no y_icd9")
			}
		})
	}
}

// TestFixturesCoverTheFormats guards the fixtures themselves: the cases
// above are only meaningful if the files really use the encodings they are
// named after (a regenerated fixture could silently change that).
func TestFixturesCoverTheFormats(t *testing.T) {
	cases := []struct {
		file     string
		proto    byte
		contains []string
	}{
		{"p2_f64.pk", 2, []string{"numpy.core.multiarray\n_reconstruct", "_codecs\nencode"}},
		{"p3_f32.pk", 3, []string{"numpy.core.multiarray\n_reconstruct"}},
		{"p5_f32.pk", 5, []string{"numpy.core.numeric", "_frombuffer", "\x96"}},
		{"p5_noncontiguous.pk", 5, []string{"_reconstruct", "_frombuffer"}},
		{"numpy2_p2.pk", 2, []string{"numpy._core.multiarray\n_reconstruct"}},
		{"numpy2_p4.pk", 4, []string{"numpy._core.multiarray", "_reconstruct"}},
		{"numpy2_p5.pk", 5, []string{"numpy._core.numeric", "_frombuffer"}},
	}
	for _, c := range cases {
		b, err := os.ReadFile(filepath.Join("testdata", c.file))
		if err != nil {
			t.Fatal(err)
		}
		if b[0] != 0x80 || b[1] != c.proto {
			t.Errorf("%s: protocol %d, want %d", c.file, b[1], c.proto)
		}
		for _, s := range c.contains {
			if !strings.Contains(string(b), s) {
				t.Errorf("%s does not contain %q", c.file, s)
			}
		}
	}
}

func TestReadPickleRejectsBadInput(t *testing.T) {
	cases := []struct {
		file string
		want []string // all must appear in the error
	}{
		{"bad_missing_key.pk", []string{"missing key", "adm_labels_all"}},
		{"bad_shape_ep_tdata.pk", []string{`"ep_tdata"`, "(3, 24, 11)", "(N, 24, 12)"}},
		{"bad_shape_static.pk", []string{`"adm_features_all"`, "(3, 4)", "(N, 5)"}},
		{"bad_shape_labels.pk", []string{`"adm_labels_all"`, "(3, 5)", ">= 6"}},
		{"bad_mismatched_n.pk", []string{"mismatched N", "adm_features_all", "2"}},
		{"bad_string_dtype.pk", []string{`"adm_features_all"`, "non-numeric", "U8"}},
		{"bad_object_dtype.pk", []string{`"adm_labels_all"`, "non-numeric", "object"}},
		{"bad_complex_dtype.pk", []string{`"ep_tdata"`, "non-numeric", "c16"}},
		{"bad_not_dict.pk", []string{"a list", "not a dict"}},
		{"bad_truncated.pk", []string{"truncated"}},
		{"bad_not_pickle.pk", []string{"not a pickle"}},
		{"bad_protocol0.pk", []string{"not a pickle of protocol 2 to 5"}},
		{"does_not_exist.pk", []string{"does_not_exist.pk", "no such file"}},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			path := filepath.Join("testdata", c.file)
			_, err := ReadPickle(path)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			for _, w := range append(c.want, c.file) {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
		})
	}
}

// TestDecodeHostile feeds hand-made pickles that target gopickle's weak
// spots; each must fail cleanly (no panic, no huge allocation).
func TestDecodeHostile(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want string
	}{
		{"empty", "", "not a pickle"},
		{"huge BINBYTES8", "\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\x7f.", "needs"},
		{"huge FRAME", "\x80\x04\x95\xff\xff\xff\xff\xff\xff\x00\x00}.", "FRAME"},
		{"huge BINUNICODE", "\x80\x03X\xff\xff\xff\xff.", "needs"},
		{"negative BINSTRING", "\x80\x02T\xff\xff\xff\xff.", "negative"},
		{"opcode 0xff", "\x80\x04\xff.", "unknown opcode 0xff"},
		{"no STOP", "\x80\x04}", "no STOP"},
		{"odd DICT", "\x80\x02(K\x01d.", "malformed pickle"},
		{"zero-length LONG1", "\x80\x02\x8a\x00.", "malformed pickle"},
		{"empty stack STOP", "\x80\x02.", "malformed pickle"},
		{"persistent id", "\x80\x02K\x01Q.", "persistent"},
		{"out-of-band", "\x80\x05\x97.", "out-of-band"},
		{"protocol 9", "\x80\x09}.", "protocol 9"},
		{"marks", "\x80\x02" + strings.Repeat("(", maxMarks+1) + ".", "MARK"},
		{"opcodes", "\x80\x02" + strings.Repeat("N0", maxOpcodes/2+1) + "}.", "opcodes"},
		// One 100 kB bytes object pushed 1,000 times from the memo, then
		// handed to REDUCE, whose error would print all 100 MB of it.
		{"memo amplification", "\x80\x03B\xa0\x86\x01\x00" + strings.Repeat("x", 100000) + "q\x00(" +
			strings.Repeat("h\x00", 1000) + "l)R.", "re-references"},
		{"array without state", "\x80\x02}(X\x08\x00\x00\x00ep_tdata" +
			"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b\x87R" +
			"X\x10\x00\x00\x00adm_features_allNX\x0e\x00\x00\x00adm_labels_allNu.", "never given its state"},
		{"matrix subclass", "\x80\x02}(X\x08\x00\x00\x00ep_tdata" +
			"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nmatrix\nK\x00\x85C\x01b\x87R" +
			"X\x10\x00\x00\x00adm_features_allNX\x0e\x00\x00\x00adm_labels_allNu.", "subclass numpy.matrix"},
		{"None for an array", "\x80\x02}(X\x08\x00\x00\x00ep_tdataN" +
			"X\x10\x00\x00\x00adm_features_allNX\x0e\x00\x00\x00adm_labels_allNu.", `"ep_tdata": holds None`},
		// A shape claiming 2^60 elements over 8 bytes of data.
		{"shape beyond data", "\x80\x02}(X\x08\x00\x00\x00ep_tdata" +
			"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b\x87R" +
			"(K\x01(\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x10K\x18K\x0ct" +
			"cnumpy\ndtype\nX\x02\x00\x00\x00f8\x89\x88\x87R(K\x03X\x01\x00\x00\x00<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb" +
			"\x89C\x08\x00\x00\x00\x00\x00\x00\x00\x00tb" +
			"X\x10\x00\x00\x00adm_features_allNX\x0e\x00\x00\x00adm_labels_allNu.", "needs more than"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodePickle([]byte(c.in))
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not mention %q", err, c.want)
			}
		})
	}
}

func TestHalfToFloat64(t *testing.T) {
	cases := []struct {
		h    uint16
		want float64
	}{
		{0x0000, 0}, {0x3c00, 1}, {0xc000, -2}, {0x3555, 0.333251953125},
		{0x7bff, 65504}, {0x0001, 5.960464477539063e-08}, {0x7c00, math.Inf(1)}, {0xfc00, math.Inf(-1)},
	}
	for _, c := range cases {
		if got := halfToFloat64(c.h); got != c.want {
			t.Errorf("half 0x%04x = %v, want %v", c.h, got, c.want)
		}
	}
	if !math.IsNaN(halfToFloat64(0x7e00)) {
		t.Error("half 0x7e00 is not NaN")
	}
}
