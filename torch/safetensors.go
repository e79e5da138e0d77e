package torch

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"unsafe"

	"github.com/m2mix/m2mix/artifact"
)

// Checkpoints are safetensors files (https://huggingface.co/docs/safetensors):
// an 8-byte little-endian header length, a JSON header naming each tensor's
// dtype, shape and byte range, then the raw little-endian data. Python reads
// them with `safetensors.numpy.load_file` or by hand with numpy.

type stEntry struct {
	DType   string   `json:"dtype"`
	Shape   []int64  `json:"shape"`
	Offsets [2]int64 `json:"data_offsets"`
}

var stNames = map[DType]string{Float32: "F32", Float64: "F64", Int64: "I64", Uint8: "U8", Int32: "I32", Bool: "BOOL"}

func stDType(name string) (DType, bool) {
	for d, n := range stNames {
		if n == name {
			return d, true
		}
	}
	return 0, false
}

// RawTensor is one tensor of a safetensors file as its little-endian bytes:
// what code that must not need libtorch (an export of a checkpoint) reads
// and writes with ReadSafetensors and WriteSafetensors.
type RawTensor struct {
	DType DType
	Shape []int64
	Data  []byte
}

// SaveSafetensors writes named tensors (copied to the CPU) and string
// metadata to path atomically. Tensors are stored in name order; the
// metadata also records the file's checksum (ChecksumKey).
func SaveSafetensors(path string, tensors map[string]*Tensor, meta map[string]string) error {
	raw := make(map[string]RawTensor, len(tensors))
	for n, t := range tensors {
		dt, err := t.DType()
		if err != nil {
			return fmt.Errorf("save %s: tensor %q: %w", path, n, err)
		}
		if _, ok := stNames[dt]; !ok {
			return fmt.Errorf("save %s: tensor %q: dtype %v", path, n, dt)
		}
		shape, err := t.Shape()
		if err != nil {
			return fmt.Errorf("save %s: tensor %q: %w", path, n, err)
		}
		numel, _ := t.Numel()
		b := make([]byte, numel*int64(dt.Size()))
		if err := t.copyOut(slicePtr(b), int(numel), dt); err != nil {
			return fmt.Errorf("save %s: tensor %q: %w", path, n, err)
		}
		raw[n] = RawTensor{DType: dt, Shape: shape, Data: b}
	}
	return WriteSafetensors(path, raw, meta)
}

// WriteSafetensors writes raw tensors and string metadata to path
// atomically, as SaveSafetensors does (name order, the checksum in the
// metadata). It needs no libtorch.
func WriteSafetensors(path string, tensors map[string]RawTensor, meta map[string]string) error {
	names := make([]string, 0, len(tensors))
	for n := range tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	header := map[string]any{}
	blobs := make([][]byte, len(names))
	var off int64
	for i, n := range names {
		t := tensors[n]
		name, ok := stNames[t.DType]
		if !ok {
			return fmt.Errorf("save %s: tensor %q: dtype %v", path, n, t.DType)
		}
		numel := int64(1)
		for _, d := range t.Shape {
			numel *= d
		}
		if numel*int64(t.DType.Size()) != int64(len(t.Data)) {
			return fmt.Errorf("save %s: tensor %q: %d bytes for shape %v %s", path, n, len(t.Data), t.Shape, name)
		}
		blobs[i] = t.Data
		header[n] = stEntry{DType: name, Shape: t.Shape, Offsets: [2]int64{off, off + int64(len(t.Data))}}
		off += int64(len(t.Data))
	}
	// The checksum covers the exact bytes written: the header with a
	// placeholder where the checksum goes, then the data.
	withSum := map[string]string{}
	for k, v := range meta {
		withSum[k] = v
	}
	withSum[ChecksumKey] = placeholder // a loaded file's old checksum does not carry over
	header["__metadata__"] = withSum
	hb, err := json.Marshal(header)
	if err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	for len(hb)%8 != 0 { // the format pads the header with spaces to 8-byte alignment
		hb = append(hb, ' ')
	}
	at := checksumAt(hb)
	if at < 0 {
		return fmt.Errorf("save %s: checksum entry not found in the header", path)
	}
	copy(hb[at:], contentSum(hb, blobs))
	f, err := artifact.Create(path)
	if err != nil {
		return err
	}
	defer f.Abort()
	var lenb [8]byte
	binary.LittleEndian.PutUint64(lenb[:], uint64(len(hb)))
	if _, err := f.Write(lenb[:]); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	if _, err := f.Write(hb); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	for _, b := range blobs {
		if _, err := f.Write(b); err != nil {
			return fmt.Errorf("save %s: %w", path, err)
		}
	}
	return f.Commit()
}

// LoadSafetensors reads a safetensors file into CPU tensors owned by s.
func LoadSafetensors(s *Scope, path string) (map[string]*Tensor, map[string]string, error) {
	raw, meta, err := ReadSafetensors(path)
	if err != nil {
		return nil, nil, err
	}
	out := make(map[string]*Tensor, len(raw))
	for name, t := range raw {
		out[name] = s.fromBytes(t.Data, t.DType, t.Shape)
	}
	if s.Err() != nil {
		return nil, nil, fmt.Errorf("load %s: %w", path, s.Err())
	}
	return out, meta, nil
}

