// The libtorch shim: m2t_api.h's C functions over libtorch's C++ API.
//
// Every entry point catches every C++ exception and returns its message, so
// a shape mismatch inside libtorch becomes a Go error rather than an abort.
// Only API present in both libtorch 1.13 (Debian 12) and 2.x (PyTorch wheels)
// is used here.
#include "m2t_api.h"

#include <torch/torch.h>
#include <torch/version.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <type_traits>
#include <string>
#include <vector>

namespace {

// A tensor handle: one heap-allocated torch::Tensor. The live count lets
// tests prove that training releases every handle it makes.
struct Handle {
  torch::Tensor t;
};
std::atomic<int64_t> live_handles{0};

m2t_err error_of(const std::string &msg) {
  char *e = static_cast<char *>(std::malloc(msg.size() + 1));
  std::memcpy(e, msg.c_str(), msg.size() + 1);
  return e;
}

m2t_tensor wrap(torch::Tensor t) {
  live_handles.fetch_add(1);
  return new Handle{std::move(t)};
}

torch::Tensor &get(m2t_tensor h, const char *what = "tensor") {
  if (h == nullptr) throw std::invalid_argument(std::string("nil ") + what);
  return static_cast<Handle *>(h)->t;
}

// opt returns an undefined tensor for a nil handle (an optional bias).
torch::Tensor opt(m2t_tensor h) {
  return h == nullptr ? torch::Tensor() : static_cast<Handle *>(h)->t;
}

torch::ScalarType scalar_type(int dtype) {
  switch (dtype) {
    case M2T_FLOAT32: return torch::kFloat32;
    case M2T_FLOAT64: return torch::kFloat64;
    case M2T_INT64: return torch::kInt64;
    case M2T_UINT8: return torch::kUInt8;
    case M2T_BOOL: return torch::kBool;
    case M2T_INT32: return torch::kInt32;
  }
  throw std::invalid_argument("unknown dtype code " + std::to_string(dtype));
}

int dtype_code(torch::ScalarType s) {
  switch (s) {
    case torch::kFloat32: return M2T_FLOAT32;
    case torch::kFloat64: return M2T_FLOAT64;
    case torch::kInt64: return M2T_INT64;
    case torch::kUInt8: return M2T_UINT8;
    case torch::kBool: return M2T_BOOL;
    case torch::kInt32: return M2T_INT32;
    default: throw std::invalid_argument(std::string("unsupported dtype ") + c10::toString(s));
  }
}

std::vector<int64_t> dims_of(const int64_t *p, int n) { return std::vector<int64_t>(p, p + n); }

// Adam keeps its parameter list so state can be addressed by index.
struct Adam {
  std::vector<torch::Tensor> params;
  torch::optim::Adam opt;
  Adam(std::vector<torch::Tensor> p, torch::optim::AdamOptions o) : params(p), opt(p, o) {}
};

// state_key addresses a parameter in the optimiser's state map: libtorch 1.13
// keys it by the TensorImpl pointer printed as a string; newer versions may
// key it by the pointer itself. Both are handled at compile time.
template <typename Map>
typename Map::key_type state_key(const Map &, const torch::Tensor &p) {
  using Key = typename Map::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream s;
    s << p.unsafeGetTensorImpl();
    return s.str();
  } else {
    return Key(p.unsafeGetTensorImpl());
  }
}

Adam &adam(m2t_adam h) {
  if (h == nullptr) throw std::invalid_argument("nil optimiser");
  return *static_cast<Adam *>(h);
}

}  // namespace

#define TRY try {
#define CATCH                                                            \
  }                                                                      \
  catch (const c10::Error &e) { return error_of(e.what_without_backtrace()); } \
  catch (const std::exception &e) { return error_of(e.what()); }         \
  catch (...) { return error_of("unknown C++ exception"); }              \
  return nullptr;

