package torch

import "testing"

// BenchmarkKeyedDropout masks a (10, 32, 80, 1024) activation: about the
// size of one channel-MLP dropout of ten stacked M2-Mixer_M models.
func BenchmarkKeyedDropout(b *testing.B) {
	SetThreads(2)
	s := NewScope()
	defer s.Close()
	d, err := NewKeyedDropout(CPU, 10, true)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	d.StartEpoch([]uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
	x := s.Full(1, Float32, CPU, 10, 32, 80, 1024)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ls := NewScope()
		d.Apply(ls, x, 0.1)
		if err := ls.Err(); err != nil {
			b.Fatal(err)
		}
		ls.Close()
		d.Rewind()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(10*32*80*1024), "ns/element")
}
