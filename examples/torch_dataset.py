"""PyTorch datasets over m2mix's prepared AV-MNIST and MIMIC-III.

Items are shaped as the reference implementation's data modules
(bezirganyan/m2-mixer, datasets/avmnist.py and MultiBench's MIMIC loader,
which it uses) give them, and hold the values m2mix trains on:

    AVMNIST[i] -> {"image": float32 (1, 28, 28),
                   "audio": float32 (1, 112, 112),   # spectrogram bytes 0..255, unnormalised
                   "label": int}
    MIMIC[i]   -> (static float32 (5,), timeseries float32 (24, 12), label int)

so a DataLoader's batches are what the reference's models take
(model.shared_step(batch) for AV-MNIST; static, time, label = batch for MIMIC).

Two sources, chosen by what the folder holds:

  - the Arrow files m2mix prep writes (data/avmnist, data/mimic:
    {train,validation,test}.arrow and manifest.json). Needs pyarrow.
  - the .npy files `m2mix export-npy avmnist|mimic` writes (default
    data/npy/avmnist, data/npy/mimic). Needs numpy only: for machines
    without pyarrow (Debian 12 has no package for it).

Either way every file is checked against the sha256 its folder's
manifest.json records before it is read (verify=False skips that; it costs a
few seconds for the full AV-MNIST).

AV-MNIST's .npy files are in MultiBench's layout (image/{train,test}_data.npy,
audio/{train,test}_data.npy, {train,test}_labels.npy), which has no
validation split: train_data holds our train rows then our validation rows,
and the last `validation_rows` of them (export-npy's manifest.json records
the number) are the validation split, as the reference takes rows
55000..60000 of the public train set. MultiBench's public folder itself (no
manifest) loads with verify=False, its last 1/12 (5,000 of 60,000) being
validation. The public images are not what ours are (see README.md,
"why our AV-MNIST is easier").

Usage:

    import sys; sys.path.insert(0, "examples")
    from torch_dataset import AVMNIST, MIMIC
    from torch.utils.data import DataLoader

    train = AVMNIST("data/avmnist", "train")          # with pyarrow
    train = AVMNIST("data/npy/avmnist", "train")      # after m2mix export-npy avmnist
    for batch in DataLoader(train, batch_size=32):
        batch["image"].shape                          # torch.Size([32, 1, 28, 28])

    test = MIMIC("data/npy/mimic", "test")
    static, series, label = test[0]

Run as a script, it prints each split's size and first item's shapes:

    python3 examples/torch_dataset.py data/npy/avmnist
"""
import hashlib
import json
import os
import sys

import numpy as np
import torch
from torch.utils.data import Dataset

SPLITS = ("train", "validation", "test")


class DatasetError(Exception):
    """A folder or file that cannot be read as an m2mix dataset."""


def _manifest(root):
    path = os.path.join(root, "manifest.json")
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except ValueError as e:
        raise DatasetError(f"{path}: not JSON ({e})") from e


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check(root, manifest, name, verify):
    """The path of file name in root, checked against the manifest."""
    path = os.path.join(root, name)
    if not os.path.exists(path):
        raise DatasetError(f"{path}: no such file")
    if not verify:
        return path
    if manifest is None:
        raise DatasetError(f"{root}: no manifest.json, so {name} cannot be checked: it is not a finished "
                           "m2mix prep or export-npy folder (verify=False reads it unchecked)")
    want = manifest.get("outputs", {}).get(name)
    if want is None:
        raise DatasetError(f"{os.path.join(root, 'manifest.json')} does not list {name}: write the folder again")
    got = _sha256(path)
    if got != want:
        raise DatasetError(f"{path} has sha256 {got}, but {os.path.join(root, 'manifest.json')} records {want}: "
                           "the file changed after it was written, or the writing was interrupted; write the folder again")
    return path


def _is_arrow(root):
    return all(os.path.exists(os.path.join(root, s + ".arrow")) for s in SPLITS)


def _arrow_columns(root, split, columns, verify):
    """Each named column of root/<split>.arrow as a numpy array (N, width) or (N,)."""
    try:
        import pyarrow as pa
        import pyarrow.ipc
    except ImportError as e:
        raise DatasetError(f"{root} holds Arrow files and pyarrow is not installed: install it, or run "
                           "`m2mix export-npy avmnist|mimic` and give its folder instead") from e
    path = _check(root, _manifest(root), split + ".arrow", verify)
    with pa.memory_map(path) as source:
        table = pa.ipc.open_file(source).read_all()
    out = {}
    for name in columns:
        if name not in table.column_names:
            raise DatasetError(f"{path}: no column {name!r} (have {table.column_names})")
        col = table.column(name).combine_chunks()
        if pa.types.is_fixed_size_list(col.type):
            out[name] = np.asarray(col.flatten()).reshape(len(col), col.type.list_size)
        else:
            out[name] = np.asarray(col)
    return out