extern "C" {

void m2t_free_error(m2t_err e) { std::free(e); }

m2t_err m2t_info(char *buf, int64_t n) {
  TRY
  std::string s = std::string("libtorch ") + TORCH_VERSION + "\n" + at::get_parallel_info();
  std::snprintf(buf, n, "%s", s.c_str());
  CATCH
}

m2t_err m2t_cuda_device_count(int64_t *out) {
  TRY *out = torch::cuda::is_available() ? static_cast<int64_t>(torch::cuda::device_count()) : 0; CATCH
}

m2t_err m2t_live_tensors(int64_t *out) { TRY *out = live_handles.load(); CATCH }

m2t_err m2t_set_num_threads(int64_t n) { TRY at::set_num_threads(static_cast<int>(n)); CATCH }

m2t_err m2t_get_num_threads(int64_t *out) { TRY *out = at::get_num_threads(); CATCH }

m2t_err m2t_manual_seed(uint64_t seed) {
  TRY
  torch::manual_seed(seed);
  if (torch::cuda::is_available()) torch::cuda::manual_seed_all(seed);
  CATCH
}

m2t_err m2t_set_grad_enabled(int enabled, int *previous) {
  TRY
  *previous = c10::GradMode::is_enabled();
  c10::GradMode::set_enabled(enabled != 0);
  CATCH
}

// Set on a thread while it records a CUDA graph (and by tests' CPU stand-in
// for one): a copy between host and device there would fail the capture, or
// be recorded with a host address that every replay reuses, so it fails at
// once and says why.
namespace {
thread_local bool host_transfers_forbidden = false;
std::atomic<int64_t> host_transfers{0};  // all threads, since loading: for tests and diagnostics
void check_host_transfer(const char *what) {
  host_transfers.fetch_add(1);
  if (host_transfers_forbidden)
    throw std::logic_error(std::string(what) +
                           " while recording a CUDA graph: a recorded step must keep its values on the device");
}
// A copy between tensors is a host transfer when one side is on the CPU and the other is not.
void check_copy(const torch::Device &from, const torch::Device &to) {
  if (from.is_cpu() != to.is_cpu()) check_host_transfer("a copy between host and device");
}
}  // namespace

m2t_err m2t_host_transfers(int64_t *out) { TRY *out = host_transfers.load(); CATCH }

m2t_err m2t_forbid_host_transfers(int on) { TRY host_transfers_forbidden = on != 0; CATCH }

m2t_err m2t_from_data(const void *data, int dtype, const int64_t *shape, int ndim, const char *device, m2t_tensor *out) {
  TRY
  check_host_transfer("a tensor made from host data");
  auto st = scalar_type(dtype);
  auto cpu = torch::from_blob(const_cast<void *>(data), dims_of(shape, ndim), torch::TensorOptions().dtype(st)).clone();
  torch::Device dev(device);
  *out = wrap(dev.is_cpu() ? cpu : cpu.to(dev));
  CATCH
}

m2t_err m2t_full(double value, int dtype, const int64_t *shape, int ndim, const char *device, m2t_tensor *out) {
  TRY
  *out = wrap(torch::full(dims_of(shape, ndim), value, torch::TensorOptions().dtype(scalar_type(dtype)).device(torch::Device(device))));
  CATCH
}

m2t_err m2t_copy_out(m2t_tensor h, void *dst, int64_t nbytes, int dtype) {
  TRY
  check_host_transfer("a read of tensor values into host memory");
  auto t = get(h).detach().to(torch::kCPU, scalar_type(dtype)).contiguous();
  int64_t have = t.numel() * static_cast<int64_t>(t.element_size());
  if (have != nbytes)
    throw std::invalid_argument("copy out: tensor holds " + std::to_string(have) + " bytes, destination " + std::to_string(nbytes));
  std::memcpy(dst, t.data_ptr(), nbytes);
  CATCH
}

m2t_err m2t_free(m2t_tensor h) {
  TRY
  if (h == nullptr) throw std::invalid_argument("free of nil tensor");
  delete static_cast<Handle *>(h);
  live_handles.fetch_sub(1);
  CATCH
}

m2t_err m2t_shape(m2t_tensor h, int64_t *shape, int *ndim) {
  TRY
  auto &t = get(h);
  if (t.dim() > *ndim) throw std::invalid_argument("shape: more than " + std::to_string(*ndim) + " dimensions");
  *ndim = static_cast<int>(t.dim());
  for (int i = 0; i < t.dim(); i++) shape[i] = t.size(i);
  CATCH
}

m2t_err m2t_dtype(m2t_tensor h, int *dtype) { TRY *dtype = dtype_code(get(h).scalar_type()); CATCH }

m2t_err m2t_device(m2t_tensor h, char *buf, int64_t n) {
  TRY std::snprintf(buf, n, "%s", get(h).device().str().c_str()); CATCH
}

m2t_err m2t_to(m2t_tensor h, const char *device, int dtype, m2t_tensor *out) {
  TRY
  auto &t = get(h);
  auto st = dtype < 0 ? t.scalar_type() : scalar_type(dtype);
  auto dev = device == nullptr || device[0] == 0 ? t.device() : torch::Device(device);
  check_copy(t.device(), dev);
  *out = wrap(t.to(dev, st));
  CATCH
}

m2t_err m2t_unary(int op, m2t_tensor a, m2t_tensor *out) {
  TRY
  auto &x = get(a);
  torch::Tensor r;
  switch (op) {
    case M2T_NEG: r = -x; break;
    case M2T_RELU: r = torch::relu(x); break;
    case M2T_GELU: r = torch::gelu(x); break;  // default approximate="none": the erf form
    case M2T_EXP: r = torch::exp(x); break;
    case M2T_LOG: r = torch::log(x); break;
    case M2T_SQRT: r = torch::sqrt(x); break;
    case M2T_CONTIGUOUS: r = x.contiguous(); break;
    case M2T_CLONE: r = x.clone(); break;
    case M2T_DETACH: r = x.detach(); break;
    case M2T_TANH: r = torch::tanh(x); break;
    case M2T_SIGMOID: r = torch::sigmoid(x); break;
    default: throw std::invalid_argument("unknown unary op " + std::to_string(op));
  }
  *out = wrap(r);
  CATCH
}

m2t_err m2t_binary(int op, m2t_tensor a, m2t_tensor b, m2t_tensor *out) {
  TRY
  auto &x = get(a);
  auto &y = get(b);
  torch::Tensor r;
  switch (op) {
    case M2T_ADD: r = x + y; break;
    case M2T_SUB: r = x - y; break;
    case M2T_MUL: r = x * y; break;
    case M2T_DIV: r = x / y; break;
    case M2T_MATMUL: r = torch::matmul(x, y); break;
    case M2T_EQ: r = torch::eq(x, y); break;
    case M2T_POW: r = torch::pow(x, y); break;
    default: throw std::invalid_argument("unknown binary op " + std::to_string(op));
  }
  *out = wrap(r);
  CATCH
}

m2t_err m2t_scalar(int op, m2t_tensor a, double s, m2t_tensor *out) {
  TRY
  auto &x = get(a);
  torch::Tensor r;
  switch (op) {
    case M2T_ADD: r = x + s; break;
    case M2T_SUB: r = x - s; break;
    case M2T_MUL: r = x * s; break;
    case M2T_DIV: r = x / s; break;
    case M2T_POW: r = torch::pow(x, s); break;
    case M2T_RSUB: r = s - x; break;
    case M2T_EQ: r = torch::eq(x, s); break;
    case M2T_CLAMP_MIN: r = torch::clamp_min(x, s); break;
    default: throw std::invalid_argument("unknown scalar op " + std::to_string(op));
  }
  *out = wrap(r);
  CATCH
}

m2t_err m2t_inplace(int op, m2t_tensor a, m2t_tensor b, double s) {
  TRY
  auto &x = get(a);
  torch::NoGradGuard no_grad;  // in-place updates of parameters are never recorded
  switch (op) {
    case M2T_COPY_: {
      auto &src = get(b, "source tensor");
      check_copy(src.device(), x.device());
      x.copy_(src);
      break;
    }
    case M2T_ADD_SCALED_: x.add_(get(b, "source tensor"), s); break;
    case M2T_MUL_SCALAR_: x.mul_(s); break;
    case M2T_FILL_: x.fill_(s); break;
    case M2T_ZERO_: x.zero_(); break;
    case M2T_ADD_SCALAR_:  // an integer tensor takes an integer step (a counter)
      if (c10::isIntegralType(x.scalar_type(), false) && s == std::floor(s)) x.add_(static_cast<int64_t>(s));
      else x.add_(s);
      break;
    default: throw std::invalid_argument("unknown in-place op " + std::to_string(op));
  }
  CATCH
}

m2t_err m2t_linear(m2t_tensor x, m2t_tensor w, m2t_tensor b, m2t_tensor *out) {
  TRY *out = wrap(torch::nn::functional::linear(get(x), get(w, "weight"), opt(b))); CATCH
}

// m2t_conv2d is torch.nn.functional.conv2d with square stride and padding;
// groups > 1 convolves each group of input channels with its own filters
// (how K stacked models laid out as channels run as one convolution).
m2t_err m2t_conv2d(m2t_tensor x, m2t_tensor w, m2t_tensor b, int64_t stride, int64_t padding, int64_t groups, m2t_tensor *out) {
  TRY
  auto &t = get(x);
  auto &wt = get(w, "weight");
  if (stride < 1 || padding < 0 || groups < 1)
    throw std::invalid_argument("conv2d: stride " + std::to_string(stride) + ", padding " + std::to_string(padding) +
                                ", groups " + std::to_string(groups) + " (want stride >= 1, padding >= 0, groups >= 1)");
  if (t.dim() != 4 || wt.dim() != 4)
    throw std::invalid_argument("conv2d: input " + c10::str(t.sizes()) + " and weight " + c10::str(wt.sizes()) +
                                " must both be 4-D (N, C, H, W) and (O, C/groups, kH, kW)");
  *out = wrap(torch::conv2d(t, wt, opt(b), {stride, stride}, {padding, padding}, {1, 1}, groups));
  CATCH
}

// m2t_batch_norm is at::batch_norm over x (N, C, ...): with train, batch
// statistics normalise, and the running statistics are updated in place
// (running = (1 - momentum) * running + momentum * batch, the variance
// unbiased), writing through to whatever storage they view; without,
// the running statistics normalise. w and b (C) may be nil.
m2t_err m2t_batch_norm(m2t_tensor x, m2t_tensor w, m2t_tensor b, m2t_tensor running_mean, m2t_tensor running_var, int train,
                       double momentum, double eps, m2t_tensor *out) {
  TRY
  auto &t = get(x);
  auto &rm = get(running_mean, "running mean");
  auto &rv = get(running_var, "running variance");
  if (t.dim() < 2) throw std::invalid_argument("batch_norm: input " + c10::str(t.sizes()) + " has no channel dimension");
  const int64_t c = t.size(1);
  auto check_1d = [&](const torch::Tensor &v, const char *what) {
    if (v.defined() && (v.dim() != 1 || v.size(0) != c))
      throw std::invalid_argument(std::string("batch_norm: ") + what + " of shape " + c10::str(v.sizes()) + " for an input with " +
                                  std::to_string(c) + " channels " + c10::str(t.sizes()));
  };
  check_1d(opt(w), "weight");
  check_1d(opt(b), "bias");
  check_1d(rm, "running mean");
  check_1d(rv, "running variance");
  if (rm.requires_grad() || rv.requires_grad()) throw std::invalid_argument("batch_norm: running statistics must not require grad");
  if (train && t.numel() / c <= 1)
    throw std::invalid_argument("batch_norm: training needs more than one value per channel, input " + c10::str(t.sizes()));
  if (momentum < 0 || momentum > 1 || eps < 0) throw std::invalid_argument("batch_norm: momentum must be in [0, 1] and eps >= 0");
  *out = wrap(torch::batch_norm(t, opt(w), opt(b), rm, rv, train != 0, momentum, eps, at::globalContext().userEnabledCuDNN()));
  CATCH
}

// m2t_max_pool2d is max pooling with a square window, no padding, floor mode.
m2t_err m2t_max_pool2d(m2t_tensor x, int64_t kernel, int64_t stride, m2t_tensor *out) {
  TRY
  auto &t = get(x);
  if (kernel < 1 || stride < 1) throw std::invalid_argument("max_pool2d: kernel and stride must be >= 1");
  if (t.dim() != 3 && t.dim() != 4) throw std::invalid_argument("max_pool2d: input " + c10::str(t.sizes()) + " is not (N, C, H, W) or (C, H, W)");
  *out = wrap(torch::max_pool2d(t, {kernel, kernel}, {stride, stride}, {0, 0}, {1, 1}, false));
  CATCH
}

// m2t_cosine_similarity is torch.nn.functional.cosine_similarity.
m2t_err m2t_cosine_similarity(m2t_tensor a, m2t_tensor b, int64_t dim, double eps, m2t_tensor *out) {
  TRY *out = wrap(torch::cosine_similarity(get(a), get(b), dim, eps)); CATCH
}

// m2t_eigh is torch.linalg.eigh (lower triangle) of a batch of symmetric
// matrices (..., n, n): ascending eigenvalues (..., n) and eigenvectors as
// columns, both differentiable.
m2t_err m2t_eigh(m2t_tensor x, m2t_tensor *eigenvalues, m2t_tensor *eigenvectors) {
  TRY
  auto &t = get(x);
  if (t.dim() < 2 || t.size(-1) != t.size(-2)) throw std::invalid_argument("eigh: input " + c10::str(t.sizes()) + " is not a batch of square matrices");
  auto r = torch::linalg_eigh(t, "L");
  *eigenvalues = wrap(std::get<0>(r));
  *eigenvectors = wrap(std::get<1>(r));
  CATCH
}

m2t_err m2t_layer_norm(m2t_tensor x, int64_t last_dims, m2t_tensor w, m2t_tensor b, double eps, m2t_tensor *out) {
  TRY
  auto &t = get(x);
  if (last_dims < 1 || last_dims > t.dim()) throw std::invalid_argument("layer_norm: bad number of normalised dims");
  auto sizes = t.sizes().vec();
  std::vector<int64_t> norm(sizes.end() - last_dims, sizes.end());
  *out = wrap(torch::layer_norm(t, norm, opt(w), opt(b), eps));
  CATCH
}

m2t_err m2t_dropout(m2t_tensor x, double p, int train, m2t_tensor *out) {
  TRY *out = wrap(torch::dropout(get(x), p, train != 0)); CATCH
}

m2t_err m2t_reshape(m2t_tensor x, const int64_t *shape, int ndim, m2t_tensor *out) {
  TRY *out = wrap(get(x).reshape(dims_of(shape, ndim))); CATCH
}

m2t_err m2t_transpose(m2t_tensor x, int64_t d0, int64_t d1, m2t_tensor *out) {
  TRY *out = wrap(get(x).transpose(d0, d1)); CATCH
}

m2t_err m2t_permute(m2t_tensor x, const int64_t *dims, int ndim, m2t_tensor *out) {
  TRY *out = wrap(get(x).permute(dims_of(dims, ndim))); CATCH
}

m2t_err m2t_cat(const m2t_tensor *ts, int n, int64_t dim, m2t_tensor *out) {
  TRY
  std::vector<torch::Tensor> v;
  v.reserve(n);
  for (int i = 0; i < n; i++) v.push_back(get(ts[i]));
  *out = wrap(torch::cat(v, dim));
  CATCH
}

m2t_err m2t_narrow(m2t_tensor x, int64_t dim, int64_t start, int64_t length, m2t_tensor *out) {
  TRY *out = wrap(get(x).narrow(dim, start, length)); CATCH
}

m2t_err m2t_index_select(m2t_tensor x, int64_t dim, m2t_tensor index, m2t_tensor *out) {
  TRY *out = wrap(torch::index_select(get(x), dim, get(index, "index"))); CATCH
}

m2t_err m2t_reduce(int op, m2t_tensor x, const int64_t *dims, int ndim, int keepdim, m2t_tensor *out) {
  TRY
  auto &t = get(x);
  torch::Tensor r;
  bool all = ndim == 0;
  switch (op) {
    case M2T_SUM: r = all ? t.sum() : t.sum(dims_of(dims, ndim), keepdim != 0); break;
    case M2T_MEAN: r = all ? t.mean() : t.mean(dims_of(dims, ndim), keepdim != 0); break;
    case M2T_MAX:
      if (all) { r = t.max(); break; }
      if (ndim != 1) throw std::invalid_argument("max: one dimension at a time");
      r = std::get<0>(t.max(dims[0], keepdim != 0));
      break;
    default: throw std::invalid_argument("unknown reduction " + std::to_string(op));
  }
  *out = wrap(r);
  CATCH
}

m2t_err m2t_softmax(m2t_tensor x, int64_t dim, int log, m2t_tensor *out) {
  TRY *out = wrap(log ? torch::log_softmax(get(x), dim) : torch::softmax(get(x), dim)); CATCH
}

m2t_err m2t_cross_entropy(m2t_tensor logits, m2t_tensor target, int reduction, m2t_tensor *out) {
  TRY
  namespace F = torch::nn::functional;
  F::CrossEntropyFuncOptions o;
  if (reduction == M2T_REDUCE_SUM) o.reduction(torch::kSum);
  else if (reduction == M2T_REDUCE_NONE) o.reduction(torch::kNone);
  else o.reduction(torch::kMean);
  *out = wrap(F::cross_entropy(get(logits), get(target, "target"), o));
  CATCH
}

m2t_err m2t_argmax(m2t_tensor x, int64_t dim, m2t_tensor *out) { TRY *out = wrap(torch::argmax(get(x), dim)); CATCH }

m2t_err m2t_backward(m2t_tensor loss) { TRY get(loss).backward(); CATCH }

m2t_err m2t_grad(m2t_tensor h, m2t_tensor *out) {
  TRY
  auto g = get(h).grad();
  *out = g.defined() ? wrap(g) : nullptr;
  CATCH
}

m2t_err m2t_zero_grad(m2t_tensor h) {
  TRY
  auto &t = get(h);
  if (t.grad().defined()) {
    t.mutable_grad().detach_();
    t.mutable_grad().zero_();
  }
  CATCH
}

m2t_err m2t_set_requires_grad(m2t_tensor h, int flag) { TRY get(h).set_requires_grad(flag != 0); CATCH }

m2t_err m2t_requires_grad(m2t_tensor h, int *flag) { TRY *flag = get(h).requires_grad(); CATCH }

m2t_err m2t_adam_new(const m2t_tensor *params, int n, double lr, double beta1, double beta2, double eps, double weight_decay, m2t_adam *out) {
  TRY
  std::vector<torch::Tensor> ps;
  for (int i = 0; i < n; i++) ps.push_back(get(params[i], "parameter"));
  auto o = torch::optim::AdamOptions(lr).betas(std::make_tuple(beta1, beta2)).eps(eps).weight_decay(weight_decay);
  *out = new Adam(ps, o);
  CATCH
}

m2t_err m2t_adam_step(m2t_adam h) { TRY adam(h).opt.step(); CATCH }

m2t_err m2t_adam_zero_grad(m2t_adam h) {
  TRY
  // Zero in place (PyTorch's set_to_none=False behaviour), keeping grad buffers.
  for (auto &p : adam(h).params)
    if (p.grad().defined()) {
      p.mutable_grad().detach_();
      p.mutable_grad().zero_();
    }
  CATCH
}

m2t_err m2t_adam_set_lr(m2t_adam h, double lr) {
  TRY
  for (auto &g : adam(h).opt.param_groups()) static_cast<torch::optim::AdamOptions &>(g.options()).lr(lr);
  CATCH
}

m2t_err m2t_adam_get_state(m2t_adam h, int i, int64_t *step, m2t_tensor *exp_avg, m2t_tensor *exp_avg_sq) {
  TRY
  auto &a = adam(h);
  if (i < 0 || i >= static_cast<int>(a.params.size())) throw std::out_of_range("adam state: no parameter " + std::to_string(i));
  auto it = a.opt.state().find(state_key(a.opt.state(), a.params[i]));
  if (it == a.opt.state().end()) {  // no step taken yet
    *step = 0;
    *exp_avg = wrap(torch::zeros_like(a.params[i]));
    *exp_avg_sq = wrap(torch::zeros_like(a.params[i]));
  } else {
    auto &s = static_cast<torch::optim::AdamParamState &>(*it->second);
    *step = s.step();
    *exp_avg = wrap(s.exp_avg().clone());
    *exp_avg_sq = wrap(s.exp_avg_sq().clone());
  }
  CATCH
}

m2t_err m2t_adam_set_state(m2t_adam h, int i, int64_t step, m2t_tensor exp_avg, m2t_tensor exp_avg_sq) {
  TRY
  auto &a = adam(h);
  if (i < 0 || i >= static_cast<int>(a.params.size())) throw std::out_of_range("adam state: no parameter " + std::to_string(i));
  auto &p = a.params[i];
  auto m = get(exp_avg, "exp_avg");
  auto v = get(exp_avg_sq, "exp_avg_sq");
  if (!m.sizes().equals(p.sizes()) || !v.sizes().equals(p.sizes()))
    throw std::invalid_argument("adam state: moment shape differs from parameter " + std::to_string(i));
  auto s = std::make_unique<torch::optim::AdamParamState>();
  s->step(step);
  s->exp_avg(m.to(p.device(), p.scalar_type()).clone());
  s->exp_avg_sq(v.to(p.device(), p.scalar_type()).clone());
  a.opt.state()[state_key(a.opt.state(), p)] = std::move(s);
  CATCH
}

m2t_err m2t_adam_free(m2t_adam h) {
  TRY
  if (h == nullptr) throw std::invalid_argument("free of nil optimiser");
  delete static_cast<Adam *>(h);
  CATCH
}

// m2t_stacked_linear applies K linear layers, w (K,out,in) and b (K,out), to
// x (K,rows,in) as one batched matmul with the bias as the accumulator's
// start, the way addmm (and so F.linear) computes a single layer.
m2t_err m2t_stacked_linear(m2t_tensor x, m2t_tensor w, m2t_tensor b, m2t_tensor *out) {
  TRY
  auto &t = get(x);
  auto &wt = get(w, "weight");
  auto &bt = get(b, "bias");
  *out = wrap(torch::baddbmm(bt.unsqueeze(1), t, wt.transpose(1, 2)));
  CATCH
}

// m2t_stacked_layer_norm normalises the last dimension of x (K, ...) with
// model k's affine w[k], b[k], slice by slice: the same fused kernel a
// single model uses, so each model's values are what it computes alone.
m2t_err m2t_stacked_layer_norm(m2t_tensor x, m2t_tensor w, m2t_tensor b, double eps, m2t_tensor *out) {
  TRY
  auto &t = get(x);
  auto &wt = get(w, "weight");
  auto &bt = get(b, "bias");
  if (t.dim() < 2 || wt.dim() != 2 || t.size(0) != wt.size(0))
    throw std::invalid_argument("stacked layer_norm: x must be (K, ..., D) and weight (K, D)");
  std::vector<torch::Tensor> parts;
  for (int64_t k = 0; k < t.size(0); k++)
    parts.push_back(torch::layer_norm(t[k], {t.size(-1)}, wt[k], bt[k], eps));
  *out = wrap(torch::stack(parts));
  CATCH
}

}  // extern "C"


