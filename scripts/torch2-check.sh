#!/usr/bin/env bash
# Checks the shim against PyTorch 2.x without a GPU: the GPU machines run a
# PyTorch 2.x wheel, while this project's CPU machines (Debian 12) have
# libtorch 1.13. Needs root, debootstrap and Debian's mirror; about 7 GB and
# 10 minutes. `make check-torch2` runs it.
#
#  1. A Debian 13 root (debootstrap, kept in $ROOT for later runs) with
#     Debian's CUDA build of libtorch 2.6 (libtorch-cuda-dev), the CUDA
#     runtime's headers (nvidia-cuda-dev) and PyTorch 2.6 for Python.
#     cuDNN is not redistributable: its Debian package downloads it from
#     NVIDIA at install time, which these offline machines cannot do. A
#     stand-in library with the same symbols (each returning an error) lets
#     libtorch_cuda load; nothing here calls it, as no GPU is present.
#  2. The shim built there by the Makefile (Debian's CUDA libtorch: linked
#     with libtorch_cuda, CUDA graphs compiled in), and every Go test run
#     against it on the CPU, the PyTorch comparisons against PyTorch 2.6.
#     The CUDA tests skip: there is no device.
#  3. scripts/gpu-shim.sh, the GPU machines' build, against that PyTorch
#     linked into the layout of a pip wheel; the torch package's tests on it.
#  4. The shim compiled (syntax and types, not linked) against libtorch
#     2.14's headers from Debian unstable, in C++20 as 2.14 requires.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
ROOT=${ROOT:-/var/tmp/m2mix-trixie}
# The Debian mirror: DEBIAN_MIRROR, else the one this machine's apt uses.
MIRROR_URL=$(bash scripts/debian-mirror.sh)
GOROOT_HOST=$(go env GOROOT)
GOMODCACHE_HOST=$(go env GOMODCACHE)

if [ ! -x "$ROOT/usr/bin/apt-get" ]; then
	echo "== debootstrap Debian 13 into $ROOT"
	debootstrap --variant=minbase --components=main,contrib,non-free trixie "$ROOT" "$MIRROR_URL" >/dev/null
	echo "deb $MIRROR_URL trixie main contrib non-free" >"$ROOT/etc/apt/sources.list"
fi
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"

mounts=()
bind() { mkdir -p "$ROOT$2"; mount --bind "$1" "$ROOT$2"; mounts+=("$ROOT$2"); }
cleanup() { for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount "${mounts[i]}" || true; done; }
trap cleanup EXIT
bind /proc /proc
bind /dev /dev
bind "$REPO" /m2mix
# The raw-data mirror beside the checkout, which the end-to-end tests read as ../shared.
[ -d "$REPO/../shared" ] && bind "$(cd "$REPO/../shared" && pwd)" /shared
bind "$GOROOT_HOST" /usr/local/go
bind "$GOMODCACHE_HOST" /gomodcache
in_root() { chroot "$ROOT" env PATH=/usr/local/go/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
	GOMODCACHE=/gomodcache GOCACHE=/var/cache/m2mix-go GOFLAGS=-buildvcs=false GOTOOLCHAIN=local \
	DEBIAN_FRONTEND=noninteractive bash -euo pipefail -c "$1"; }

echo "== libtorch-cuda-dev 2.6, CUDA headers, PyTorch 2.6"
in_root '
if ! dpkg -s python3-torch-cuda >/dev/null 2>&1 || ! dpkg -s libtorch-cuda-dev >/dev/null 2>&1; then
	apt-get update -qq
	# nvidia-cudnn fetches cuDNN from NVIDIA in its postinst: let it fail, then
	# mark it done and let the stand-in below take its place.
	apt-get install -y -qq --no-install-recommends g++ make libtorch-cuda-dev nvidia-cuda-dev \
		python3-torch-cuda python3-numpy libopenblas0-pthread >/tmp/apt.log 2>&1 || true
	printf "#!/bin/sh\nexit 0\n" >/var/lib/dpkg/info/nvidia-cudnn.postinst
	apt-get install -y -qq -f >>/tmp/apt.log 2>&1 || { tail -20 /tmp/apt.log; exit 1; }
