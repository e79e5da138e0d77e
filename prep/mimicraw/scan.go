package mimicraw

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
)

// This file is the streaming CSV layer: locating a table, matching its header
// case-insensitively (spec §8: both header styles exist), cutting the
// decompressed stream into chunks at record boundaries, and parsing chunks on
// several goroutines with a cheap ITEMID prefilter (issue 7, "Streaming").

// chunkSize is the size of one unit of parallel work. Large enough that the
// per-chunk overhead is negligible, small enough that the buffers in flight
// (2 per worker plus 2) stay a few tens of MiB.
const chunkSize = 4 << 20

// InputError reports bad input: which table, which physical line (1 = header),
// which column, and why.
type InputError struct {
	Table  string
	Path   string // the table's file, once located ("" before)
	Line   int64  // 0 when the problem is not tied to a line
	Column string
	Value  string
	Reason string
}

func (e *InputError) Error() string {
	var b strings.Builder
	b.WriteString("mimicraw: ")
	if e.Path != "" {
		b.WriteString(e.Path)
	} else {
		b.WriteString(e.Table)
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, " line %d", e.Line)
	}
	if e.Column != "" {
		fmt.Fprintf(&b, ", column %s", e.Column)
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	if e.Value != "" {
		v := e.Value
		if len(v) > 60 {
			v = v[:60] + "..."
		}
		fmt.Fprintf(&b, " (value %q)", v)
	}
	return b.String()
}

// tableFile is one located table.
type tableFile struct {
	name string // upper-case table name, e.g. CHARTEVENTS
	path string
	gz   bool
	size int64 // bytes on disk (compressed size for .gz); the progress total
}

// locateTable finds NAME.csv.gz or NAME.csv in dir, any letter case. More
// than one such file (NAME.csv next to NAME.csv.gz, or two spellings of the
// name) is an error: which one holds the table is not ours to guess.
func locateTable(dir, name string) (*tableFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("mimicraw: reading table directory: %w", err)
	}
	want := strings.ToUpper(name)
	var found []*tableFile
	for _, e := range entries {
		up := strings.ToUpper(e.Name())
		var gz bool
		switch up {
		case want + ".CSV.GZ":
			gz = true
		case want + ".CSV":
		default:
			continue
		}
		found = append(found, &tableFile{name: want, path: filepath.Join(dir, e.Name()), gz: gz})
	}
	switch len(found) {
	case 0:
		return nil, &InputError{Table: want, Reason: fmt.Sprintf("missing table: no %s.csv or %s.csv.gz in %s", want, want, dir)}
	case 1:
	default:
		paths := make([]string, len(found))
		for i, f := range found {
			paths[i] = f.path
		}
		return nil, &InputError{Table: want, Reason: fmt.Sprintf("ambiguous table: %d files could hold it (%s); keep exactly one", len(found), strings.Join(paths, ", "))}
	}
	tf := found[0]
	st, err := os.Stat(tf.path) // follows symlinks
	if err != nil {
		return nil, fmt.Errorf("mimicraw: table %s: %w", want, err)
	}
	tf.size = st.Size()
	return tf, nil
}

// byteCounter forwards the number of bytes read from disk to a progress sink.
type byteCounter struct {
	r   io.Reader
	add func(int64)
}

func (c *byteCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 && c.add != nil {
		c.add(int64(n))
	}
	return n, err
}

// openStream opens the table, decompressing if needed, and reads its header.
// It returns the header fields upper-cased and a reader positioned at line 2.
func openStream(tf *tableFile, add func(int64)) (header []string, r *bufio.Reader, closeFn func() error, err error) {
	f, err := os.Open(tf.path)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("mimicraw: table %s: %w", tf.name, err)
	}
	var src io.Reader = bufio.NewReaderSize(&byteCounter{r: f, add: add}, 1<<20)
	closeFn = f.Close
	if tf.gz {
		zr, err := gzip.NewReader(src)
		if err != nil {
			f.Close()
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, nil, nil, tf.fail(0, "truncated gzip stream: the file ends inside the gzip header")
			}
			return nil, nil, nil, tf.fail(0, "not a gzip file: "+err.Error())
		}
		src = zr
	}
	r = bufio.NewReaderSize(src, 1<<20)
	line, err := r.ReadSlice('\n')
	if err != nil && !(err == io.EOF && len(line) > 0) {
		f.Close()
		if err == io.EOF {
			return nil, nil, nil, tf.fail(1, "empty table: no header line")
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, nil, nil, tf.fail(1, "header line longer than 1 MiB")
		}
		return nil, nil, nil, tf.readError(1, err)
	}
	line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
	line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf")) // UTF-8 BOM
	for _, fld := range splitSimple(line) {
		header = append(header, strings.ToUpper(strings.TrimSpace(fld)))
	}
	return header, r, closeFn, nil
}

