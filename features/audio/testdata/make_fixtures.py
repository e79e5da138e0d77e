#!/usr/bin/python3
"""Reference for features/audio's resampler, from numpy only: the
scipy.signal.resample_poly definition written out with numpy.kaiser and
numpy.sinc (firwin with a Kaiser window, beta 5, 2*10*max(up,down)+1 taps,
unit DC gain times up; zero-stuff, convolve, keep every down-th sample from
the filter centre). Run from this folder: /usr/bin/python3 make_fixtures.py
"""
import numpy as np

def resample_poly(x, up, down):
    g = np.gcd(up, down)
    up, down = up // g, down // g
    max_rate = max(up, down)
    half = 10 * max_rate
    n = 2 * half + 1
    cutoff = 1.0 / max_rate
    m = np.arange(n) - (n - 1) / 2
    h = cutoff * np.sinc(cutoff * m) * np.kaiser(n, 5.0)
    h = h / h.sum() * up
    u = np.zeros(len(x) * up)
    u[::up] = x
    y = np.convolve(u, h)
    n_out = -(-len(x) * up // down)
    return y[half::down][:n_out]

k = np.arange(2000)
x = np.sin(2 * np.pi * 1000 * k / 44100) + 0.5 * np.sin(2 * np.pi * 6000 * k / 44100) + 0.01 * (k % 7)
np.save("resample_44100_8000.npy", resample_poly(x, 8000, 44100))
