#!/usr/bin/env python3
"""Reference implementation of the MultiBench baselines for the cross-check.

Written from ../shared/docs/baselines.md (sections 1.3 building blocks, 2.x
per baseline, 1.5 optimiser math), not from the Go code and not from
MultiBench's sources. Every module is named so that its state_dict keys are
our checkpoint names (img.convs.0.weight, fus.factors.0, hf.fc.weight,
aux.refiner.fc2.bias, time.gru.weight_ih_l0, ...).

Usage: multibench_reference.py JOB.json, where the job lists cases
{"config", "init", "inputs", "out", "clip"}. For each case it loads the
initial weights (safetensors, one model, our saveModel format) with
strict=False, requiring that BatchNorm's num_batches_tracked be the only
state_dict entries the checkpoint lacks and nothing be unexpected; runs the fixed batch in train mode
(BatchNorm on batch statistics, which updates the running statistics), takes
the loss (heads' cross-entropy plus the baseline's auxiliary term) and its
gradients, runs the batch in eval mode (running statistics), clips the
network's gradients (not the auxiliary refiner's) at the case's max norm,
requiring that clipping be active, and takes one step of the baseline's own
optimiser (torch.optim.SGD / RMSprop / Adam with the spec's lr and weight
decay). It writes, in safetensors:

  logits.train, logits.eval       (batch, classes)
  loss, ce, aux                   scalars (aux 0 without an auxiliary term)
  grad.<param>                    gradients before clipping
  bn.<name>                       BatchNorm running statistics after the train-mode forward
  after.<name>                    every state_dict tensor after the step
  clip.total                      the clipped parameters' gradient norm before clipping

and in the metadata the trainable parameter names (comma separated).
A case with "part": "gru" runs the GRU encoder alone instead (run_gru_case).
One intra-op thread, as the Go side, so results do not depend on cores.
"""

import json
import sys

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from torch_reference import read_safetensors, write_safetensors  # noqa: E402

# ---------------------------------------------------------------- building blocks (baselines.md 1.3)

class MLP(nn.Module):
    """fc2(relu(fc(x)))."""

    def __init__(self, indim, hiddim, outdim):
        super().__init__()
        self.fc = nn.Linear(indim, hiddim)
        self.fc2 = nn.Linear(hiddim, outdim)

    def forward(self, x):
        return self.fc2(F.relu(self.fc(x)))


class LeNet(nn.Module):
    """Conv 5x5 (pad 2) to C, then L convs 3x3 (pad 1) doubling the channels,
    all without bias, each followed by BatchNorm2d, ReLU and 2x2 max pooling;
    the final 1x1 map is the code. proj: an optional Linear after it (the
    Sequential2(LeNet, Linear) of RefNet and CCA)."""

    def __init__(self, in_ch, c, blocks, proj=0):
        super().__init__()
        chans = [in_ch, c] + [c * 2 ** (i + 1) for i in range(blocks)]
        self.convs = nn.ModuleList(
            nn.Conv2d(chans[i], chans[i + 1], 5 if i == 0 else 3, padding=2 if i == 0 else 1, bias=False)
            for i in range(blocks + 1))
        self.bns = nn.ModuleList(nn.BatchNorm2d(chans[i + 1]) for i in range(blocks + 1))
        self.proj = nn.Linear(chans[-1], proj) if proj else None

    def forward(self, x):
        for conv, bn in zip(self.convs, self.bns):
            x = F.max_pool2d(F.relu(bn(conv(x))), 2)
        assert x.shape[2:] == (1, 1), x.shape
        x = x.squeeze(3).squeeze(2)
        return self.proj(x) if self.proj is not None else x


class GRUEncoder(nn.Module):
    """nn.GRU(indim, hiddim, batch_first=True); every step's output."""

    def __init__(self, indim, hiddim):
        super().__init__()
        self.gru = nn.GRU(indim, hiddim, batch_first=True)

    def forward(self, x):
        out, _ = self.gru(x)
        return out


class Concat(nn.Module):
    def forward(self, mods):
        return torch.cat([torch.flatten(m, 1) for m in mods], 1)


