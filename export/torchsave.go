package export

import (
	"archive/zip"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strconv"

	"github.com/m2mix/m2mix/artifact"
	"github.com/m2mix/m2mix/torch"
)

// torch.save's format (PyTorch >= 1.6), as docs/pytorch-names.md describes
// it: a zip archive whose entries sit under one folder, data.pkl (the
// pickled object, tensors as persistent ids naming their storage), one entry
// per storage under data/ holding its raw little-endian bytes, and version.
// Entries are stored, not compressed, each one's data starting on a 64-byte
// boundary as PyTorch's writer places them (so the file can be memory-mapped).

// torchRoot is the archive's top folder (PyTorch's reader takes any name).
const torchRoot = "archive"

// torchFormatVersion is the serialization version PyTorch 1.6 and later write.
const torchFormatVersion = "3\n"

// dataAlign is the alignment of each entry's data in the archive.
const dataAlign = 64

// storageType is the torch storage class PyTorch rebuilds a tensor of dtype with.
func storageType(dt torch.DType) (string, error) {
	switch dt {
	case torch.Float32:
		return "FloatStorage", nil
	case torch.Float64:
		return "DoubleStorage", nil
	case torch.Int64:
		return "LongStorage", nil
	case torch.Int32:
		return "IntStorage", nil
	case torch.Uint8:
		return "ByteStorage", nil
	case torch.Bool:
		return "BoolStorage", nil
	}
	return "", fmt.Errorf("no torch storage type for dtype %v", dt)
}

// statePickle is data.pkl for an OrderedDict of the tensors in the order of
// names, tensor i's storage being the entry data/<i>.
func statePickle(names []string, tensors map[string]torch.RawTensor) ([]byte, error) {
	p := newPickler()
	p.global("collections", "OrderedDict")
	p.emptyCall()
	p.mark()
	for i, name := range names {
		t := tensors[name]
		st, err := storageType(t.DType)
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", name, err)
		}
		numel := int64(1)
		for _, d := range t.Shape {
			numel *= d
		}
		p.str(name)
		// torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
		// requires_grad, backward_hooks)
		p.global("torch._utils", "_rebuild_tensor_v2")
		p.mark()
		p.mark() // the storage: persistent id ('storage', type, key, location, numel)
		p.str("storage")
		p.global("torch", st)
		p.str(strconv.Itoa(i))
		p.str("cpu")
		p.int(numel)
		p.tupleFromMark()
		p.persistentID()
		p.int(0)
		p.ints(t.Shape)
		p.ints(contiguousStride(t.Shape))
		p.bool(false)
		p.global("collections", "OrderedDict")
		p.emptyCall()
		p.tupleFromMark()
		p.call()
	}
	p.setItems()
	return p.finish(), nil
}

// contiguousStride is the row-major stride of shape, in elements.
func contiguousStride(shape []int64) []int64 {
	stride := make([]int64, len(shape))
	s := int64(1)
	for i := len(shape) - 1; i >= 0; i-- {
		stride[i] = s
		s *= max(shape[i], 1)
	}
	return stride
}

// WriteStateDict writes the tensors, in the order of names, to path atomically
// as torch.save would write an OrderedDict of them: the file
// torch.load(path) reads back as a state dict.
func WriteStateDict(path string, names []string, tensors map[string]torch.RawTensor) error {
	pkl, err := statePickle(names, tensors)
	if err != nil {
		return fmt.Errorf("export %s: %w", path, err)
	}
	f, err := artifact.Create(path)
	if err != nil {
		return err
	}
	defer f.Abort()
	zw := zip.NewWriter(f)
	var offset int64 // where the next local file header starts
	add := func(name string, data []byte) error {
		name = torchRoot + "/" + name
		// A local header is 30 bytes, the name, then the extra field; an
		// extra field of padding (id "FB", as PyTorch's) puts the data on
		// the boundary.
		at := offset + 30 + int64(len(name)) + 4
		pad := (dataAlign - at%dataAlign) % dataAlign
		extra := make([]byte, 4+pad)
		binary.LittleEndian.PutUint16(extra[0:], 0x4246)
		binary.LittleEndian.PutUint16(extra[2:], uint16(pad))
		w, err := zw.CreateRaw(&zip.FileHeader{
			Name: name, Method: zip.Store, Extra: extra,
			CRC32: crc32.ChecksumIEEE(data), CompressedSize64: uint64(len(data)), UncompressedSize64: uint64(len(data)),
		})
		if err != nil {
			return err
		}
		if _, err := w.Write(data); err != nil {
			return err
		}
		offset = at + pad + int64(len(data))
		return nil
	}
	if err := add("data.pkl", pkl); err != nil {
		return fmt.Errorf("export %s: %w", path, err)
	}
	if err := add("byteorder", []byte("little")); err != nil {
		return fmt.Errorf("export %s: %w", path, err)
	}
	for i, name := range names {
		if err := add("data/"+strconv.Itoa(i), tensors[name].Data); err != nil {
			return fmt.Errorf("export %s: tensor %q: %w", path, name, err)
		}
	}
	if err := add("version", []byte(torchFormatVersion)); err != nil {
		return fmt.Errorf("export %s: %w", path, err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("export %s: %w", path, err)
	}
	return f.Commit()
}
