#!/usr/bin/python3
"""Writes tiny IDX fixtures for prep/idx's tests (run from this folder).

images3x2x2: 3 images of 2x2 bytes, value(i) = i*20; labels: 7 2 1.
The .gz versions are the same bytes gzipped with a fixed mtime.
"""
import gzip, struct

def idx(dims, data, typ=0x08):
    return bytes([0, 0, typ, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + bytes(data)

files = {
    "images.idx": idx([3, 2, 2], [i * 20 for i in range(12)]),
    "labels.idx": idx([3], [7, 2, 1]),
    "int32.idx": bytes([0, 0, 0x0C, 1]) + struct.pack(">I", 1) + struct.pack(">i", 5),
}
for name, b in files.items():
    open(name, "wb").write(b)
    with open(name + ".gz", "wb") as f:
        f.write(gzip.compress(b, mtime=0))
