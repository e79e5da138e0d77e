"""Reference for the binding benchmarks: the same operations from PyTorch."""
import time
import torch

torch.set_num_threads(2)
x, y = torch.full((1,), 1.0), torch.full((1,), 2.0)
for _ in range(100000):
    x + y
n = 1000000
t0 = time.perf_counter()
for _ in range(n):
    x + y
print(f"pytorch {torch.__version__} tiny_add_ns {(time.perf_counter() - t0) / n * 1e9:.1f}")
a, b = torch.full((2048, 2048), 0.5), torch.full((2048, 2048), 0.25)
torch.matmul(a, b)
t0 = time.perf_counter()
for _ in range(10):
    torch.matmul(a, b)
print(f"pytorch matmul2048_ms {(time.perf_counter() - t0) / 10 * 1e3:.2f}")
