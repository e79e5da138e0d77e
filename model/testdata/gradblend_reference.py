"""Gradient Blending on MIMIC-III-shaped data in PyTorch, written from
baselines.md section 2.9 (MultiBench's procedure), as an independent
reference for model/gradblend.go (TestGradBlendAgainstTorch).

Usage: gradblend_reference.py job.json

The job names the initial weights (safetensors, our parameter names), the
data (train_static, train_time, train_label, val_*), the schedule (rounds,
round_epochs, finetune_epochs, estimation_share, lr, batch) and the output
file. Rows are read in file order everywhere (the Go run is unshuffled).
The output holds, per round r, "weights.<r>" (fusion, static, time) and
"finetune_val_loss.<r>", and the best model's tensors under "best.<name>".
"""
import copy
import json
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from torch_reference import read_safetensors, write_safetensors  # noqa: E402


class MLP(nn.Module):
    def __init__(self, i, h, o):
        super().__init__()
        self.fc, self.fc2 = nn.Linear(i, h), nn.Linear(h, o)

    def forward(self, x):
        return self.fc2(F.relu(self.fc(x)))


class Series(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(12, 30, batch_first=True)

    def forward(self, x):
        return self.gru(x)[0].flatten(1)


class Net(nn.Module):
    """Encoders, concatenation, the fusion head and a head per modality,
    under the names our checkpoints use."""

    def __init__(self):
        super().__init__()
        self.static, self.time = MLP(5, 10, 10), Series()
        self.hf, self.hs, self.ht = MLP(730, 40, 6), MLP(10, 20, 6), MLP(720, 40, 6)


def batches(n, size):
    return [(lo, min(lo + size, n)) for lo in range(0, n, size)]


def mean_ce(fn, xs, y):
    with torch.no_grad():
        return F.cross_entropy(fn(*xs), y).item()


def train_epochs(params, loss_fn, xs, y, epochs, lr, batch):
    opt = torch.optim.SGD(params, lr=lr)
    for _ in range(epochs):
        for lo, hi in batches(len(y), batch):
            opt.zero_grad()
            loss_fn(*[x[lo:hi] for x in xs], y[lo:hi]).backward()
            opt.step()


def weight(lt, lv):
    o = lv - lt
    if o < 0:
        o = 1e-4
    return abs(lv / (o * o))


def main():
    job = json.load(open(sys.argv[1]))
    torch.set_num_threads(1)
    data = {k: torch.from_numpy(v) for k, v in read_safetensors(job["data"]).items()}
    init = {k: torch.from_numpy(v) for k, v in read_safetensors(job["init"]).items()}
    net = Net()
    net.load_state_dict(init, strict=True)
    lr, batch, R, FT = job["lr"], job["batch"], job["round_epochs"], job["finetune_epochs"]
    s, t, y = data["train_static"], data["train_time"], data["train_label"]
    held = int(len(y) * job["estimation_share"])
    hs_, ht_, hy = s[:held], t[:held], y[:held]
    rs, rt, ry = s[held:], t[held:], y[held:]
    vs, vt, vy = data["val_static"], data["val_time"], data["val_label"]

    def codes(m, a, b):
        return torch.cat([m.static(a), m.time(b)], 1)

    main_opt = torch.optim.SGD(net.parameters(), lr=lr)
    ft_head = copy.deepcopy(net.hf)
    ft_opt = torch.optim.SGD(ft_head.parameters(), lr=lr)
    best_loss, best = float("inf"), None
    out = {}
    for r in range(job["rounds"]):
        # 1. estimates, on copies
        raw = {}
        for name in ["static", "time", "fusion"]:
            m = copy.deepcopy(net)
            if name == "fusion":
                fn = lambda a, b: m.hf(codes(m, a, b))  # noqa: E731
                params = list(m.static.parameters()) + list(m.time.parameters()) + list(m.hf.parameters())
            elif name == "static":
                fn = lambda a, b: m.hs(m.static(a))  # noqa: E731
                params = list(m.static.parameters()) + list(m.hs.parameters())
            else:
                fn = lambda a, b: m.ht(m.time(b))  # noqa: E731
                params = list(m.time.parameters()) + list(m.ht.parameters())
            train_epochs(params, lambda a, b, yy: F.cross_entropy(fn(a, b), yy), [rs, rt], ry, R, lr, batch)
            raw[name] = weight(mean_ce(fn, [rs, rt], ry), mean_ce(fn, [hs_, ht_], hy))
        z = sum(raw.values())
        w = {k: v / z for k, v in raw.items()}
        out["weights.%d" % r] = np.array([w["fusion"], w["static"], w["time"]], dtype=np.float64)

        # 2. blended epochs
        def blended(a, b, yy):
            ea, eb = net.static(a), net.time(b)
            return (w["fusion"] * F.cross_entropy(net.hf(torch.cat([ea, eb], 1)), yy)
                    + w["static"] * F.cross_entropy(net.hs(ea), yy) + w["time"] * F.cross_entropy(net.ht(eb), yy))
        for _ in range(R):
            for lo, hi in batches(len(ry), batch):
                main_opt.zero_grad()
                blended(rs[lo:hi], rt[lo:hi], ry[lo:hi]).backward()
                main_opt.step()

        # 3. the head fine-tune on the codes, validated after each epoch
        with torch.no_grad():
            c = torch.cat([codes(net, rs[lo:hi], rt[lo:hi]) for lo, hi in batches(len(ry), batch)], 0)
        losses = []
        for _ in range(FT):
            for lo, hi in batches(len(ry), batch):
                ft_opt.zero_grad()
                F.cross_entropy(ft_head(c[lo:hi]), ry[lo:hi]).backward()
                ft_opt.step()
            vl = mean_ce(lambda a, b: ft_head(codes(net, a, b)), [vs, vt], vy)
            losses.append(vl)
            if vl < best_loss:
                best_loss = vl
                best = {k: v.detach().clone() for k, v in list(net.static.state_dict(prefix="static.").items())
                        + list(net.time.state_dict(prefix="time.").items()) + list(ft_head.state_dict(prefix="hf.").items())}
        out["finetune_val_loss.%d" % r] = np.array(losses, dtype=np.float64)
    for k, v in best.items():
        out["best." + k] = v.numpy()
    write_safetensors(job["out"], out, {"torch": torch.__version__})


if __name__ == "__main__":
    main()
