// Package idx reads the IDX files MNIST is distributed in (optionally gzipped).
//
// Only unsigned-byte arrays (type code 0x08) are supported: that is what the
// MNIST images and labels use. Every problem is reported with the file's name,
// and the reader never allocates more than the data actually present, so a
// forged header cannot exhaust memory.
package idx

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// Array is an n-dimensional uint8 array in row-major order.
type Array struct {
	Dims []int
	Data []uint8
}

// Read decodes the IDX file at path; a gzip wrapper is detected and removed.
func Read(path string) (*Array, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	a, err := decode(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return a, nil
}

// maxRatio bounds how much deflate can expand data (1032:1 in theory).
const maxRatio = 1040

// Decode reads an IDX array from r, gzipped or not.
func Decode(r io.Reader) (*Array, error) { return decode(r, -1) }

// decode reads an IDX array; size, when known (>= 0), is the file's size and
// rejects headers that promise more data than such a file can hold.
func decode(r io.Reader, size int64) (*Array, error) {
	br := bufio.NewReader(r)
	head, _ := br.Peek(2)
	var src io.Reader = br
	limit := size
	if bytes.Equal(head, []byte{0x1f, 0x8b}) {
		if size >= 0 {
			limit = size * maxRatio
		}
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, gzipError(err)
		}
		defer zr.Close()
		src = gzipReader{zr}
	}
	var magic [4]byte
	if _, err := io.ReadFull(src, magic[:]); err != nil {
		if se := (*streamError)(nil); errors.As(err, &se) {
			return nil, se
		}
		return nil, fmt.Errorf("truncated: IDX magic: %w", noEOF(err))
	}
	if magic[0] != 0 || magic[1] != 0 {
		return nil, fmt.Errorf("not an IDX file (magic % x)", magic)
	}
	if magic[2] != 0x08 {
		return nil, fmt.Errorf("unsupported IDX element type 0x%02x (need 0x08, unsigned byte)", magic[2])
	}
	nd := int(magic[3])
	if nd == 0 {
		return nil, errors.New("IDX file with zero dimensions")
	}
	dims := make([]int, nd)
	n := 1
	const maxElems = 1 << 40
	for i := range dims {
		var d uint32
		if err := binary.Read(src, binary.BigEndian, &d); err != nil {
			if se := (*streamError)(nil); errors.As(err, &se) {
				return nil, se
			}
			return nil, fmt.Errorf("truncated: dimension %d of %d: %w", i+1, nd, noEOF(err))
		}
		dims[i] = int(d)
		if d != 0 && n > maxElems/int(d) {
			return nil, fmt.Errorf("dimensions %v are implausibly large", dims[:i+1])
		}
		n *= int(d)
	}
	if limit >= 0 && int64(n) > limit {
		return nil, fmt.Errorf("truncated: dimensions %v need %d bytes of data, more than a %d-byte file can hold", dims, n, size)
	}
	// ReadAll grows its buffer only as bytes arrive, so memory stays bounded
	// by what the (decompressed) stream really holds, not by the header. It
	// reads to the end of a gzip stream (one byte more than the data is
	// asked for), so the trailer's CRC-32 and length are always checked.
	data, err := io.ReadAll(io.LimitReader(src, int64(n)+1))
	if err != nil {
		if se := (*streamError)(nil); errors.As(err, &se) {
			return nil, se
		}
		return nil, fmt.Errorf("corrupt data: %w", err)
	}
	if len(data) < n {
		return nil, fmt.Errorf("truncated: dimensions %v need %d bytes of data, found %d", dims, n, len(data))
	}
	if len(data) > n {
		return nil, fmt.Errorf("corrupt: data continues beyond the %d bytes dimensions %v describe", n, dims)
	}
	return &Array{Dims: dims, Data: data}, nil
}

// gzipReader marks every error of the gzip stream other than a clean end,
// so that a cut stream is not mistaken for an IDX file that is too short.
type gzipReader struct{ r io.Reader }

func (g gzipReader) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	if err != nil && err != io.EOF {
		err = gzipError(err)
	}
	return n, err
}

// streamError is a damaged gzip stream.
type streamError struct{ err error }

func (e *streamError) Error() string {
	switch {
	case errors.Is(e.err, io.ErrUnexpectedEOF) || errors.Is(e.err, io.EOF):
		return "truncated gzip stream: the file ends before the end of the compressed data or its trailer (incomplete download or copy?)"
	case errors.Is(e.err, gzip.ErrChecksum):
		return "corrupt gzip stream: the CRC-32 or length in the gzip trailer does not match the data"
	}
	return "corrupt gzip stream: " + e.err.Error()
}

func (e *streamError) Unwrap() error { return e.err }

func gzipError(err error) error { return &streamError{err} }

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// ReadImages reads an MNIST image file: n images of rows x cols bytes, at
// least one image of at least one pixel.
func ReadImages(path string) (n, rows, cols int, pix []uint8, err error) {
	a, err := Read(path)
	if err != nil {
		return 0, 0, 0, nil, err
	}
	if len(a.Dims) != 3 {
		return 0, 0, 0, nil, fmt.Errorf("read %s: image file has %d dimensions %v, want 3", path, len(a.Dims), a.Dims)
	}
	if a.Dims[0] == 0 {
		return 0, 0, 0, nil, fmt.Errorf("read %s: no images (dimensions %v)", path, a.Dims)
	}
	if a.Dims[1] == 0 || a.Dims[2] == 0 {
		return 0, 0, 0, nil, fmt.Errorf("read %s: empty images of %d x %d pixels", path, a.Dims[1], a.Dims[2])
	}
	return a.Dims[0], a.Dims[1], a.Dims[2], a.Data, nil
}

// ReadLabels reads an MNIST label file; it must hold at least one label,
// and every label must be a digit 0..9.
func ReadLabels(path string) ([]uint8, error) {
	a, err := Read(path)
	if err != nil {
		return nil, err
	}
	if len(a.Dims) != 1 {
		return nil, fmt.Errorf("read %s: label file has %d dimensions %v, want 1", path, len(a.Dims), a.Dims)
	}
	if a.Dims[0] == 0 {
		return nil, fmt.Errorf("read %s: no labels", path)
	}
	for i, l := range a.Data {
		if l > 9 {
			return nil, fmt.Errorf("read %s: label %d is %d, not a digit", path, i, l)
		}
	}
	return a.Data, nil
}

// ReadImagesAndLabels reads an MNIST image file and its label file and
// checks that they describe the same number of samples; a mismatch names
// both files and what each holds.
func ReadImagesAndLabels(imagesPath, labelsPath string) (n, rows, cols int, pix, labels []uint8, err error) {
	n, rows, cols, pix, err = ReadImages(imagesPath)
	if err != nil {
		return 0, 0, 0, nil, nil, err
	}
	labels, err = ReadLabels(labelsPath)
	if err != nil {
		return 0, 0, 0, nil, nil, err
	}
	if len(labels) != n {
		return 0, 0, 0, nil, nil, fmt.Errorf("%s holds %d images but %s holds %d labels: one of the two files is not the other's match", imagesPath, n, labelsPath, len(labels))
	}
	return n, rows, cols, pix, labels, nil
}
