#!/usr/bin/env bash
# `make bench`: each m2mix figure beside its reference, measured in the same
# run on the same machine. Paste the output into docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-3200}
echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%F)"
echo "## binding: one tiny op and a 2048x2048 matmul"
g++ -std=c++17 -O2 -o build/dispatch torch/bench/dispatch.cpp -I/usr/include/torch/csrc/api/include \
	-Wl,--no-as-needed -ltorch -ltorch_cpu -lc10
build/dispatch
OMP_NUM_THREADS=2 /usr/bin/python3 torch/bench/dispatch.py
go test -run '^$' -bench 'TinyAdd' -benchtime 1000000x ./torch/ | grep Benchmark
go test -run '^$' -bench 'MatMul2048' -benchtime 10x ./torch/ | grep Benchmark
echo "## training: M2-Mixer_M, batch 32, $N samples, one epoch"
OMP_NUM_THREADS=2 /usr/bin/python3 ../shared/bench/torch_m2mixer.py M "$N" cpu
M2MIX_BENCH_N=$N go test -run '^$' -bench '^BenchmarkTrainEpoch$' -benchtime 1x ./model/ | grep Benchmark
echo "## seed-batched training: K=10 M2-Mixer_M models in lockstep, $N samples"
M2MIX_BENCH_N=$N M2MIX_BENCH_K=10 go test -run '^$' -bench 'TrainEpochSeedBatch' -benchtime 1x ./model/ | grep Benchmark
echo "## MultiBench's baselines: one training epoch, PyTorch eager (the cross-check's reference modules) beside m2mix"
for c in late_fusion lrtf mi_matrix refnet cca mimic_late_fusion mimic_lrtf mimic_mi_matrix; do
	n=${BASELINE_N:-1600}
	(cd model/testdata && /usr/bin/python3 bench_multibench.py "$c" "$n")
	M2MIX_BENCH_CONFIG=$c M2MIX_BENCH_N=$n go test -run '^$' -bench '^BenchmarkTrainEpoch$' -benchtime 1x ./model/ | grep Benchmark
done
