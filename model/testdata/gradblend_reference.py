"""Gradient Blending in PyTorch on AV-MNIST- or MIMIC-III-shaped data,
written from baselines.md section 2.9 (MultiBench's procedure), as an
independent reference for model/gradblend.go (TestGradBlendAgainstTorch).

Usage: gradblend_reference.py job.json

The job names the dataset, the initial weights (safetensors, our parameter
names), the data (train_<modality>, train_label, val_*), the schedule
(rounds, round_epochs, finetune_epochs, estimation_share, lr, batch,
eval_batch) and the output file. Rows are read in file order everywhere
(the Go run is unshuffled). As in MultiBench every module stays in
training mode throughout, so LeNet's BatchNorm uses batch statistics (of
eval_batch rows) when measuring and validating, and updates its running
statistics then too. The output holds, per round r, "weights.<r>"
(fusion, then the modalities' in order) and "finetune_val_loss.<r>", and
the best model's tensors under "best.<name>".
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


class LeNet(nn.Module):
    def __init__(self, c, blocks):
        super().__init__()
        convs, bns, ch = [nn.Conv2d(1, c, 5, padding=2, bias=False)], [nn.BatchNorm2d(c)], c
        for _ in range(blocks):
            convs.append(nn.Conv2d(ch, 2 * ch, 3, padding=1, bias=False))
            bns.append(nn.BatchNorm2d(2 * ch))
            ch *= 2
        self.convs, self.bns = nn.ModuleList(convs), nn.ModuleList(bns)

    def forward(self, x):
        for conv, bn in zip(self.convs, self.bns):
            x = F.max_pool2d(F.relu(bn(conv(x))), 2)
        return x.flatten(1)


class Net(nn.Module):
    """Encoders (enc0, enc1), concatenation, the fusion head and a head
    per modality (head0, head1); names() maps ours to theirs."""

    def __init__(self, dataset):
        super().__init__()
        if dataset == "mimic":
            self.enc0, self.enc1 = MLP(5, 10, 10), Series()
            self.hf, self.head0, self.head1 = MLP(730, 40, 6), MLP(10, 20, 6), MLP(720, 40, 6)
            self.ours = {"enc0": "static", "enc1": "time", "head0": "hs", "head1": "ht", "hf": "hf"}
        else:
            self.enc0, self.enc1 = LeNet(6, 3), LeNet(6, 5)
            self.hf, self.head0, self.head1 = MLP(240, 100, 10), MLP(48, 100, 10), MLP(192, 100, 10)
            self.ours = {"enc0": "img", "enc1": "aud", "head0": "hi", "head1": "ha", "hf": "hf"}

    def rename(self, name):
        first, rest = name.split(".", 1)
        return self.ours[first] + "." + rest


def load_ours(net, init):
    theirs = {}
    for k in net.state_dict():
        if k.endswith("num_batches_tracked"):
            continue
        theirs[k] = init.pop(net.rename(k))
    assert not init, "weights left over: %s" % sorted(init)
    missing, unexpected = net.load_state_dict(theirs, strict=False)
    assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)


def batches(n, size):
    return [(lo, min(lo + size, n)) for lo in range(0, n, size)]


def mean_ce(fn, xs, y, batch):
    """The per-row mean cross-entropy, in batches of batch rows (BatchNorm in training mode sees those)."""
    total = 0.0
    with torch.no_grad():
        for lo, hi in batches(len(y), batch):
            total += F.cross_entropy(fn(*[x[lo:hi] for x in xs]), y[lo:hi]).item() * (hi - lo)
    return total / len(y)


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
    data = {k: v.float() if v.dtype == torch.uint8 else v for k, v in data.items()}  # AV-MNIST's audio bytes, unscaled
    init = {k: torch.from_numpy(v) for k, v in read_safetensors(job["init"]).items()}
    net = Net(job["dataset"])
    load_ours(net, init)
    net.train()
    lr, batch, R, FT, EB = job["lr"], job["batch"], job["round_epochs"], job["finetune_epochs"], job["eval_batch"]
    m0, m1 = job["modalities"]
    s, t, y = data["train_" + m0], data["train_" + m1], data["train_label"]
    held = int(len(y) * job["estimation_share"])
    hs_, ht_, hy = s[:held], t[:held], y[:held]
    rs, rt, ry = s[held:], t[held:], y[held:]
    vs, vt, vy = data["val_" + m0], data["val_" + m1], data["val_label"]

    def codes(m, a, b):
        return torch.cat([m.enc0(a), m.enc1(b)], 1)

    main_opt = torch.optim.SGD(net.parameters(), lr=lr)
    ft_head = copy.deepcopy(net.hf)
    ft_opt = torch.optim.SGD(ft_head.parameters(), lr=lr)
    best_loss, best = float("inf"), None
    out = {}
    for r in range(job["rounds"]):
        # 1. estimates, on copies
        raw = {}
        for name in [m0, m1, "fusion"]:
            m = copy.deepcopy(net)
            if name == "fusion":
                fn = lambda a, b: m.hf(codes(m, a, b))  # noqa: E731
                params = list(m.enc0.parameters()) + list(m.enc1.parameters()) + list(m.hf.parameters())
            elif name == m0:
                fn = lambda a, b: m.head0(m.enc0(a))  # noqa: E731
                params = list(m.enc0.parameters()) + list(m.head0.parameters())
            else:
                fn = lambda a, b: m.head1(m.enc1(b))  # noqa: E731
                params = list(m.enc1.parameters()) + list(m.head1.parameters())
            train_epochs(params, lambda a, b, yy: F.cross_entropy(fn(a, b), yy), [rs, rt], ry, R, lr, batch)
            raw[name] = weight(mean_ce(fn, [rs, rt], ry, EB), mean_ce(fn, [hs_, ht_], hy, EB))
        z = sum(raw.values())
        w = {k: v / z for k, v in raw.items()}
        out["weights.%d" % r] = np.array([w["fusion"], w[m0], w[m1]], dtype=np.float64)

        # 2. blended epochs
        def blended(a, b, yy):
            ea, eb = net.enc0(a), net.enc1(b)
            return (w["fusion"] * F.cross_entropy(net.hf(torch.cat([ea, eb], 1)), yy)
                    + w[m0] * F.cross_entropy(net.head0(ea), yy) + w[m1] * F.cross_entropy(net.head1(eb), yy))
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
            vl = mean_ce(lambda a, b: ft_head(codes(net, a, b)), [vs, vt], vy, EB)
            losses.append(vl)
            if vl < best_loss:
                best_loss = vl
                best = {net.rename(k): v.detach().clone() for k, v in list(net.enc0.state_dict(prefix="enc0.").items())
                        + list(net.enc1.state_dict(prefix="enc1.").items()) + list(ft_head.state_dict(prefix="hf.").items())
                        if not k.endswith("num_batches_tracked")}
        out["finetune_val_loss.%d" % r] = np.array(losses, dtype=np.float64)
    for k, v in best.items():
        out["best." + k] = v.numpy()
    write_safetensors(job["out"], out, {"torch": torch.__version__})


if __name__ == "__main__":
    main()