namespace {

// Keyed dropout. A mask element is a pure function of (model key, step
// counter, element index): splitmix64's finaliser over a Weyl sequence, as
// in splitmix64 itself. Element indices run through the step: a model's
// first dropout site takes indices 0..n1-1, the next n1..n1+n2-1, and so on.
// Nothing is sequential, so the CPU fills masks in parallel, a device
// computes them with a dozen integer tensor ops (for a whole step at once:
// m2t_dropout_bank), a CUDA graph replays them with the counter advancing
// on the device, and a model trained in a seed batch draws exactly the
// masks it draws alone.
//
//   base = mix64(key + counter * kCounterMul)
//   z_j  = mix64(base + (j + 1) * kGamma)
//   u_e  = bits 40..63 of z_(e/2) for even e, bits 16..39 for odd e (two
//          24-bit draws per hash; e counts the model's own elements)
//   keep element e when u_e >= ceil(p * 2^24), scaled by 1 / (1 - p)
constexpr uint64_t kGamma = 0x9E3779B97F4A7C15ULL;
constexpr uint64_t kCounterMul = 0xD1B54A32D192ED03ULL;
constexpr uint64_t kMix1 = 0xBF58476D1CE4E5B9ULL;
constexpr uint64_t kMix2 = 0x94D049BB133111EBULL;

inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * kMix1;
  z = (z ^ (z >> 27)) * kMix2;
  return z ^ (z >> 31);
}

