package torch

/*
#include <stdlib.h>
#include "shim/m2t_api.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// Graph records sequences of GPU operations once each and replays each
// with one launch: the cure for work bound by kernel-launch overhead. From NewGraph
// to Close, the calling OS thread runs its CUDA work on the graph's own
// stream (callers lock the thread: runtime.LockOSThread).
//
// Between Begin and End, operations are recorded, not run; every tensor the
// replays read or write must outlive the graph, inputs change only by
// in-place copies into the same tensors, and nothing may copy values
// between host and device (such a copy fails: see ForbidHostTransfers).
// Replay runs the recorded work again on the current values.
type Graph struct {
	h C.m2t_graph
}

// GraphsAvailable reports whether the loaded shim was built with CUDA graphs.
func GraphsAvailable() bool {
	if _, err := Load(); err != nil {
		return false
	}
	var ok C.int
	return check(C.m2t_graphs_available(&ok)) == nil && ok != 0
}

// ForbidHostTransfers makes copies between host and device memory fail on
// the calling OS thread while on is true, as they must inside a CUDA graph
// capture: Begin sets it and End clears it. A CPU stand-in for a graph
// (tests) sets it too, so that a step reading values back fails there as
// well. Callers lock the goroutine to its thread.
func ForbidHostTransfers(on bool) error {
	if _, err := Load(); err != nil {
		return err
	}
	flag := C.int(0)
	if on {
		flag = 1
	}
	return wrapErr("forbid host transfers", C.m2t_forbid_host_transfers(flag))
}

// HostTransfers counts the copies between host and device memory that the
// process has asked libtorch for, on every thread: tensors made from host
// data, reads of values into host memory, and copies between a CPU tensor
// and a device tensor. Tests use it to show that a loop's transfers do not
// grow with its steps.
func HostTransfers() (int64, error) {
	if _, err := Load(); err != nil {
		return 0, err
	}
	var n C.int64_t
	err := wrapErr("host transfers", C.m2t_host_transfers(&n))
	return int64(n), err
}

// NewGraph prepares a graph on a CUDA device.
func NewGraph(device Device) (*Graph, error) {
	if _, err := Load(); err != nil {
		return nil, err
	}
	dev := C.CString(string(device))
	defer C.free(unsafe.Pointer(dev))
	g := &Graph{}
	if err := check(C.m2t_graph_new(dev, &g.h)); err != nil {
		return nil, fmt.Errorf("cuda graph: %w", err)
	}
	return g, nil
}

// Begin starts recording a new capture.
func (g *Graph) Begin() error { return wrapErr("cuda graph capture", C.m2t_graph_begin(g.h)) }

// End stops recording and returns the capture's index, for Replay; it
// fails when the capture was invalidated.
func (g *Graph) End() (int, error) {
	var id C.int
	err := wrapErr("cuda graph capture", C.m2t_graph_end(g.h, &id))
	return int(id), err
}

// Replay runs capture id's recorded work once more.
func (g *Graph) Replay(id int) error {
	return wrapErr("cuda graph replay", C.m2t_graph_replay(g.h, C.int(id)))
}

// Close waits for the device, frees the graph and restores the thread's stream.
func (g *Graph) Close() error {
	if g == nil || g.h == nil {
		return nil
	}
	err := wrapErr("cuda graph", C.m2t_graph_free(g.h))
	g.h = nil
	return err
}
