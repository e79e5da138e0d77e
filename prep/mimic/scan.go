package mimic

import (
	"encoding/binary"
	"fmt"
	"strconv"
)

// Limits on the opcode stream. gopickle grows its stack, memo and mark
// stack with every opcode (a MARK alone costs a few hundred bytes), so these
// bound its memory to a small multiple of the input even for a hostile
// file. A real im.pk is a dict of a handful of numpy arrays: a few hundred
// opcodes and a few dozen marks.
const (
	maxOpcodes = 1 << 20
	maxMarks   = 1 << 16
	// maxRefBytes bounds, beyond the input's own size, the bytes of str and
	// bytes objects that memo lookups (GET) and DUP may push again. gopickle
	// formats the offending value with %#v in several errors, and Go prints
	// strings and byte slices inside containers in full, so a container of
	// many references to one large string would otherwise make an error
	// message quadratic in the input (and so would hashing them as set or
	// OrderedDict keys). A real im.pk re-references only short strings.
	maxRefBytes = 64 << 20
)

// scanPickle walks the opcode stream of b without executing it, the way
// pickletools.genops does, and rejects what gopickle would otherwise turn
// into an unbounded allocation, a quadratic blow-up or a crash:
//   - every length or frame size must fit in the bytes that remain (gopickle
//     allocates the declared length before reading it);
//   - unknown opcodes (gopickle's dispatch table has no entry for 0xff);
//   - persistent ids, extension codes and out-of-band buffers, which an
//     im.pk never holds;
//   - more opcodes, marks or re-referenced string bytes than the limits above;
//   - a stream without STOP (a truncated file), or bytes after it.
//
// gopickle consumes the bytes in the same linear order (a frame's contents
// are simply the bytes that follow the FRAME opcode), so a length checked
// here is the length gopickle will see.
func scanPickle(b []byte) error {
	if len(b) < 2 || b[0] != 0x80 {
		return fmt.Errorf("not a pickle of protocol 2 to 5 (no PROTO opcode at the start; first bytes %q)", b[:min(len(b), 8)])
	}
	if b[1] < 2 || b[1] > 5 {
		return fmt.Errorf("pickle protocol %d; this reader handles protocols 2 to 5", b[1])
	}
	s := scanner{b: b, sim: stackSim{memo: map[int]simItem{}}}
	for s.pos < len(b) {
		op := b[s.pos]
		s.pos++
		s.ops++
		if s.ops > maxOpcodes {
			return fmt.Errorf("pickle has more than %d opcodes; an im.pk holds a few numpy arrays, so this is not one", maxOpcodes)
		}
		if op == '.' { // STOP
			if extra := len(b) - s.pos; extra > 0 {
				// pickle.load would stop here too, but numpy's pickles end
				// at STOP: the rest is damage (files run together, a bad copy).
				return fmt.Errorf("corrupt pickle: %d bytes after the STOP opcode at offset %d", extra, s.pos-1)
			}
			return nil
		}
		if err := s.step(op); err != nil {
			return err
		}
		if s.sim.refBytes > maxRefBytes+int64(len(b)) {
			return fmt.Errorf("pickle re-references more than %d bytes of strings through its memo; an im.pk does not", maxRefBytes+len(b))
		}
	}
	return fmt.Errorf("truncated pickle: %d bytes and no STOP opcode", len(b))
}

type scanner struct {
	b          []byte
	pos        int
	ops, marks int
	sim        stackSim
}

func (s *scanner) need(k uint64, what string) error {
	if k > uint64(len(s.b)-s.pos) {
		return fmt.Errorf("truncated or corrupt pickle: %s at offset %d needs %d bytes, %d remain", what, s.pos, k, len(s.b)-s.pos)
	}
	return nil
}

// fixed consumes an argument of k bytes.
func (s *scanner) fixed(k int, what string) ([]byte, error) {
	if err := s.need(uint64(k), what); err != nil {
		return nil, err
	}
	arg := s.b[s.pos : s.pos+k]
	s.pos += k
	return arg, nil
}

// counted consumes a little-endian length of lw bytes and that many bytes,
// returning the length.
func (s *scanner) counted(lw int, signed bool, what string) (int64, error) {
	arg, err := s.fixed(lw, what+" length")
	if err != nil {
		return 0, err
	}
	var k uint64
	switch lw {
	case 1:
		k = uint64(arg[0])
	case 4:
		k = uint64(binary.LittleEndian.Uint32(arg))
		if signed && int32(k) < 0 {
			return 0, fmt.Errorf("corrupt pickle: %s with negative length at offset %d", what, s.pos)
		}
	case 8:
		k = binary.LittleEndian.Uint64(arg)
	}
	if err := s.need(k, what); err != nil {
		return 0, err
	}
	s.pos += int(k)
	return int64(k), nil
}

