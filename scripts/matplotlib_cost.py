"""What one matplotlib figure per sample costs: the way the Python AV-MNIST
generator renders each spectrogram (specgram with the 'Greys' map into a
112x112-pixel figure, saved and read back), timed on real FSDD clips.
usage: /usr/bin/python3 scripts/matplotlib_cost.py ../shared/data/fsdd/recordings [N]"""
import glob, io, math, sys, time, wave
import numpy as np
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

def frame_rule(n):
    # segment length i and overlap j giving exactly 112 frames (reproduction.md §5)
    i = math.ceil(n / 112) - 1
    while True:
        i += 1
        for j in range(i):
            if 112 * i - 111 * j <= n < 113 * i - 112 * j:
                return i, j

def main():
    files = sorted(glob.glob(sys.argv[1] + "/*.wav"))[: int(sys.argv[2]) if len(sys.argv) > 2 else 200]
    clips = []
    for f in files:
        with wave.open(f) as w:
            clips.append(np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16) / 32768.0)
    t0 = time.perf_counter()
    for x in clips:
        i, j = frame_rule(len(x))
        fig = plt.figure(figsize=(1.12, 1.12), dpi=100)
        ax = fig.add_axes([0, 0, 1, 1])
        ax.axis("off")
        ax.specgram(x, NFFT=i, Fs=8000, noverlap=j, cmap="Greys", pad_to=223)
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
        buf.seek(0)
        plt.imread(buf)
    dt = time.perf_counter() - t0
    print(f"matplotlib {matplotlib.__version__}: {len(clips)} spectrograms in {dt:.2f} s = {dt / len(clips) * 1e3:.1f} ms each; "
          f"70,000 samples at that rate: {dt / len(clips) * 70000:.0f} s of one core")

main()
