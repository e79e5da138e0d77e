#!/usr/bin/env bash
# GPU smoke test, for a machine with CUDA and PyTorch but no Go.
#
# Here (with Go):   bash scripts/gpu-pack.sh    (fills build/gpu/, ~50 MB)
# There:            bash scripts/gpu-smoke.sh   (carry build/gpu)
#
# It unpacks the carried binaries, builds the shim against the machine's
# PyTorch (scripts/gpu-shim.sh), prints `m2mix env`, and runs on CUDA: the
# binding's float64 gradient checks against finite differences, the CUDA
# graph, keyed-dropout and Adam checks, and a seed batch trained with and
# without the graph.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/gpu-unpack.sh
bash scripts/gpu-shim.sh
export M2MIX_SHIM=$PWD/build/libm2mix_torch.so M2MIX_TEST_DEVICE=cuda
build/m2mix env
build/torch.test -test.run 'CUDA|ForwardValues|Errors' -test.v 2>&1 | grep -E '^(--- |PASS|FAIL|ok|panic)|_test.go' | tail -60
build/model.test -test.run 'CUDAGraph' -test.v 2>&1 | grep -E '^(--- |PASS|FAIL|ok|panic)|_test.go' | tail -20