// int64 tensors stand in for uint64: addition and multiplication wrap the
// same way, and a logical shift is an arithmetic one with the sign bits masked.
inline int64_t as_i64(uint64_t v) { return static_cast<int64_t>(v); }
torch::Tensor shr(const torch::Tensor &z, int s) {
  return torch::bitwise_and(torch::bitwise_right_shift(z, s), as_i64(~0ULL >> s));
}
torch::Tensor mix64_t(torch::Tensor z) {
  z = torch::bitwise_xor(z, shr(z, 30)) * as_i64(kMix1);
  z = torch::bitwise_xor(z, shr(z, 27)) * as_i64(kMix2);
  return torch::bitwise_xor(z, shr(z, 31));
}

// fill_keyed_mask writes elements [offset, offset+n) of one model's masks.
template <typename T>
void fill_keyed_mask(T *d, int64_t offset, int64_t n, uint64_t base, uint64_t cut, T keep) {
  if (n <= 0) return;
  const int64_t first = offset >> 1, last = (offset + n - 1) >> 1;  // pairs touched
  at::parallel_for(first, last + 1, 1 << 13, [&](int64_t b, int64_t e) {
    for (int64_t j = b; j < e; j++) {
      const uint64_t z = mix64(base + static_cast<uint64_t>(j + 1) * kGamma);
      const int64_t even = 2 * j - offset;
      if (even >= 0) d[even] = keep * static_cast<T>((z >> 40) >= cut);
      if (even + 1 < n) d[even + 1] = keep * static_cast<T>(((z >> 16) & 0xFFFFFF) >= cut);
    }
  });
}

