#!/usr/bin/python3
"""Writes the tiny .npy fixtures for prep/npy's tests with Debian's numpy.

Run from this folder: /usr/bin/python3 make_fixtures.py
The values are simple formulas so the Go test can recompute them.
"""
import numpy as np

# value(i) = i*1.5 - 3 for float kinds, i - 3 for int64, i*7 % 256 for uint8
def vals(n, kind):
    i = np.arange(n)
    if kind in ("f4", "f8"):
        return i * 1.5 - 3
    if kind == "i8":
        return i - 3
    return (i * 7) % 256

for kind, shape in [("<f4", (2, 3)), ("<f8", (4,)), ("|u1", (2, 2, 3)), ("<i8", (5,)),
                    (">f8", (3,)), (">i8", (2, 2))]:
    n = int(np.prod(shape))
    a = vals(n, kind[1:]).astype(kind).reshape(shape)
    name = {"<": "le", ">": "be", "|": "na"}[kind[0]] + "_" + kind[1:] + ".npy"
    np.save(name, a)

# a 0-d array and an empty one
np.save("scalar_f8.npy", np.array(2.5))
np.save("empty_f4.npy", np.zeros((0, 3), dtype="<f4"))
# format 2.0, written explicitly
with open("v2_f8.npy", "wb") as f:
    np.lib.format.write_array(f, vals(6, "f8").reshape(3, 2), version=(2, 0))
# things the reader must refuse
np.save("fortran_f8.npy", np.asfortranarray(vals(6, "f8").reshape(2, 3)))
np.save("int32.npy", np.arange(4, dtype="<i4"))
np.save("object.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
