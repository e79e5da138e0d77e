package mimic

import (
	"os"
	"strings"
	"testing"

	"github.com/m2mix/m2mix/prep/mimic/mimictest"
)

// Arrays with no rows, or too few for every split to get one, are refused
// before anything is written: no 0-row train, validation or test file.
func TestPrepareRefusesEmptySplits(t *testing.T) {
	cases := []struct {
		n     int
		wants []string
	}{
		{0, []string{"no rows", "N = 0"}},
		{1, []string{"N = 1", "validation 0", "test 0", "at least 10"}},
		{9, []string{"N = 9", "validation 0", "at least 10"}},
	}
	for _, c := range cases {
		dir := t.TempDir()
		_, err := Prepare(mimictest.Synthetic(c.n, 1), dir, Source{Kind: "pk"})
		if err == nil {
			t.Errorf("N = %d accepted", c.n)
		}
		for _, w := range c.wants {
			if err != nil && !strings.Contains(err.Error(), w) {
				t.Errorf("N = %d: error %q does not mention %q", c.n, err, w)
			}
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("N = %d: wrote %d files", c.n, len(entries))
		}
	}
	if _, err := Prepare(mimictest.Synthetic(10, 1), t.TempDir(), Source{Kind: "pk"}); err != nil {
		t.Errorf("N = 10 (1 validation, 1 test row): %v", err)
	}
}
