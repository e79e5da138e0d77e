#!/usr/bin/env bash
# Prepares build/gpu/, what travels to a GPU machine that has CUDA and
# PyTorch but no Go and no internet (the device tool carries at most 64 MiB):
# the stripped, gzipped m2mix binary and test binaries (~14 MB), and
# AV-MNIST's inputs pack (~36 MB: MNIST, the four FSDD speakers, the noise
# resampled to 8 kHz; see m2mix pack). Run it here, then carry build/gpu with
# scripts/gpu-smoke.sh, gpu-bench.sh or gpu-paper.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-data}
make build
mkdir -p build/gpu
go test -c -o build/model.test ./model
go test -c -o build/torch.test ./torch
for b in m2mix model.test torch.test; do
	strip -o build/gpu/$b build/$b
	gzip -9 -f build/gpu/$b
done
if [ ! -f build/gpu/avmnist-inputs.pack ]; then
	build/m2mix fetch --data "$DATA" $( [ -d ../shared/data ] && echo --mirror ../shared/data )
	build/m2mix pack --data "$DATA" --out build/gpu/avmnist-inputs.pack
fi
du -ch build/gpu/* | tail -1