// ReadSafetensors reads a safetensors file's tensors as bytes, without
// libtorch. When the header holds a checksum (ChecksumKey) it must match
// the file's content, and it is returned with the metadata; a file without
// one comes back without that key, so a caller that requires verified files
// checks for it.
func ReadSafetensors(path string) (map[string]RawTensor, map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	var lenb [8]byte
	if _, err := io.ReadFull(f, lenb[:]); err != nil {
		return nil, nil, fmt.Errorf("load %s: truncated header length: %w", path, err)
	}
	hlen := binary.LittleEndian.Uint64(lenb[:])
	if hlen > uint64(st.Size()-8) || hlen > 100<<20 {
		return nil, nil, fmt.Errorf("load %s: header length %d exceeds the file", path, hlen)
	}
	hb := make([]byte, hlen)
	if _, err := io.ReadFull(f, hb); err != nil {
		return nil, nil, fmt.Errorf("load %s: truncated header: %w", path, err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hb, &raw); err != nil {
		return nil, nil, fmt.Errorf("load %s: bad header: %w", path, err)
	}
	dataStart := 8 + int64(hlen)
	dataLen := st.Size() - dataStart
	meta := map[string]string{}
	entries := map[string]stEntry{}
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &meta); err != nil {
				return nil, nil, fmt.Errorf("load %s: bad metadata: %w", path, err)
			}
			continue
		}
		var e stEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, nil, fmt.Errorf("load %s: tensor %q: %w", path, name, err)
		}
		dt, ok := stDType(e.DType)
		if !ok {
			return nil, nil, fmt.Errorf("load %s: tensor %q: unsupported dtype %q", path, name, e.DType)
		}
		numel := int64(1)
		for _, d := range e.Shape {
			if d < 0 || (d > 0 && numel > dataLen/d) {
				return nil, nil, fmt.Errorf("load %s: tensor %q: bad shape %v", path, name, e.Shape)
			}
			numel *= d
		}
		lo, hi := e.Offsets[0], e.Offsets[1]
		if lo < 0 || hi < lo || hi > dataLen || hi-lo != numel*int64(dt.Size()) {
			return nil, nil, fmt.Errorf("load %s: tensor %q: byte range [%d,%d) does not fit shape %v %s in %d data bytes",
				path, name, lo, hi, e.Shape, e.DType, dataLen)
		}
		entries[name] = e
	}
	// Every range fits the file, so the data (at most the file) is read once.
	data := make([]byte, dataLen)
	if _, err := f.ReadAt(data, dataStart); err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", path, err)
	}
	if at := checksumAt(hb); at >= 0 {
		want := string(hb[at : at+64])
		blank := append([]byte(nil), hb...)
		copy(blank[at:], placeholder)
		if got := contentSum(blank, [][]byte{data}); got != want || meta[ChecksumKey] != want {
			return nil, nil, fmt.Errorf("load %s: corrupt: its content has sha256 %s, its header records %s", path, got, want)
		}
	} else {
		delete(meta, ChecksumKey) // not where SaveSafetensors puts it: not a verified file
	}
	out := make(map[string]RawTensor, len(entries))
	for name, e := range entries {
		dt, _ := stDType(e.DType)
		lo, hi := e.Offsets[0], e.Offsets[1]
		out[name] = RawTensor{DType: dt, Shape: e.Shape, Data: data[lo:hi:hi]}
	}
	return out, meta, nil
}

// ChecksumKey is the metadata entry in which SaveSafetensors records the
// sha256 of the file's bytes (with 64 zeros in place of the checksum).
// LoadSafetensors checks it whenever it is there and returns it with the
// metadata, so a caller that requires verified files checks for it.
const ChecksumKey = "m2mix.sha256"

var placeholder = strings.Repeat("0", 64)

// checksumAt is where the checksum's 64 hex digits start in a header, or -1.
func checksumAt(hb []byte) int {
	key := []byte(`"` + ChecksumKey + `":"`)
	i := bytes.Index(hb, key)
	if i < 0 || i+len(key)+64 > len(hb) {
		return -1
	}
	return i + len(key)
}

// contentSum is the hex sha256 of a header's bytes and the data.
func contentSum(hb []byte, blobs [][]byte) string {
	h := sha256.New()
	h.Write(hb)
	for _, b := range blobs {
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// fromBytes makes a CPU tensor from little-endian raw bytes.
func (s *Scope) fromBytes(b []byte, dt DType, shape []int64) *Tensor {
	n := len(b) / dt.Size()
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	switch dt {
	case Float32:
		return s.From(unsafe.Slice((*float32)(p), n), shape...)
	case Float64:
		return s.From(unsafe.Slice((*float64)(p), n), shape...)
	case Int64:
		return s.From(unsafe.Slice((*int64)(p), n), shape...)
	case Int32:
		return s.From(unsafe.Slice((*int32)(p), n), shape...)
	case Uint8:
		return s.From(b, shape...)
	}
	return s.fail("safetensors", fmt.Errorf("dtype %v not loadable", dt))
}