// line consumes a newline-terminated argument and returns it without "\n".
func (s *scanner) line(what string) ([]byte, error) {
	for i := s.pos; i < len(s.b); i++ {
		if s.b[i] == '\n' {
			l := s.b[s.pos:i]
			s.pos = i + 1
			return l, nil
		}
	}
	return nil, fmt.Errorf("truncated pickle: %s at offset %d has no end of line", what, s.pos)
}

// step checks one opcode's argument and mirrors its effect on the stack.
func (s *scanner) step(op byte) error {
	name := fmt.Sprintf("opcode 0x%02x", op)
	sim := &s.sim
	switch op {
	case '(':
		s.marks++
		if s.marks > maxMarks {
			return fmt.Errorf("pickle has more than %d MARK opcodes; an im.pk holds a few numpy arrays, so this is not one", maxMarks)
		}
		sim.mark()
	case 0x80, 0x95, 0x98: // PROTO, FRAME, READONLY_BUFFER: no stack effect
		if op == 0x80 {
			_, err := s.fixed(1, "PROTO")
			return err
		}
		if op == 0x95 { // a frame's size only has to fit; its contents are scanned as they come
			arg, err := s.fixed(8, "FRAME size")
			if err != nil {
				return err
			}
			return s.need(binary.LittleEndian.Uint64(arg), "FRAME")
		}
	case 'N', 0x88, 0x89, ')', ']', '}', 0x8f:
		sim.push(simItem{})
	case 'K':
		_, err := s.fixed(1, name)
		sim.push(simItem{})
		return err
	case 'M':
		_, err := s.fixed(2, name)
		sim.push(simItem{})
		return err
	case 'J':
		_, err := s.fixed(4, name)
		sim.push(simItem{})
		return err
	case 'G':
		_, err := s.fixed(8, name)
		sim.push(simItem{})
		return err
	case 'I', 'L', 'F':
		_, err := s.line(name)
		sim.push(simItem{})
		return err
	case 0x8a:
		_, err := s.counted(1, false, name)
		sim.push(simItem{})
		return err
	case 0x8b:
		_, err := s.counted(4, true, name)
		sim.push(simItem{})
		return err
	case 'S', 'V': // text strings
		l, err := s.line(name)
		sim.push(simItem{w: int64(len(l))})
		return err
	case 'U', 'C', 0x8c: // short strings and bytes
		k, err := s.counted(1, false, name)
		sim.push(simItem{w: k})
		return err
	case 'X', 'B':
		k, err := s.counted(4, false, name)
		sim.push(simItem{w: k})
		return err
	case 'T':
		k, err := s.counted(4, true, name)
		sim.push(simItem{w: k})
		return err
	case 0x8d, 0x8e:
		k, err := s.counted(8, false, name)
		sim.push(simItem{w: k})
		return err
	case 0x96: // BYTEARRAY8: a pointer, which fmt does not print when nested
		_, err := s.counted(8, false, name)
		sim.push(simItem{})
		return err
	case 'c': // GLOBAL
		if _, err := s.line("GLOBAL module"); err != nil {
			return err
		}
		_, err := s.line("GLOBAL name")
		sim.push(simItem{})
		return err
	case 'i': // INST: instantiate with the items since the mark
		if _, err := s.line("INST module"); err != nil {
			return err
		}
		if _, err := s.line("INST name"); err != nil {
			return err
		}
		items := sim.popMark()
		sim.push(simItem{w: sumW(items)})
	case 'o': // OBJ
		items := sim.popMark()
		sim.push(simItem{w: sumW(items)})
	case '0': // POP, which gopickle turns into POP_MARK on an empty stack
		if len(sim.stack) == 0 {
			sim.popMark()
		} else {
			sim.pop()
		}
	case '1':
		sim.popMark()
	case '2': // DUP
		sim.ref(sim.top())
	case 'g', 'h', 'j': // GET, BINGET, LONG_BINGET
		var idx int
		switch op {
		case 'g':
			l, err := s.line(name)
			if err != nil {
				return err
			}
			idx = atoiOr(l, -1)
		case 'h':
			arg, err := s.fixed(1, name)
			if err != nil {
				return err
			}
			idx = int(arg[0])
		case 'j':
			arg, err := s.fixed(4, name)
			if err != nil {
				return err
			}
			idx = int(binary.LittleEndian.Uint32(arg))
		}
		sim.ref(sim.memo[idx])
	case 'p', 'q', 'r': // PUT, BINPUT, LONG_BINPUT
		var idx int
		switch op {
		case 'p':
			l, err := s.line(name)
			if err != nil {
				return err
			}
			idx = atoiOr(l, -1)
		case 'q':
			arg, err := s.fixed(1, name)
			if err != nil {
				return err
			}
			idx = int(arg[0])
		case 'r':
			arg, err := s.fixed(4, name)
			if err != nil {
				return err
			}
			idx = int(binary.LittleEndian.Uint32(arg))
		}
		sim.memo[idx] = sim.top()
	case 0x94: // MEMOIZE: gopickle uses the memo's current size as the index
		sim.memo[len(sim.memo)] = sim.top()
	case 'R': // REDUCE: callable(*args); the result may be built from the args' strings
		args := sim.pop()
		sim.pop()
		sim.push(simItem{w: args.inner})
	case 0x81: // NEWOBJ
		args := sim.pop()
		sim.pop()
		sim.push(simItem{w: args.inner})
	case 0x92: // NEWOBJ_EX
		sim.pop()
		args := sim.pop()
		sim.pop()
		sim.push(simItem{w: args.inner})
	case 0x93: // STACK_GLOBAL
		sim.pop()
		sim.pop()
		sim.push(simItem{})
	case 'b': // BUILD: pops the state, keeps the instance
		sim.pop()
	case 'a': // APPEND
		sim.pop()
	case 's': // SETITEM
		sim.pop()
		sim.pop()
	case 'e', 'u', 0x90: // APPENDS, SETITEMS, ADDITEMS: items since the mark into the object below
		sim.popMark()
	case 'l', 'd', 0x91: // LIST, DICT, FROZENSET: a new container (a pointer)
		sim.popMark()
		sim.push(simItem{})
	case 't': // TUPLE
		items := sim.popMark()
		sim.push(simItem{inner: sumW(items)})
	case 0x85, 0x86, 0x87: // TUPLE1..3
		k := int(op-0x85) + 1
		var w int64
		for range k {
			w += sim.pop().w
		}
		sim.push(simItem{inner: w})
	case 'P', 'Q':
		return fmt.Errorf("pickle uses persistent ids (offset %d), which an im.pk never does", s.pos-1)
	case 0x82, 0x83, 0x84:
		return fmt.Errorf("pickle uses the extension registry (offset %d), which an im.pk never does", s.pos-1)
	case 0x97:
		return fmt.Errorf("pickle refers to out-of-band buffers (offset %d); write it without buffer_callback", s.pos-1)
	default:
		return fmt.Errorf("not a valid pickle: unknown opcode 0x%02x at offset %d", op, s.pos-1)
	}
	return nil
}

