#!/usr/bin/env bash
# GPU smoke test, for a machine with CUDA and PyTorch but no Go.
#
# Here (with Go):   make build && go test -c -o build/torch.test ./torch
# There:            bash scripts/gpu-smoke.sh
#
# It rebuilds only the shim against the machine's PyTorch (the carried Go
# binaries load it at run time), prints `m2mix env`, and runs the binding's
# gradient checks on CUDA in float64 against finite differences.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH=$($PY -c 'import torch,os;print(os.path.dirname(torch.__file__))')
ABI=$($PY -c 'import torch;print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')
echo "PyTorch at $TORCH (C++11 ABI $ABI)"
# PyTorch 2.x headers may need C++20 on newer releases; try 17 first.
make -B shim LIBTORCH="$TORCH" TORCH_ABI="$ABI" CXXSTD=c++17 || make -B shim LIBTORCH="$TORCH" TORCH_ABI="$ABI" CXXSTD=c++20
export M2MIX_SHIM=$PWD/build/libm2mix_torch.so
build/m2mix env
M2MIX_TEST_DEVICE=cuda build/torch.test -test.run 'TestGradientsCUDA|TestForwardValues|TestErrors' -test.v 2>&1 | tail -40
