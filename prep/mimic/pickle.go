package mimic

import (
	"bytes"
	"fmt"
	"os"
	"strings"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"
)

// The keys of im.pk this package reads. MultiBench's loader uses the same
// names; ICD9Key is optional (only the ICD-9 tasks use it).
const (
	TimeSeriesKey = "ep_tdata"
	StaticKey     = "adm_features_all"
	LabelsKey     = "adm_labels_all"
	ICD9Key       = "y_icd9"
)

// Shapes im.pk must have (beyond the shared first axis N).
const (
	Hours          = 24
	TimeFeatures   = 12
	StaticFeatures = 5
	MinLabelCols   = 6
	ICD9Cols       = 20
)

// MaxPickleBytes caps the size of an im.pk this package will read. The real
// file is about 80 MB (32,616 x 24 x 12 float64 plus small arrays); the cap
// leaves a wide margin while keeping a hostile file from exhausting memory.
const MaxPickleBytes = 2 << 30

// ReadPickle reads MultiBench's im.pk at path and returns its arrays,
// checked for the shapes MIMIC-III needs. Errors name the file and, where
// one is at fault, the key.
//
// An im.pk whose arrays have no rows is an error.
//
// y_icd9 is read only when it is an N x 20 numeric array; in any other form
// it is left out (ICD9 nil), since nothing in the 6-class task needs it and
// a reader that failed on it would block the task for no reason.
func ReadPickle(path string) (*Arrays, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read im.pk: %w", err)
	}
	if st.Size() > MaxPickleBytes {
		return nil, fmt.Errorf("read %s: %d bytes, more than the %d this reader accepts (the real im.pk is about 80 MB)", path, st.Size(), int64(MaxPickleBytes))
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read im.pk: %w", err)
	}
	a, err := DecodePickle(b)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return a, nil
}

// DecodePickle is ReadPickle on the bytes of an im.pk held in memory.
func DecodePickle(b []byte) (*Arrays, error) {
	top, err := unpickle(b)
	if err != nil {
		return nil, err
	}
	d, err := asDict(top)
	if err != nil {
		return nil, err
	}
	return arraysFromDict(d)
}

// unpickle runs gopickle over b after checking b with scanPickle, so that
// every length gopickle allocates for is known to fit inside b.
func unpickle(b []byte) (top any, err error) {
	if len(b) > MaxPickleBytes {
		return nil, fmt.Errorf("%d bytes, more than the %d this reader accepts", len(b), MaxPickleBytes)
	}
	if err := scanPickle(b); err != nil {
		return nil, err
	}
	// gopickle indexes its stack and opcode table without bounds checks in
	// a few places (a 0xff opcode, an odd number of DICT/SETITEMS items,
	// a zero-length LONG1, an unhashable OrderedDict key), so malformed
	// input can panic inside it. scanPickle rules out the first; the rest
	// become ordinary errors here.
	defer func() {
		if r := recover(); r != nil {
			top, err = nil, fmt.Errorf("malformed pickle: %v", r)
		}
	}()
	u := pickle.NewUnpickler(bytes.NewReader(b))
	u.FindClass = findClass
	top, err = u.Load()
	if err != nil {
		return nil, fmt.Errorf("malformed pickle: %w", err)
	}
	return top, nil
}

// entry is one key/value of the top-level dict.
type entry struct {
	key   string
	value any
}

func asDict(top any) ([]entry, error) {
	var out []entry
	add := func(k, v any) {
		switch ks := k.(type) {
		case string:
			out = append(out, entry{ks, v})
		case []byte: // a dict pickled with bytes keys
			out = append(out, entry{string(ks), v})
		}
		// Other keys cannot be one of ours; they are skipped.
	}
	switch d := top.(type) {
	case *types.Dict:
		for _, e := range *d {
			add(e.Key, e.Value)
		}
	case *types.OrderedDict:
		for el := d.List.Front(); el != nil; el = el.Next() {
			e := el.Value.(*types.OrderedDictEntry)
			add(e.Key, e.Value)
		}
	default:
		return nil, fmt.Errorf("the pickle holds %s, not a dict of arrays", describe(top))
	}
	return out, nil
}

