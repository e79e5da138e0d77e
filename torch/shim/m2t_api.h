/* The C ABI between package torch (Go) and the libtorch shim (C++).
 *
 * One list, two uses: the shim defines these functions; the Go side's loader
 * dlopen()s the shim and resolves each name into a function pointer, so a Go
 * binary built without libtorch runs against whatever shim sits beside it.
 *
 * Conventions: every function returns NULL on success or a malloc'd error
 * message (free it with m2t_free_error); results come back through out
 * parameters. Tensors are opaque handles owned by the caller until m2t_free.
 */
#ifndef M2T_API_H
#define M2T_API_H
#include <stdint.h>

typedef void *m2t_tensor;
typedef void *m2t_adam;
typedef void *m2t_graph;
typedef char *m2t_err;

/* X(name, params, args): every exported function. */
#define M2T_API(X) \
  X(m2t_info, (char *buf, int64_t n), (buf, n)) \
  X(m2t_cuda_device_count, (int64_t *out), (out)) \
  X(m2t_live_tensors, (int64_t *out), (out)) \
  X(m2t_set_num_threads, (int64_t n), (n)) \
  X(m2t_get_num_threads, (int64_t *out), (out)) \
  X(m2t_manual_seed, (uint64_t seed), (seed)) \
  X(m2t_set_grad_enabled, (int enabled, int *previous), (enabled, previous)) \
  X(m2t_from_data, (const void *data, int dtype, const int64_t *shape, int ndim, const char *device, m2t_tensor *out), (data, dtype, shape, ndim, device, out)) \
  X(m2t_full, (double value, int dtype, const int64_t *shape, int ndim, const char *device, m2t_tensor *out), (value, dtype, shape, ndim, device, out)) \
  X(m2t_copy_out, (m2t_tensor t, void *dst, int64_t nbytes, int dtype), (t, dst, nbytes, dtype)) \
  X(m2t_free, (m2t_tensor t), (t)) \
  X(m2t_shape, (m2t_tensor t, int64_t *shape, int *ndim), (t, shape, ndim)) \
  X(m2t_dtype, (m2t_tensor t, int *dtype), (t, dtype)) \
  X(m2t_device, (m2t_tensor t, char *buf, int64_t n), (t, buf, n)) \
  X(m2t_to, (m2t_tensor t, const char *device, int dtype, m2t_tensor *out), (t, device, dtype, out)) \
  X(m2t_unary, (int op, m2t_tensor a, m2t_tensor *out), (op, a, out)) \
  X(m2t_binary, (int op, m2t_tensor a, m2t_tensor b, m2t_tensor *out), (op, a, b, out)) \
  X(m2t_scalar, (int op, m2t_tensor a, double s, m2t_tensor *out), (op, a, s, out)) \
  X(m2t_inplace, (int op, m2t_tensor a, m2t_tensor b, double s), (op, a, b, s)) \
  X(m2t_linear, (m2t_tensor x, m2t_tensor w, m2t_tensor b, m2t_tensor *out), (x, w, b, out)) \
  X(m2t_conv2d, (m2t_tensor x, m2t_tensor w, m2t_tensor b, int64_t stride, int64_t padding, int64_t groups, m2t_tensor *out), (x, w, b, stride, padding, groups, out)) \
  X(m2t_batch_norm, (m2t_tensor x, m2t_tensor w, m2t_tensor b, m2t_tensor running_mean, m2t_tensor running_var, int train, double momentum, double eps, m2t_tensor *out), (x, w, b, running_mean, running_var, train, momentum, eps, out)) \
  X(m2t_max_pool2d, (m2t_tensor x, int64_t kernel, int64_t stride, m2t_tensor *out), (x, kernel, stride, out)) \
  X(m2t_cosine_similarity, (m2t_tensor a, m2t_tensor b, int64_t dim, double eps, m2t_tensor *out), (a, b, dim, eps, out)) \
  X(m2t_eigh, (m2t_tensor x, m2t_tensor *eigenvalues, m2t_tensor *eigenvectors), (x, eigenvalues, eigenvectors)) \
  X(m2t_layer_norm, (m2t_tensor x, int64_t last_dims, m2t_tensor w, m2t_tensor b, double eps, m2t_tensor *out), (x, last_dims, w, b, eps, out)) \
  X(m2t_dropout, (m2t_tensor x, double p, int train, m2t_tensor *out), (x, p, train, out)) \
  X(m2t_reshape, (m2t_tensor x, const int64_t *shape, int ndim, m2t_tensor *out), (x, shape, ndim, out)) \
  X(m2t_transpose, (m2t_tensor x, int64_t d0, int64_t d1, m2t_tensor *out), (x, d0, d1, out)) \
  X(m2t_permute, (m2t_tensor x, const int64_t *dims, int ndim, m2t_tensor *out), (x, dims, ndim, out)) \
  X(m2t_cat, (const m2t_tensor *ts, int n, int64_t dim, m2t_tensor *out), (ts, n, dim, out)) \
  X(m2t_narrow, (m2t_tensor x, int64_t dim, int64_t start, int64_t length, m2t_tensor *out), (x, dim, start, length, out)) \
  X(m2t_index_select, (m2t_tensor x, int64_t dim, m2t_tensor index, m2t_tensor *out), (x, dim, index, out)) \
  X(m2t_reduce, (int op, m2t_tensor x, const int64_t *dims, int ndim, int keepdim, m2t_tensor *out), (op, x, dims, ndim, keepdim, out)) \
  X(m2t_softmax, (m2t_tensor x, int64_t dim, int log, m2t_tensor *out), (x, dim, log, out)) \
  X(m2t_cross_entropy, (m2t_tensor logits, m2t_tensor target, int reduction, m2t_tensor *out), (logits, target, reduction, out)) \
  X(m2t_argmax, (m2t_tensor x, int64_t dim, m2t_tensor *out), (x, dim, out)) \
  X(m2t_backward, (m2t_tensor loss), (loss)) \
  X(m2t_grad, (m2t_tensor t, m2t_tensor *out), (t, out)) \
  X(m2t_zero_grad, (m2t_tensor t), (t)) \
  X(m2t_set_requires_grad, (m2t_tensor t, int flag), (t, flag)) \
  X(m2t_requires_grad, (m2t_tensor t, int *flag), (t, flag)) \
  X(m2t_adam_new, (const m2t_tensor *params, int n, double lr, double beta1, double beta2, double eps, double weight_decay, m2t_adam *out), (params, n, lr, beta1, beta2, eps, weight_decay, out)) \
  X(m2t_adam_step, (m2t_adam opt), (opt)) \
  X(m2t_adam_zero_grad, (m2t_adam opt), (opt)) \
  X(m2t_adam_set_lr, (m2t_adam opt, double lr), (opt, lr)) \
  X(m2t_adam_get_state, (m2t_adam opt, int i, int64_t *step, m2t_tensor *exp_avg, m2t_tensor *exp_avg_sq), (opt, i, step, exp_avg, exp_avg_sq)) \
  X(m2t_adam_set_state, (m2t_adam opt, int i, int64_t step, m2t_tensor exp_avg, m2t_tensor exp_avg_sq), (opt, i, step, exp_avg, exp_avg_sq)) \
  X(m2t_adam_free, (m2t_adam opt), (opt)) \
  X(m2t_stacked_linear, (m2t_tensor x, m2t_tensor w, m2t_tensor b, m2t_tensor *out), (x, w, b, out)) \
  X(m2t_stacked_layer_norm, (m2t_tensor x, m2t_tensor w, m2t_tensor b, double eps, m2t_tensor *out), (x, w, b, eps, out)) \
  X(m2t_dropout_keyed, (m2t_tensor x, double p, m2t_tensor keys, m2t_tensor counter, int64_t offset, int stacked, int tensor_ops, m2t_tensor *out), (x, p, keys, counter, offset, stacked, tensor_ops, out)) \
  X(m2t_dropout_bank, (m2t_tensor keys, m2t_tensor counter, int64_t n, double p, int dtype, int tensor_ops, m2t_tensor *out), (keys, counter, n, p, dtype, tensor_ops, out)) \
  X(m2t_flatten_params, (const m2t_tensor *params, int n, int64_t k, int64_t *per, m2t_tensor *flat, m2t_tensor *grad), (params, n, k, per, flat, grad)) \
  X(m2t_flat_model_index, (const int64_t *per, int n, int64_t k, const char *device, m2t_tensor *out), (per, n, k, device, out)) \
  X(m2t_flat_step, (int rule, m2t_tensor params, m2t_tensor grads, m2t_tensor state1, m2t_tensor state2, m2t_tensor model_index, const int64_t *per, int n, m2t_tensor steps, m2t_tensor lrs, m2t_tensor active, const double *hyper, const int *clipped, int exact), (rule, params, grads, state1, state2, model_index, per, n, steps, lrs, active, hyper, clipped, exact)) \
  X(m2t_host_transfers, (int64_t *out), (out)) \
  X(m2t_forbid_host_transfers, (int on), (on)) \
  X(m2t_graphs_available, (int *out), (out)) \
  X(m2t_graph_new, (const char *device, m2t_graph *out), (device, out)) \
  X(m2t_graph_begin, (m2t_graph g), (g)) \
  X(m2t_graph_end, (m2t_graph g, int *id), (g, id)) \
  X(m2t_graph_replay, (m2t_graph g, int id), (g, id)) \
  X(m2t_graph_free, (m2t_graph g), (g))

