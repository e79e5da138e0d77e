#!/usr/bin/python3
"""Reference spectrograms for features/spectrogram, computed with numpy only
(numpy.hanning, numpy.fft.rfft, matplotlib's PSD scaling and 'Greys' lookup
table re-derived from their published formulas), independent of the Go code.

Run from this folder: /usr/bin/python3 make_fixtures.py [path/to/fsdd/recordings]
Writes, for each clip: <name>_img.npy (112x112 uint8, row 0 = highest
frequency) and <name>_db.npy (the dB PSD of the first 8 segments, bins x 8,
DC first, float64).
"""
import os, sys, wave
import numpy as np

SIZE, NFFT, FS = 112, 223, 8000.0

def frame_rule(n):
    i = max(-(-n // SIZE) - 1, 1)
    while True:
        for j in range(i):
            if SIZE * i - (SIZE - 1) * j <= n < (SIZE + 1) * i - SIZE * j:
                return i, j
        i += 1

def greys_lut():
    cols = np.array([0xff, 0xf0, 0xd9, 0xbd, 0x96, 0x73, 0x52, 0x25, 0x00]) / 255.0
    N = 256
    x = np.linspace(0, 1, 9) * (N - 1)
    xind = (N - 1) * np.linspace(0, 1, N) ** 1.0
    ind = np.searchsorted(x, xind)[1:-1]
    d = (xind[1:-1] - x[ind - 1]) / (x[ind] - x[ind - 1])
    lut = np.concatenate([[cols[0]], d * (cols[ind] - cols[ind - 1]) + cols[ind - 1], [cols[-1]]])
    return (np.clip(lut, 0, 1) * 255).astype(np.uint8)

def spectrogram(x):
    i, j = frame_rule(len(x))
    step = i - j
    w = np.hanning(i)
    segs = np.stack([x[f * step: f * step + i] for f in range(SIZE)], axis=1)  # (i, 112)
    X = np.fft.rfft(segs * w[:, None], n=NFFT, axis=0)  # (112 bins, 112 frames)
    psd = np.abs(X) ** 2 / (FS * (w ** 2).sum())
    psd[1:] *= 2
    db = 10 * np.log10(psd)
    v = (db - db.min()) / (db.max() - db.min())
    xa = v * 256
    xa[xa == 256] = 255
    img = greys_lut()[xa.astype(int)]
    return db, np.flipud(img)

def save(name, x):
    db, img = spectrogram(np.asarray(x, dtype=np.float64))
    np.save(name + "_img.npy", np.ascontiguousarray(img, dtype=np.uint8))
    np.save(name + "_db.npy", np.ascontiguousarray(db[:, :8]))

# A synthetic clip both sides compute from the same formula.
n = np.arange(3000)
save("synth", np.sin(2 * np.pi * 440 * n / FS) + 0.3 * np.sin(2 * np.pi * 1234.5 * n / FS + 0.2) * (n / 3000.0))

# One real FSDD clip, read as 16-bit PCM / 32768.
rec = sys.argv[1] if len(sys.argv) > 1 else "../../../../shared/data/fsdd/recordings"
with wave.open(os.path.join(rec, "3_theo_7.wav")) as w:
    pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
save("fsdd_3_theo_7", pcm / 32768.0)