// keyed_mask is the (k, n) keep-mask of elements [offset, offset+n) of each
// model, in opts' dtype and device; the tensor-op form runs on a device or
// when asked (tests compare the two forms).
torch::Tensor keyed_mask(const torch::Tensor &keys, const torch::Tensor &counter, int64_t offset, int64_t n, double p,
                         torch::TensorOptions opts, bool tensor_ops) {
  if (p < 0 || p >= 1) throw std::invalid_argument("p must be in [0, 1)");
  if (keys.scalar_type() != torch::kInt64 || keys.dim() != 1) throw std::invalid_argument("keys must be a 1-D int64 tensor");
  if (counter.scalar_type() != torch::kInt64 || counter.numel() != 1) throw std::invalid_argument("the counter must be one int64");
  if (keys.device() != opts.device() || counter.device() != opts.device()) throw std::invalid_argument("keys, counter and input must be on one device");
  if (opts.dtype() != torch::kFloat32 && opts.dtype() != torch::kFloat64) throw std::invalid_argument("float tensors only");
  if (offset < 0 || n < 0) throw std::invalid_argument("negative element range");
  torch::NoGradGuard no_grad;
  const int64_t k = keys.numel();
  const uint64_t cut = static_cast<uint64_t>(std::ceil(p * 16777216.0));
  const double keep = 1.0 / (1.0 - p);
  if (opts.device().is_cpu() && !tensor_ops) {
    auto mask = torch::empty({k, n}, opts);
    auto kp = keys.contiguous();
    const uint64_t c = static_cast<uint64_t>(counter.item<int64_t>());
    for (int64_t j = 0; j < k; j++) {
      const uint64_t base = mix64(static_cast<uint64_t>(kp.data_ptr<int64_t>()[j]) + c * kCounterMul);
      if (opts.dtype() == torch::kFloat32)
        fill_keyed_mask<float>(mask.data_ptr<float>() + j * n, offset, n, base, cut, static_cast<float>(keep));
      else
        fill_keyed_mask<double>(mask.data_ptr<double>() + j * n, offset, n, base, cut, keep);
    }
    return mask;
  }
  auto iopts = keys.options();
  auto base = mix64_t(keys + counter.reshape({}) * as_i64(kCounterMul));
  auto e = torch::arange(offset, offset + n, iopts);
  auto z = mix64_t(base.view({k, 1}) + (torch::bitwise_right_shift(e, 1) + 1) * as_i64(kGamma));
  // even e: bits 40..63; odd e: bits 16..39 (sign bits masked off either way)
  auto u = torch::bitwise_and(torch::bitwise_right_shift(z, 40 - 24 * torch::bitwise_and(e, 1)), 0xFFFFFF);
  return torch::where(u >= static_cast<int64_t>(cut), torch::full({}, keep, opts), torch::zeros({}, opts));
}

}  // namespace

