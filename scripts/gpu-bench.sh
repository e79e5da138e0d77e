#!/usr/bin/env bash
# GPU speed benchmark, for a machine with CUDA and PyTorch but no Go.
#
# Here (with Go):  bash scripts/gpu-pack.sh   (fills build/gpu/, ~50 MB)
# There:           bash scripts/gpu-bench.sh  (carry build/gpu)
#
# It runs scripts/gpu-smoke.sh (shim build and CUDA checks), then times, in
# one run: PyTorch eager and compiled (torch_m2mixer.py), PyTorch's vmap
# ensemble (torch_ensemble.py), and m2mix seed batches of M2-Mixer_M
# (K = 1 and K = 10, with the CUDA graph, and K = 10 without it) on 55,000
# random AV-MNIST-shaped samples. Writes build/gpu-bench.md.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-55000}
bash scripts/gpu-smoke.sh 2>&1 | tee build/gpu-smoke.log || echo "gpu-smoke reported a failure (above); benchmarking anyway"
export M2MIX_SHIM=$PWD/build/libm2mix_torch.so
BENCH=../shared/bench
out=build/gpu-bench.md
m2mix() { # label, then env for the benchmark
	local label=$1
	shift
	env "$@" M2MIX_BENCH_DEVICE=cuda M2MIX_BENCH_N=$N build/model.test -test.run '^$' -test.bench 'SeedBatch' -test.benchtime 1x 2>build/bench-stderr.log |
		grep Benchmark | sed "s/^/| m2mix $label | /; s/$/ |/" || tail -5 build/bench-stderr.log
}
{
	echo "| what | figure |"
	echo "|---|---|"
	nvidia-smi --query-gpu=name --format=csv,noheader | sed 's/^/| GPU | /; s/$/ |/'
	for mode in eager compile; do
		python3 $BENCH/torch_m2mixer.py M "$N" cuda $mode | sed "s/^/| PyTorch $mode | /; s/$/ |/"
	done
	python3 $BENCH/torch_ensemble.py M "$N" 10 compile | sed 's/^/| PyTorch vmap ensemble K=10 | /; s/$/ |/'
	m2mix "K=1, CUDA graph" M2MIX_BENCH_K=1
	m2mix "K=10, CUDA graph" M2MIX_BENCH_K=10
	m2mix "K=10, plain steps" M2MIX_BENCH_K=10 M2MIX_BENCH_NOGRAPHS=1
} | tee $out