def _npy(root, manifest, name, verify, dtype):
    path = _check(root, manifest, name, verify)
    a = np.load(path, mmap_mode="r")
    if a.dtype != np.dtype(dtype):
        raise DatasetError(f"{path}: dtype {a.dtype}, want {np.dtype(dtype)}")
    return a


def _rows(path, a, n, shape):
    if a.shape[0] != n or a[0].size != int(np.prod(shape)):
        raise DatasetError(f"{path}: shape {a.shape}, want {n} rows of {shape}")
    return a


class AVMNIST(Dataset):
    """AV-MNIST's split ("train", "validation" or "test") from root: a prep
    folder (Arrow files) or an export-npy folder (.npy files)."""

    def __init__(self, root, split="train", verify=True):
        if split not in SPLITS:
            raise ValueError(f"split {split!r}: want one of {SPLITS}")
        if _is_arrow(root):
            cols = _arrow_columns(root, split, ("image", "audio", "label"), verify)
            image, audio, label = cols["image"], cols["audio"], cols["label"]
        else:
            manifest = _manifest(root)
            part = "test" if split == "test" else "train"
            label = _npy(root, manifest, f"{part}_labels.npy", verify, np.int64)
            image = _npy(root, manifest, f"image/{part}_data.npy", verify, np.float32)
            audio = _npy(root, manifest, f"audio/{part}_data.npy", verify, np.uint8)
            if split != "test":
                n = len(label)
                val = manifest["notes"]["validation_rows"] if manifest else n // 12
                lo, hi = (0, n - val) if split == "train" else (n - val, n)
                label, image, audio = label[lo:hi], image[lo:hi], audio[lo:hi]
        n = len(label)
        self.image = _rows(os.path.join(root, split), image, n, (784,)).reshape(n, 1, 28, 28)
        self.audio = _rows(os.path.join(root, split), audio, n, (112, 112)).reshape(n, 1, 112, 112)
        self.label = label

    def __len__(self):
        return len(self.label)

    def __getitem__(self, i):
        return {"image": torch.from_numpy(np.array(self.image[i], dtype=np.float32)),
                "audio": torch.from_numpy(np.array(self.audio[i], dtype=np.float32)),
                "label": int(self.label[i])}


class MIMIC(Dataset):
    """MIMIC-III's split from root: a prep folder (Arrow files) or an
    export-npy folder ({split}_static.npy, {split}_timeseries.npy,
    {split}_labels.npy)."""

    def __init__(self, root, split="train", verify=True):
        if split not in SPLITS:
            raise ValueError(f"split {split!r}: want one of {SPLITS}")
        if _is_arrow(root):
            cols = _arrow_columns(root, split, ("static", "timeseries", "label"), verify)
            static, series, label = cols["static"], cols["timeseries"], cols["label"]
        else:
            manifest = _manifest(root)
            label = _npy(root, manifest, f"{split}_labels.npy", verify, np.int64)
            static = _npy(root, manifest, f"{split}_static.npy", verify, np.float32)
            series = _npy(root, manifest, f"{split}_timeseries.npy", verify, np.float32)
        n = len(label)
        self.static = _rows(os.path.join(root, split), static, n, (5,)).reshape(n, 5)
        self.series = _rows(os.path.join(root, split), series, n, (24, 12)).reshape(n, 24, 12)
        self.label = label

    def __len__(self):
        return len(self.label)

    def __getitem__(self, i):
        return (torch.from_numpy(np.array(self.static[i], dtype=np.float32)),
                torch.from_numpy(np.array(self.series[i], dtype=np.float32)),
                int(self.label[i]))


def open_dataset(root, split="train", verify=True):
    """AVMNIST or MIMIC, by what root holds."""
    manifest = _manifest(root) or {}
    stage = manifest.get("stage", "")
    if "mimic" in stage or os.path.exists(os.path.join(root, "train_static.npy")):
        return MIMIC(root, split, verify)
    return AVMNIST(root, split, verify)


def main(argv):
    if len(argv) != 2:
        raise SystemExit("usage: python3 torch_dataset.py FOLDER (a prep or export-npy folder)")
    for split in SPLITS:
        ds = open_dataset(argv[1], split)
        item = ds[0]
        shapes = {k: tuple(v.shape) for k, v in item.items() if torch.is_tensor(v)} if isinstance(item, dict) \
            else [tuple(v.shape) if torch.is_tensor(v) else v for v in item]
        print(f"{split}: {len(ds)} items, first {shapes}")


if __name__ == "__main__":
    try:
        main(sys.argv)
    except DatasetError as e:
        raise SystemExit(f"torch_dataset.py: {e}")
