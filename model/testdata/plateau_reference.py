#!/usr/bin/python3
"""PyTorch's ReduceLROnPlateau on scripted loss curves, for model/schedule_test.go.

usage: /usr/bin/python3 plateau_reference.py > plateau_reference.json

Mode "min", factor 0.1, relative threshold 1e-4, cooldown 0, min_lr 0 and
eps 1e-8 (the defaults), patience 2 and 5, as reproduction.md specifies. For
each curve it records, after each scheduler step, the learning rate the next
epoch uses, the scheduler's best loss and its count of bad epochs. The
output is committed as plateau_reference.json; the Go test replays the same
losses through model.Plateau, and re-runs this script when torch is present.
"""
import json
import math
import random

import torch

THRESHOLD = 1e-4
FACTOR = 0.1


def curves():
    """(name, initial lr, losses). Losses are built in float64 here and
    stored in the fixture, so both sides compare the very same numbers."""
    out = []
    # A fall, then a long flat plateau, then a real improvement and another plateau.
    out.append(("plateau", 1e-2, [1.0, 0.8, 0.7] + [0.7] * 9 + [0.5] + [0.5] * 8))
    # Losses below the best by less than the threshold are bad epochs.
    out.append(("below_threshold", 1e-2, [1.0] + [1.0 * (1 - f * THRESHOLD) for f in (0.5, 0.9, 0.99, 0.999, 0.5, 0.9, 0.99, 0.999, 0.3, 0.6, 0.9)]))
    # Each epoch improves by half the threshold: the improvements add up
    # against the best, so every other one crosses the bar.
    creep = [1.0]
    for _ in range(14):
        creep.append(creep[-1] * (1 - THRESHOLD / 2))
    out.append(("creeping", 1e-2, creep))
    # Exact ties with the best loss count as bad epochs.
    out.append(("exact_ties", 1e-2, [0.9, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]))
    # Improvements of exactly best*(1-threshold) are not improvements (the
    # comparison is strict); one float64 step lower is.
    b = 2.0
    boundary = [b]
    for _ in range(3):
        boundary.append(b * (1 - THRESHOLD))         # exactly the boundary: bad
    below = math.nextafter(b * (1 - THRESHOLD), 0)   # just past it: better
    boundary.append(below)
    b = below
    for _ in range(2):
        boundary.append(b * (1 - THRESHOLD))
    boundary.append(math.nextafter(b * (1 - THRESHOLD), math.inf))  # just short of it: bad
    boundary += [boundary[-1]] * 5
    out.append(("threshold_boundary", 1e-2, boundary))
    # Worse epochs interleaved with improvements that reset the count.
    out.append(("reset_by_improvement", 1e-2, [1.0, 1.1, 1.2, 0.99, 1.3, 1.4, 0.98, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.97, 1.0]))
    # The learning rate stops falling once a reduction would change it by
    # no more than eps = 1e-8.
    out.append(("lr_floor", 1e-6, [1.0] * 30))
    # Negative losses: the relative threshold moves the bar the other way
    # (ties and slightly worse losses count as improvements).
    out.append(("negative", 1e-3, [-1.0, -1.0, -0.99995, -1.0002, -0.9, -0.9, -0.9, -0.9, -0.9, -0.9, -0.95, -0.95, -0.95]))
    # A noisy validation curve that falls, then levels off.
    r = random.Random(5)
    noisy, level = [], 2.3
    for i in range(60):
        if i < 25:
            level *= 1 - r.uniform(0, 0.02)
        noisy.append(round(level + r.gauss(0, 0.005), 6))
    out.append(("noisy", 1e-2, noisy))
    return out


def run(patience, lr, losses):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="min", factor=FACTOR, patience=patience, threshold=THRESHOLD,
        threshold_mode="rel", cooldown=0, min_lr=0, eps=1e-8)
    lrs, best, bad = [], [], []
    for loss in losses:
        sched.step(loss)
        lrs.append(opt.param_groups[0]["lr"])
        best.append(sched.best)
        bad.append(sched.num_bad_epochs)
    return lrs, best, bad


def main():
    cases = []
    for name, lr, losses in curves():
        for patience in (2, 5):
            lrs, best, bad = run(patience, lr, losses)
            cases.append({"name": name, "patience": patience, "factor": FACTOR, "threshold": THRESHOLD,
                          "lr0": lr, "losses": losses, "lr": lrs, "best": best, "bad_epochs": bad})
    print(json.dumps({"torch": torch.__version__.split("+")[0], "cases": cases}, indent=1))


if __name__ == "__main__":
    main()
