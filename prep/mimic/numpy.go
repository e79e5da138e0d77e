package mimic

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"

	"github.com/nlpodyssey/gopickle/types"
)

// This file gives gopickle just enough of numpy to rebuild the arrays in
// an im.pk, without executing anything. numpy pickles an array in one of
// two ways:
//
//   - numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), b'b'), then
//     BUILD with the state (version, shape, dtype, is_fortran, rawdata) that
//     ndarray.__setstate__ takes (every protocol, and protocol 5 for
//     arrays that are not contiguous);
//   - numpy.core.numeric._frombuffer(buffer, dtype, shape, order) for
//     contiguous arrays under protocol 5, the buffer pickled in band as a
//     bytes or bytearray object.
//
// numpy 2 moved numpy.core to numpy._core; both names are accepted. A dtype
// is numpy.dtype(typestr, align, copy) followed by BUILD with a state
// tuple whose second item is the byte order. Under protocol 2, bytes are
// pickled as _codecs.encode(text, 'latin1').
//
// Problems with an array (an odd state, a string dtype) are recorded in it
// rather than failing the whole load, so that an error can name the key
// that holds the array, and arrays nobody asks for cannot get in the way.

func findClass(module, name string) (any, error) {
	switch module + "." + name {
	case "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct":
		return reconstructFunc{}, nil
	case "numpy.core.numeric._frombuffer", "numpy._core.numeric._frombuffer":
		return frombufferFunc{}, nil
	case "numpy.ndarray":
		return ndarrayClass{}, nil
	case "numpy.dtype":
		return dtypeClass{}, nil
	case "_codecs.encode":
		return codecsEncode{}, nil
	case "builtins.bytes", "__builtin__.bytes":
		return bytesClass{}, nil
	case "builtins.bytearray", "__builtin__.bytearray":
		return bytesClass{bytearray: true}, nil
	}
	// Anything else (numpy scalars, other objects) is kept as an inert
	// placeholder: harmless unless it sits under one of the keys we read.
	return &opaqueClass{name: module + "." + name}, nil
}

// ndarrayClass stands for numpy.ndarray when passed as an argument.
type ndarrayClass struct{}

// reconstructFunc is numpy's _reconstruct: an empty array awaiting its state.
type reconstructFunc struct{}

func (reconstructFunc) Call(args ...any) (any, error) {
	a := &ndarray{}
	if len(args) == 0 {
		a.err = fmt.Errorf("_reconstruct called without arguments")
	} else if c, ok := args[0].(*opaqueClass); ok {
		// numpy.matrix, numpy.ma.MaskedArray and the like carry extra state.
		a.err = fmt.Errorf("array subclass %s is not supported; store a plain numpy.ndarray", c.name)
	} else if _, ok := args[0].(ndarrayClass); !ok {
		a.err = fmt.Errorf("_reconstruct of %s, not numpy.ndarray", describe(args[0]))
	}
	return a, nil
}

// ndarray is a numpy array as the pickle describes it; its bytes are decoded
// only when the array is asked for.
type ndarray struct {
	shape   []int
	dtype   *dtype
	fortran bool
	data    []byte
	ready   bool  // state has been set
	err     error // why the array cannot be used
}

// PySetState is ndarray.__setstate__: (version, shape, dtype, is_fortran,
// rawdata), or the same without version.
func (a *ndarray) PySetState(state any) error {
	if a.err != nil {
		return nil
	}
	a.err = a.setState(state)
	return nil
}

