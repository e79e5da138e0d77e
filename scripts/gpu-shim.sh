#!/usr/bin/env bash
# Builds the libtorch shim against this machine's PyTorch (a CUDA wheel), with
# CUDA graphs when the CUDA runtime's headers can be found: the toolkit's, or
# those of PyTorch's nvidia-* wheels. Used by gpu-smoke.sh and gpu-paper.sh;
# a machine without Go runs the carried Go binaries against it. BUILD names
# another output folder than build/.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH=$($PY -c 'import torch,os;print(os.path.dirname(torch.__file__))')
ABI=$($PY -c 'import torch;print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')
echo "PyTorch at $TORCH (C++11 ABI $ABI)"
CUDA_INC=""
for d in ${CUDA_HOME:-} /usr/local/cuda; do
	[ -n "$d" ] && [ -f "$d/include/cuda_runtime_api.h" ] && { CUDA_INC="$d/include"; break; }
done
if [ -z "$CUDA_INC" ]; then
	CUDA_INC=$($PY -c 'import glob,os,nvidia; print(" ".join(sorted(d for r in nvidia.__path__ for d in glob.glob(os.path.join(r,"*","include")))))' 2>/dev/null || true)
fi
echo "CUDA headers: ${CUDA_INC:-none found}"
build() { make -B shim BUILD="${BUILD:-build}" LIBTORCH="$TORCH" TORCH_ABI="$ABI" CUDA_INCLUDE="$CUDA_INC" "$@"; }
# PyTorch 2.x headers may need C++20 on newer releases; try 17 first. If the
# graph code does not compile, build without it and say so loudly.
build CXXSTD=c++17 || build CXXSTD=c++20 || {
	echo "WARNING: the shim does not compile with CUDA graphs here; building it without them"
	build CXXSTD=c++17 GRAPHS=0 || build CXXSTD=c++20 GRAPHS=0
}
