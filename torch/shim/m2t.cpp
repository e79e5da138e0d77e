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

m2t_err m2t_from_data(const void *data, int dtype, const int64_t *shape, int ndim, const char *device, m2t_tensor *out) {
  TRY
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
    case M2T_COPY_: x.copy_(get(b, "source tensor")); break;
    case M2T_ADD_SCALED_: x.add_(get(b, "source tensor"), s); break;
    case M2T_MUL_SCALAR_: x.mul_(s); break;
    case M2T_FILL_: x.fill_(s); break;
    case M2T_ZERO_: x.zero_(); break;
    default: throw std::invalid_argument("unknown in-place op " + std::to_string(op));
  }
  CATCH
}

m2t_err m2t_linear(m2t_tensor x, m2t_tensor w, m2t_tensor b, m2t_tensor *out) {
  TRY *out = wrap(torch::nn::functional::linear(get(x), get(w, "weight"), opt(b))); CATCH
}

m2t_err m2t_conv2d(m2t_tensor x, m2t_tensor w, m2t_tensor b, int64_t stride, int64_t padding, m2t_tensor *out) {
  TRY
  *out = wrap(torch::conv2d(get(x), get(w, "weight"), opt(b), {stride, stride}, {padding, padding}));
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

// Generators give each model its own dropout stream, so K models trained in
// lockstep draw exactly the masks each would draw alone. On the CPU a mask
// comes from xoshiro256+ (about 1 ns an element, where libtorch's
// bernoulli_ spends 10 or more, and dropout masks were most of the forward
// pass); on CUDA from a libtorch CUDA generator with bernoulli_.
struct Gen {
  bool cpu = true;
  uint64_t s[4] = {0, 0, 0, 0};
  at::Generator cuda;

  static uint64_t splitmix(uint64_t &x) {
    uint64_t z = (x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  explicit Gen(uint64_t seed) {
    for (auto &w : s) w = splitmix(seed);
  }
  uint64_t next() {  // xoshiro256+ (Blackman and Vigna)
    uint64_t r = s[0] + s[3], t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return r;
  }
  // fill writes a keep-mask scaled by 1/(1-p) into a contiguous float tensor:
  // an element is kept when a 24-bit uniform draw is at least p * 2^24.
  void fill(torch::Tensor &mask, double p) {
    auto *d = mask.data_ptr<float>();
    const uint64_t cut = static_cast<uint64_t>(std::ceil(p * 16777216.0));
    const float keep = static_cast<float>(1.0 / (1.0 - p));
    int64_t n = mask.numel(), i = 0;
    for (; i + 1 < n; i += 2) {  // two 24-bit draws from each 64-bit output
      uint64_t r = next();
      d[i] = ((r >> 40) >= cut) ? keep : 0.0f;
      d[i + 1] = (((r >> 16) & 0xFFFFFF) >= cut) ? keep : 0.0f;
    }
    if (i < n) d[i] = ((next() >> 40) >= cut) ? keep : 0.0f;
  }
};

Gen &gen_of(m2t_gen g) {
  if (g == nullptr) throw std::invalid_argument("dropout: nil generator");
  return *static_cast<Gen *>(g);
}

}  // namespace
extern "C" {

m2t_err m2t_generator_new(uint64_t seed, const char *device, m2t_gen *out) {
  TRY
  torch::Device dev(device);
  auto g = std::make_unique<Gen>(seed);
  if (!dev.is_cpu()) {
    // A copy of the device's default generator, reseeded: this needs no CUDA
    // headers, so the same source builds against CPU and CUDA libtorch.
    g->cpu = false;
    g->cuda = at::globalContext().defaultGenerator(dev).clone();
    g->cuda.set_current_seed(seed);
  }
  *out = g.release();
  CATCH
}

m2t_err m2t_generator_free(m2t_gen g) {
  TRY
  if (g == nullptr) throw std::invalid_argument("free of nil generator");
  delete static_cast<Gen *>(g);
  CATCH
}

// m2t_dropout_gen is inverted dropout whose keep-mask comes from explicit
// generators: with one generator, a mask of x's shape; with K, x's first
// dimension is the model axis and slice k's mask comes from generator k,
// drawn exactly as a lone model of that shape would draw it.
m2t_err m2t_dropout_gen(m2t_tensor x, double p, const m2t_gen *gens, int ngen, m2t_tensor *out) {
  TRY
  auto &t = get(x);
  if (ngen < 1) throw std::invalid_argument("dropout: no generator");
  if (p < 0 || p >= 1) throw std::invalid_argument("dropout: p must be in [0, 1)");
  if (p == 0) { *out = wrap(t * 1.0); return nullptr; }
  if (ngen > 1 && (t.dim() < 1 || t.size(0) != ngen))
    throw std::invalid_argument("dropout: " + std::to_string(ngen) + " generators for a first dimension of " + std::to_string(t.dim() ? t.size(0) : 0));
  torch::Tensor mask;
  if (gen_of(gens[0]).cpu) {
    if (t.scalar_type() != torch::kFloat32) throw std::invalid_argument("dropout: float32 tensors only");
    mask = torch::empty(t.sizes(), t.options().requires_grad(false));
    if (ngen == 1) {
      gen_of(gens[0]).fill(mask, p);
    } else {
      for (int i = 0; i < ngen; i++) {
        auto part = mask[i];
        gen_of(gens[i]).fill(part, p);
      }
    }
  } else {
    std::vector<torch::Tensor> parts;
    if (ngen == 1) {
      mask = at::empty_like(t).bernoulli_(1 - p, gen_of(gens[0]).cuda);
    } else {
      for (int i = 0; i < ngen; i++) parts.push_back(at::empty_like(t[i]).bernoulli_(1 - p, gen_of(gens[i]).cuda));
      mask = torch::stack(parts);
    }
    mask.div_(1 - p);
  }
  *out = wrap(t * mask);
  CATCH
}

// m2t_adam_stacked_step is Adam (PyTorch's update, no weight decay) for
// parameters stacked on a leading model axis of size k: each model has its
// own step count and learning rate, and a model with active[i] == 0 is left
// exactly as it is (a stopped model stops changing). Moments are updated in
// place; gradients are read from the parameters.
//
// Two ways: slice by slice, the same operations in the same order as
// libtorch's Adam::step (exact, but 5 operations per model per tensor), or
// vectorized over the model axis with per-model factors (8 operations per
// tensor whatever k is: what a launch-bound GPU wants; equal up to rounding).
m2t_err m2t_adam_stacked_step(const m2t_tensor *params, const m2t_tensor *exp_avg, const m2t_tensor *exp_avg_sq, int n,
                              const int64_t *steps, const double *lrs, const int *active, int k, double beta1, double beta2,
                              double eps, int vectorized) {
  TRY
  torch::NoGradGuard no_grad;
  std::vector<double> bc1(k), bc2(k);
  for (int j = 0; j < k; j++) {
    bc1[j] = 1 - std::pow(beta1, static_cast<double>(steps[j]));
    bc2[j] = 1 - std::pow(beta2, static_cast<double>(steps[j]));
  }
  // Per-model factors for the vectorized form, made once per step per device.
  torch::Tensor act, stepSize, sqrtBc2;
  if (vectorized && n > 0) {
    std::vector<float> a(k), ss(k), sb(k);
    for (int j = 0; j < k; j++) {
      a[j] = active[j] ? 1.0f : 0.0f;
      ss[j] = active[j] ? static_cast<float>(lrs[j] / bc1[j]) : 0.0f;
      sb[j] = active[j] ? static_cast<float>(std::sqrt(bc2[j])) : 1.0f;
    }
    auto dev = get(params[0], "parameter").device();
    auto mk = [&](std::vector<float> &v) { return torch::from_blob(v.data(), {k}).clone().to(dev); };
    act = mk(a), stepSize = mk(ss), sqrtBc2 = mk(sb);
  }
  for (int i = 0; i < n; i++) {
    auto &p = get(params[i], "parameter");
    auto &m = get(exp_avg[i], "exp_avg");
    auto &v = get(exp_avg_sq[i], "exp_avg_sq");
    auto g = p.grad();
    if (!g.defined()) continue;
    if (p.size(0) != k) throw std::invalid_argument("adam: parameter " + std::to_string(i) + " is not stacked over " + std::to_string(k) + " models");
    if (vectorized) {
      std::vector<int64_t> view(p.dim(), 1);
      view[0] = k;
      auto a = act.view(view), ss = stepSize.view(view), sb = sqrtBc2.view(view);
      m.add_(a * (g - m) * (1 - beta1));      // m + (1-beta1)(g-m) = beta1*m + (1-beta1)*g
      v.add_(a * (g * g - v) * (1 - beta2));
      p.sub_(ss * m / (v.sqrt() / sb + eps));  // inactive models: step size 0
      continue;
    }
    for (int j = 0; j < k; j++) {
      if (!active[j]) continue;
      // The same operations, in the same order, as libtorch's Adam::step.
      auto pj = p[j], mj = m[j], vj = v[j], gj = g[j];
      mj.mul_(beta1).add_(gj, 1 - beta1);
      vj.mul_(beta2).addcmul_(gj, gj, 1 - beta2);
      auto denom = (vj.sqrt() / std::sqrt(bc2[j])).add_(eps);
      pj.addcdiv_(mj, denom, -lrs[j] / bc1[j]);
    }
  }
  CATCH
}

}  // extern "C"