func (a *ndarray) setState(state any) error {
	t, ok := state.(*types.Tuple)
	if !ok {
		return fmt.Errorf("array state is %s, not a tuple", describe(state))
	}
	items := []any(*t)
	switch len(items) {
	case 5:
		items = items[1:]
	case 4:
	default:
		return fmt.Errorf("array state has %d items, want 4 or 5", len(items))
	}
	shape, err := toShape(items[0])
	if err != nil {
		return err
	}
	dt, ok := items[1].(*dtype)
	if !ok {
		return fmt.Errorf("array dtype is %s, not a numpy.dtype", describe(items[1]))
	}
	fortran, err := toBool(items[2])
	if err != nil {
		return fmt.Errorf("array is_fortran: %w", err)
	}
	data, err := toBytes(items[3])
	if err != nil {
		if dt.err == nil && dt.kind == 'O' {
			return fmt.Errorf("non-numeric dtype object")
		}
		return fmt.Errorf("array data: %w", err)
	}
	a.shape, a.dtype, a.fortran, a.data, a.ready = shape, dt, fortran, data, true
	return nil
}

// frombufferFunc is numpy's _frombuffer(buffer, dtype, shape, order).
type frombufferFunc struct{}

func (frombufferFunc) Call(args ...any) (any, error) {
	a := &ndarray{}
	a.err = func() error {
		if len(args) != 4 {
			return fmt.Errorf("_frombuffer with %d arguments, want 4", len(args))
		}
		data, err := toBytes(args[0])
		if err != nil {
			return fmt.Errorf("array data: %w", err)
		}
		dt, ok := args[1].(*dtype)
		if !ok {
			return fmt.Errorf("array dtype is %s, not a numpy.dtype", describe(args[1]))
		}
		shape, err := toShape(args[2])
		if err != nil {
			return err
		}
		var order string
		switch o := args[3].(type) {
		case string:
			order = o
		case []byte:
			order = string(o)
		}
		switch order {
		case "C":
		case "F":
			a.fortran = true
		default:
			return fmt.Errorf("array order %s, want 'C' or 'F'", describe(args[3]))
		}
		a.shape, a.dtype, a.data, a.ready = shape, dt, data, true
		return nil
	}()
	return a, nil
}

// dtype is a numpy.dtype as far as numeric decoding needs it.
type dtype struct {
	typestr string // as pickled, e.g. "f8", "i4", "U5"
	kind    byte   // 'f', 'i', 'u', 'b', or another numpy kind
	size    int    // bytes per element
	order   byte   // '<', '>', '|' or '='
	err     error  // structured or sub-array dtypes
}

type dtypeClass struct{}

// Call is numpy.dtype(typestr, align, copy).
func (dtypeClass) Call(args ...any) (any, error) {
	d := &dtype{order: '='}
	if len(args) == 0 {
		d.err = fmt.Errorf("numpy.dtype called without a type string")
		return d, nil
	}
	var s string
	switch v := args[0].(type) {
	case string:
		s = v
	case []byte:
		s = string(v)
	default:
		d.err = fmt.Errorf("numpy.dtype of %s", describe(args[0]))
		return d, nil
	}
	d.typestr = s
	if len(s) < 2 {
		d.err = fmt.Errorf("dtype %q not understood", s)
		return d, nil
	}
	d.kind = s[0]
	size, err := strconv.Atoi(s[1:])
	if err != nil || size < 0 {
		// e.g. "M8[ns]": certainly not a plain number
		d.err = fmt.Errorf("non-numeric dtype %q", s)
		return d, nil
	}
	d.size = size
	return d, nil
}

// PySetState takes the dtype's state: (version, byteorder, subarray,
// names, fields, elsize, alignment, flags[, metadata]).
func (d *dtype) PySetState(state any) error {
	if d.err != nil {
		return nil
	}
	t, ok := state.(*types.Tuple)
	if !ok || len(*t) < 2 {
		d.err = fmt.Errorf("dtype %q has a state of %s, not a tuple", d.typestr, describe(state))
		return nil
	}
	items := []any(*t)
	var bo string
	switch v := items[1].(type) {
	case string:
		bo = v
	case []byte:
		bo = string(v)
	}
	if len(bo) != 1 || (bo[0] != '<' && bo[0] != '>' && bo[0] != '|' && bo[0] != '=') {
		d.err = fmt.Errorf("dtype %q has byte order %s", d.typestr, describe(items[1]))
		return nil
	}
	d.order = bo[0]
	if len(items) >= 5 && (items[2] != nil || items[3] != nil || items[4] != nil) {
		d.err = fmt.Errorf("non-numeric dtype: %q is structured or has a sub-array", d.typestr)
	}
	return nil
}

