package mimic

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadPickle feeds arbitrary bytes to the im.pk reader, seeded with
// every fixture. Nothing may panic or hang, and whatever it accepts must be
// internally consistent. Memory stays bounded because scanPickle checks
// every declared length against the input before gopickle allocates it.
func FuzzReadPickle(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "*.pk"))
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seed fixtures: %v", err)
	}
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := DecodePickle(b)
		if err != nil {
			if a != nil {
				t.Fatal("arrays returned with an error")
			}
			return
		}
		if a.N <= 0 || a.LabelCols < MinLabelCols ||
			len(a.TimeSeries) != a.N*Hours*TimeFeatures ||
			len(a.Static) != a.N*StaticFeatures ||
			len(a.Labels) != a.N*a.LabelCols ||
			(a.ICD9 != nil && len(a.ICD9) != a.N*ICD9Cols) {
			t.Fatalf("inconsistent arrays: N=%d cols=%d len ts=%d static=%d labels=%d icd9=%d",
				a.N, a.LabelCols, len(a.TimeSeries), len(a.Static), len(a.Labels), len(a.ICD9))
		}
	})
}
