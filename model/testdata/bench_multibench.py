#!/usr/bin/python3
"""PyTorch eager timing of MultiBench's baselines, for docs/BENCHMARKS.md.

usage: /usr/bin/python3 bench_multibench.py CONFIG N [BATCH]

Builds the baseline of multibench_reference.py (the independent PyTorch
implementation the cross-check test compares m2mix with), trains it for one
epoch over N random rows shaped like AV-MNIST or MIMIC-III, with the
configuration's optimiser, batch size and gradient clipping at 8, on two
threads, after one untimed warm-up epoch of a few batches, and prints the
time per sample: the figure BenchmarkTrainEpoch reports for the same
configuration (scripts/bench-baselines.sh runs both).
"""
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from multibench_reference import OPTIM, Baseline

BATCH = {"refnet": 20, "cca": 800}


def rows(avmnist, n, gen):
    if avmnist:
        return [torch.randn(n, 1, 28, 28, generator=gen),
                torch.randint(0, 256, (n, 1, 112, 112), generator=gen).float()], torch.randint(0, 10, (n,), generator=gen)
    return [torch.randn(n, 5, generator=gen), torch.randn(n, 24, 12, generator=gen)], torch.randint(0, 6, (n,), generator=gen)


def epoch(model, opt, xs, y, batch):
    network = [p for k, p in model.named_parameters() if not k.startswith("aux.")]
    for lo in range(0, y.shape[0], batch):
        bx = [x[lo:lo + batch] for x in xs]
        logits, reps, fused = model(bx)
        loss = F.cross_entropy(logits, y[lo:lo + batch]) + model.aux_loss(bx, reps, fused)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(network, 8)
        opt.step()


def main():
    if len(sys.argv) not in (3, 4):
        raise SystemExit(__doc__)
    name, n = sys.argv[1], int(sys.argv[2])
    batch = int(sys.argv[3]) if len(sys.argv) == 4 else BATCH.get(name, 40)
    torch.set_num_threads(2)  # as BenchmarkTrainEpoch sets libtorch's
    torch.manual_seed(42)
    gen = torch.Generator().manual_seed(42)
    model = Baseline(name)
    model.train()
    rule, lr, wd = OPTIM[name]
    opt = {"sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam}[rule](
        model.parameters(), lr=lr, weight_decay=wd)
    xs, y = rows(model.avmnist, n, gen)
    warm = min(n, 4 * batch)
    epoch(model, opt, [x[:warm] for x in xs], y[:warm], batch)
    t0 = time.perf_counter()
    epoch(model, opt, xs, y, batch)
    s = time.perf_counter() - t0
    print(f"torch {torch.__version__} cpu eager threads={torch.get_num_threads()} config={name} n={n} batch={batch} "
          f"train_epoch_s={s:.3f} per_sample_us={s / n * 1e6:.1f}")


if __name__ == "__main__":
    main()
