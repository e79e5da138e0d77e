package torch

/*
#include <stdlib.h>
#include "shim/m2t_api.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"unsafe"
)

// Device names where a tensor lives: "cpu", "cuda" or "cuda:N".
type Device string

// CPU is the host.
const CPU Device = "cpu"

// ParseDevice checks a device name: "cpu", "cuda" or "cuda:N" (N >= 0).
// It does not ask libtorch whether the device exists.
func ParseDevice(name string) (Device, error) {
	if name == "cpu" || name == "cuda" {
		return Device(name), nil
	}
	if n, ok := strings.CutPrefix(name, "cuda:"); ok {
		if i, err := strconv.Atoi(n); err == nil && i >= 0 && strconv.Itoa(i) == n {
			return Device(name), nil
		}
	}
	return "", fmt.Errorf("device %q: want cpu, cuda or cuda:N", name)
}

func (s *Scope) unary(name string, op C.int, a *Tensor) *Tensor {
	return s.call(name, func(out *C.m2t_tensor) C.m2t_err { return C.m2t_unary(op, a.h, out) }, a)
}

func (s *Scope) binary(name string, op C.int, a, b *Tensor) *Tensor {
	return s.call(name, func(out *C.m2t_tensor) C.m2t_err { return C.m2t_binary(op, a.h, b.h, out) }, a, b)
}

func (s *Scope) scalar(name string, op C.int, a *Tensor, v float64) *Tensor {
	return s.call(name, func(out *C.m2t_tensor) C.m2t_err { return C.m2t_scalar(op, a.h, C.double(v), out) }, a)
}

// Element-wise arithmetic, with libtorch's broadcasting.

func (s *Scope) Add(a, b *Tensor) *Tensor { return s.binary("add", C.M2T_ADD, a, b) }
func (s *Scope) Sub(a, b *Tensor) *Tensor { return s.binary("sub", C.M2T_SUB, a, b) }
func (s *Scope) Mul(a, b *Tensor) *Tensor { return s.binary("mul", C.M2T_MUL, a, b) }
func (s *Scope) Div(a, b *Tensor) *Tensor { return s.binary("div", C.M2T_DIV, a, b) }
func (s *Scope) Pow(a, b *Tensor) *Tensor { return s.binary("pow", C.M2T_POW, a, b) }

// Eq compares element-wise and returns a bool tensor.
func (s *Scope) Eq(a, b *Tensor) *Tensor { return s.binary("eq", C.M2T_EQ, a, b) }

// MatMul is torch.matmul (batched and broadcasting).
func (s *Scope) MatMul(a, b *Tensor) *Tensor { return s.binary("matmul", C.M2T_MATMUL, a, b) }

func (s *Scope) AddScalar(a *Tensor, v float64) *Tensor {
	return s.scalar("add scalar", C.M2T_ADD, a, v)
}
func (s *Scope) SubScalar(a *Tensor, v float64) *Tensor {
	return s.scalar("sub scalar", C.M2T_SUB, a, v)
}
func (s *Scope) MulScalar(a *Tensor, v float64) *Tensor {
	return s.scalar("mul scalar", C.M2T_MUL, a, v)
}
func (s *Scope) DivScalar(a *Tensor, v float64) *Tensor {
	return s.scalar("div scalar", C.M2T_DIV, a, v)
}
func (s *Scope) PowScalar(a *Tensor, v float64) *Tensor {
	return s.scalar("pow scalar", C.M2T_POW, a, v)
}

// RSubScalar computes v - a.
func (s *Scope) RSubScalar(a *Tensor, v float64) *Tensor {
	return s.scalar("rsub scalar", C.M2T_RSUB, a, v)
}

// EqScalar compares with a number and returns a bool tensor.
func (s *Scope) EqScalar(a *Tensor, v float64) *Tensor { return s.scalar("eq scalar", C.M2T_EQ, a, v) }

func (s *Scope) Neg(a *Tensor) *Tensor  { return s.unary("neg", C.M2T_NEG, a) }
func (s *Scope) Relu(a *Tensor) *Tensor { return s.unary("relu", C.M2T_RELU, a) }

// Gelu is the exact GELU, x * Phi(x) with the erf form (PyTorch's default).
func (s *Scope) Gelu(a *Tensor) *Tensor { return s.unary("gelu", C.M2T_GELU, a) }
func (s *Scope) Exp(a *Tensor) *Tensor  { return s.unary("exp", C.M2T_EXP, a) }
func (s *Scope) Log(a *Tensor) *Tensor  { return s.unary("log", C.M2T_LOG, a) }
func (s *Scope) Sqrt(a *Tensor) *Tensor { return s.unary("sqrt", C.M2T_SQRT, a) }
func (s *Scope) Tanh(a *Tensor) *Tensor { return s.unary("tanh", C.M2T_TANH, a) }

// Sigmoid is the logistic function 1 / (1 + exp(-x)).
func (s *Scope) Sigmoid(a *Tensor) *Tensor { return s.unary("sigmoid", C.M2T_SIGMOID, a) }

// ClampMin is max(x, v) element-wise (torch.clamp_min: the gradient passes
// where x >= v).
func (s *Scope) ClampMin(a *Tensor, v float64) *Tensor {
	return s.scalar("clamp_min", C.M2T_CLAMP_MIN, a, v)
}

// Contiguous returns a tensor with a row-major layout (a copy only if needed).
func (s *Scope) Contiguous(a *Tensor) *Tensor { return s.unary("contiguous", C.M2T_CONTIGUOUS, a) }

// Clone copies a tensor (the copy stays in the autograd graph).
func (s *Scope) Clone(a *Tensor) *Tensor { return s.unary("clone", C.M2T_CLONE, a) }

// Detach returns a view of a cut from the autograd graph.
func (s *Scope) Detach(a *Tensor) *Tensor { return s.unary("detach", C.M2T_DETACH, a) }

// To moves a tensor to device (keeping its dtype).
func (s *Scope) To(a *Tensor, device Device) *Tensor {
	dev := C.CString(string(device))
	defer C.free(unsafe.Pointer(dev))
	return s.call("to "+string(device), func(out *C.m2t_tensor) C.m2t_err { return C.m2t_to(a.h, dev, -1, out) }, a)
}

// ToDType converts a tensor's element type (on its device).
func (s *Scope) ToDType(a *Tensor, dt DType) *Tensor {
	return s.call("to "+dt.String(), func(out *C.m2t_tensor) C.m2t_err { return C.m2t_to(a.h, nil, C.int(dt), out) }, a)
}

// Linear computes x @ w^T + b; b may be nil.
func (s *Scope) Linear(x, w, b *Tensor) *Tensor {
	return s.call("linear", func(out *C.m2t_tensor) C.m2t_err { return C.m2t_linear(x.h, w.h, optHandle(b), out) }, x, w)
}

// Conv2d convolves x (N,C,H,W) with w (O,C,k,k); b may be nil.
func (s *Scope) Conv2d(x, w, b *Tensor, stride, padding int64) *Tensor {
	return s.Conv2dGroups(x, w, b, stride, padding, 1)
}

// Conv2dGroups is torch.nn.functional.conv2d with groups: x (N, G*C, H, W)
// and w (G*O, C, kH, kW), group g's O output channels computed from its own
// C input channels only. K stacked models laid out as channels (N, K*C, H, W)
// run as one convolution this way. b (G*O) may be nil; stride and padding
// apply to both spatial dimensions.
func (s *Scope) Conv2dGroups(x, w, b *Tensor, stride, padding, groups int64) *Tensor {
	name := "conv2d"
	if groups != 1 {
		name = fmt.Sprintf("conv2d (%d groups)", groups)
	}
	return s.call(name, func(out *C.m2t_tensor) C.m2t_err {
		return C.m2t_conv2d(x.h, w.h, optHandle(b), C.int64_t(stride), C.int64_t(padding), C.int64_t(groups), out)
	}, x, w)
}

// BatchNorm2d is at::batch_norm over x (N, C, H, W) (any input with
// channels on dimension 1 works). weight, bias (C) may be nil (no affine);
// runningMean and runningVar (C) must be given. With train, the batch's
// statistics normalise (biased variance) and the running statistics are
// updated in place, running = (1 - momentum) * running + momentum * batch
// with the batch variance unbiased, as PyTorch does; the update writes
// through to the storage they view, so views of a (K, C) stacked buffer
// update that buffer. Without train, the running statistics normalise.
func (s *Scope) BatchNorm2d(x, weight, bias, runningMean, runningVar *Tensor, train bool, momentum, eps float64) *Tensor {
	return s.call("batch_norm", func(out *C.m2t_tensor) C.m2t_err {
		return C.m2t_batch_norm(x.h, optHandle(weight), optHandle(bias), runningMean.h, runningVar.h, cBool(train),
			C.double(momentum), C.double(eps), out)
	}, x, runningMean, runningVar)
}

// MaxPool2d takes the maximum over kernel x kernel windows moved by stride
// over x (N, C, H, W), without padding, rounding the output size down.
func (s *Scope) MaxPool2d(x *Tensor, kernel, stride int64) *Tensor {
	return s.call("max_pool2d", func(out *C.m2t_tensor) C.m2t_err {
		return C.m2t_max_pool2d(x.h, C.int64_t(kernel), C.int64_t(stride), out)
	}, x)
}

// CosineSimilarity is torch.nn.functional.cosine_similarity of a and b
// (broadcast) along dim: their dot product over the product of their norms,
// each norm kept at least eps.
func (s *Scope) CosineSimilarity(a, b *Tensor, dim int64, eps float64) *Tensor {
	return s.call("cosine_similarity", func(out *C.m2t_tensor) C.m2t_err {
		return C.m2t_cosine_similarity(a.h, b.h, C.int64_t(dim), C.double(eps), out)
	}, a, b)
}

// Eigh is torch.linalg.eigh of symmetric matrices x (..., n, n), read from
// their lower triangles: eigenvalues (..., n) in ascending order and the
// matching eigenvectors as the columns of (..., n, n). Autograd flows
// through both (it is ill-conditioned where eigenvalues nearly coincide).
func (s *Scope) Eigh(x *Tensor) (eigenvalues, eigenvectors *Tensor) {
	eigenvalues = s.call("eigh", func(out *C.m2t_tensor) C.m2t_err {
		var vecs C.m2t_tensor
		e := C.m2t_eigh(x.h, out, &vecs)
		if e == nil {
			eigenvectors = &Tensor{h: vecs, scope: s}
			s.tensors = append(s.tensors, eigenvectors)
		}
		return e
	}, x)
	if eigenvectors == nil {
		eigenvectors = &Tensor{scope: s}
	}
	return eigenvalues, eigenvectors
}

// LayerNorm normalises over the last dims dimensions; w and b may be nil.
func (s *Scope) LayerNorm(x *Tensor, dims int, w, b *Tensor, eps float64) *Tensor {
	return s.call("layer_norm", func(out *C.m2t_tensor) C.m2t_err {
		return C.m2t_layer_norm(x.h, C.int64_t(dims), optHandle(w), optHandle(b), C.double(eps), out)
	}, x)
}

// Dropout zeroes elements with probability p and scales the rest by
// 1/(1-p) when train is true; it is the identity otherwise. Masks come from
// libtorch's default generator (see ManualSeed).
func (s *Scope) Dropout(x *Tensor, p float64, train bool) *Tensor {
	return s.call("dropout", func(out *C.m2t_tensor) C.m2t_err {
		return C.m2t_dropout(x.h, C.double(p), cBool(train), out)
	}, x)
}

// Reshape views or copies x into shape (one entry may be -1).
func (s *Scope) Reshape(x *Tensor, shape ...int64) *Tensor {
	return s.call(fmt.Sprintf("reshape %v", shape), func(out *C.m2t_tensor) C.m2t_err {
		return C.m2t_reshape(x.h, shapePtr(shape), C.int(len(shape)), out)
	}, x)
}

// Transpose swaps two dimensions (a view).
func (s *Scope) Transpose(x *Tensor, d0, d1 int64) *Tensor {
	return s.call("transpose", func(out *C.m2t_tensor) C.m2t_err {
		return C.m2t_transpose(x.h, C.int64_t(d0), C.int64_t(d1), out)
	}, x)
}

// Permute reorders dimensions (a view).
func (s *Scope) Permute(x *Tensor, dims ...int64) *Tensor {
	return s.call("permute", func(out *C.m2t_tensor) C.m2t_err {
		return C.m2t_permute(x.h, shapePtr(dims), C.int(len(dims)), out)
	}, x)
}

// Cat concatenates tensors along dim.
func (s *Scope) Cat(dim int64, ts ...*Tensor) *Tensor {
	hs := make([]C.m2t_tensor, len(ts))
	for i, t := range ts {
		if t != nil {
			hs[i] = t.h
		}
	}
	if len(hs) == 0 {
		return s.fail("cat", fmt.Errorf("no tensors"))
	}
	return s.call("cat", func(out *C.m2t_tensor) C.m2t_err {
		return C.m2t_cat(&hs[0], C.int(len(hs)), C.int64_t(dim), out)
	}, ts...)
}

// Narrow returns rows [start, start+length) along dim (a view, no copy):
// how batches are cut from a dataset that sits on the device.
func (s *Scope) Narrow(x *Tensor, dim, start, length int64) *Tensor {
	return s.call("narrow", func(out *C.m2t_tensor) C.m2t_err {
		return C.m2t_narrow(x.h, C.int64_t(dim), C.int64_t(start), C.int64_t(length), out)
	}, x)
}

// IndexSelect gathers the entries of index (int64) along dim (a copy).
func (s *Scope) IndexSelect(x *Tensor, dim int64, index *Tensor) *Tensor {
	return s.call("index_select", func(out *C.m2t_tensor) C.m2t_err {
		return C.m2t_index_select(x.h, C.int64_t(dim), index.h, out)
	}, x, index)
}

func (s *Scope) reduce(name string, op C.int, x *Tensor, keep bool, dims []int64) *Tensor {
	return s.call(name, func(out *C.m2t_tensor) C.m2t_err {
		return C.m2t_reduce(op, x.h, shapePtr(dims), C.int(len(dims)), cBool(keep), out)
	}, x)
}

// Sum over dims (all elements when none are given).
func (s *Scope) Sum(x *Tensor, keepdim bool, dims ...int64) *Tensor {
	return s.reduce("sum", C.M2T_SUM, x, keepdim, dims)
}

// Mean over dims (all elements when none are given).
func (s *Scope) Mean(x *Tensor, keepdim bool, dims ...int64) *Tensor {
	return s.reduce("mean", C.M2T_MEAN, x, keepdim, dims)
}

// Max over one dim (values only), or over all elements when none is given.
func (s *Scope) Max(x *Tensor, keepdim bool, dims ...int64) *Tensor {
	return s.reduce("max", C.M2T_MAX, x, keepdim, dims)
}

// Softmax along dim.
func (s *Scope) Softmax(x *Tensor, dim int64) *Tensor {
	return s.call("softmax", func(out *C.m2t_tensor) C.m2t_err { return C.m2t_softmax(x.h, C.int64_t(dim), 0, out) }, x)
}

// LogSoftmax along dim.
func (s *Scope) LogSoftmax(x *Tensor, dim int64) *Tensor {
	return s.call("log_softmax", func(out *C.m2t_tensor) C.m2t_err { return C.m2t_softmax(x.h, C.int64_t(dim), 1, out) }, x)
}

// Reduction selects how CrossEntropy combines per-sample losses.
type Reduction int

// Reductions, as in torch.nn.functional.cross_entropy.
const (
	ReduceMean Reduction = C.M2T_REDUCE_MEAN
	ReduceSum  Reduction = C.M2T_REDUCE_SUM
	ReduceNone Reduction = C.M2T_REDUCE_NONE
)

// CrossEntropy of logits (N,C) against int64 class targets (N).
func (s *Scope) CrossEntropy(logits, target *Tensor, r Reduction) *Tensor {
	return s.call("cross_entropy", func(out *C.m2t_tensor) C.m2t_err {
		return C.m2t_cross_entropy(logits.h, target.h, C.int(r), out)
	}, logits, target)
}

// Argmax along dim (int64 indices).
func (s *Scope) Argmax(x *Tensor, dim int64) *Tensor {
	return s.call("argmax", func(out *C.m2t_tensor) C.m2t_err { return C.m2t_argmax(x.h, C.int64_t(dim), out) }, x)
}

// Grad returns the gradient accumulated in t, or nil when there is none.
func (s *Scope) Grad(t *Tensor) *Tensor {
	if s.err != nil {
		return nil
	}
	if !t.Valid() {
		s.fail("grad", errNilTensor)
		return nil
	}
	var out C.m2t_tensor
	if err := check(C.m2t_grad(t.h, &out)); err != nil {
		s.fail("grad", err)
		return nil
	}
	if out == nil {
		return nil
	}
	g := &Tensor{h: out, scope: s}
	s.tensors = append(s.tensors, g)
	return g
}

// Backward runs autograd from a scalar loss.
func (t *Tensor) Backward() error {
	h, err := t.handle("backward")
	if err != nil {
		return err
	}
	if err := check(C.m2t_backward(h)); err != nil {
		return fmt.Errorf("backward: %w", err)
	}
	return nil
}

// ZeroGrad zeroes t's accumulated gradient, if any.
func (t *Tensor) ZeroGrad() error {
	h, err := t.handle("zero_grad")
	if err != nil {
		return err
	}
	return wrapErr("zero_grad", C.m2t_zero_grad(h))
}

// SetRequiresGrad marks t as a leaf that autograd tracks (or not).
func (t *Tensor) SetRequiresGrad(flag bool) error {
	h, err := t.handle("requires_grad")
	if err != nil {
		return err
	}
	return wrapErr("requires_grad", C.m2t_set_requires_grad(h, cBool(flag)))
}

// RequiresGrad reports whether autograd tracks t.
func (t *Tensor) RequiresGrad() (bool, error) {
	h, err := t.handle("requires_grad")
	if err != nil {
		return false, err
	}
	var f C.int
	err = wrapErr("requires_grad", C.m2t_requires_grad(h, &f))
	return f != 0, err
}

// CopyFrom overwrites t's values with src's (shapes must match; no autograd).
func (t *Tensor) CopyFrom(src *Tensor) error { return t.inplace("copy_", C.M2T_COPY_, src, 0) }

// AddScaled adds v*src to t in place (no autograd).
func (t *Tensor) AddScaled(src *Tensor, v float64) error {
	return t.inplace("add_", C.M2T_ADD_SCALED_, src, v)
}

// Fill sets every element of t to v (no autograd).
func (t *Tensor) Fill(v float64) error { return t.inplace("fill_", C.M2T_FILL_, nil, v) }

func (t *Tensor) inplace(name string, op C.int, src *Tensor, v float64) error {
	h, err := t.handle(name)
	if err != nil {
		return err
	}
	var sh C.m2t_tensor
	if src != nil {
		if sh, err = src.handle(name); err != nil {
			return err
		}
	}
	return wrapErr(name, C.m2t_inplace(op, h, sh, C.double(v)))
}

// NoGrad runs f with autograd off. Grad mode is thread-local in libtorch, so
// the goroutine is pinned to its OS thread for the duration.
func NoGrad(f func()) error {
	if _, err := Load(); err != nil {
		return err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var prev C.int
	if err := check(C.m2t_set_grad_enabled(0, &prev)); err != nil {
		return fmt.Errorf("no_grad: %w", err)
	}
	defer C.m2t_set_grad_enabled(prev, &prev)
	f()
	return nil
}

func optHandle(t *Tensor) C.m2t_tensor {
	if t == nil {
		return nil
	}
	return t.h
}

func cBool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

func wrapErr(op string, e C.m2t_err) error {
	if err := check(e); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return nil
}
