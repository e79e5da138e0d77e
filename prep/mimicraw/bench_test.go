package mimicraw

import (
	"os"
	"testing"
	"time"
)

// BenchmarkBuildDir builds from the tables in $MIMICRAW_BENCH_DIR, e.g. a
// synthetic CHARTEVENTS made by internal/gen next to the demo tables. It is
// skipped when the variable is unset, so `go test -bench .` stays quick.
// Throughput is CHARTEVENTS bytes on disk per second of the whole build.
//
//	go run ./prep/mimicraw/internal/gen -out /tmp/mimicbench -size 2e9
//	go test -c -o /tmp/mimicraw.test ./prep/mimicraw
//	MIMICRAW_BENCH_DIR=/tmp/mimicbench /usr/bin/time -v /tmp/mimicraw.test \
//	    -test.run '^$' -test.bench BuildDir -test.benchtime 1x
func BenchmarkBuildDir(b *testing.B) {
	dir := os.Getenv("MIMICRAW_BENCH_DIR")
	if dir == "" {
		b.Skip("MIMICRAW_BENCH_DIR not set")
	}
	tf, err := locateTable(dir, "CHARTEVENTS")
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		start := time.Now()
		arr, meta, err := Build(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		sec := time.Since(start).Seconds()
		b.ReportMetric(float64(tf.size)/1e6/sec, "MB/s")
		b.ReportMetric(sec, "s/build")
		b.Logf("N=%d, CHARTEVENTS rows with needed ITEMID %s, kept %s, file %.2f GB",
			arr.N, meta["rows.CHARTEVENTS.rows_with_needed_itemid"], meta["rows.CHARTEVENTS.rows_kept"], float64(tf.size)/1e9)
	}
}
