package export

import (
	"bytes"
	"encoding/binary"
	"math"
)

// No Go library writes pickles (gopickle only reads them), and a state dict
// needs a small, fixed part of the format, so this is a writer for exactly
// that part of pickle protocol 2: globals, tuples, ints, booleans, strings,
// persistent ids, REDUCE and SETITEMS. It uses no memo (PUT/GET): nothing
// is written twice, and torch.load(weights_only=True) in PyTorch 1.13 takes
// neither FRAME, SHORT_BINUNICODE nor MEMOIZE (protocol 4 opcodes).

// Protocol-2 opcodes (CPython's Lib/pickletools.py names them).
const (
	opProto      = 0x80
	opGlobal     = 'c'
	opMark       = '('
	opTuple      = 't'
	opTuple1     = 0x85
	opTuple2     = 0x86
	opTuple3     = 0x87
	opEmptyTuple = ')'
	opReduce     = 'R'
	opSetItems   = 'u'
	opBinUnicode = 'X'
	opBinInt     = 'J'
	opBinInt1    = 'K'
	opLong1      = 0x8a
	opNewTrue    = 0x88
	opNewFalse   = 0x89
	opBinPersID  = 'Q'
	opStop       = '.'
)

// pickler appends protocol-2 opcodes to a buffer. Each method pushes one
// value on the unpickler's stack.
type pickler struct{ b bytes.Buffer }

func newPickler() *pickler {
	p := &pickler{}
	p.b.Write([]byte{opProto, 2})
	return p
}

// global pushes module.name (a class or function).
func (p *pickler) global(module, name string) {
	p.b.WriteByte(opGlobal)
	p.b.WriteString(module + "\n" + name + "\n")
}

// str pushes a Python str.
func (p *pickler) str(s string) {
	p.b.WriteByte(opBinUnicode)
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], uint32(len(s)))
	p.b.Write(n[:])
	p.b.WriteString(s)
}

// int pushes a Python int.
func (p *pickler) int(v int64) {
	switch {
	case v >= 0 && v <= math.MaxUint8:
		p.b.Write([]byte{opBinInt1, byte(v)})
	case v >= math.MinInt32 && v <= math.MaxInt32:
		p.b.WriteByte(opBinInt)
		var n [4]byte
		binary.LittleEndian.PutUint32(n[:], uint32(int32(v)))
		p.b.Write(n[:])
	default:
		// LONG1: a length byte, then the two's-complement bytes, little-endian.
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(v))
		p.b.Write([]byte{opLong1, 8})
		p.b.Write(n[:])
	}
}

// bool pushes True or False.
func (p *pickler) bool(v bool) {
	if v {
		p.b.WriteByte(opNewTrue)
	} else {
		p.b.WriteByte(opNewFalse)
	}
}

// mark starts the items of a tuple or of SETITEMS.
func (p *pickler) mark() { p.b.WriteByte(opMark) }

// tupleFromMark pops everything since the mark into a tuple.
func (p *pickler) tupleFromMark() { p.b.WriteByte(opTuple) }

// ints pushes a tuple of ints (a tensor's size or stride).
func (p *pickler) ints(v []int64) {
	if len(v) == 0 {
		p.b.WriteByte(opEmptyTuple)
		return
	}
	if len(v) > 3 {
		p.mark()
	}
	for _, x := range v {
		p.int(x)
	}
	switch len(v) {
	case 1:
		p.b.WriteByte(opTuple1)
	case 2:
		p.b.WriteByte(opTuple2)
	case 3:
		p.b.WriteByte(opTuple3)
	default:
		p.tupleFromMark()
	}
}

// call pushes callable(*args): the callable and the args tuple must be on
// the stack, in that order.
func (p *pickler) call() { p.b.WriteByte(opReduce) }

// emptyCall pushes callable() for the callable on the stack.
func (p *pickler) emptyCall() {
	p.b.WriteByte(opEmptyTuple)
	p.call()
}

// persistentID turns the value on the stack into the object the
// unpickler's persistent_load returns for it.
func (p *pickler) persistentID() { p.b.WriteByte(opBinPersID) }

// setItems pops the key, value pairs since the mark into the dict below it.
func (p *pickler) setItems() { p.b.WriteByte(opSetItems) }

// finish ends the pickle and returns its bytes.
func (p *pickler) finish() []byte {
	p.b.WriteByte(opStop)
	return p.b.Bytes()
}
