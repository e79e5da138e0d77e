package torch

/*
#include <stdlib.h>
#include "shim/m2t_api.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"unsafe"
)

// DType is a tensor's element type.
type DType int

// The element types the binding moves between Go and libtorch.
const (
	Float32 DType = C.M2T_FLOAT32
	Float64 DType = C.M2T_FLOAT64
	Int64   DType = C.M2T_INT64
	Uint8   DType = C.M2T_UINT8
	Bool    DType = C.M2T_BOOL
	Int32   DType = C.M2T_INT32
)

func (d DType) String() string {
	switch d {
	case Float32:
		return "float32"
	case Float64:
		return "float64"
	case Int64:
		return "int64"
	case Uint8:
		return "uint8"
	case Bool:
		return "bool"
	case Int32:
		return "int32"
	}
	return fmt.Sprintf("dtype(%d)", int(d))
}

// Size is the width in bytes of one element.
func (d DType) Size() int {
	switch d {
	case Float64, Int64:
		return 8
	case Float32, Int32:
		return 4
	}
	return 1
}

// Tensor is a handle to a libtorch tensor owned by a Scope.
// A nil handle means the tensor was freed or its operation failed.
type Tensor struct {
	h     C.m2t_tensor
	scope *Scope
}

// Scope owns the tensors made through it and frees them all on Close.
// The first error in a scope sticks: later operations return inert tensors
// and Err reports what went wrong. A Scope is not safe for concurrent use.
type Scope struct {
	tensors []*Tensor
	err     error
}

// NewScope starts an empty scope. It loads the shim on first use.
func NewScope() *Scope {
	s := &Scope{}
	if _, err := Load(); err != nil {
		s.err = err
	}
	return s
}

// Err returns the first error that happened in the scope.
func (s *Scope) Err() error { return s.err }

// Close frees every tensor the scope still owns.
func (s *Scope) Close() {
	for _, t := range s.tensors {
		t.free()
	}
	s.tensors = s.tensors[:0]
}

// Len is the number of live tensors the scope owns.
func (s *Scope) Len() int {
	n := 0
	for _, t := range s.tensors {
		if t.h != nil {
			n++
		}
	}
	return n
}

// Adopt moves t into scope s (e.g. a result that must outlive a step scope).
func (s *Scope) Adopt(t *Tensor) *Tensor {
	if t == nil || t.scope == s {
		return t
	}
	if old := t.scope; old != nil {
		for i, o := range old.tensors {
			if o == t {
				old.tensors = append(old.tensors[:i], old.tensors[i+1:]...)
				break
			}
		}
	}
	t.scope = s
	s.tensors = append(s.tensors, t)
	return t
}

// Free releases one tensor now, before its scope closes.
func (t *Tensor) Free() { t.free() }

func (t *Tensor) free() {
	if t == nil || t.h == nil {
		return
	}
	C.m2t_free(t.h)
	t.h = nil
}

// Valid reports whether t refers to a live tensor.
func (t *Tensor) Valid() bool { return t != nil && t.h != nil }

// Fail makes err (about op) the scope's error unless it already has one,
// and returns an inert tensor: for a caller that finds a problem the shim
// cannot see, so the computation ends with an error, not a panic.
func (s *Scope) Fail(op string, err error) *Tensor { return s.fail(op, err) }

func (s *Scope) fail(op string, err error) *Tensor {
	if s.err == nil {
		s.err = fmt.Errorf("%s: %w", op, err)
	}
	return &Tensor{scope: s}
}

// call runs one shim operation producing a tensor. Inputs must be live
// tensors; a nil or freed input becomes the scope's error, not a crash.
func (s *Scope) call(op string, f func(out *C.m2t_tensor) C.m2t_err, inputs ...*Tensor) *Tensor {
	if s.err != nil {
		return &Tensor{scope: s}
	}
	for _, in := range inputs {
		if in == nil || in.h == nil {
			return s.fail(op, errNilTensor)
		}
	}
	var out C.m2t_tensor
	if err := check(f(&out)); err != nil {
		return s.fail(op, err)
	}
	t := &Tensor{h: out, scope: s}
	s.tensors = append(s.tensors, t)
	return t
}

var errNilTensor = fmt.Errorf("nil or freed tensor")

// handle checks a tensor for a method that returns an error directly.
func (t *Tensor) handle(op string) (C.m2t_tensor, error) {
	if t == nil || t.h == nil {
		return nil, fmt.Errorf("%s: %w", op, errNilTensor)
	}
	return t.h, nil
}

// From copies Go data into a new CPU tensor of the given shape.
// data must be []float32, []float64, []int64, []uint8 or []int32.
func (s *Scope) From(data any, shape ...int64) *Tensor {
	var ptr unsafe.Pointer
	var n int
	var dt DType
	switch d := data.(type) {
	case []float32:
		dt, n = Float32, len(d)
		if n > 0 {
			ptr = unsafe.Pointer(&d[0])
		}
	case []float64:
		dt, n = Float64, len(d)
		if n > 0 {
			ptr = unsafe.Pointer(&d[0])
		}
	case []int64:
		dt, n = Int64, len(d)
		if n > 0 {
			ptr = unsafe.Pointer(&d[0])
		}
	case []uint8:
		dt, n = Uint8, len(d)
		if n > 0 {
			ptr = unsafe.Pointer(&d[0])
		}
	case []int32:
		dt, n = Int32, len(d)
		if n > 0 {
			ptr = unsafe.Pointer(&d[0])
		}
	default:
		return s.fail("from", fmt.Errorf("unsupported Go type %T", data))
	}
	want := int64(1)
	for _, d := range shape {
		want *= d
	}
	if want != int64(n) {
		return s.fail("from", fmt.Errorf("shape %v needs %d values, have %d", shape, want, n))
	}
	var keep [1]byte
	if ptr == nil {
		ptr = unsafe.Pointer(&keep[0]) // from_blob wants a pointer even for empty tensors
	}
	dev := C.CString("cpu")
	defer C.free(unsafe.Pointer(dev))
	t := s.call("from", func(out *C.m2t_tensor) C.m2t_err {
		return C.m2t_from_data(ptr, C.int(dt), shapePtr(shape), C.int(len(shape)), dev, out)
	})
	runtime.KeepAlive(data)
	return t
}

// Full makes a tensor filled with value on device.
func (s *Scope) Full(value float64, dt DType, device Device, shape ...int64) *Tensor {
	dev := C.CString(string(device))
	defer C.free(unsafe.Pointer(dev))
	return s.call("full", func(out *C.m2t_tensor) C.m2t_err {
		return C.m2t_full(C.double(value), C.int(dt), shapePtr(shape), C.int(len(shape)), dev, out)
	})
}

// Zeros makes a float32 tensor of zeros on device.
func (s *Scope) Zeros(device Device, shape ...int64) *Tensor {
	return s.Full(0, Float32, device, shape...)
}

func shapePtr(shape []int64) *C.int64_t {
	if len(shape) == 0 {
		return nil
	}
	return (*C.int64_t)(unsafe.Pointer(&shape[0]))
}

// Shape returns the tensor's sizes.
func (t *Tensor) Shape() ([]int64, error) {
	h, err := t.handle("shape")
	if err != nil {
		return nil, err
	}
	var buf [16]C.int64_t
	nd := C.int(len(buf))
	if err := check(C.m2t_shape(h, &buf[0], &nd)); err != nil {
		return nil, fmt.Errorf("shape: %w", err)
	}
	out := make([]int64, int(nd))
	for i := range out {
		out[i] = int64(buf[i])
	}
	return out, nil
}

// Numel is the number of elements.
func (t *Tensor) Numel() (int64, error) {
	sh, err := t.Shape()
	n := int64(1)
	for _, d := range sh {
		n *= d
	}
	return n, err
}

// DType returns the element type.
func (t *Tensor) DType() (DType, error) {
	h, err := t.handle("dtype")
	if err != nil {
		return 0, err
	}
	var d C.int
	if err := check(C.m2t_dtype(h, &d)); err != nil {
		return 0, fmt.Errorf("dtype: %w", err)
	}
	return DType(d), nil
}

// Device returns where the tensor lives, e.g. "cpu" or "cuda:0".
func (t *Tensor) Device() (Device, error) {
	h, err := t.handle("device")
	if err != nil {
		return "", err
	}
	var buf [64]C.char
	if err := check(C.m2t_device(h, &buf[0], C.int64_t(len(buf)))); err != nil {
		return "", fmt.Errorf("device: %w", err)
	}
	return Device(C.GoString(&buf[0])), nil
}

// copyOut converts the tensor to dt on the CPU and copies it into dst.
func (t *Tensor) copyOut(dst unsafe.Pointer, n int, dt DType) error {
	h, err := t.handle("copy out")
	if err != nil {
		return err
	}
	var keep [8]byte
	if dst == nil {
		dst = unsafe.Pointer(&keep[0])
	}
	if err := check(C.m2t_copy_out(h, dst, C.int64_t(n*dt.Size()), C.int(dt))); err != nil {
		return fmt.Errorf("copy out: %w", err)
	}
	return nil
}

// Float32s copies the tensor's values (converted to float32) into a new slice.
func (t *Tensor) Float32s() ([]float32, error) {
	n, err := t.Numel()
	if err != nil {
		return nil, err
	}
	out := make([]float32, n)
	return out, t.copyOut(slicePtr(out), len(out), Float32)
}

// Float64s copies the tensor's values (converted to float64) into a new slice.
func (t *Tensor) Float64s() ([]float64, error) {
	n, err := t.Numel()
	if err != nil {
		return nil, err
	}
	out := make([]float64, n)
	return out, t.copyOut(slicePtr(out), len(out), Float64)
}

// Int64s copies the tensor's values (converted to int64) into a new slice.
func (t *Tensor) Int64s() ([]int64, error) {
	n, err := t.Numel()
	if err != nil {
		return nil, err
	}
	out := make([]int64, n)
	return out, t.copyOut(slicePtr(out), len(out), Int64)
}

// Uint8s copies the tensor's values (converted to uint8) into a new slice.
func (t *Tensor) Uint8s() ([]uint8, error) {
	n, err := t.Numel()
	if err != nil {
		return nil, err
	}
	out := make([]uint8, n)
	return out, t.copyOut(slicePtr(out), len(out), Uint8)
}

// Item returns the value of a one-element tensor as float64.
func (t *Tensor) Item() (float64, error) {
	var v float64
	if err := t.copyOut(unsafe.Pointer(&v), 1, Float64); err != nil {
		return 0, fmt.Errorf("item: %w", err)
	}
	return v, nil
}

func slicePtr[T any](s []T) unsafe.Pointer {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Pointer(&s[0])
}
