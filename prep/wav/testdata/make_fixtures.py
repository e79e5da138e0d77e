#!/usr/bin/python3
"""Writes tiny WAV fixtures for prep/wav's tests with Python's wave module
(run from this folder). mono16.wav holds samples [0, 1000, -1000, 32767, -32768]
at 8000 Hz; the others are formats the reader must refuse."""
import struct, wave

def write(name, channels, width, rate, frames):
    with wave.open(name, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(frames)

write("mono16.wav", 1, 2, 8000, struct.pack("<5h", 0, 1000, -1000, 32767, -32768))
write("stereo16.wav", 2, 2, 8000, struct.pack("<4h", 1, 2, 3, 4))
write("mono8.wav", 1, 1, 8000, bytes([128, 129, 127]))
write("mono24.wav", 1, 3, 8000, bytes(9))

# A file with an extra LIST chunk (odd-sized, so padded) before the data,
# as some recorders write: the reader must skip it.
fmt = struct.pack("<HHIIHH", 1, 1, 44100, 88200, 2, 16)
lst = b"LIST" + struct.pack("<I", 5) + b"INFOx" + b"\x00"
data = b"data" + struct.pack("<I", 4) + struct.pack("<2h", -5, 5)
body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + lst + data
open("list_chunk.wav", "wb").write(b"RIFF" + struct.pack("<I", len(body)) + body)
# IEEE float (format tag 3)
ffmt = struct.pack("<HHIIHH", 3, 1, 8000, 32000, 4, 32)
body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + ffmt + b"data" + struct.pack("<I", 4) + struct.pack("<f", 0.5)
open("float32.wav", "wb").write(b"RIFF" + struct.pack("<I", len(body)) + body)
