package avmnist

import (
	"os"
	"testing"
	"time"
)

// BenchmarkFullGeneration runs the whole raw generation (70,000 samples) on
// a data folder that `m2mix fetch` has filled: M2MIX_DATA=<data> go test
// -run NONE -bench FullGeneration -benchtime 1x ./features/avmnist. It
// writes into a temporary folder and reports each stage's time.
func BenchmarkFullGeneration(b *testing.B) {
	data := os.Getenv("M2MIX_DATA")
	if data == "" {
		b.Skip("set M2MIX_DATA to a fetched data folder")
	}
	for b.Loop() {
		t0 := time.Now()
		in, err := LoadRaw(data)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		p := Params{Seed: 42}
		res, err := Generate(in, p)
		if err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if _, err := res.Write(b.TempDir(), p, in); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		b.ReportMetric(t1.Sub(t0).Seconds(), "load-s")
		b.ReportMetric(t2.Sub(t1).Seconds(), "generate-s")
		b.ReportMetric(t3.Sub(t2).Seconds(), "write-s")
	}
}