// lookup returns the value of key; as in Python, the last duplicate wins.
func lookup(d []entry, key string) (any, bool) {
	for i := len(d) - 1; i >= 0; i-- {
		if d[i].key == key {
			return d[i].value, true
		}
	}
	return nil, false
}

func arraysFromDict(d []entry) (*Arrays, error) {
	var missing []string
	for _, k := range []string{TimeSeriesKey, StaticKey, LabelsKey} {
		if _, ok := lookup(d, k); !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		have := make([]string, len(d))
		for i, e := range d {
			have[i] = fmt.Sprintf("%q", e.key)
		}
		return nil, fmt.Errorf("missing key(s) %s (the dict has %s)", strings.Join(missing, ", "), strings.Join(have, ", "))
	}
	get := func(key string, want func(shape []int) bool, wantText string) ([]float64, []int, error) {
		v, _ := lookup(d, key)
		arr, ok := v.(*ndarray)
		if !ok {
			return nil, nil, fmt.Errorf("key %q: holds %s, not a numpy array", key, describe(v))
		}
		if arr.err != nil {
			return nil, nil, fmt.Errorf("key %q: %w", key, arr.err)
		}
		if !arr.ready {
			return nil, nil, fmt.Errorf("key %q: the array was never given its state (no BUILD)", key)
		}
		if !want(arr.shape) {
			return nil, nil, fmt.Errorf("key %q: shape %s, want %s", key, shapeString(arr.shape), wantText)
		}
		vals, err := arr.float64s()
		if err != nil {
			return nil, nil, fmt.Errorf("key %q: %w", key, err)
		}
		return vals, arr.shape, nil
	}
	ts, tsShape, err := get(TimeSeriesKey, func(s []int) bool {
		return len(s) == 3 && s[1] == Hours && s[2] == TimeFeatures
	}, "(N, 24, 12)")
	if err != nil {
		return nil, err
	}
	st, stShape, err := get(StaticKey, func(s []int) bool {
		return len(s) == 2 && s[1] == StaticFeatures
	}, "(N, 5)")
	if err != nil {
		return nil, err
	}
	lb, lbShape, err := get(LabelsKey, func(s []int) bool {
		return len(s) == 2 && s[1] >= MinLabelCols
	}, "(N, >= 6)")
	if err != nil {
		return nil, err
	}
	n := tsShape[0]
	if stShape[0] != n || lbShape[0] != n {
		return nil, fmt.Errorf("mismatched N: %q has %d rows, %q %d, %q %d",
			TimeSeriesKey, n, StaticKey, stShape[0], LabelsKey, lbShape[0])
	}
	if n == 0 {
		// A valid pickle, but nothing to prepare: refuse it here rather
		// than write 0-row datasets downstream.
		return nil, fmt.Errorf("no rows: %q has shape %s (and %q %s, %q %s)",
			TimeSeriesKey, shapeString(tsShape), StaticKey, shapeString(stShape), LabelsKey, shapeString(lbShape))
	}
	a := &Arrays{N: n, TimeSeries: ts, Static: st, Labels: lb, LabelCols: lbShape[1]}
	if v, ok := lookup(d, ICD9Key); ok {
		if arr, ok := v.(*ndarray); ok && arr.err == nil && len(arr.shape) == 2 && arr.shape[0] == n && arr.shape[1] == ICD9Cols {
			if vals, err := arr.float64s(); err == nil {
				a.ICD9 = vals
			}
		}
	}
	return a, nil
}

func shapeString(s []int) string {
	parts := make([]string, len(s))
	for i, x := range s {
		parts[i] = fmt.Sprint(x)
	}
	if len(s) == 1 {
		return "(" + parts[0] + ",)"
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// describe names a decoded pickle value's Python type for error messages,
// without printing the value (which may be huge or self-referential).
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case string:
		return "a str"
	case []byte:
		return "a bytes object"
	case int, int64:
		return "an int"
	case float64:
		return "a float"
	case bool:
		return "a bool"
	case *types.Dict, *types.OrderedDict:
		return "a dict"
	case *types.List:
		return "a list"
	case *types.Tuple:
		return "a tuple"
	case *opaque:
		return "an object of class " + x.class
	case *ndarray:
		return "a numpy array"
	}
	return fmt.Sprintf("a %T", v)
}
