#!/usr/bin/python3
"""Driver for export/npy_test.go: loads a folder with examples/torch_dataset.py
and writes every split's items back as .npy files for the Go side to compare
with the Arrow values.

usage: dump_dataset.py EXAMPLES KIND ROOT OUT        (KIND: avmnist or mimic)
       dump_dataset.py EXAMPLES KIND ROOT --error    (loading must fail: prints the error)

For each split it checks every item's shapes and types against the
reference's (image (1,28,28), audio (1,112,112), static (5,), timeseries
(24,12), float32 tensors; label a Python int), that a DataLoader batches them
as the reference's models take them, and saves OUT/<split>_<field>.npy.
"""
import os
import sys

import numpy as np
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, sys.argv[1])
import torch_dataset  # noqa: E402

SHAPES = {"avmnist": {"image": (1, 28, 28), "audio": (1, 112, 112)},
          "mimic": {"static": (5,), "timeseries": (24, 12)}}


def load(kind, root, split):
    return (torch_dataset.AVMNIST if kind == "avmnist" else torch_dataset.MIMIC)(root, split)


def fields(kind, item):
    if kind == "avmnist":
        if not isinstance(item, dict) or sorted(item) != ["audio", "image", "label"]:
            raise SystemExit(f"AV-MNIST item {item!r}: want a dict of image, audio, label")
        return item
    static, series, label = item
    return {"static": static, "timeseries": series, "label": label}


def main():
    _, _, kind, root, out = sys.argv
    if out == "--error":
        try:
            for split in torch_dataset.SPLITS:
                load(kind, root, split)
        except torch_dataset.DatasetError as e:
            print(e)
            return
        raise SystemExit("loading did not fail")
    for split in torch_dataset.SPLITS:
        ds = load(kind, root, split)
        rows = {k: [] for k in list(SHAPES[kind]) + ["label"]}
        for i in range(len(ds)):
            for k, v in fields(kind, ds[i]).items():
                if k == "label":
                    if type(v) is not int:
                        raise SystemExit(f"{split}[{i}] label is {type(v)}, want int")
                    rows[k].append(v)
                    continue
                if not torch.is_tensor(v) or v.dtype != torch.float32 or tuple(v.shape) != SHAPES[kind][k]:
                    raise SystemExit(f"{split}[{i}] {k}: {type(v)} {getattr(v, 'dtype', None)} {tuple(getattr(v, 'shape', ()))}, want float32 {SHAPES[kind][k]}")
                rows[k].append(v.numpy())
        batch = fields(kind, next(iter(DataLoader(ds, batch_size=4))))
        for k, shape in SHAPES[kind].items():
            if tuple(batch[k].shape) != (min(4, len(ds)),) + shape:
                raise SystemExit(f"{split}: a DataLoader batch's {k} is {tuple(batch[k].shape)}")
        for k, v in rows.items():
            np.save(os.path.join(out, f"{split}_{k}.npy"), np.asarray(v, dtype=np.int64 if k == "label" else np.float32))


if __name__ == "__main__":
    main()