// fail builds an InputError about this table's file.
func (tf *tableFile) fail(line int64, reason string) *InputError {
	return &InputError{Table: tf.name, Path: tf.path, Line: line, Reason: reason}
}

// readError turns an error from reading the (decompressed) stream into an
// InputError. For a gzip file, io.ErrUnexpectedEOF means the compressed
// stream or its trailer was cut short, and a checksum error a CRC-32 or
// length that does not match the data: both mean the file is damaged, and
// neither may pass for a clean end of the table.
func (tf *tableFile) readError(line int64, err error) *InputError {
	if tf.gz {
		var corrupt flate.CorruptInputError
		switch {
		case errors.Is(err, io.ErrUnexpectedEOF):
			return tf.fail(line, "truncated gzip stream: the file ends before the end of the compressed data or its trailer (incomplete download or copy?)")
		case errors.Is(err, gzip.ErrChecksum):
			return tf.fail(line, "corrupt gzip stream: the CRC-32 or length in the gzip trailer does not match the data")
		case errors.Is(err, gzip.ErrHeader):
			return tf.fail(line, "corrupt gzip stream: invalid gzip header after the first member (trailing garbage?)")
		case errors.As(err, &corrupt):
			return tf.fail(line, "corrupt gzip stream: "+err.Error())
		}
	}
	return tf.fail(line, "read error: "+err.Error())
}

// annotate sets the file on an InputError that does not name one yet (those
// built by record handlers know only the table).
func (tf *tableFile) annotate(err error) error {
	var ie *InputError
	if errors.As(err, &ie) && ie.Path == "" {
		ie.Path = tf.path
	}
	return err
}

// splitSimple splits one header line (no embedded newlines) honouring quotes.
func splitSimple(line []byte) []string {
	var out []string
	var cur []byte
	inQ := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case inQ && c == '"' && i+1 < len(line) && line[i+1] == '"':
			cur = append(cur, '"')
			i++
		case c == '"':
			inQ = !inQ
		case c == ',' && !inQ:
			out = append(out, string(cur))
			cur = cur[:0]
		default:
			cur = append(cur, c)
		}
	}
	return append(out, string(cur))
}

// scanSpec says which columns a table scan needs and how rows are prefiltered.
type scanSpec struct {
	cols []string // needed column names (upper case); handlers index fields by this order
	// filter, when >= 0, is the index in cols of an integer column (ITEMID)
	// checked before the rest of the row is parsed; rows whose value v has
	// v < 0, v >= len(keep) or !keep[v] are skipped without further parsing.
	filter int
	keep   []bool
}

// record is one parsed row handed to a handler: the needed fields in spec order.
type record struct {
	table string
	cols  []string
	f     [][]byte
	line  int64
}

// fail builds the InputError for column i of this record.
func (r *record) fail(i int, reason string) error {
	return &InputError{Table: r.table, Line: r.line, Column: r.cols[i], Value: string(r.f[i]), Reason: reason}
}

// checkHeader resolves the needed columns against a header.
func checkHeader(table string, header, cols []string) ([]int, error) {
	pos := make(map[string]int, len(header))
	for i, h := range header {
		if _, dup := pos[h]; !dup {
			pos[h] = i
		}
	}
	idx := make([]int, len(cols))
	for i, c := range cols {
		p, ok := pos[c]
		if !ok {
			return nil, &InputError{Table: table, Line: 1, Column: c, Reason: "missing column in header " + strings.Join(header, ",")}
		}
		idx[i] = p
	}
	return idx, nil
}

