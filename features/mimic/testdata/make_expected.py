#!/usr/bin/python3
"""Independent reference for features/mimic, computed with numpy and
CPython's own random module. Run from this folder:

    /usr/bin/python3 make_expected.py

Writes
  small.pk             a 15-sample im.pk with NaN/Inf and constant features
  small_expected.json  what preparing it must give: statistics, non-finite
                       counts, labels, split order, normalised static values
                       for every row and time series for three rows
  split_32616.json     CPython's split of range(32616) with random.seed(10):
                       sizes and sha256 of each part (decimal, comma-joined)
"""
import hashlib
import json
import pickle
import random

import numpy as np

N = 15  # n//10 = 1 but n//5 = 3: the test split gets 2 rows, as at full size
rng = np.random.default_rng(7)
ts = (rng.normal(size=(N, 24, 12)) * np.arange(1, 13) + np.arange(12) * 10).astype(np.float32)
st = (rng.normal(size=(N, 5)) * 3 + 1).astype(np.float32)
ts[:, :, 5] = 2.5               # a constant time-series feature (std 0)
st[:, 3] = 7.0                  # a constant static feature (std 0)
ts[0, 0, 0] = np.nan
ts[4, 10, 2] = np.inf
ts[9, 23, 11] = -np.inf
ts[9, 1, 1] = np.nan
st[2, 1] = np.nan
st[7, 4] = np.inf
lb = (rng.random(size=(N, 8)) < 0.2).astype(np.float64)
lb[3] = [1, 0, 0, 0, 0, 0, 0, 0]   # column 0 only: class 0
lb[5] = [0, 0, 0, 1, 0, 1, 0, 0]   # first positive wins: class 3
lb[6] = [0, np.nan, 0, 0, 0, 1, 0, 0]  # NaN is not > 0: class 5
lb[8] = [0, 0, 0, 0, 0, 0, 1, 1]   # only columns past 5: class 0

with open("small.pk", "wb") as f:
    pickle.dump({"ep_tdata": ts, "adm_features_all": st, "adm_labels_all": lb}, f, protocol=4)


def counts(a):
    return {"nan": int(np.isnan(a).sum()), "posinf": int(np.isposinf(a).sum()),
            "neginf": int(np.isneginf(a).sum())}


def zscore(x, axes):
    x = np.where(np.isfinite(x), x, 0).astype(np.float64)
    mean = x.mean(axis=axes)
    std = x.std(axis=axes)   # population std (ddof=0)
    return (x - mean) / np.where(std == 0, 1, std), mean, std


tsn, tmean, tstd = zscore(ts, (0, 1))
stn, smean, sstd = zscore(st, 0)
labels = []
for row in lb:
    lab = 0
    for c in range(1, 6):
        if row[c] > 0:
            lab = c
            break
    labels.append(lab)

random.seed(10)
order = list(range(N))
random.shuffle(order)
rows_ts = [0, 9, 14]
exp = {
    "n": N,
    "nonfinite": {"ep_tdata": counts(ts), "adm_features_all": counts(st.astype(np.float64)),
                  "adm_labels_all": counts(lb)},
    "static_mean": smean.tolist(), "static_std": sstd.tolist(),
    "timeseries_mean": tmean.tolist(), "timeseries_std": tstd.tolist(),
    "labels": labels,
    "validation": order[: N // 10], "test": order[N // 10: N // 5], "train": order[N // 5:],
    "static": stn.astype(np.float32).astype(float).tolist(),
    "timeseries_rows": rows_ts,
    "timeseries": [tsn[r].astype(np.float32).astype(float).ravel().tolist() for r in rows_ts],
}
with open("small_expected.json", "w") as f:
    json.dump(exp, f, separators=(",", ":"))
    f.write("\n")

n = 32616
random.seed(10)
order = list(range(n))
random.shuffle(order)
parts = {"validation": order[: n // 10], "test": order[n // 10: n // 5], "train": order[n // 5:]}
out = {"n": n}
for k, v in parts.items():
    out[k] = {"rows": len(v), "sha256": hashlib.sha256(",".join(map(str, v)).encode()).hexdigest(),
              "first": v[:5], "last": v[-5:]}
with open("split_32616.json", "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