func (d *dtype) String() string {
	if d.order == '=' || d.order == '|' {
		return d.typestr
	}
	return string(d.order) + d.typestr
}

// decoder returns a function reading one element as float64, or an error
// for a dtype that does not hold plain real numbers.
func (d *dtype) decoder() (func([]byte) float64, error) {
	if d.err != nil {
		return nil, d.err
	}
	var bo binary.ByteOrder = binary.LittleEndian
	if d.order == '>' {
		bo = binary.BigEndian
	}
	// '=' (native) is taken as little-endian: numpy writes an explicit
	// order into pickles, and every machine m2mix targets is little-endian.
	switch {
	case d.kind == 'f' && d.size == 8:
		return func(b []byte) float64 { return math.Float64frombits(bo.Uint64(b)) }, nil
	case d.kind == 'f' && d.size == 4:
		return func(b []byte) float64 { return float64(math.Float32frombits(bo.Uint32(b))) }, nil
	case d.kind == 'f' && d.size == 2:
		return func(b []byte) float64 { return halfToFloat64(bo.Uint16(b)) }, nil
	case d.kind == 'i' && d.size == 8:
		return func(b []byte) float64 { return float64(int64(bo.Uint64(b))) }, nil
	case d.kind == 'i' && d.size == 4:
		return func(b []byte) float64 { return float64(int32(bo.Uint32(b))) }, nil
	case d.kind == 'i' && d.size == 2:
		return func(b []byte) float64 { return float64(int16(bo.Uint16(b))) }, nil
	case d.kind == 'i' && d.size == 1:
		return func(b []byte) float64 { return float64(int8(b[0])) }, nil
	case d.kind == 'u' && d.size == 8:
		return func(b []byte) float64 { return float64(bo.Uint64(b)) }, nil
	case d.kind == 'u' && d.size == 4:
		return func(b []byte) float64 { return float64(bo.Uint32(b)) }, nil
	case d.kind == 'u' && d.size == 2:
		return func(b []byte) float64 { return float64(bo.Uint16(b)) }, nil
	case (d.kind == 'u' || d.kind == 'b') && d.size == 1:
		return func(b []byte) float64 { return float64(b[0]) }, nil
	}
	return nil, fmt.Errorf("non-numeric or unsupported dtype %s (want float16/32/64, int, uint or bool)", d)
}

// halfToFloat64 decodes an IEEE 754 binary16 value.
func halfToFloat64(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	frac := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * math.Ldexp(frac, -24)
	case 0x1f:
		if frac != 0 {
			return math.NaN()
		}
		return sign * math.Inf(1)
	}
	return sign * math.Ldexp(1+frac/1024, exp-15)
}

// float64s decodes the array into row-major (C order) float64 values. The
// element count is checked against the bytes actually present before
// anything is allocated, so a hostile shape cannot force a huge allocation.
func (a *ndarray) float64s() ([]float64, error) {
	if a.err != nil {
		return nil, a.err
	}
	if !a.ready {
		return nil, fmt.Errorf("array was never given its state")
	}
	dec, err := a.dtype.decoder()
	if err != nil {
		return nil, err
	}
	count := 1
	for _, s := range a.shape {
		if s != 0 && count > len(a.data)/s {
			return nil, fmt.Errorf("shape %s needs more than the %d bytes present", shapeString(a.shape), len(a.data))
		}
		count *= s
	}
	if count*a.dtype.size != len(a.data) {
		return nil, fmt.Errorf("shape %s of %s needs %d bytes, the pickle holds %d", shapeString(a.shape), a.dtype, count*a.dtype.size, len(a.data))
	}
	out := make([]float64, count)
	sz := a.dtype.size
	if !a.fortran || len(a.shape) < 2 {
		for i := range out {
			out[i] = dec(a.data[i*sz:])
		}
		return out, nil
	}
	// Fortran order: the first index varies fastest in memory. Walk the
	// output in C order and keep the matching Fortran offset in step.
	nd := len(a.shape)
	fstride := make([]int, nd)
	fstride[0] = 1
	for k := 1; k < nd; k++ {
		fstride[k] = fstride[k-1] * a.shape[k-1]
	}
	idx := make([]int, nd)
	off := 0
	for i := range out {
		out[i] = dec(a.data[off*sz:])
		for k := nd - 1; k >= 0; k-- {
			idx[k]++
			off += fstride[k]
			if idx[k] < a.shape[k] {
				break
			}
			off -= fstride[k] * idx[k]
			idx[k] = 0
		}
	}
	return out, nil
}

