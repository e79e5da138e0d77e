#!/usr/bin/python3
"""Writes the small synthetic im.pk fixtures the prep/mimic tests read.

Run from this folder with a CPython 3 that has numpy (Debian's
python3-numpy; on this machine /usr/bin/python3):

    /usr/bin/python3 make_fixtures.py

Each good fixture NAME.pk comes with NAME.json: the values numpy holds for
the three arrays, flattened in C order, as repr() strings (so NaN and Inf
survive JSON), plus N and the label column count. Bad fixtures have no
JSON; the Go test table says which error each must give.
"""
import json
import pickle
import sys
import types

import numpy as np

N = 3


def arrays(n=N, ts_dtype="<f8", st_dtype="<f8", lb_dtype="<f8", label_cols=7, seed=0):
    """Deterministic values that are exact in float16/32 where needed."""
    rng = np.random.default_rng(seed)
    ts = (rng.integers(-400, 400, size=(n, 24, 12)) / 8.0).astype(ts_dtype)
    st = (rng.integers(-100, 100, size=(n, 5)) / 4.0).astype(st_dtype)
    lb = rng.integers(0, 2, size=(n, label_cols)).astype(lb_dtype)
    return {"ep_tdata": ts, "adm_features_all": st, "adm_labels_all": lb}


def write(name, obj, protocol, expect=None):
    with open(name + ".pk", "wb") as f:
        pickle.dump(obj, f, protocol=protocol)
    if expect is not None:
        rec = {"n": int(expect["ep_tdata"].shape[0]),
               "label_cols": int(expect["adm_labels_all"].shape[1])}
        for k in ["ep_tdata", "adm_features_all", "adm_labels_all", "y_icd9"]:
            if k in expect:
                rec[k] = [repr(float(x)) for x in np.ascontiguousarray(expect[k]).ravel()]
        with open(name + ".json", "w") as f:
            json.dump(rec, f, separators=(",", ":"))
            f.write("\n")


def fortran(d):
    return {k: np.asfortranarray(v) for k, v in d.items()}


# numpy 2 pickles name numpy._core instead of numpy.core. This numpy is 1.x,
# so the numpy 2 fixtures are made by a pickler that re-homes numpy's two
# reconstruction functions under the numpy 2 module names; the rest of the
# stream is what numpy itself writes.
def numpy2_pickler(f, protocol):
    for new in ["numpy._core.multiarray", "numpy._core.numeric"]:
        sys.modules.setdefault(new, types.ModuleType(new))

    def alias(fn, modname):
        def g(*a):
            return fn(*a)
        g.__module__, g.__name__, g.__qualname__ = modname, fn.__name__, fn.__name__
        setattr(sys.modules[modname], fn.__name__, g)
        return g
    from numpy.core import multiarray, numeric
    rec = alias(multiarray._reconstruct, "numpy._core.multiarray")
    frm = alias(numeric._frombuffer, "numpy._core.numeric")

    class P(pickle.Pickler):
        def reducer_override(self, obj):
            if type(obj) is not np.ndarray:
                return NotImplemented
            r = obj.__reduce_ex__(protocol)
            fn = r[0]
            if fn is multiarray._reconstruct:
                return (rec,) + tuple(r[1:])
            if fn is numeric._frombuffer:
                return (frm,) + tuple(r[1:])
            return NotImplemented
    return P(f, protocol=protocol)


def write_numpy2(name, d, protocol):
    with open(name + ".pk", "wb") as f:
        numpy2_pickler(f, protocol).dump(d)
    write_json_only(name, d)


def write_json_only(name, d):
    rec = {"n": int(d["ep_tdata"].shape[0]), "label_cols": int(d["adm_labels_all"].shape[1])}
    for k in ["ep_tdata", "adm_features_all", "adm_labels_all", "y_icd9"]:
        if k in d:
            rec[k] = [repr(float(x)) for x in np.ascontiguousarray(d[k]).ravel()]
    with open(name + ".json", "w") as f:
        json.dump(rec, f, separators=(",", ":"))
        f.write("\n")


