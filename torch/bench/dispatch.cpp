// Reference for BenchmarkTinyAdd and BenchmarkMatMul2048: the same operations
// called straight from C++, so the Go binding's overhead can be read off.
#include <torch/torch.h>
#include <chrono>
#include <cstdio>

template <typename F>
double per_call_ns(int n, F f) {
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; i++) f();
  auto t1 = std::chrono::steady_clock::now();
  return std::chrono::duration<double, std::nano>(t1 - t0).count() / n;
}

int main() {
  at::set_num_threads(2);
  auto x = torch::full({1}, 1.0f), y = torch::full({1}, 2.0f);
  per_call_ns(100000, [&] { auto z = x + y; });
  std::printf("cpp tiny_add_ns %.1f\n", per_call_ns(1000000, [&] { auto z = x + y; }));
  auto a = torch::full({2048, 2048}, 0.5f), b = torch::full({2048, 2048}, 0.25f);
  per_call_ns(2, [&] { auto z = torch::matmul(a, b); });
  std::printf("cpp matmul2048_ms %.2f\n", per_call_ns(10, [&] { auto z = torch::matmul(a, b); }) / 1e6);
}
