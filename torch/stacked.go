package torch

/*
#include "shim/m2t_api.h"
*/
import "C"

// StackedLinear applies K linear layers (w (K,out,in), b (K,out)) to
// x (K,rows,in) in one batched matmul, the bias accumulated as addmm does.
func (s *Scope) StackedLinear(x, w, b *Tensor) *Tensor {
	return s.call("stacked linear", func(out *C.m2t_tensor) C.m2t_err { return C.m2t_stacked_linear(x.h, w.h, b.h, out) }, x, w, b)
}

// StackedLayerNorm normalises the last dimension of x (K, ..., D) with model
// k's affine w[k], b[k] (w and b are (K, D)).
func (s *Scope) StackedLayerNorm(x, w, b *Tensor, eps float64) *Tensor {
	return s.call("stacked layer_norm", func(out *C.m2t_tensor) C.m2t_err {
		return C.m2t_stacked_layer_norm(x.h, w.h, b.h, C.double(eps), out)
	}, x, w, b)
}