# ---- good files ----
for p in [2, 3, 4, 5]:
    d = arrays(seed=p)
    write("p%d_f64" % p, d, p, d)
    d = arrays(ts_dtype="<f4", st_dtype="<f4", lb_dtype="<f4", seed=10 + p)
    write("p%d_f32" % p, d, p, d)
    d = fortran(arrays(seed=20 + p))
    write("p%d_fortran" % p, d, p, d)

d = arrays(ts_dtype=">f8", st_dtype=">f4", lb_dtype=">i4", seed=31)
write("p3_bigendian", d, 3, d)
d = arrays(ts_dtype="<f4", st_dtype="<f2", lb_dtype="<i8", label_cols=6, seed=32)
write("p4_half_int", d, 4, d)
d = arrays(lb_dtype="|u1", seed=33)
d["adm_labels_all"] = d["adm_labels_all"].astype(bool)
write("p4_bool_labels", d, 4, d)

# Read-only arrays go in band as bytes under protocol 5, not bytearray.
d = arrays(ts_dtype="<f4", seed=34)
for v in d.values():
    v.flags.writeable = False
write("p5_readonly", d, 5, d)

# Non-contiguous arrays fall back to _reconstruct under protocol 5.
d = arrays(seed=35)
wide = np.arange(N * 10, dtype="<f8").reshape(N, 10) / 2
d["adm_features_all"] = wide[:, ::2]
write("p5_noncontiguous", d, 5, d)

# NaN and +-Inf in every array, plus an ICD-9 array and unrelated extras.
d = arrays(seed=36)
d["ep_tdata"][0, 0, 0] = np.nan
d["ep_tdata"][1, 5, 3] = np.inf
d["ep_tdata"][2, 23, 11] = -np.inf
d["ep_tdata"][2, 0, 1] = np.nan
d["adm_features_all"][1, 2] = np.nan
d["adm_features_all"][0, 4] = -np.inf
d["adm_labels_all"][2, 0] = np.nan
d["y_icd9"] = np.arange(N * 20, dtype="<i8").reshape(N, 20) % 2
obj = dict(d)
obj["note"] = "synthetic"
obj["scalar"] = np.float64(1.5)
obj["ids"] = list(range(N))
write("p4_nan_inf", obj, 4, d)

write_numpy2("numpy2_p4", arrays(seed=40), 4)
write_numpy2("numpy2_p5", fortran(arrays(seed=41, ts_dtype="<f4")), 5)
write_numpy2("numpy2_p2", arrays(seed=42), 2)

d = arrays(n=0)
write("p4_empty", d, 4, d)

# ---- bad files ----
d = arrays(seed=50)
del d["adm_labels_all"]
write("bad_missing_key", d, 4)

d = arrays(seed=51)
d["ep_tdata"] = d["ep_tdata"][:, :, :11].copy()
write("bad_shape_ep_tdata", d, 4)

d = arrays(seed=52)
d["adm_features_all"] = d["adm_features_all"][:, :4].copy()
write("bad_shape_static", d, 4)

d = arrays(seed=53, label_cols=5)
write("bad_shape_labels", d, 4)

d = arrays(seed=54)
d["adm_features_all"] = d["adm_features_all"][:2].copy()
write("bad_mismatched_n", d, 4)

d = arrays(seed=55)
d["adm_features_all"] = d["adm_features_all"].astype("<U8")
write("bad_string_dtype", d, 4)

d = arrays(seed=56)
d["adm_labels_all"] = d["adm_labels_all"].astype(object)
write("bad_object_dtype", d, 4)

d = arrays(seed=57)
d["ep_tdata"] = d["ep_tdata"].astype("<c16")
write("bad_complex_dtype", d, 3)

write("bad_not_dict", [arrays(seed=58)], 4)

blob = pickle.dumps(arrays(seed=59), protocol=4)
with open("bad_truncated.pk", "wb") as f:
    f.write(blob[: len(blob) // 2])

with open("bad_not_pickle.pk", "wb") as f:
    f.write(b"ep_tdata,adm_features_all,adm_labels_all\n1,2,3\n")

with open("bad_protocol0.pk", "wb") as f:
    pickle.dump({"a": 1}, f, protocol=0)