// simItem is what the scan tracks of one stack value: w, the bytes Go's
// fmt would print for it inside a container (strings and bytes print in
// full, containers and objects are pointers and print as an address), and
// for a tuple, inner, the sum of its items' w (a REDUCE over it may turn
// them into bytes, as _codecs.encode does).
type simItem struct{ w, inner int64 }

// stackSim mirrors gopickle's stack, mark stack and memo closely enough to
// know the size of every value a GET or DUP pushes again. Where gopickle
// would stop with an error (popping an empty stack), the simulation just
// carries on: nothing after that point runs anyway.
type stackSim struct {
	stack    []simItem
	marks    [][]simItem
	memo     map[int]simItem
	refBytes int64
}

func (m *stackSim) push(it simItem) { m.stack = append(m.stack, it) }

func (m *stackSim) ref(it simItem) {
	m.refBytes += it.w
	m.push(it)
}

func (m *stackSim) top() simItem {
	if len(m.stack) == 0 {
		return simItem{}
	}
	return m.stack[len(m.stack)-1]
}

func (m *stackSim) pop() simItem {
	it := m.top()
	if len(m.stack) > 0 {
		m.stack = m.stack[:len(m.stack)-1]
	}
	return it
}

func (m *stackSim) mark() {
	m.marks = append(m.marks, m.stack)
	m.stack = nil
}

func (m *stackSim) popMark() []simItem {
	items := m.stack
	if len(m.marks) == 0 {
		m.stack = nil
		return items
	}
	m.stack = m.marks[len(m.marks)-1]
	m.marks = m.marks[:len(m.marks)-1]
	return items
}

func sumW(items []simItem) int64 {
	var w int64
	for _, it := range items {
		w += it.w
	}
	return w
}

// atoiOr parses a text memo index exactly as gopickle does (strconv.Atoi),
// or returns def.
func atoiOr(b []byte, def int) int {
	n, err := strconv.Atoi(string(b))
	if err != nil {
		return def
	}
	return n
}