class TensorHolder(nn.Module):
    """Holds tensors under the names "0", "1", ... as buffers (never optimised)."""

    def __init__(self, tensors):
        super().__init__()
        for i, t in enumerate(tensors):
            self.register_buffer(str(i), t)

    def __getitem__(self, i):
        return getattr(self, str(i))


class LowRankTensorFusion(nn.Module):
    """baselines.md 2.2: z_m = [1, x_m] @ F_m (rank, B, out); Z = prod_m z_m;
    out = w @ Z.permute(1, 0, 2), squeezed, + bias. trainable=False is
    MultiBench's behaviour: no tensor of the fusion is a parameter."""

    def __init__(self, dims, out, rank, trainable):
        super().__init__()
        factors = [torch.zeros(rank, d + 1, out) for d in dims]
        w, b = torch.zeros(1, rank), torch.zeros(1, out)
        if trainable:
            self.factors = nn.ParameterList(nn.Parameter(f) for f in factors)
            self.fusion_weights = nn.Parameter(w)
            self.fusion_bias = nn.Parameter(b)
        else:
            self.factors = TensorHolder(factors)
            self.register_buffer("fusion_weights", w)
            self.register_buffer("fusion_bias", b)
        self.n = len(dims)

    def forward(self, mods):
        z = None
        for i, m in enumerate(mods):
            x = torch.flatten(m, 1)
            x = torch.cat([torch.ones(x.shape[0], 1, dtype=x.dtype), x], 1)
            zi = torch.matmul(x, self.factors[i])  # (rank, B, out)
            z = zi if z is None else z * zi
        out = torch.matmul(self.fusion_weights, z.permute(1, 0, 2)).squeeze(1)  # (B, out)
        return out + self.fusion_bias


class MIMatrix(nn.Module):
    """baselines.md 2.8, 'matrix' form, computed as the spec writes it:
    out[b,d] = sum_m m2[b,m] (sum_n m1[b,n] W[n,m,d] + V[m,d]) + (m1 U)[b,d] + b[d]."""

    def __init__(self, d1, d2, out):
        super().__init__()
        self.W = nn.Parameter(torch.zeros(d1, d2, out))
        self.U = nn.Parameter(torch.zeros(d1, out))
        self.V = nn.Parameter(torch.zeros(d2, out))
        self.b = nn.Parameter(torch.zeros(out))

    def forward(self, mods):
        m1, m2 = torch.flatten(mods[0], 1), torch.flatten(mods[1], 1)
        hyper = torch.einsum("bn,nmd->bmd", m1, self.W) + self.V  # (B, d2, out)
        return torch.einsum("bm,bmd->bd", m2, hyper) + m1 @ self.U + self.b


class Aux(nn.Module):
    """Additional modules (not the MMDL): RefNet's refiner."""

    def __init__(self, refiner):
        super().__init__()
        self.refiner = refiner


def cca_loss(h1, h2, outdim):
    """baselines.md 2.7: minus the sum of the square roots of the top
    eigenvalues of T'T + 1e-3 I, T = S11^-1/2 S12 S22^-1/2."""
    r1 = r2 = 1e-3
    eps = 1e-9
    H1, H2 = h1.t(), h2.t()  # (o, m)
    o, m = H1.shape
    H1c = H1 - H1.mean(dim=1, keepdim=True)
    H2c = H2 - H2.mean(dim=1, keepdim=True)
    s12 = H1c @ H2c.t() / (m - 1)
    s11 = H1c @ H1c.t() / (m - 1) + r1 * torch.eye(o)
    s22 = H2c @ H2c.t() / (m - 1) + r2 * torch.eye(o)

    def root_inv(s):
        d, v = torch.linalg.eigh(s)
        keep = d > eps
        assert bool(keep.all()), "an eigenvalue under 1e-9 despite the ridge"
        return v @ torch.diag(d ** -0.5) @ v.t()

    t = root_inv(s11) @ s12 @ root_inv(s22)
    mm = t.t() @ t + r1 * torch.eye(o)
    vals, _ = torch.linalg.eigh(mm)
    vals = torch.clamp(vals, min=eps)
    top, _ = torch.topk(vals, outdim)
    return -torch.sum(torch.sqrt(top))


