#!/usr/bin/python3
"""Writes vectors.json: CPython's own random outputs, the reference that
features/pyrandom is tested against. Run with CPython 3 from this folder:

    /usr/bin/python3 make_vectors.py

Orders are long for big n, so those are recorded as the sha256 of the
decimal values joined by "," plus their first and last ten elements.
"""
import hashlib
import json
import random
import sys

SEEDS = [10, 0, 1, 42, -5, 2**32 + 7, 12345678901234]
FULL_N = [0, 1, 2, 3, 10, 1000]
HASHED_N = [32616, 100000]


def order_digest(xs):
    return hashlib.sha256(",".join(map(str, xs)).encode()).hexdigest()


out = {"python": sys.version.split()[0], "shuffles": [], "getrandbits": [], "random": []}
for seed in SEEDS:
    for n in FULL_N + HASHED_N:
        random.seed(seed)
        xs = list(range(n))
        random.shuffle(xs)
        rec = {"seed": seed, "n": n, "sha256": order_digest(xs),
               "first": xs[:10], "last": xs[-10:]}
        if n in FULL_N:
            rec["order"] = xs
        out["shuffles"].append(rec)
    for k in [1, 5, 31, 32, 33, 63, 64]:
        r = random.Random(seed)
        out["getrandbits"].append({"seed": seed, "k": k,
                                   "values": [str(r.getrandbits(k)) for _ in range(8)]})
    r = random.Random(seed)
    out["random"].append({"seed": seed, "values": [repr(r.random()) for _ in range(8)]})

# One record per line keeps the file small and diffs readable.
with open("vectors.json", "w") as f:
    f.write('{"python": %s,\n' % json.dumps(out["python"]))
    for i, key in enumerate(["shuffles", "getrandbits", "random"]):
        f.write(' "%s": [\n  ' % key)
        f.write(",\n  ".join(json.dumps(r, separators=(",", ":")) for r in out[key]))
        f.write("\n ]%s\n" % ("," if i < 2 else "}"))
