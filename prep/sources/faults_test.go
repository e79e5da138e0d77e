package sources

import (
	"strings"
	"testing"
)

// Text after the manifest's JSON object (a second object, a merge-conflict
// leftover, a cut-and-paste) is an error naming the file, not ignored.
func TestParseRejectsTrailingData(t *testing.T) {
	good := `{"sources":[{"name":"s","dest":"d","origin":{"kind":"github","repository":"o/r","commit":"` + strings.Repeat("a", 40) + `","path":"p"},"files":{"f":"` + strings.Repeat("0", 64) + `"}}]}`
	if _, err := Parse([]byte(good+"\n \t"), "m.json"); err != nil {
		t.Fatalf("trailing white space: %v", err)
	}
	for _, tail := range []string{`{"sources":[]}`, "]", "x", ">>>>>>> theirs"} {
		_, err := Parse([]byte(good+"\n"+tail), "m.json")
		if err == nil || !strings.Contains(err.Error(), "m.json") || !strings.Contains(err.Error(), "after the JSON object") {
			t.Errorf("tail %q: err = %v, want one naming m.json and the trailing data", tail, err)
		}
	}
}

// FuzzParse: no manifest bytes make Parse panic, and whatever it accepts is
// one JSON object that validates.
func FuzzParse(f *testing.F) {
	good := `{"sources":[{"name":"s","dest":"d","origin":{"kind":"github","repository":"o/r","commit":"` + strings.Repeat("a", 40) + `","path":"p"},"files":{"f":"` + strings.Repeat("0", 64) + `"}}]}`
	f.Add([]byte(good))
	f.Add([]byte(good + "{}"))
	f.Add([]byte(`{"sources":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b, "m.json")
		if err != nil {
			if !strings.Contains(err.Error(), "m.json") {
				t.Fatalf("error %v does not name the file", err)
			}
			return
		}
		if err := m.validate(); err != nil {
			t.Fatalf("accepted a manifest that does not validate: %v", err)
		}
	})
}