# ---------------------------------------------------------------- baselines (baselines.md 2.x)

# Per baseline: the optimiser as the spec states it (AdamW with weight decay 0 is Adam).
OPTIM = {
    "late_fusion": ("sgd", 0.1, 1e-4),
    "lrtf": ("sgd", 0.05, 2e-4),
    "lrtf_trainable": ("sgd", 0.05, 2e-4),
    "mi_matrix": ("sgd", 0.05, 1e-4),
    "refnet": ("sgd", 0.005, 0.0),
    "cca": ("adam", 0.01, 0.0),
    "mimic_late_fusion": ("rmsprop", 1e-3, 0.0),
    "mimic_lrtf": ("rmsprop", 1e-3, 0.0),
    "mimic_mi_matrix": ("rmsprop", 1e-3, 0.0),
}


class Baseline(nn.Module):
    def __init__(self, name):
        super().__init__()
        self.name = name
        self.avmnist = not name.startswith("mimic_")
        self.aux = None
        self.cca = False
        if self.avmnist:
            self.mods = ["image", "audio"]
            self.classes = 10
            img_proj = 192 if name == "refnet" else 0
            aud_proj = 48 if name == "cca" else 0
            self.img = LeNet(1, 6, 3, img_proj)
            self.aud = LeNet(1, 6, 5, aud_proj)
            dims = [img_proj or 48, aud_proj or 192]
        else:
            self.mods = ["static", "time"]
            self.classes = 6
            self.static = MLP(5, 10, 10)
            self.time = GRUEncoder(12, 30)
            dims = [10, 24 * 30]
        self.encoders = None
        if name in ("late_fusion", "refnet", "cca", "mimic_late_fusion"):
            self.fus = Concat()
            fused = sum(dims)
        elif name in ("lrtf", "lrtf_trainable", "mimic_lrtf"):
            fused = 120 if self.avmnist else 100
            self.fus = LowRankTensorFusion(dims, fused, 40, trainable=(name == "lrtf_trainable"))
        elif name in ("mi_matrix", "mimic_mi_matrix"):
            fused = 240 if self.avmnist else 100
            self.fus = MIMatrix(dims[0], dims[1], fused)
        else:
            raise ValueError("unknown baseline " + name)
        if name == "cca":
            self.hf = nn.Linear(fused, 10)
            self.cca = True
        else:
            self.hf = MLP(fused, 100 if self.avmnist else 40, self.classes)
        if name == "refnet":
            self.aux = Aux(MLP(fused, 1000, 28 * 28 + 112 * 112))

    def encoder_list(self):
        return [self.img, self.aud] if self.avmnist else [self.static, self.time]

    def forward(self, xs):
        reps = [e(x) for e, x in zip(self.encoder_list(), xs)]
        fused = self.fus(reps)
        return self.hf(fused), reps, fused

    def aux_loss(self, xs, reps, fused):
        if self.aux is not None:
            rec = self.aux.refiner(fused)
            cos = nn.CosineEmbeddingLoss()
            total, off = 0.0, 0
            for x in xs:
                flat = torch.flatten(x, 1)
                n = flat.shape[1]
                total = total + cos(rec[:, off:off + n], flat, torch.ones(flat.shape[0]))
                off += n
            return 0.1 * total
        if self.cca:
            return 0.001 * cca_loss(reps[0], reps[1], 48)
        return torch.zeros(())