fi
lib=/usr/lib/x86_64-linux-gnu
if [ ! -e $lib/libcudnn.so.9 ]; then
	syms=$(for l in $lib/*.so*; do nm -D --undefined-only "$l" 2>/dev/null | awk "/@libcudnn/{sub(/@.*/,\"\",\$2); print \$2}"; done | sort -u)
	mkdir -p /opt/cudnn-standin && cd /opt/cudnn-standin
	{ echo "/* cuDNN stand-in: lets libtorch_cuda load on a machine without a GPU */"
	  for s in $syms; do echo "int $s(void) { return 1; }"; done; } >standin.c
	echo "libcudnn.so.9 { global: *; };" >version.map
	gcc -shared -fPIC -o $lib/libcudnn.so.9 -Wl,-soname,libcudnn.so.9 -Wl,--version-script=version.map standin.c
	ldconfig
fi
python3 -c "import torch; print(\"PyTorch\", torch.__version__)"
'

echo "== shim against libtorch 2.6 (CUDA build) and every Go test on the CPU"
in_root '
cd /m2mix
make -B shim BUILD=build/torch2 >/dev/null
export M2MIX_SHIM=/m2mix/build/torch2/libm2mix_torch.so
go build -o build/torch2/m2mix ./cmd/m2mix
env=$(build/torch2/m2mix env)
printf "%s\n" "$env" | sed -n 1,4p
[[ $env == *"cuda graphs:   built in"* ]] || { echo "the shim was built without CUDA graphs"; exit 1; }
go test -count=1 -timeout 30m ./...
'

echo "== scripts/gpu-shim.sh against a PyTorch laid out as a wheel (torch/include, torch/lib)"
in_root '
# Debian splits PyTorch: its torch/ has include/ but the libraries live in
# /usr/lib. Linking them into torch/lib gives the layout of a pip wheel,
# which is what the GPU machines have.
torch=$(python3 -c "import torch,os;print(os.path.dirname(torch.__file__))")
for l in libtorch libtorch_cpu libc10 libtorch_cuda libc10_cuda; do
	ln -sf /usr/lib/x86_64-linux-gnu/$l.so "$torch/lib/$l.so"
done
cd /m2mix
CUDA_HOME=/usr BUILD=build/torch2-wheel bash scripts/gpu-shim.sh >/dev/null
env=$(M2MIX_SHIM=/m2mix/build/torch2-wheel/libm2mix_torch.so build/torch2/m2mix env)
printf "%s\n" "$env" | sed -n 1,4p
[[ $env == *"cuda graphs:   built in"* ]] || { echo "gpu-shim.sh built the shim without CUDA graphs"; exit 1; }
M2MIX_SHIM=/m2mix/build/torch2-wheel/libm2mix_torch.so go test -count=1 ./torch/
'

echo "== shim compiled against libtorch 2.14 headers (Debian unstable), C++20"
work=$ROOT/var/tmp/torch-unstable
rm -rf "$work" && mkdir -p "$work/extra/c10/cuda/impl"
curl -fsS -o "$work/Packages.xz" "$MIRROR_URL/dists/sid/main/binary-amd64/Packages.xz"
url=$(xz -dc "$work/Packages.xz" | awk '/^Package: libtorch-dev$/{p=1} p&&/^Filename:/{print $2; p=0}')
[ -n "$url" ] || { echo "no libtorch-dev in Debian unstable"; exit 1; }
curl -fsS -o "$work/dev.deb" "$MIRROR_URL/$url"
dpkg-deb -x "$work/dev.deb" "$work/x"
# The CPU package lacks the CUDA build's generated macro header; 2.6's serves.
cp "$ROOT/usr/include/c10/cuda/impl/cuda_cmake_macros.h" "$work/extra/c10/cuda/impl/"
in_root '
cd /var/tmp/torch-unstable
inc=x/usr/include
grep -h "define TORCH_VERSION_M" $(find $inc -name version.h -path "*torch*" | head -1)
g++ -std=c++20 -fsyntax-only /m2mix/torch/shim/m2t.cpp -I$inc -I$inc/torch/csrc/api/include \
	-Iextra -DM2T_CUDA_GRAPHS -I/usr/include
echo "compiles, with CUDA graphs"
'
echo "torch2-check: all passed"