// peekHeader opens a table only to validate its header, so a missing column in
// CHARTEVENTS is reported before hours of reading other tables.
func peekHeader(tf *tableFile, cols []string) error {
	header, _, closeFn, err := openStream(tf, nil)
	if err != nil {
		return err
	}
	defer closeFn()
	_, err = checkHeader(tf.name, header, cols)
	return tf.annotate(err)
}

type chunk struct {
	buf  []byte // owned buffer, returned to the pool after parsing
	data []byte // whole records only
	line int64  // physical line number of data[0]
}

// scanTable streams one table through handle, on `workers` goroutines.
// handle(w, rec) is called with worker ids 0..workers-1, never concurrently for
// the same id, so handlers keep per-worker state without locks. Rows reach a
// worker in file order within a chunk; chunks are spread over workers.
// add receives bytes read from disk (progress). The first error stops the scan.
func scanTable(tf *tableFile, spec scanSpec, workers int, add func(int64), handle func(w int, r *record) error) error {
	header, rd, closeFn, err := openStream(tf, add)
	if err != nil {
		return err
	}
	defer closeFn()
	colIdx, err := checkHeader(tf.name, header, spec.cols)
	if err != nil {
		return tf.annotate(err)
	}
	if workers < 1 {
		workers = 1
	}

	var stop atomic.Bool
	var errOnce sync.Once
	var firstErr error
	setErr := func(e error) {
		errOnce.Do(func() { firstErr = e })
		stop.Store(true)
	}

	free := make(chan []byte, 2*workers+2)
	for i := 0; i < cap(free); i++ {
		free <- make([]byte, chunkSize)
	}
	work := make(chan chunk, 2*workers)

	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			p := newChunkParser(tf.name, spec, colIdx, len(header))
			for c := range work {
				if !stop.Load() {
					if err := p.run(c.data, c.line, func(r *record) error { return handle(w, r) }); err != nil {
						setErr(err)
					}
				}
				select {
				case free <- c.buf:
				default: // an oversized buffer that replaced a pooled one; let it go
				}
			}
		}(w)
	}

	readErr := cutChunks(tf, rd, free, work, &stop)
	close(work)
	wg.Wait()
	// A damaged stream comes first: the rows a worker choked on may be the
	// debris of a cut gzip stream.
	if readErr != nil {
		return tf.annotate(readErr)
	}
	return tf.annotate(firstErr)
}

// cutChunks reads the decompressed stream into pooled buffers and sends
// chunks that end at a record boundary (a newline outside quotes).
func cutChunks(tf *tableFile, rd io.Reader, free chan []byte, work chan<- chunk, stop *atomic.Bool) error {
	line := int64(2)
	var carry []byte // bytes of an incomplete record from the previous read
	for !stop.Load() {
		buf := <-free
		if len(carry) > len(buf)/2 {
			// One record (or the tail) is huge: grow so progress is guaranteed.
			buf = make([]byte, 2*len(carry)+chunkSize)
		}
		n := copy(buf, carry)
		m, eof, err := fill(rd, buf[n:])
		n += m
		if err != nil {
			// No line: the stream broke somewhere inside the buffer just read.
			return tf.readError(0, err)
		}
		data := buf[:n]
		cut := n
		if !eof {
			cut = recordCut(data)
			if cut < 0 { // no complete record in a full buffer: grow and retry
				carry = append([]byte(nil), data...)
				select {
				case free <- buf:
				default:
				}
				continue
			}
		}
		carry = append(carry[:0], data[cut:]...)
		if cut > 0 {
			c := chunk{buf: buf, data: data[:cut], line: line}
			line += int64(bytes.Count(c.data, []byte{'\n'}))
			work <- c
		} else {
			select {
			case free <- buf:
			default:
			}
		}
		if eof {
			if len(carry) > 0 {
				return tf.fail(line, "unterminated quoted field at end of file")
			}
			return nil
		}
	}
	return nil
}

