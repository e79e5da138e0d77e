#!/usr/bin/python3
"""PyTorch reference for model/crossimpl_test.go.

The networks here are written from reproduction.md sections 1-3 (AV-MNIST
M2-Mixer as in shared/bench/torch_m2mixer.py, MIMIC-III M2-Mixer_H), with
their sizes, learning rates and loss weights taken from that document, not
from the Go configurations: the test checks the Go side against the paper's
specification as PyTorch runs it.

usage: /usr/bin/python3 torch_reference.py JOB.json

JOB.json is {"cases": [{"config": NAME, "init": PATH, "inputs": PATH, "out": PATH}, ...]}.
For each case it loads the initial weights (a safetensors file whose names
are this module's state_dict names) and a batch, and writes to "out":
  logits.<head>  each head's logits in eval mode (no dropout), no grad
  loss           the weighted multi-head loss of the same batch (eval mode)
  grad.<name>    every parameter's gradient of that loss
  after.<name>   every parameter after one torch.optim.Adam step on that loss
The step's forward runs with dropout off too: dropout masks depend on how an
implementation consumes its random generator, which is not what is compared.

Only numpy and torch are needed: safetensors files are read and written by
hand (8-byte little-endian header length, JSON header, raw little-endian data).
"""
import json
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------- safetensors

_NP = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32, "U8": np.uint8, "BOOL": np.bool_}
_ST = {np.dtype(v).str: k for k, v in _NP.items()}


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    data = memoryview(raw)[8 + n:]
    out = {}
    for name, e in header.items():
        lo, hi = e["data_offsets"]
        dt = np.dtype(_NP[e["dtype"]]).newbyteorder("<")
        out[name] = np.frombuffer(data[lo:hi], dtype=dt).reshape(e["shape"]).copy()
    return out


def write_safetensors(path, tensors, meta=None):
    header, blobs, off = {}, [], 0
    if meta:
        header["__metadata__"] = meta
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        b = a.tobytes()
        header[name] = {"dtype": _ST[a.dtype.str], "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# ---------------------------------------------------------------- networks

class MLP(nn.Sequential):
    """Linear, GELU (erf), Dropout, Linear, Dropout: parameters at .0 and .3."""

    def __init__(self, dim, hidden, dropout):
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(hidden, dim), nn.Dropout(dropout))


class MixerBlock(nn.Module):
    """Pre-LayerNorm Mixer block over x of shape (batch, tokens, hidden)."""

    def __init__(self, tokens, hidden, token_dim, channel_dim, dropout):
        super().__init__()
        self.ln1 = nn.LayerNorm(hidden, eps=1e-5)
        self.tok = MLP(tokens, token_dim, dropout)
        self.ln2 = nn.LayerNorm(hidden, eps=1e-5)
        self.ch = MLP(hidden, channel_dim, dropout)

    def forward(self, x):
        mixed = self.tok(self.ln1(x).transpose(1, 2)).transpose(1, 2)  # along the token axis
        x = x + mixed
        return x + self.ch(self.ln2(x))


class PatchEncoder(nn.Module):
    """Conv patch embedding (row-major patch tokens), Mixer blocks, LayerNorm."""

    def __init__(self, size, patch, hidden, token_dim, channel_dim, blocks, dropout):
        super().__init__()
        tokens = (size // patch) * (size // patch)
        self.emb = nn.Conv2d(1, hidden, kernel_size=patch, stride=patch)
        self.blocks = nn.Sequential(*(MixerBlock(tokens, hidden, token_dim, channel_dim, dropout)
                                      for _ in range(blocks)))
        self.ln = nn.LayerNorm(hidden, eps=1e-5)

    def forward(self, x):
        x = self.emb(x)                                   # (B, D, H/p, W/p)
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)  # (B, patches, D)
        return self.ln(self.blocks(x))


class SequenceEncoder(nn.Module):
    """Per-step Linear(features, D), Mixer blocks, LayerNorm."""

    def __init__(self, steps, features, hidden, token_dim, channel_dim, blocks, dropout):
        super().__init__()
        self.emb = nn.Linear(features, hidden)
        self.blocks = nn.Sequential(*(MixerBlock(steps, hidden, token_dim, channel_dim, dropout)
                                      for _ in range(blocks)))
        self.ln = nn.LayerNorm(hidden, eps=1e-5)

    def forward(self, x):
        return self.ln(self.blocks(self.emb(x)))


def fusion_mixer(tokens, hidden, token_dim, channel_dim, blocks, dropout):
    """Mixer blocks then LayerNorm, as one Sequential: fus.0 .. fus.<blocks>."""
    layers = [MixerBlock(tokens, hidden, token_dim, channel_dim, dropout) for _ in range(blocks)]
    return nn.Sequential(*layers, nn.LayerNorm(hidden, eps=1e-5))