func toShape(v any) ([]int, error) {
	t, ok := v.(*types.Tuple)
	if !ok {
		return nil, fmt.Errorf("array shape is %s, not a tuple", describe(v))
	}
	shape := make([]int, len(*t))
	for i, x := range *t {
		s, ok := x.(int)
		if !ok || s < 0 {
			return nil, fmt.Errorf("array shape has a bad dimension (%s)", describe(x))
		}
		shape[i] = s
	}
	return shape, nil
}

func toBool(v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case int: // Python 2 pickles write 0/1
		return x != 0, nil
	}
	return false, fmt.Errorf("%s, not a bool", describe(v))
}

// toBytes accepts the forms an array's raw data takes in a pickle.
func toBytes(v any) ([]byte, error) {
	switch x := v.(type) {
	case []byte:
		return x, nil
	case *types.ByteArray:
		return []byte(*x), nil
	case string:
		// A Python 2 str (BINSTRING): gopickle keeps its bytes verbatim.
		return []byte(x), nil
	}
	return nil, fmt.Errorf("%s, not bytes", describe(v))
}

// codecsEncode is _codecs.encode(text, 'latin1'), how protocol 2 carries
// bytes: each character of text is one byte.
type codecsEncode struct{}

func (codecsEncode) Call(args ...any) (any, error) {
	if len(args) != 2 {
		return nil, fmt.Errorf("_codecs.encode with %d arguments, want 2", len(args))
	}
	s, ok1 := args[0].(string)
	enc, ok2 := args[1].(string)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("_codecs.encode of %s, %s", describe(args[0]), describe(args[1]))
	}
	return latin1(s, enc)
}

func latin1(s, enc string) ([]byte, error) {
	switch enc {
	case "latin1", "latin-1", "iso-8859-1", "iso8859-1":
	default:
		return nil, fmt.Errorf("_codecs.encode with encoding %q, want latin1", enc)
	}
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xff {
			return nil, fmt.Errorf("_codecs.encode: character U+%04X is not latin1", r)
		}
		out = append(out, byte(r))
	}
	return out, nil
}

// bytesClass is builtins.bytes or bytearray called as a constructor:
// bytes() for an empty bytes object under protocol 2, bytearray(data) or
// bytearray(text, 'latin-1') under protocols 2 to 4.
type bytesClass struct{ bytearray bool }

func (c bytesClass) Call(args ...any) (any, error) {
	switch len(args) {
	case 0:
		return []byte{}, nil
	case 1:
		return toBytes(args[0])
	case 2:
		s, ok1 := args[0].(string)
		enc, ok2 := args[1].(string)
		if ok1 && ok2 {
			return latin1(s, enc)
		}
	}
	return nil, fmt.Errorf("bytes/bytearray constructor with %d arguments", len(args))
}

// opaqueClass is any other global; calling or instantiating it gives an
// opaque object that accepts and ignores state.
type opaqueClass struct{ name string }

func (c *opaqueClass) Call(args ...any) (any, error)  { return &opaque{class: c.name}, nil }
func (c *opaqueClass) PyNew(args ...any) (any, error) { return &opaque{class: c.name}, nil }

type opaque struct{ class string }

func (o *opaque) PySetState(any) error { return nil }
