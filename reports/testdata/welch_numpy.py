"""Welch's t-test and percentiles with numpy alone (no scipy), as an
independent reference for reports/claimstats.go.

Reads JSON from stdin: {"cases": [{"a": [...], "b": [...]}], "percentile":
{"values": [...], "p": [...]}}. The Student-t CDF and quantile come from
integrating the density numerically (composite Simpson rule on a fine grid
and bisection), not from any statistics library."""
import json
import math
import sys

import numpy as np


def t_pdf(x, nu):
    c = math.exp(math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2)) / math.sqrt(nu * math.pi)
    return c * (1 + x * x / nu) ** (-(nu + 1) / 2)


def t_cdf(x, nu):
    # P(T <= x) = 1/2 + integral_0^x pdf, Simpson on 200001 points.
    if x == 0:
        return 0.5
    g = np.linspace(0.0, abs(x), 200001)
    y = t_pdf(g, nu)
    h = g[1] - g[0]
    s = h / 3 * (y[0] + y[-1] + 4 * y[1:-1:2].sum() + 2 * y[2:-1:2].sum())
    return 0.5 + math.copysign(s, x)


def t_quantile(p, nu):
    lo, hi = 0.0, 1000.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if t_cdf(mid, nu) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def main():
    req = json.load(sys.stdin)
    out = {"cases": []}
    for c in req["cases"]:
        a, b = np.array(c["a"], dtype=np.float64), np.array(c["b"], dtype=np.float64)
        va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
        se = math.sqrt(va + vb)
        df = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
        diff = a.mean() - b.mean()
        t = diff / se
        q = t_quantile(0.975, df)
        out["cases"].append({"diff": diff, "se": se, "df": df, "t": t,
                             "p": 2 * (1 - t_cdf(abs(t), df)), "lo": diff - q * se, "hi": diff + q * se})
    v = np.array(req["percentile"]["values"], dtype=np.float64)
    out["percentiles"] = [float(np.percentile(v, 100 * p)) for p in req["percentile"]["p"]]
    json.dump(out, sys.stdout)


main()
