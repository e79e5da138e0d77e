// Package torch is m2mix's binding to libtorch: tensors, the operations the
// paper's models and the baselines need, autograd, libtorch's Adam, and
// FlatOptimizer (Adam, SGD, RMSprop with per-model clipping) for stacked models.
//
// The C++ side is a small shim (shim/m2t.cpp) built as a shared library,
// libm2mix_torch.so, and loaded at run time, so one Go binary built on a
// CPU-only machine runs on a GPU machine once the shim is rebuilt there
// against that machine's libtorch (`make shim LIBTORCH=...`).
//
// Memory is freed deterministically: every tensor belongs to a Scope, and
// closing the scope frees them all. Errors are sticky per scope: the first
// failing operation (a libtorch exception, a nil or freed tensor) records its
// message, later operations in that scope do nothing, and Scope.Err reports it.
package torch

/*
#cgo CFLAGS: -I${SRCDIR}/shim -O2
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "shim/m2t_api.h"
char *m2t_load(const char *path);
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"
)

// ShimEnv names the environment variable that points at the shim library.
const ShimEnv = "M2MIX_SHIM"

// ShimName is the shim's file name.
const ShimName = "libm2mix_torch.so"

// loaded is the process-wide load result: the shim is a process resource
// (one dlopen per process), so this is the one place package state is kept.
var loaded struct {
	once sync.Once
	path string
	err  error
}

// Load finds and opens the shim once per process and returns its path.
// Search order: $M2MIX_SHIM; next to the executable (and ../lib); the build/
// folder of the source tree (for `go test`).
func Load() (string, error) {
	loaded.once.Do(func() {
		shortenOpenMPSpin()
		var tried []string
		for _, p := range shimCandidates() {
			if _, err := os.Stat(p); err != nil {
				tried = append(tried, p)
				continue
			}
			cp := C.CString(p)
			msg := C.m2t_load(cp)
			C.free(unsafe.Pointer(cp))
			if msg != nil {
				loaded.err = fmt.Errorf("load libtorch shim: %s", C.GoString(msg))
				C.free(unsafe.Pointer(msg))
				return
			}
			loaded.path = p
			return
		}
		loaded.err = fmt.Errorf("libtorch shim %s not found (build it with `make shim`, or set %s); looked in %v", ShimName, ShimEnv, tried)
	})
	return loaded.path, loaded.err
}

// shortenOpenMPSpin caps how long libgomp's idle workers spin before they
// sleep, unless the user chose (GOMP_SPINCOUNT or OMP_WAIT_POLICY). Training
// pins its goroutine to one OS thread, and Go then wakes other threads
// around long cgo calls; with libgomp's default spin (300,000 rounds) the
// spinning workers and those threads fight over the cores. On the 2-core CI
// machine a K = 10 seed batch took 1,130 us per sample per model with the
// default, 680-750 with 10,000 or a passive wait (docs/BENCHMARKS.md).
// libgomp reads these when the shim's dlopen loads it, hence here.
func shortenOpenMPSpin() {
	if os.Getenv("GOMP_SPINCOUNT") == "" && os.Getenv("OMP_WAIT_POLICY") == "" {
		os.Setenv("GOMP_SPINCOUNT", "10000")
	}
}

func shimCandidates() []string {
	var c []string
	if p := os.Getenv(ShimEnv); p != "" {
		return []string{p}
	}
	if exe, err := os.Executable(); err == nil {
		dir := filepath.Dir(exe)
		c = append(c, filepath.Join(dir, ShimName), filepath.Join(dir, "..", "lib", ShimName))
	}
	// Walk up from the working directory to the module root's build/ folder,
	// which is where `make shim` puts the library (go test runs in a package dir).
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				c = append(c, filepath.Join(d, "build", ShimName))
				break
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	return c
}

// check turns a shim error into a Go error (and frees the message).
func check(e C.m2t_err) error {
	if e == nil {
		return nil
	}
	msg := C.GoString(e)
	C.free(unsafe.Pointer(e))
	return errors.New(msg)
}

// Info describes the libtorch the shim was built against.
type Info struct {
	ShimPath    string
	Version     string // e.g. "1.13.0"
	Parallel    string // at::get_parallel_info(): threads, OpenMP, MKL/BLAS
	Threads     int
	CUDADevices int
	LiveTensors int64
	BLAS        []string // BLAS/LAPACK libraries mapped into the process
}

// GetInfo loads the shim and reports what it runs on.
func GetInfo() (Info, error) {
	path, err := Load()
	if err != nil {
		return Info{}, err
	}
	buf := make([]byte, 8192)
	if err := check(C.m2t_info((*C.char)(unsafe.Pointer(&buf[0])), C.int64_t(len(buf)))); err != nil {
		return Info{}, err
	}
	s := C.GoString((*C.char)(unsafe.Pointer(&buf[0])))
	info := Info{ShimPath: path}
	first, rest, _ := strings.Cut(s, "\n")
	info.Version, info.Parallel = strings.TrimPrefix(first, "libtorch "), rest
	var n C.int64_t
	if err := check(C.m2t_cuda_device_count(&n)); err != nil {
		return info, err
	}
	info.CUDADevices = int(n)
	if err := check(C.m2t_get_num_threads(&n)); err != nil {
		return info, err
	}
	info.Threads = int(n)
	info.LiveTensors, err = LiveTensors()
	info.BLAS = mappedBLAS()
	return info, err
}

// mappedBLAS lists the BLAS libraries the dynamic loader actually brought in
// (Debian picks one through alternatives; OpenBLAS is ~15x faster than the
// reference BLAS), read from /proc/self/maps.
func mappedBLAS() []string {
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		p := f[len(f)-1]
		base := filepath.Base(p)
		if (strings.Contains(base, "blas") || strings.Contains(base, "lapack") || strings.Contains(base, "mkl")) && !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// LiveTensors counts tensor handles not yet freed, process-wide.
func LiveTensors() (int64, error) {
	if _, err := Load(); err != nil {
		return 0, err
	}
	var n C.int64_t
	err := check(C.m2t_live_tensors(&n))
	return int64(n), err
}

// SetThreads sets libtorch's intra-op thread count.
func SetThreads(n int) error {
	if _, err := Load(); err != nil {
		return err
	}
	return check(C.m2t_set_num_threads(C.int64_t(n)))
}

// ManualSeed seeds libtorch's default generators (CPU and every CUDA device);
// dropout draws from them.
func ManualSeed(seed uint64) error {
	if _, err := Load(); err != nil {
		return err
	}
	return check(C.m2t_manual_seed(C.uint64_t(seed)))
}