def run_case(case):
    name = case["config"]
    model = Baseline(name)
    init = {k: torch.from_numpy(v) for k, v in read_safetensors(case["init"]).items()}
    missing, unexpected = model.load_state_dict(init, strict=False)
    if unexpected or missing:
        # BatchNorm's loader fills num_batches_tracked in itself when a
        # state dict carries no version metadata (ours does not), so
        # nothing at all may be missing here.
        raise SystemExit(f"{name}: unexpected keys {unexpected}, missing keys {missing}")
    # What our checkpoint lacks must be exactly BatchNorm's counters.
    absent = sorted(set(model.state_dict()) - set(init))
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    if any(not k.endswith(".num_batches_tracked") for k in absent) or len(absent) != n_bn:
        raise SystemExit(f"{name}: the checkpoint lacks {absent}, expected the {n_bn} num_batches_tracked counters only")
    before = {k: v.clone() for k, v in model.state_dict().items()}

    batch = {k: torch.from_numpy(v) for k, v in read_safetensors(case["inputs"]).items()}
    xs = [batch[m] for m in model.mods]
    y = batch["label"]

    res = {}
    model.train()
    logits, reps, fused = model(xs)
    ce = F.cross_entropy(logits, y)
    aux = model.aux_loss(xs, reps, fused)
    loss = ce + aux
    res["logits.train"] = logits.detach().numpy()
    res["ce"] = ce.detach().numpy().reshape(1)
    res["aux"] = aux.detach().numpy().reshape(1)
    res["loss"] = loss.detach().numpy().reshape(1)
    for k, v in model.state_dict().items():
        if k.endswith(".running_mean") or k.endswith(".running_var"):
            res["bn." + k] = v.numpy().copy()

    params = dict(model.named_parameters())
    model.zero_grad()
    loss.backward()
    for k, p in params.items():
        if p.grad is None:
            raise SystemExit(f"{name}: {k} has no gradient")
        res["grad." + k] = p.grad.numpy().copy()

    model.eval()
    with torch.no_grad():
        logits_eval, _, _ = model(xs)
    res["logits.eval"] = logits_eval.numpy()

    # MultiBench clips only the MMDL's parameters, not additional modules'.
    network = [p for k, p in params.items() if not k.startswith("aux.")]
    total = float(nn.utils.clip_grad_norm_(network, case["clip"]))
    if not total > case["clip"]:
        raise SystemExit(f"{name}: gradient norm {total} <= max norm {case['clip']}: clipping inactive")
    res["clip.total"] = np.array([total], dtype=np.float64)

    rule, lr, wd = OPTIM[name]
    opt = {"sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam}[rule](
        model.parameters(), lr=lr, weight_decay=wd)
    opt.step()
    for k, v in model.state_dict().items():
        if k.endswith(".num_batches_tracked"):
            continue
        res["after." + k] = v.numpy().copy()
        if k not in params and not (k.endswith(".running_mean") or k.endswith(".running_var")):
            # A buffer (LRTF's untrained fusion): the step must leave it alone.
            if not torch.equal(v, before[k]):
                raise SystemExit(f"{name}: buffer {k} changed in the step")
    meta = {"torch": torch.__version__, "trainable": ",".join(params), "rule": rule, "lr": repr(lr), "weight_decay": repr(wd)}
    write_safetensors(case["out"], res, meta)


class GRUOnly(nn.Module):
    """The MIMIC-III time-series encoder alone, under its checkpoint names."""

    def __init__(self):
        super().__init__()
        self.time = GRUEncoder(12, 30)


def run_gru_case(case):
    """nn.GRU alone: every step's output on the case's "time" input and the
    gradients of sum(output * R), R a fixed weighting of the outputs."""
    model = GRUOnly()
    init = {k: torch.from_numpy(v) for k, v in read_safetensors(case["init"]).items() if k.startswith("time.")}
    model.load_state_dict(init, strict=True)
    batch = {k: torch.from_numpy(v) for k, v in read_safetensors(case["inputs"]).items()}
    out = model.time(batch["time"])
    (out * batch["R"]).sum().backward()
    res = {"out": out.detach().numpy()}
    for k, p in model.named_parameters():
        res["grad." + k] = p.grad.numpy().copy()
    write_safetensors(case["out"], res, {"torch": torch.__version__})


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: multibench_reference.py JOB.json")
    torch.set_num_threads(1)
    with open(sys.argv[1]) as f:
        job = json.load(f)
    for case in job["cases"]:
        if case.get("part") == "gru":
            run_gru_case(case)
        else:
            run_case(case)


if __name__ == "__main__":
    main()