/* Element-wise op codes. */
enum { M2T_NEG, M2T_RELU, M2T_GELU, M2T_EXP, M2T_LOG, M2T_SQRT, M2T_CONTIGUOUS, M2T_CLONE, M2T_DETACH, M2T_TANH, M2T_SIGMOID };
/* Binary ops; m2t_scalar takes the same codes with a number for b (M2T_CLAMP_MIN: scalar only). */
enum { M2T_ADD, M2T_SUB, M2T_MUL, M2T_DIV, M2T_MATMUL, M2T_EQ, M2T_POW, M2T_RSUB, M2T_CLAMP_MIN };
enum { M2T_SUM, M2T_MEAN, M2T_MAX };
/* In-place ops: copy b into a; a += s*b; a *= s; fill a with s; zero a; a += s. */
enum { M2T_COPY_, M2T_ADD_SCALED_, M2T_MUL_SCALAR_, M2T_FILL_, M2T_ZERO_, M2T_ADD_SCALAR_ };
/* Dtypes. */
enum { M2T_FLOAT32, M2T_FLOAT64, M2T_INT64, M2T_UINT8, M2T_BOOL, M2T_INT32 };
enum { M2T_REDUCE_MEAN, M2T_REDUCE_SUM, M2T_REDUCE_NONE };
/* Update rules of m2t_flat_step, and the layout of its hyper array. */
enum { M2T_RULE_ADAM, M2T_RULE_SGD, M2T_RULE_RMSPROP };
enum { M2T_HYPER_BETA1, M2T_HYPER_BETA2, M2T_HYPER_ALPHA, M2T_HYPER_EPS, M2T_HYPER_WEIGHT_DECAY, M2T_HYPER_MAX_NORM, M2T_HYPER_N };

#define M2T_DECLARE(name, params, args) m2t_err name params;
#ifdef __cplusplus
extern "C" {
#endif
M2T_API(M2T_DECLARE)
void m2t_free_error(m2t_err e);
#ifdef __cplusplus
}
#endif
#endif
