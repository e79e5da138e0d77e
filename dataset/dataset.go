// Package dataset stores the prepared datasets as Arrow IPC files.
//
// A dataset is a handful of equal-length columns: scalars (int64, string)
// and fixed-width vectors (float32 or uint8 per row, e.g. 784 image values),
// plus string metadata (generation parameters, source checksums). Files are
// zstd-compressed Arrow IPC ("Feather v2"), readable by pyarrow and arrow-js,
// written through package artifact so they appear only when complete.
package dataset

import (
	"errors"
	"fmt"
	"os"
	"sort"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/m2mix/m2mix/artifact"
)

// Column is one named column. Exactly one of the value slices is set.
// Width > 0 marks a fixed-width vector column (Float32 or Uint8 hold
// rows*Width values, row-major); Width == 0 a scalar column.
type Column struct {
	Name    string
	Width   int
	Float32 []float32
	Uint8   []uint8
	Int64   []int64
	String  []string
}

// Rows is the number of rows the column holds.
func (c *Column) Rows() int {
	w := c.Width
	if w == 0 {
		w = 1
	}
	switch {
	case c.Float32 != nil:
		return len(c.Float32) / w
	case c.Uint8 != nil:
		return len(c.Uint8) / w
	case c.Int64 != nil:
		return len(c.Int64)
	default:
		return len(c.String)
	}
}

func (c *Column) dataType() (arrow.DataType, error) {
	switch {
	case c.Float32 != nil && c.Width > 0:
		return arrow.FixedSizeListOfNonNullable(int32(c.Width), arrow.PrimitiveTypes.Float32), nil
	case c.Uint8 != nil && c.Width > 0:
		return arrow.FixedSizeListOfNonNullable(int32(c.Width), arrow.PrimitiveTypes.Uint8), nil
	case c.Int64 != nil && c.Width == 0:
		return arrow.PrimitiveTypes.Int64, nil
	case c.String != nil && c.Width == 0:
		return arrow.BinaryTypes.String, nil
	}
	return nil, fmt.Errorf("column %q: unsupported combination (width %d)", c.Name, c.Width)
}

// Table is a dataset read back into memory.
type Table struct {
	Rows    int
	Columns []Column
	Meta    map[string]string
}

// Column returns the named column or an error naming the file's columns.
func (t *Table) Column(name string) (*Column, error) {
	for i := range t.Columns {
		if t.Columns[i].Name == name {
			return &t.Columns[i], nil
		}
	}
	names := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		names[i] = c.Name
	}
	return nil, fmt.Errorf("no column %q (have %v)", name, names)
}

// batchRows bounds the rows per record batch so readers can stream.
const batchRows = 4096

// Write stores the columns and metadata at path (atomically).
func Write(path string, cols []Column, meta map[string]string) error {
	if len(cols) == 0 {
		return fmt.Errorf("write %s: no columns", path)
	}
	rows := cols[0].Rows()
	fields := make([]arrow.Field, len(cols))
	for i := range cols {
		c := &cols[i]
		if c.Rows() != rows {
			return fmt.Errorf("write %s: column %q has %d rows, %q has %d", path, c.Name, c.Rows(), cols[0].Name, rows)
		}
		if c.Width > 0 && ((c.Float32 != nil && len(c.Float32)%c.Width != 0) || (c.Uint8 != nil && len(c.Uint8)%c.Width != 0)) {
			return fmt.Errorf("write %s: column %q length is not a multiple of width %d", path, c.Name, c.Width)
		}
		dt, err := c.dataType()
		if err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		fields[i] = arrow.Field{Name: c.Name, Type: dt}
	}
	keys := make([]string, 0, len(meta))
	for k := range meta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	vals := make([]string, len(keys))
	for i, k := range keys {
		vals[i] = meta[k]
	}
	md := arrow.NewMetadata(keys, vals)
	schema := arrow.NewSchema(fields, &md)

	f, err := artifact.Create(path)
	if err != nil {
		return err
	}
	defer f.Abort()
	w, err := ipc.NewFileWriter(f, ipc.WithSchema(schema), ipc.WithZstd(), ipc.WithAllocator(memory.DefaultAllocator))
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	for lo := 0; lo < rows || (rows == 0 && lo == 0); lo += batchRows {
		hi := min(lo+batchRows, rows)
		arrs := make([]arrow.Array, len(cols))
		for i := range cols {
			arrs[i] = sliceArray(&cols[i], fields[i].Type, lo, hi)
		}
		rec := array.NewRecordBatch(schema, arrs, int64(hi-lo))
		err := w.Write(rec)
		rec.Release()
		for _, a := range arrs {
			a.Release()
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		if rows == 0 {
			break
		}
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Commit()
}

// sliceArray wraps rows [lo,hi) of c as an Arrow array without copying.
func sliceArray(c *Column, dt arrow.DataType, lo, hi int) arrow.Array {
	n := hi - lo
	switch {
	case c.Float32 != nil:
		vals := c.Float32[lo*c.Width : hi*c.Width]
		child := array.NewData(arrow.PrimitiveTypes.Float32, len(vals),
			[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Float32Traits.CastToBytes(vals))}, nil, 0, 0)
		defer child.Release()
		return array.MakeFromData(array.NewData(dt, n, []*memory.Buffer{nil}, []arrow.ArrayData{child}, 0, 0))
	case c.Uint8 != nil:
		vals := c.Uint8[lo*c.Width : hi*c.Width]
		child := array.NewData(arrow.PrimitiveTypes.Uint8, len(vals),
			[]*memory.Buffer{nil, memory.NewBufferBytes(vals)}, nil, 0, 0)
		defer child.Release()
		return array.MakeFromData(array.NewData(dt, n, []*memory.Buffer{nil}, []arrow.ArrayData{child}, 0, 0))
	case c.Int64 != nil:
		vals := c.Int64[lo:hi]
		return array.NewInt64Data(array.NewData(dt, n,
			[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int64Traits.CastToBytes(vals))}, nil, 0, 0))
	default:
		b := array.NewStringBuilder(memory.DefaultAllocator)
		defer b.Release()
		b.AppendValues(c.String[lo:hi], nil)
		return b.NewArray()
	}
}