extern "C" {

// m2t_dropout_keyed is inverted dropout of x with keyed masks (see above),
// elements [offset, offset + n) of each model. keys holds one int64 key per
// model; with stacked, x's first dimension is the model axis, else there is
// one key and x is that model's tensor. counter is a one-element int64
// tensor (the step), read on the device by the tensor-op form. tensor_ops
// forces that form on the CPU.
m2t_err m2t_dropout_keyed(m2t_tensor x, double p, m2t_tensor keys, m2t_tensor counter, int64_t offset, int stacked,
                          int tensor_ops, m2t_tensor *out) {
  TRY
  auto &t = get(x);
  auto &ks = get(keys, "dropout keys");
  const int64_t k = ks.numel();
  if (stacked ? (t.dim() < 1 || t.size(0) != k) : k != 1)
    throw std::invalid_argument("" + std::to_string(k) + " keys for an input of shape " + c10::str(t.sizes()) +
                                (stacked ? " (stacked)" : ""));
  auto mask = keyed_mask(ks, get(counter, "dropout counter"), offset, k ? t.numel() / k : 0, p,
                         t.options().requires_grad(false), tensor_ops);
  *out = wrap(t * mask.view(t.sizes()));
  CATCH
}

// m2t_dropout_bank is the (k, n) keep-mask of elements [0, n) of each model
// at the current step: every dropout site of a step takes its columns of
// it, one computation for the whole step instead of one per site.
m2t_err m2t_dropout_bank(m2t_tensor keys, m2t_tensor counter, int64_t n, double p, int dtype, int tensor_ops, m2t_tensor *out) {
  TRY
  auto &ks = get(keys, "dropout keys");
  *out = wrap(keyed_mask(ks, get(counter, "dropout counter"), 0, n, p,
                         torch::TensorOptions().dtype(scalar_type(dtype)).device(ks.device()), tensor_ops));
  CATCH
}

// m2t_flatten_params moves n parameters, each stacked over k models, into
// one flat buffer, parameter-major: parameter j occupies k * per[j]
// consecutive elements (its models one after another, as it was), so it
// stays a contiguous tensor. Each parameter becomes a view of its block, and
// its gradient a view of the same block of a twin gradient buffer (autograd
// accumulates into an existing gradient in place). One optimiser step over
// the buffers then updates every parameter of every model, and one fill
// zeroes every gradient. per receives each parameter's per-model count.
m2t_err m2t_flatten_params(const m2t_tensor *params, int n, int64_t k, int64_t *per, m2t_tensor *flat, m2t_tensor *grad) {
  TRY
  if (n < 1) throw std::invalid_argument("flatten: no parameters");
  torch::NoGradGuard no_grad;
  int64_t total = 0;
  for (int i = 0; i < n; i++) {
    auto &p = get(params[i], "parameter");
    if (p.dim() < 1 || p.size(0) != k) throw std::invalid_argument("flatten: parameter " + std::to_string(i) + " of shape " + c10::str(p.sizes()) + " is not stacked over " + std::to_string(k) + " models");
    if (!p.is_leaf() || !p.requires_grad()) throw std::invalid_argument("flatten: parameter " + std::to_string(i) + " is not a trainable leaf");
    per[i] = p.numel() / k;
    total += p.numel();
  }
  auto &p0 = get(params[0]);
  auto fp = torch::empty({total}, p0.options().requires_grad(false));
  auto fg = torch::zeros({total}, p0.options().requires_grad(false));
  int64_t off = 0;
  for (int i = 0; i < n; i++) {
    auto &p = get(params[i]);
    auto slot = fp.narrow(0, off, p.numel()).view(p.sizes());
    slot.copy_(p);
    p.set_data(slot);
    p.mutable_grad() = fg.narrow(0, off, p.numel()).view(p.sizes());
    off += p.numel();
  }
  *flat = wrap(fp);
  *grad = wrap(fg);
  CATCH
}

// m2t_flat_model_index gives, for each element of a flat buffer laid out by
// m2t_flatten_params, the model it belongs to: the gather that turns (k)
// per-model factors into per-element ones.
m2t_err m2t_flat_model_index(const int64_t *per, int n, int64_t k, const char *device, m2t_tensor *out) {
  TRY
  auto models = torch::arange(k, torch::TensorOptions().dtype(torch::kInt64).device(torch::Device(device)));
  std::vector<torch::Tensor> blocks;
  for (int i = 0; i < n; i++) blocks.push_back(models.repeat_interleave(per[i]));
  *out = wrap(torch::cat(blocks));
  CATCH
}

// m2t_flat_step is one optimiser step (rule: M2T_RULE_*) over flattened
// parameters p with gradients g (see m2t_flatten_params; per and n describe
// the blocks), each model with its own step count, learning rate and
// activity. steps, lrs and active are float64 (k) tensors on p's device:
// each model's step count, learning rate, and 1 or 0 (a model with 0 is
// left exactly as it is, its gradient is neither read nor clipped, and its
// step count does not advance). steps advances on the device. hyper holds
// M2T_HYPER_N values (the M2T_HYPER_* layout); weight decay is L2 added to
// the gradient, as PyTorch's Adam, SGD and RMSprop do (not AdamW).
//
// State per rule: Adam keeps exp_avg in state1 and exp_avg_sq in state2;
// RMSprop (no momentum, not centred) keeps square_avg in state2 and no
// state1; SGD (no momentum) keeps neither (pass nil).
//
// Clipping (max_norm > 0): before the update, each model's gradients of the
// parameters i with clipped[i] are scaled as PyTorch 1.13's
// clip_grad_norm_(those parameters, max_norm) does: total = the 2-norm of
// the per-tensor 2-norms, coef = max_norm / (total + 1e-6), gradients
// multiplied by min(coef, 1). The scaled gradients stay in g, as PyTorch's do.
//
// exact (CPU tensors only): block by block and model by model, the
// operations libtorch's step (and clip_grad_norm_) performs, in its order.
// Otherwise vectorised, with per-element factors gathered through
// model_index (from m2t_flat_model_index): a fixed dozen operations whatever
// k and the parameter count (plus one norm and one scaling per clipped
// parameter), what a launch-bound GPU wants and what a CUDA graph can replay
// (no host values); equal to the exact form up to rounding.
m2t_err m2t_flat_step(int rule, m2t_tensor params, m2t_tensor grads, m2t_tensor state1, m2t_tensor state2, m2t_tensor model_index,
                      const int64_t *per, int n, m2t_tensor steps, m2t_tensor lrs, m2t_tensor active, const double *hyper,
                      const int *clipped, int exact) {
  TRY
  torch::NoGradGuard no_grad;
  if (rule != M2T_RULE_ADAM && rule != M2T_RULE_SGD && rule != M2T_RULE_RMSPROP)
    throw std::invalid_argument("optimiser: unknown rule " + std::to_string(rule));
  const char *name = rule == M2T_RULE_ADAM ? "adam" : rule == M2T_RULE_SGD ? "sgd" : "rmsprop";
  auto fail = [&](const std::string &msg) { throw std::invalid_argument(std::string(name) + ": " + msg); };
  if (hyper == nullptr) fail("no hyperparameters");
  const double beta1 = hyper[M2T_HYPER_BETA1], beta2 = hyper[M2T_HYPER_BETA2], alpha = hyper[M2T_HYPER_ALPHA],
               eps = hyper[M2T_HYPER_EPS], wd = hyper[M2T_HYPER_WEIGHT_DECAY], max_norm = hyper[M2T_HYPER_MAX_NORM];
  auto &p = get(params, "parameters");
  auto &g = get(grads, "gradients");
  // Each rule's state: Adam both moments, RMSprop square_avg (state2), SGD none.
  const bool has1 = rule == M2T_RULE_ADAM, has2 = rule != M2T_RULE_SGD;
  if ((state1 != nullptr) != has1 || (state2 != nullptr) != has2) fail("wrong state buffers for the rule");
  torch::Tensor m = has1 ? get(state1, "first moment") : torch::Tensor();
  torch::Tensor v = has2 ? get(state2, "second moment") : torch::Tensor();
  auto &st = get(steps, "steps");
  auto &lr = get(lrs, "learning rates");
  auto &act = get(active, "active");
  const int64_t k = st.numel();
  int64_t total = 0;
  for (int i = 0; i < n; i++) total += k * per[i];
  if (p.dim() != 1 || p.numel() != total) fail("parameters are not a flat buffer of " + std::to_string(total) + " elements");
  for (auto *t : {&g, &m, &v})
    if (t->defined() && t->sizes() != p.sizes()) fail("state of shape " + c10::str(t->sizes()) + " for parameters " + c10::str(p.sizes()));
  for (auto *t : {&st, &lr, &act})
    if (t->scalar_type() != torch::kFloat64 || t->numel() != k) fail("steps, learning rates and active must be float64 with one value per model");
  const bool clip = max_norm > 0 && clipped != nullptr && std::any_of(clipped, clipped + n, [](int c) { return c != 0; });
  if (exact) {
    if (!p.is_cpu() || !st.is_cpu() || !lr.is_cpu() || !act.is_cpu() || !st.is_contiguous()) fail("the exact form runs on CPU tensors");
    double *sp = st.data_ptr<double>();
    const double *lp = lr.data_ptr<double>(), *ap = act.data_ptr<double>();
    for (int64_t j = 0; j < k; j++) {
      if (ap[j] == 0) continue;
      sp[j] += 1;
      // Model j's block of parameter i in buffer x.
      auto block = [&](torch::Tensor &x, int i, int64_t off) { return x.narrow(0, off + j * per[i], per[i]); };
      if (clip) {  // clip_grad_norm_: torch.norm per tensor, the norm of those, max_norm / (total + 1e-6) clamped to 1
        std::vector<torch::Tensor> norms;
        int64_t off = 0;
        for (int i = 0; i < n; off += k * per[i], i++)
          if (clipped[i]) norms.push_back(at::norm(block(g, i, off), 2, {0}, false));
        auto coef = torch::clamp_max((at::norm(torch::stack(norms), 2, {0}, false) + 1e-6).reciprocal() * max_norm, 1.0);
        off = 0;
        for (int i = 0; i < n; off += k * per[i], i++)
          if (clipped[i]) block(g, i, off).mul_(coef);
      }
      int64_t off = 0;
      if (rule == M2T_RULE_ADAM) {
        const double bc1 = 1 - std::pow(beta1, sp[j]), bc2 = 1 - std::pow(beta2, sp[j]);
        for (int i = 0; i < n; i++) {
          auto pj = block(p, i, off), mj = block(m, i, off), vj = block(v, i, off), gj = block(g, i, off);
          if (wd != 0) gj = gj.add(pj, wd);
          mj.mul_(beta1).add_(gj, 1 - beta1);
          vj.mul_(beta2).addcmul_(gj, gj, 1 - beta2);
          auto denom = (vj.sqrt() / std::sqrt(bc2)).add_(eps);
          pj.addcdiv_(mj, denom, -lp[j] / bc1);
          off += k * per[i];
        }
      } else if (rule == M2T_RULE_SGD) {
        for (int i = 0; i < n; i++) {
          auto pj = block(p, i, off), gj = block(g, i, off);
          if (wd != 0) gj = gj.add(pj, wd);
          pj.add_(gj, -1 * lp[j]);
          off += k * per[i];
        }
      } else {
        for (int i = 0; i < n; i++) {
          auto pj = block(p, i, off), vj = block(v, i, off), gj = block(g, i, off);
          if (wd != 0) gj = gj.add(pj, wd);
          vj.mul_(alpha).addcmul_(gj, gj, 1 - alpha);
          auto avg = vj.sqrt().add_(eps);
          pj.addcdiv_(gj, avg, -lp[j]);
          off += k * per[i];
        }
      }
    }
    return nullptr;
  }
  auto &idx = get(model_index, "model index");
  if (idx.numel() != total) fail("model index of " + std::to_string(idx.numel()) + " elements for " + std::to_string(total));
  if (clip) {
    // Per model: the norm of each clipped parameter's block (a (k, per) view),
    // then of those; a stopped model's coefficient is 1 (its gradient may be anything).
    std::vector<torch::Tensor> norms;
    int64_t off = 0;
    for (int i = 0; i < n; off += k * per[i], i++)
      if (clipped[i]) norms.push_back(at::norm(g.narrow(0, off, k * per[i]).view({k, per[i]}), 2, {1}, false));
    auto coef = torch::clamp_max((at::norm(torch::stack(norms, 1), 2, {1}, false) + 1e-6).reciprocal() * max_norm, 1.0);
    coef = torch::where(act.to(coef.scalar_type()) > 0, coef, torch::ones({}, coef.options())).unsqueeze(1);
    off = 0;
    for (int i = 0; i < n; off += k * per[i], i++)
      if (clipped[i]) g.narrow(0, off, k * per[i]).view({k, per[i]}).mul_(coef);
  }
  st.add_(act);
  if (rule == M2T_RULE_SGD) {
    auto f = torch::stack({lr * act, act}, 1).to(p.scalar_type()).index_select(0, idx);  // (total, 2)
    auto gk = torch::where(f.select(1, 1) > 0, g, torch::zeros({}, g.options()));
    if (wd != 0) gk = gk.add(p, wd);
    p.sub_(f.select(1, 0) * gk);
    return nullptr;
  }
  if (rule == M2T_RULE_RMSPROP) {
    auto f = torch::stack({lr * act, act * (1 - alpha), act}, 1).to(p.scalar_type()).index_select(0, idx);  // (total, 3)
    auto gk = torch::where(f.select(1, 2) > 0, g, torch::zeros({}, g.options()));
    if (wd != 0) gk = gk.add(p, wd);
    v.add_((gk * gk - v) * f.select(1, 1));  // alpha*v + (1-alpha)*g^2 for active models
    p.sub_(f.select(1, 0) * gk / (v.sqrt() + eps));
    return nullptr;
  }
  auto s1 = st.clamp_min(1);  // a model that never stepped: keep the factors finite
  // Per-model factors as columns, gathered to per-element ones in one go.
  auto factors = torch::stack({lr * act / (1 - torch::pow(beta1, s1)), (1 - torch::pow(beta2, s1)).sqrt(),
                               act * (1 - beta1), act * (1 - beta2)}, 1)
                     .to(p.scalar_type());
  auto f = factors.index_select(0, idx);  // (total, 4)
  auto stepSize = f.select(1, 0), sqrtBc2 = f.select(1, 1), a1 = f.select(1, 2), a2 = f.select(1, 3);
  // A stopped model's gradient is ignored, even a non-finite one (0 * NaN is NaN).
  auto gk = torch::where(a1 > 0, g, torch::zeros({}, g.options()));
  if (wd != 0) gk = gk.add(p, wd);
  m.add_((gk - m) * a1);  // beta1*m + (1-beta1)*g for active models
  v.add_((gk * gk - v) * a2);
  p.sub_(stepSize * m / (v.sqrt() / sqrtBc2 + eps));
  CATCH
}

}  // extern "C"

