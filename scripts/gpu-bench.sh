#!/usr/bin/env bash
# GPU speed benchmark, for a machine with CUDA and PyTorch but no Go.
#
# Here (with Go), build what travels (well under the 64 MiB limit):
#   make build && go test -c -o build/model.test ./model && go test -c -o build/torch.test ./torch
#   strip build/m2mix build/model.test build/torch.test
# There:  bash scripts/gpu-bench.sh   (carry build/ with the tree)
#
# It rebuilds the shim against the machine's PyTorch, then times, in one run:
# PyTorch eager and compiled (torch_m2mixer.py), PyTorch's vmap ensemble
# (torch_ensemble.py), and m2mix's single-model and K=10 seed-batched epochs
# of M2-Mixer_M on 55,000 random AV-MNIST-shaped samples. Writes
# build/gpu-bench.md.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-55000}
bash scripts/gpu-smoke.sh >build/gpu-smoke.log 2>&1 || { cat build/gpu-smoke.log; exit 1; }
export M2MIX_SHIM=$PWD/build/libm2mix_torch.so
BENCH=../shared/bench
out=build/gpu-bench.md
{
	echo "| what | figure |"
	echo "|---|---|"
	nvidia-smi --query-gpu=name --format=csv,noheader | sed 's/^/| GPU | /; s/$/ |/'
	for mode in eager compile; do
		python3 $BENCH/torch_m2mixer.py M "$N" cuda $mode | sed "s/^/| PyTorch $mode | /; s/$/ |/"
	done
	python3 $BENCH/torch_ensemble.py M "$N" 10 compile | sed 's/^/| PyTorch vmap ensemble K=10 | /; s/$/ |/'
	M2MIX_BENCH_DEVICE=cuda M2MIX_BENCH_N=$N build/model.test -test.run '^$' -test.bench '^BenchmarkTrainEpoch$' -test.benchtime 1x |
		grep Benchmark | sed 's/^/| m2mix single model | /; s/$/ |/'
	M2MIX_BENCH_DEVICE=cuda M2MIX_BENCH_N=$N M2MIX_BENCH_K=10 build/model.test -test.run '^$' -test.bench 'SeedBatch' -test.benchtime 1x |
		grep Benchmark | sed 's/^/| m2mix seed batch K=10 | /; s/$/ |/'
} | tee $out