// Read loads a whole dataset file into memory. A malformed file is an
// error naming it: the Arrow library panics on some corrupt footers and
// buffers (found by FuzzRead), and Read turns that into an error.
func Read(path string) (t *Table, err error) {
	return ReadFirst(path, 0)
}

// ReadFirst is Read for the leading rows only: it stops after the record
// batch that reaches rows (rows <= 0: every row), so the table may hold a
// few more. Readers that need only the first rows of a large file (the
// robustness evaluation's test rows) skip decompressing the rest.
func ReadFirst(path string, rows int) (t *Table, err error) {
	defer func() {
		if r := recover(); r != nil {
			t, err = nil, fmt.Errorf("read %s: malformed Arrow file (%v)", path, r)
		}
	}()
	return read(path, rows)
}

func read(path string, limit int) (*Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	// A corrupt file can declare buffers of terabytes, and the library
	// allocates what it declares: Go then dies out of memory, which no
	// recover catches. No buffer of a real dataset file decompresses to
	// more than 16 times the file (ours hardly compress at all).
	alloc := &boundedAllocator{Allocator: memory.DefaultAllocator, limit: 16*int(st.Size()) + 1<<20}
	r, err := ipc.NewFileReader(f, ipc.WithAllocator(alloc))
	if err != nil {
		return nil, fmt.Errorf("read %s: not an Arrow IPC file: %w", path, err)
	}
	defer r.Close()
	schema := r.Schema()
	t := &Table{Meta: map[string]string{}, Columns: make([]Column, schema.NumFields())}
	md := schema.Metadata()
	for i, k := range md.Keys() {
		t.Meta[k] = md.Values()[i]
	}
	for i, fd := range schema.Fields() {
		t.Columns[i].Name = fd.Name
		switch dt := fd.Type.(type) {
		case *arrow.FixedSizeListType:
			t.Columns[i].Width = int(dt.Len())
			switch dt.Elem().ID() {
			case arrow.FLOAT32:
				t.Columns[i].Float32 = []float32{}
			case arrow.UINT8:
				t.Columns[i].Uint8 = []uint8{}
			default:
				return nil, fmt.Errorf("read %s: column %q: unsupported element type %s", path, fd.Name, dt.Elem())
			}
		case *arrow.Int64Type:
			t.Columns[i].Int64 = []int64{}
		case *arrow.StringType:
			t.Columns[i].String = []string{}
		default:
			return nil, fmt.Errorf("read %s: column %q: unsupported type %s", path, fd.Name, fd.Type)
		}
	}
	for b := 0; b < r.NumRecords() && (limit <= 0 || t.Rows < limit); b++ {
		rec, err := r.RecordBatch(b)
		if err != nil {
			return nil, fmt.Errorf("read %s: batch %d: %w", path, b, err)
		}
		n := int(rec.NumRows())
		for i := range t.Columns {
			if err := appendColumn(&t.Columns[i], rec.Column(i), n); err != nil {
				return nil, fmt.Errorf("read %s: column %q: %w", path, t.Columns[i].Name, err)
			}
		}
		t.Rows += n
	}
	return t, nil
}

func appendColumn(c *Column, a arrow.Array, n int) error {
	if a.NullN() > 0 {
		return errors.New("null values are not supported")
	}
	switch arr := a.(type) {
	case *array.FixedSizeList:
		off := arr.Data().Offset() * c.Width
		switch v := arr.ListValues().(type) {
		case *array.Float32:
			c.Float32 = append(c.Float32, v.Float32Values()[off:off+n*c.Width]...)
		case *array.Uint8:
			c.Uint8 = append(c.Uint8, v.Uint8Values()[off:off+n*c.Width]...)
		}
	case *array.Int64:
		c.Int64 = append(c.Int64, arr.Int64Values()...)
	case *array.String:
		for i := 0; i < arr.Len(); i++ {
			c.String = append(c.String, arr.Value(i))
		}
	default:
		return fmt.Errorf("unexpected array type %T", a)
	}
	return nil
}

// boundedAllocator refuses (by panicking, which Read turns into an error)
// any single allocation above limit.
type boundedAllocator struct {
	memory.Allocator
	limit int
}

func (a *boundedAllocator) Allocate(size int) []byte {
	if size > a.limit {
		panic(fmt.Sprintf("a buffer of %d bytes, more than such a file can hold", size))
	}
	return a.Allocator.Allocate(size)
}

func (a *boundedAllocator) Reallocate(size int, b []byte) []byte {
	if size > a.limit {
		panic(fmt.Sprintf("a buffer of %d bytes, more than such a file can hold", size))
	}
	return a.Allocator.Reallocate(size, b)
}