// fill reads into buf until it is full or the stream ends. eof is true only
// for a clean end (io.EOF); any other error, io.ErrUnexpectedEOF included
// (what a gzip reader returns for a cut stream), is returned as err, never
// taken for the end of the table.
func fill(r io.Reader, buf []byte) (n int, eof bool, err error) {
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err == io.EOF {
			return n, true, nil
		}
		if err != nil {
			return n, false, err
		}
	}
	return n, false, nil
}

// recordCut returns the length of the longest prefix of data made of whole
// records: it ends just after a newline preceded by an even number of quote
// characters (data always starts at a record boundary). -1 if there is none.
func recordCut(data []byte) int {
	end := len(data)
	q := -1 // quotes in data[:i], computed lazily
	for {
		i := bytes.LastIndexByte(data[:end], '\n')
		if i < 0 {
			return -1
		}
		if q < 0 {
			q = bytes.Count(data[:i], []byte{'"'})
		} else {
			q -= bytes.Count(data[i:end], []byte{'"'})
		}
		if q%2 == 0 {
			return i + 1
		}
		end = i
	}
}

// chunkParser splits records into fields. Fields are sub-slices of the chunk
// unless they contained escaped quotes (""). Every record must have exactly
// the header's number of fields, including the rows the prefilter skips and
// the fields after the last needed column, which are counted without being
// parsed.
type chunkParser struct {
	table    string
	spec     scanSpec
	want     []int // file column -> index in spec.cols, -1 if unused
	maxCol   int   // last file column needed
	filterAt int   // file column of the prefilter, -1 if none
	ncols    int   // fields in the header
	rec      record
	scratch  []byte
}

func newChunkParser(table string, spec scanSpec, colIdx []int, ncols int) *chunkParser {
	maxCol := 0
	for _, c := range colIdx {
		maxCol = max(maxCol, c)
	}
	want := make([]int, maxCol+1)
	for i := range want {
		want[i] = -1
	}
	for i, c := range colIdx {
		want[c] = i
	}
	p := &chunkParser{table: table, spec: spec, want: want, maxCol: maxCol, filterAt: -1, ncols: ncols}
	if spec.filter >= 0 {
		p.filterAt = colIdx[spec.filter]
	}
	p.rec = record{table: table, cols: spec.cols, f: make([][]byte, len(spec.cols))}
	return p
}

// run parses every record of data; line is the physical line of data[0].
func (p *chunkParser) run(data []byte, line int64, handle func(*record) error) error {
	pos := 0
	for pos < len(data) {
		if data[pos] == '\n' || (data[pos] == '\r' && pos+1 < len(data) && data[pos+1] == '\n') { // blank line
			pos = bytes.IndexByte(data[pos:], '\n') + pos + 1
			line++
			continue
		}
		next, nl, keep, err := p.record(data, pos, line)
		if err != nil {
			return err
		}
		if keep {
			p.rec.line = line
			if err := handle(&p.rec); err != nil {
				return err
			}
		}
		pos = next
		line += int64(nl)
	}
	return nil
}

// fieldCount checks a record's number of fields against the header's.
func (p *chunkParser) fieldCount(fields int, line int64) error {
	switch {
	case fields < p.ncols:
		return &InputError{Table: p.table, Line: line, Reason: fmt.Sprintf("row has %d fields, fewer than the %d of the header (a cut or damaged row?)", fields, p.ncols)}
	case fields > p.ncols:
		return &InputError{Table: p.table, Line: line, Reason: fmt.Sprintf("row has %d fields, more than the %d of the header (an unquoted comma?)", fields, p.ncols)}
	}
	return nil
}

