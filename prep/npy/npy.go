// Package npy reads and writes NumPy's .npy array files.
//
// It exists for two callers: the importer of the public AV-MNIST files
// (MultiBench ships them as .npy) and stages that hand arrays to Python tools.
// Only what those files need is supported: format versions 1.0, 2.0 and 3.0,
// C (row-major) order, and the element types float32, float64, uint8 and
// int64 in either byte order. Anything else is refused with an error that
// names the file and the problem, and no input can make the reader allocate
// more than the size of the file it reads.
package npy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/m2mix/m2mix/artifact"
)

// Kind names the element type of an array.
type Kind int

// The element types this package understands.
const (
	Float32 Kind = iota + 1
	Float64
	Uint8
	Int64
)

func (k Kind) String() string {
	switch k {
	case Float32:
		return "float32"
	case Float64:
		return "float64"
	case Uint8:
		return "uint8"
	case Int64:
		return "int64"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

func (k Kind) size() int {
	switch k {
	case Float32:
		return 4
	case Float64, Int64:
		return 8
	}
	return 1
}

// Array is a decoded .npy array. Exactly the slice matching Kind is set and
// holds the product of Shape values in C order.
type Array struct {
	Kind    Kind
	Shape   []int
	Float32 []float32
	Float64 []float64
	Uint8   []uint8
	Int64   []int64
}

// Len is the number of elements (the product of Shape; 1 for a 0-d array).
func (a *Array) Len() int {
	n := 1
	for _, d := range a.Shape {
		n *= d
	}
	return n
}

// AsFloat64 returns the values converted to float64 (a copy unless the array
// already is float64).
func (a *Array) AsFloat64() []float64 {
	switch a.Kind {
	case Float64:
		return a.Float64
	case Float32:
		out := make([]float64, len(a.Float32))
		for i, v := range a.Float32 {
			out[i] = float64(v)
		}
		return out
	case Uint8:
		out := make([]float64, len(a.Uint8))
		for i, v := range a.Uint8 {
			out[i] = float64(v)
		}
		return out
	case Int64:
		out := make([]float64, len(a.Int64))
		for i, v := range a.Int64 {
			out[i] = float64(v)
		}
		return out
	}
	return nil
}

// AsInt64 returns integer values as int64. Floating values must be whole
// numbers (labels are sometimes stored as floats); otherwise it fails.
func (a *Array) AsInt64() ([]int64, error) {
	switch a.Kind {
	case Int64:
		return a.Int64, nil
	case Uint8:
		out := make([]int64, len(a.Uint8))
		for i, v := range a.Uint8 {
			out[i] = int64(v)
		}
		return out, nil
	}
	f := a.AsFloat64()
	out := make([]int64, len(f))
	for i, v := range f {
		if v != math.Trunc(v) || math.Abs(v) > 1<<53 {
			return nil, fmt.Errorf("element %d is %v, not a whole number", i, v)
		}
		out[i] = int64(v)
	}
	return out, nil
}

var magic = []byte("\x93NUMPY")

// Read decodes the .npy file at path.
func Read(path string) (*Array, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	a, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return a, nil
}

// Decode parses a whole .npy file held in b. For uint8 arrays the returned
// Uint8 slice aliases b (no copy: the AV-MNIST audio file is 750 MB).
func Decode(b []byte) (*Array, error) {
	hdr, off, err := header(b)
	if err != nil {
		return nil, err
	}
	kind, order, err := parseDescr(hdr.descr)
	if err != nil {
		return nil, err
	}
	if hdr.fortran {
		return nil, errors.New("Fortran-ordered arrays are not supported (need C order)")
	}
	// Multiply with an overflow check against the bytes actually present, so
	// a forged shape can neither overflow nor make us allocate.
	avail := len(b) - off
	n := 1
	for _, d := range hdr.shape {
		if d != 0 && n > avail/d {
			return nil, fmt.Errorf("truncated: shape %v needs more than the %d data bytes present", hdr.shape, avail)
		}
		n *= d
	}
	need := n * kind.size()
	if need > avail {
		return nil, fmt.Errorf("truncated: shape %v of %s needs %d data bytes, file has %d", hdr.shape, kind, need, avail)
	}
	if need < avail {
		return nil, fmt.Errorf("corrupt: %d trailing bytes after the %d data bytes of shape %v", avail-need, need, hdr.shape)
	}
	data := b[off:]
	a := &Array{Kind: kind, Shape: hdr.shape}
	switch kind {
	case Uint8:
		a.Uint8 = data[:n:n]
	case Float32:
		a.Float32 = make([]float32, n)
		for i := range a.Float32 {
			a.Float32[i] = math.Float32frombits(order.Uint32(data[4*i:]))
		}
	case Float64:
		a.Float64 = make([]float64, n)
		for i := range a.Float64 {
			a.Float64[i] = math.Float64frombits(order.Uint64(data[8*i:]))
		}
	case Int64:
		a.Int64 = make([]int64, n)
		for i := range a.Int64 {
			a.Int64[i] = int64(order.Uint64(data[8*i:]))
		}
	}
	return a, nil
}

type headerInfo struct {
	descr   string
	fortran bool
	shape   []int
}

// header checks the preamble and parses the Python-literal header dict.
// It returns the offset of the data.
func header(b []byte) (headerInfo, int, error) {
	var h headerInfo
	if len(b) < 10 {
		return h, 0, fmt.Errorf("truncated: %d bytes is shorter than the .npy preamble", len(b))
	}
	if !bytes.Equal(b[:6], magic) {
		return h, 0, errors.New("not a .npy file (bad magic)")
	}
	major, minor := b[6], b[7]
	var hlen, start int
	switch major {
	case 1:
		hlen, start = int(binary.LittleEndian.Uint16(b[8:10])), 10
	case 2, 3:
		if len(b) < 12 {
			return h, 0, errors.New("truncated: preamble of a version 2 .npy file")
		}
		l := binary.LittleEndian.Uint32(b[8:12])
		if uint64(l) > uint64(len(b)) {
			return h, 0, fmt.Errorf("truncated: header length %d exceeds file size %d", l, len(b))
		}
		hlen, start = int(l), 12
	default:
		return h, 0, fmt.Errorf("unsupported .npy format version %d.%d (need 1.0, 2.0 or 3.0)", major, minor)
	}
	if minor != 0 {
		return h, 0, fmt.Errorf("unsupported .npy format version %d.%d (need 1.0, 2.0 or 3.0)", major, minor)
	}
	if start+hlen > len(b) {
		return h, 0, fmt.Errorf("truncated: header of %d bytes, only %d present", hlen, len(b)-start)
	}
	text := string(b[start : start+hlen])
	h, err := parseHeader(text)
	if err != nil {
		return h, 0, fmt.Errorf("corrupt header %q: %w", strings.TrimSpace(text), err)
	}
	return h, start + hlen, nil
}

// parseHeader reads the dict literal numpy writes, e.g.
// {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }.
// It is a small tokenizer for exactly that grammar, not a Python parser.
func parseHeader(s string) (headerInfo, error) {
	var h headerInfo
	p := &lit{s: s}
	if !p.eat('{') {
		return h, errors.New("does not start with '{'")
	}
	seen := map[string]bool{}
	for {
		p.space()
		if p.eat('}') {
			break
		}
		key, err := p.str()
		if err != nil {
			return h, fmt.Errorf("key: %w", err)
		}
		if !p.eat(':') {
			return h, fmt.Errorf("missing ':' after %q", key)
		}
		switch key {
		case "descr":
			h.descr, err = p.str()
		case "fortran_order":
			h.fortran, err = p.boolean()
		case "shape":
			h.shape, err = p.tuple()
		default:
			return h, fmt.Errorf("unexpected key %q", key)
		}
		if err != nil {
			return h, fmt.Errorf("%s: %w", key, err)
		}
		if seen[key] {
			return h, fmt.Errorf("duplicate key %q", key)
		}
		seen[key] = true
		if !p.eat(',') {
			p.space()
			if !p.eat('}') {
				return h, errors.New("expected ',' or '}'")
			}
			break
		}
	}
	for _, k := range []string{"descr", "fortran_order", "shape"} {
		if !seen[k] {
			return h, fmt.Errorf("missing key %q", k)
		}
	}
	if rest := strings.TrimSpace(p.s[p.i:]); rest != "" {
		return h, fmt.Errorf("unexpected text after the dict: %q", rest)
	}
	return h, nil
}

type lit struct {
	s string
	i int
}

func (p *lit) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\n' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *lit) eat(c byte) bool {
	p.space()
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *lit) str() (string, error) {
	p.space()
	if p.i >= len(p.s) || (p.s[p.i] != '\'' && p.s[p.i] != '"') {
		return "", errors.New("expected a quoted string")
	}
	q := p.s[p.i]
	end := strings.IndexByte(p.s[p.i+1:], q)
	if end < 0 {
		return "", errors.New("unterminated string")
	}
	v := p.s[p.i+1 : p.i+1+end]
	p.i += end + 2
	return v, nil
}

func (p *lit) boolean() (bool, error) {
	p.space()
	for _, c := range []struct {
		w string
		v bool
	}{{"True", true}, {"False", false}} {
		if strings.HasPrefix(p.s[p.i:], c.w) {
			p.i += len(c.w)
			return c.v, nil
		}
	}
	return false, errors.New("expected True or False")
}

func (p *lit) tuple() ([]int, error) {
	if !p.eat('(') {
		return nil, errors.New("expected '('")
	}
	shape := []int{}
	for {
		if p.eat(')') {
			return shape, nil
		}
		p.space()
		j := p.i
		for j < len(p.s) && p.s[j] >= '0' && p.s[j] <= '9' {
			j++
		}
		if j == p.i {
			return nil, errors.New("expected a non-negative integer dimension")
		}
		d, err := strconv.Atoi(p.s[p.i:j])
		if err != nil || d > math.MaxInt32 {
			return nil, fmt.Errorf("dimension %q out of range", p.s[p.i:j])
		}
		if len(shape) >= 32 {
			return nil, errors.New("more than 32 dimensions")
		}
		shape = append(shape, d)
		p.i = j
		if !p.eat(',') {
			if !p.eat(')') {
				return nil, errors.New("expected ',' or ')'")
			}
			return shape, nil
		}
	}
}

// parseDescr maps a numpy type string to a Kind and byte order.
func parseDescr(d string) (Kind, binary.ByteOrder, error) {
	if len(d) < 2 {
		return 0, nil, fmt.Errorf("unsupported dtype %q", d)
	}
	var order binary.ByteOrder
	switch d[0] {
	case '<', '|', '=':
		// '=' is native; every machine this runs on is little-endian.
		order = binary.LittleEndian
	case '>':
		order = binary.BigEndian
	default:
		return 0, nil, fmt.Errorf("unsupported dtype %q (no byte-order mark)", d)
	}
	switch d[1:] {
	case "f4":
		return Float32, order, nil
	case "f8":
		return Float64, order, nil
	case "u1":
		return Uint8, order, nil
	case "i8":
		return Int64, order, nil
	}
	return 0, nil, fmt.Errorf("unsupported dtype %q (need float32 <f4, float64 <f8, uint8 |u1 or int64 <i8)", d)
}

// Encode returns a .npy file (version 1.0, or 2.0 if the header needs it)
// holding a, in little-endian C order.
func Encode(a *Array) ([]byte, error) {
	n := 1
	for _, d := range a.Shape {
		if d < 0 {
			return nil, fmt.Errorf("negative dimension in shape %v", a.Shape)
		}
		n *= d
	}
	var descr string
	var got int
	switch a.Kind {
	case Float32:
		descr, got = "<f4", len(a.Float32)
	case Float64:
		descr, got = "<f8", len(a.Float64)
	case Uint8:
		descr, got = "|u1", len(a.Uint8)
	case Int64:
		descr, got = "<i8", len(a.Int64)
	default:
		return nil, fmt.Errorf("unsupported kind %v", a.Kind)
	}
	if got != n {
		return nil, fmt.Errorf("shape %v holds %d values, data has %d", a.Shape, n, got)
	}
	dims := make([]string, len(a.Shape))
	for i, d := range a.Shape {
		dims[i] = strconv.Itoa(d)
	}
	shape := "(" + strings.Join(dims, ", ")
	if len(dims) == 1 {
		shape += ","
	}
	shape += ")"
	dict := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape)
	// numpy pads the header with spaces and a final newline so the data
	// starts on a 64-byte boundary; do the same so files match numpy's.
	pre := 10
	if len(dict)+1+pre > math.MaxUint16 {
		pre = 12
	}
	total := pre + len(dict) + 1
	pad := (64 - total%64) % 64
	hdr := dict + strings.Repeat(" ", pad) + "\n"
	var buf bytes.Buffer
	buf.Grow(pre + len(hdr) + n*a.Kind.size())
	buf.Write(magic)
	if pre == 10 {
		buf.Write([]byte{1, 0})
		binary.Write(&buf, binary.LittleEndian, uint16(len(hdr)))
	} else {
		buf.Write([]byte{2, 0})
		binary.Write(&buf, binary.LittleEndian, uint32(len(hdr)))
	}
	buf.WriteString(hdr)
	switch a.Kind {
	case Uint8:
		buf.Write(a.Uint8)
	case Float32:
		b := make([]byte, 4)
		for _, v := range a.Float32 {
			binary.LittleEndian.PutUint32(b, math.Float32bits(v))
			buf.Write(b)
		}
	case Float64:
		b := make([]byte, 8)
		for _, v := range a.Float64 {
			binary.LittleEndian.PutUint64(b, math.Float64bits(v))
			buf.Write(b)
		}
	case Int64:
		b := make([]byte, 8)
		for _, v := range a.Int64 {
			binary.LittleEndian.PutUint64(b, uint64(v))
			buf.Write(b)
		}
	}
	return buf.Bytes(), nil
}

// Write stores a at path atomically (through package artifact).
func Write(path string, a *Array) error {
	b, err := Encode(a)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return artifact.WriteFile(path, b)
}

// WriteFloat64 stores data with the given shape as a float64 .npy file.
func WriteFloat64(path string, shape []int, data []float64) error {
	return Write(path, &Array{Kind: Float64, Shape: shape, Float64: data})
}

// WriteFloat32 stores data with the given shape as a float32 .npy file.
func WriteFloat32(path string, shape []int, data []float32) error {
	return Write(path, &Array{Kind: Float32, Shape: shape, Float32: data})
}

// WriteInt64 stores data with the given shape as an int64 .npy file.
func WriteInt64(path string, shape []int, data []int64) error {
	return Write(path, &Array{Kind: Int64, Shape: shape, Int64: data})
}

// WriteUint8 stores data with the given shape as a uint8 .npy file.
func WriteUint8(path string, shape []int, data []uint8) error {
	return Write(path, &Array{Kind: Uint8, Shape: shape, Uint8: data})
}