class AVMNISTM2Mixer(nn.Module):
    """Image (28x28, patch 14) and spectrogram (112x112, patch 56) encoders,
    fusion over the 8 concatenated tokens (image first), three heads."""

    def __init__(self, hidden, token_dim, channel_dim, blocks, fusion_blocks, fusion_channel_dim, dropout):
        super().__init__()
        self.img = PatchEncoder(28, 14, hidden, token_dim, channel_dim, blocks, dropout)
        self.aud = PatchEncoder(112, 56, hidden, token_dim, channel_dim, blocks, dropout)
        self.fus = fusion_mixer(8, hidden, token_dim, fusion_channel_dim, fusion_blocks, dropout)
        self.hf = nn.Linear(hidden, 10)
        self.hi = nn.Linear(hidden, 10)
        self.ha = nn.Linear(hidden, 10)

    def forward(self, batch):
        img, aud = self.img(batch["image"]), self.aud(batch["audio"])
        fused = self.fus(torch.cat((img, aud), dim=1))
        return {"fusion": self.hf(fused.mean(dim=1)), "image": self.hi(img.mean(dim=1)),
                "audio": self.ha(aud.mean(dim=1))}


class MIMICM2Mixer(nn.Module):
    """Static MLP (one token) and a 24-step time-series encoder, fusion over
    25 tokens (static first), heads on fusion mean, time mean and static output."""

    def __init__(self, dropout=0.3, hidden=64):
        super().__init__()
        self.static = nn.Sequential(
            nn.Linear(5, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden))
        self.time = SequenceEncoder(24, 12, hidden, 16, 64, 1, dropout)
        self.fus = fusion_mixer(25, hidden, 8, 64, 1, dropout)
        self.hf = nn.Linear(hidden, 6)
        self.hs = nn.Linear(hidden, 6)
        self.ht = nn.Linear(hidden, 6)

    def forward(self, batch):
        static = self.static(batch["static"])             # (B, D)
        series = self.time(batch["time"])                 # (B, 24, D)
        fused = self.fus(torch.cat((static.unsqueeze(1), series), dim=1))
        return {"fusion": self.hf(fused.mean(dim=1)), "static": self.hs(static),
                "time": self.ht(series.mean(dim=1))}


# reproduction.md section 2 (D, token_dim, channel_dim, blocks, fusion blocks,
# fusion channel_dim, dropout) and the parameter counts it lists.
AVMNIST = {
    "m2mixer_s": ((32, 16, 256, 2, 1, 256, 0.1), 192742),
    "m2mixer_m": ((64, 16, 1024, 2, 1, 1024, 0.1), 878662),
    "m2mixer_b": ((128, 32, 3072, 4, 2, 3078, 0.5), 8339354),
}


def build(config):
    """The network, its Adam learning rate and each head's loss weight."""
    wf = 1.0 / 3.0
    w = (1.0 - wf) / 2.0
    if config in AVMNIST:
        sizes, count = AVMNIST[config]
        # 3 * (w_f CE_f + w CE_img + w CE_aud), w_f = 1/3 fixed: the plain sum.
        return AVMNISTM2Mixer(*sizes), count, 1e-2, {"fusion": 3 * wf, "image": 3 * w, "audio": 3 * w}
    if config in ("m2mixer_h", "m2mixer_lc"):
        # w_f CE_f + w CE_static + w CE_time (LC starts from the same weights).
        return MIMICM2Mixer(), 29355, 1e-3, {"fusion": wf, "static": w, "time": w}
    raise SystemExit(f"torch_reference.py: no reference for configuration {config!r}")


def run_case(case):
    model, count, lr, weights = build(case["config"])
    params = sum(p.numel() for p in model.parameters())
    if params != count:
        raise SystemExit(f"{case['config']}: reference has {params} parameters, reproduction.md says {count}")
    init = read_safetensors(case["init"])
    state = {k: torch.from_numpy(v) for k, v in init.items()}
    model.load_state_dict(state, strict=True)  # every name and shape must match
    batch = {k: torch.from_numpy(v) for k, v in read_safetensors(case["inputs"]).items()}
    label = batch.pop("label")

    model.eval()
    with torch.no_grad():
        logits = model(batch)

    # One Adam step on the weighted loss, dropout off (see the module docstring).
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0)
    out = model(batch)
    loss = None
    for head in sorted(weights):  # the order the Go loss sums in
        term = F.cross_entropy(out[head], label) * weights[head]
        loss = term if loss is None else loss + term
    opt.zero_grad()
    loss.backward()
    opt.step()

    res = {"logits." + h: v.numpy() for h, v in logits.items()}
    res["loss"] = loss.detach().numpy()
    for name, p in model.named_parameters():
        res["grad." + name] = p.grad.numpy()
        res["after." + name] = p.detach().numpy()
    write_safetensors(case["out"], res, {"torch": torch.__version__, "params": str(params)})


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    torch.set_num_threads(1)
    with open(sys.argv[1]) as f:
        job = json.load(f)
    for case in job["cases"]:
        run_case(case)


if __name__ == "__main__":
    main()