// record parses the record starting at pos. It returns the start of the next
// record, the number of newlines consumed, and whether the row passed the
// prefilter (then p.rec.f holds the needed fields).
func (p *chunkParser) record(data []byte, pos int, line int64) (next, nl int, keep bool, err error) {
	p.scratch = p.scratch[:0]
	for i := range p.rec.f {
		p.rec.f[i] = nil
	}
	for col := 0; ; col++ {
		var fld []byte
		escaped := false
		var end int // index of the delimiter (or len(data))
		if pos < len(data) && data[pos] == '"' {
			j := pos + 1
			for {
				k := bytes.IndexByte(data[j:], '"')
				if k < 0 {
					return 0, 0, false, &InputError{Table: p.table, Line: line, Reason: fmt.Sprintf("unterminated quoted field in column %d", col+1)}
				}
				j += k
				if j+1 < len(data) && data[j+1] == '"' {
					escaped = true
					j += 2
					continue
				}
				break
			}
			fld = data[pos+1 : j]
			nl += bytes.Count(fld, []byte{'\n'})
			end = j + 1
			if end < len(data) && data[end] == '\r' && end+1 < len(data) && data[end+1] == '\n' {
				end++
			}
			if end < len(data) && data[end] != ',' && data[end] != '\n' {
				return 0, 0, false, &InputError{Table: p.table, Line: line + int64(nl), Reason: fmt.Sprintf("unexpected %q after closing quote in column %d", data[end], col+1)}
			}
		} else {
			j := pos
			for j < len(data) && data[j] != ',' && data[j] != '\n' {
				j++
			}
			fld = data[pos:j]
			if j < len(data) && data[j] == '\n' && len(fld) > 0 && fld[len(fld)-1] == '\r' {
				fld = fld[:len(fld)-1]
			}
			end = j
		}
		recEnd := end >= len(data) || data[end] == '\n'
		if col <= p.maxCol {
			if i := p.want[col]; i >= 0 {
				if escaped {
					start := len(p.scratch)
					p.scratch = append(p.scratch, bytes.ReplaceAll(fld, []byte(`""`), []byte(`"`))...)
					fld = p.scratch[start:]
				}
				p.rec.f[i] = fld
			}
		}
		skip := false
		if col == p.filterAt {
			v, ok := atoiFast(fld)
			// Not a wanted ITEMID (or not a plain integer, which no wanted
			// row has): the rest is only counted, not parsed.
			skip = !ok || v < 0 || v >= int64(len(p.spec.keep)) || !p.spec.keep[v]
		}
		if recEnd {
			if err := p.fieldCount(col+1, line); err != nil {
				return 0, 0, false, err
			}
			return end + 1, nl + boolInt(end < len(data)), !skip, nil
		}
		pos = end + 1
		if skip || col == p.maxCol {
			n2, nl2, more, open := skipRecord(data, pos)
			if open {
				return 0, 0, false, &InputError{Table: p.table, Line: line, Reason: "unterminated quoted field at end of file"}
			}
			if err := p.fieldCount(col+1+more, line); err != nil {
				return 0, 0, false, err
			}
			return n2, nl + nl2, !skip, nil
		}
	}
}

// skipRecord skips from pos (the start of a field, outside quotes) to the
// start of the next record and counts the fields on the way, using fast
// byte searches: a newline ends the record iff the quotes between pos and
// it are balanced, and a comma separates fields iff the quotes before it
// are. open reports a quote still open at the end of data.
func skipRecord(data []byte, pos int) (next, nl, fields int, open bool) {
	fields = 1
	inQ := false
	for {
		k := bytes.IndexByte(data[pos:], '\n')
		seg := data[pos:]
		if k >= 0 {
			seg = data[pos : pos+k]
		}
		if !inQ && bytes.IndexByte(seg, '"') < 0 {
			fields += bytes.Count(seg, []byte{','})
		} else {
			// Count the commas of the unquoted stretches only.
			for len(seg) > 0 {
				q := bytes.IndexByte(seg, '"')
				if q < 0 {
					if !inQ {
						fields += bytes.Count(seg, []byte{','})
					}
					break
				}
				if !inQ {
					fields += bytes.Count(seg[:q], []byte{','})
				}
				inQ = !inQ
				seg = seg[q+1:]
			}
		}
		if k < 0 {
			return len(data), nl, fields, inQ
		}
		nl++
		pos += k + 1
		if !inQ {
			return pos, nl, fields, false
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// atoiFast parses a plain non-negative or negative decimal integer; ok is
// false for anything else (including empty).
func atoiFast(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	neg := false
	if b[0] == '-' {
		neg = true
		b = b[1:]
		if len(b) == 0 {
			return 0, false
		}
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, true
}