// CUDA graphs. A Graph owns a side stream that is current on the creating
// thread from m2t_graph_new to m2t_graph_free: warm-up steps, the captures
// and every replay run on it, so they are ordered without extra events. It
// holds any number of captures (a training step, an evaluation step), each
// replayed by its index.
// Built only against a CUDA libtorch (M2T_CUDA_GRAPHS, set by the Makefile);
// elsewhere m2t_graph_new says so and callers keep the plain path.
#ifdef M2T_CUDA_GRAPHS
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>
#include <memory>
#include <mutex>

namespace {
// One capture at a time in the process: stages training at once each
// capture their own graph, and a capture sees only its own thread's work
// (thread-local capture mode), so another thread's allocations and launches
// neither fail nor spoil it. The device-wide waits below take the same lock,
// since waiting on a stream that is being captured would spoil the capture.
std::mutex capture_mutex;

// sync_device waits for all work on the device, never during a capture.
void sync_device() {
  std::lock_guard<std::mutex> hold(capture_mutex);
  c10::cuda::device_synchronize();
}

struct Graph {
  c10::cuda::CUDAStream previous;
  c10::cuda::CUDAStream side;
  std::vector<std::unique_ptr<at::cuda::CUDAGraph>> graphs;  // the last one may be capturing
  bool capturing = false;
  Graph(c10::cuda::CUDAStream prev, c10::cuda::CUDAStream s) : previous(prev), side(s) {}
};
Graph &graph_of(m2t_graph g) {
  if (g == nullptr) throw std::invalid_argument("nil graph");
  return *static_cast<Graph *>(g);
}
}  // namespace

