package torch

import (
	"runtime"
	"testing"
)

// BenchmarkTinyAdd is the cost of one Go-to-libtorch operation on a
// one-element tensor, including freeing the result: compare with
// torch/bench/dispatch.cpp (the same op from C++) and PyTorch (make bench).
func BenchmarkTinyAdd(b *testing.B) {
	s := newTestScope(b)
	x := s.Full(1, Float32, CPU, 1)
	y := s.Full(2, Float32, CPU, 1)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		z := s.Add(x, y)
		z.Free()
		s.tensors = s.tensors[:2] // drop the freed handle so the scope stays small
	}
	if s.Err() != nil {
		b.Fatal(s.Err())
	}
}

// BenchmarkMatMul2048 multiplies two 2048x2048 float32 matrices.
func BenchmarkMatMul2048(b *testing.B) {
	runtime.LockOSThread() // keep one OpenMP thread team (see model.Train)
	defer runtime.UnlockOSThread()
	s := newTestScope(b)
	if err := SetThreads(2); err != nil {
		b.Fatal(err)
	}
	x := s.Full(0.5, Float32, CPU, 2048, 2048)
	y := s.Full(0.25, Float32, CPU, 2048, 2048)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		z := s.MatMul(x, y)
		z.Free()
		s.tensors = s.tensors[:2]
	}
	if s.Err() != nil {
		b.Fatal(s.Err())
	}
}
