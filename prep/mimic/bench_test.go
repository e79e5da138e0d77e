package mimic_test

import (
	"path/filepath"
	"testing"

	"github.com/m2mix/m2mix/prep/mimic"
	"github.com/m2mix/m2mix/prep/mimic/mimictest"
)

// BenchmarkReadPickleRealSize decodes a synthetic im.pk of the real size
// (32,616 samples, float64, ~80 MB), the reading half of the conversion.
func BenchmarkReadPickleRealSize(b *testing.B) {
	pk := filepath.Join(b.TempDir(), "im.pk")
	if err := mimictest.WritePickleFile(pk, mimictest.Synthetic(mimictest.RealN, 2)); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		a, err := mimic.ReadPickle(pk)
		if err != nil {
			b.Fatal(err)
		}
		if a.N != mimictest.RealN {
			b.Fatalf("N = %d", a.N)
		}
	}
}