extern "C" {

m2t_err m2t_graphs_available(int *out) { TRY *out = 1; CATCH }

m2t_err m2t_graph_new(const char *device, m2t_graph *out) {
  TRY
  torch::Device dev(device);
  if (!dev.is_cuda()) throw std::invalid_argument("CUDA graphs need a CUDA device, not " + dev.str());
  auto idx = dev.has_index() ? dev.index() : static_cast<c10::DeviceIndex>(c10::cuda::current_device());
  sync_device();  // the side stream does not wait for the default stream by itself
  auto g = std::make_unique<Graph>(c10::cuda::getCurrentCUDAStream(idx), c10::cuda::getStreamFromPool(false, idx));
  c10::cuda::setCurrentCUDAStream(g->side);
  *out = g.release();
  CATCH
}

m2t_err m2t_graph_begin(m2t_graph h) {
  TRY
  auto &g = graph_of(h);
  if (g.capturing) throw std::invalid_argument("graph: already capturing");
  std::unique_lock<std::mutex> hold(capture_mutex);
  c10::cuda::device_synchronize();
  auto graph = std::make_unique<at::cuda::CUDAGraph>();
#if TORCH_VERSION_MAJOR >= 2
  graph->capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
#else
  graph->capture_begin();  // 1.x: global mode only (then train one stage at a time)
#endif
  g.graphs.push_back(std::move(graph));
  g.capturing = true;
  host_transfers_forbidden = true;
  hold.release();  // m2t_graph_end unlocks, on this same (locked) thread
  CATCH
}

m2t_err m2t_graph_end(m2t_graph h, int *id) {
  TRY
  auto &g = graph_of(h);
  if (!g.capturing) throw std::invalid_argument("graph: not capturing");
  g.capturing = false;
  host_transfers_forbidden = false;
  std::unique_lock<std::mutex> hold(capture_mutex, std::adopt_lock);
  try {
    g.graphs.back()->capture_end();
  } catch (...) {  // the capture was invalidated: forget it
    g.graphs.pop_back();
    throw;
  }
  *id = static_cast<int>(g.graphs.size()) - 1;
  CATCH
}

m2t_err m2t_graph_replay(m2t_graph h, int id) {
  TRY
  auto &g = graph_of(h);
  const int n = static_cast<int>(g.graphs.size()) - (g.capturing ? 1 : 0);
  if (id < 0 || id >= n) throw std::invalid_argument("graph: no capture " + std::to_string(id));
  g.graphs[id]->replay();
  CATCH
}

m2t_err m2t_graph_free(m2t_graph h) {
  TRY
  if (h == nullptr) throw std::invalid_argument("free of nil graph");
  std::unique_ptr<Graph> g(static_cast<Graph *>(h));
  sync_device();
  c10::cuda::setCurrentCUDAStream(g->previous);
  CATCH
}

}  // extern "C"
#else
extern "C" {
static const char *no_graphs = "CUDA graphs: this shim was built without them (a CPU libtorch, or no CUDA headers)";
m2t_err m2t_graphs_available(int *out) { TRY *out = 0; CATCH }
m2t_err m2t_graph_new(const char *, m2t_graph *) { return error_of(no_graphs); }
m2t_err m2t_graph_begin(m2t_graph) { return error_of(no_graphs); }
m2t_err m2t_graph_end(m2t_graph, int *) { return error_of(no_graphs); }
m2t_err m2t_graph_replay(m2t_graph, int) { return error_of(no_graphs); }
m2t_err m2t_graph_free(m2t_graph) { return error_of(no_graphs); }
}  // extern "C"
#endif
