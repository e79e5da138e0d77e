// Package mimictest makes synthetic MIMIC-III im.pk files for tests and
// benchmarks.
//
// The real im.pk is credentialed, and one of its real size (32,616
// samples, ~80 MB) is too big to commit, so tests that need a full-size
// file write one here. The pickle has the structure numpy itself writes
// under protocol 3 (numpy.core.multiarray._reconstruct, then BUILD with
// the ndarray state), which the tests check by loading it with numpy when
// a python3 with numpy is available.
package mimictest

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/m2mix/m2mix/prep/mimic"
)

// RealN is the number of samples in MultiBench's im.pk.
const RealN = 32616

// Synthetic returns n samples of deterministic pseudo-random data with
// im.pk's shapes: each time-series and static feature has its own mean and
// spread, labels have 6 columns with a few positives, and a handful of
// values are NaN or +-Inf so cleaning has something to do.
func Synthetic(n int, seed uint64) *mimic.Arrays {
	rng := rand.New(rand.NewPCG(seed, 0x6d696d6963))
	a := &mimic.Arrays{
		N:          n,
		TimeSeries: make([]float64, n*mimic.Hours*mimic.TimeFeatures),
		Static:     make([]float64, n*mimic.StaticFeatures),
		Labels:     make([]float64, n*6),
		LabelCols:  6,
	}
	for i := range a.TimeSeries {
		f := i % mimic.TimeFeatures
		a.TimeSeries[i] = float64(10*f) + float64(f+1)*rng.NormFloat64()
	}
	for i := range a.Static {
		f := i % mimic.StaticFeatures
		a.Static[i] = float64(f*f) - 3 + float64(f+2)*rng.NormFloat64()
	}
	for i := range a.Labels {
		if rng.IntN(8) == 0 {
			a.Labels[i] = 1
		}
	}
	bad := []float64{math.NaN(), math.Inf(1), math.Inf(-1)}
	for k := 0; k < n/500; k++ {
		a.TimeSeries[rng.IntN(len(a.TimeSeries))] = bad[k%3]
		a.Static[rng.IntN(len(a.Static))] = bad[(k+1)%3]
	}
	return a
}

// WritePickleFile writes a as an im.pk at path.
func WritePickleFile(path string, a *mimic.Arrays) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if err := WritePickle(w, a); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// WritePickle writes a as a protocol-3 pickle of a dict of float64 numpy
// arrays (ep_tdata, adm_features_all, adm_labels_all, and y_icd9 when set).
func WritePickle(w io.Writer, a *mimic.Arrays) error {
	p := &pw{w: w}
	p.raw(0x80, 3)
	p.raw('}', '(') // EMPTY_DICT, MARK
	p.array(mimic.TimeSeriesKey, a.TimeSeries, a.N, mimic.Hours, mimic.TimeFeatures)
	p.array(mimic.StaticKey, a.Static, a.N, mimic.StaticFeatures)
	p.array(mimic.LabelsKey, a.Labels, a.N, a.LabelCols)
	if a.ICD9 != nil {
		p.array(mimic.ICD9Key, a.ICD9, a.N, mimic.ICD9Cols)
	}
	p.raw('u', '.') // SETITEMS, STOP
	return p.err
}

type pw struct {
	w   io.Writer
	err error
}

func (p *pw) raw(b ...byte) {
	if p.err == nil {
		_, p.err = p.w.Write(b)
	}
}

func (p *pw) u32(op byte, s []byte) {
	var h [5]byte
	h[0] = op
	binary.LittleEndian.PutUint32(h[1:], uint32(len(s)))
	p.raw(h[:]...)
	p.raw(s...)
}

func (p *pw) str(s string) { p.u32('X', []byte(s)) } // BINUNICODE

func (p *pw) int(v int) {
	var h [5]byte
	h[0] = 'J' // BININT
	binary.LittleEndian.PutUint32(h[1:], uint32(int32(v)))
	p.raw(h[:]...)
}

// array writes key, then _reconstruct(ndarray, (0,), b'b') BUILD
// (1, shape, dtype('f8'), False, data) as numpy's ndarray.__reduce__ does.
func (p *pw) array(key string, vals []float64, shape ...int) {
	p.str(key)
	p.raw([]byte("cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n")...)
	p.raw('K', 0, 0x85)           // (0,)
	p.raw('C', 1, 'b', 0x87, 'R') // b'b', TUPLE3, REDUCE
	p.raw('(')
	p.raw('K', 1)
	p.raw('(')
	for _, s := range shape {
		p.int(s)
	}
	p.raw('t')
	p.raw([]byte("cnumpy\ndtype\n")...)
	p.str("f8")
	p.raw(0x89, 0x88, 0x87, 'R') // False, True, TUPLE3, REDUCE
	p.raw('(', 'K', 3)
	p.str("<")
	p.raw('N', 'N', 'N')
	p.int(-1)
	p.int(-1)
	p.raw('K', 0, 't', 'b') // flags 0, TUPLE, BUILD
	p.raw(0x89)             // is_fortran False
	data := make([]byte, 8*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint64(data[8*i:], math.Float64bits(v))
	}
	p.u32('B', data) // BINBYTES
	p.raw('t', 'b')  // TUPLE, BUILD
}
