package export

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// cpython is the interpreter the pickle and dataset tests check against:
// Debian's, which has python3-torch and python3-numpy where `make deps` ran.
const cpython = "/usr/bin/python3"

// skipPythonEnv, set to 1, skips the tests that need Python (as the model
// package's PyTorch comparisons).
const skipPythonEnv = "M2MIX_SKIP_TORCH_REF"

func requirePython(t *testing.T, modules ...string) {
	t.Helper()
	if os.Getenv(skipPythonEnv) == "1" {
		t.Skipf("%s=1: skipping the comparison with Python", skipPythonEnv)
	}
	imp := "import sys"
	if len(modules) > 0 {
		imp = "import " + strings.Join(modules, ", ")
	}
	if out, err := exec.Command(cpython, "-c", imp).CombinedOutput(); err != nil {
		t.Fatalf("%s cannot %q (%v: %s): run `make deps`, or set %s=1 to skip the Python comparisons", cpython, imp, err, out, skipPythonEnv)
	}
}

// canonicalPy prints an unpickled object canonically: ints as i:N, bools as
// b:True, strs as s:<JSON>, tuples in parentheses, a called global as
// module.name(args), a persistent id as pid(...). It also fails on any
// opcode beyond protocol 2 or any memo opcode.
const canonicalPy = `
import json, pickle, pickletools, sys
data = open(sys.argv[1], "rb").read()
for op, arg, pos in pickletools.genops(data):
    if op.proto > 2 or "PUT" in op.name or "GET" in op.name or op.name == "MEMOIZE":
        raise SystemExit("opcode %s (protocol %d) at %d" % (op.name, op.proto, pos))
def canon(x):
    if isinstance(x, bool):
        return "b:%s" % x
    if isinstance(x, int):
        return "i:%d" % x
    if isinstance(x, str):
        return "s:" + json.dumps(x)
    if isinstance(x, tuple):
        return "(" + ",".join(canon(v) for v in x) + ")"
    if isinstance(x, (Called, Global)):
        return x.s
    raise SystemExit("unexpected %r" % (x,))
class Called:
    def __init__(self, s):
        self.s = s
class Global:
    def __init__(self, s):
        self.s = s
    def __call__(self, *args):
        return Called(self.s + canon(args))
class U(pickle.Unpickler):
    def find_class(self, module, name):
        return Global("%s.%s" % (module, name))
    def persistent_load(self, pid):
        return Called("pid" + canon(pid))
import io
sys.stdout.write(canon(U(io.BytesIO(data)).load()))
`

// TestPicklerAgainstCPython: what the writer emits, CPython's pickle reads
// back as the values written, with protocol-2 opcodes only and no memo.
func TestPicklerAgainstCPython(t *testing.T) {
	requirePython(t)
	ints := []int64{0, 1, 255, 256, 65535, 65536, -1, -256, math.MaxInt32, math.MinInt32,
		math.MaxInt32 + 1, math.MinInt32 - 1, 1 << 40, -(1 << 40), math.MaxInt64, math.MinInt64}
	strs := []string{"", "weight", "image_mixer.mixer_blocks.0.token_mix.0.bias", "é∑ unicode", "a\nb\"c"}
	p := newPickler()
	var want []string
	p.mark()
	for _, v := range ints {
		p.int(v)
		want = append(want, "i:"+strconv.FormatInt(v, 10))
	}
	for _, s := range strs {
		p.str(s)
		want = append(want, "s:"+jsonString(s))
	}
	for _, b := range []bool{true, false} {
		p.bool(b)
		want = append(want, fmt.Sprintf("b:%v", map[bool]string{true: "True", false: "False"}[b]))
	}
	for n := 0; n <= 5; n++ {
		v := make([]int64, n)
		var parts []string
		for i := range v {
			v[i] = int64(i*1000 + 7)
			parts = append(parts, "i:"+strconv.FormatInt(v[i], 10))
		}
		p.ints(v)
		if n == 1 {
			want = append(want, "("+parts[0]+")") // Python's repr would add a comma; canon does not
		} else {
			want = append(want, "("+strings.Join(parts, ",")+")")
		}
	}
	p.global("collections", "OrderedDict")
	p.emptyCall()
	want = append(want, "collections.OrderedDict()")
	p.mark()
	p.str("storage")
	p.global("torch", "FloatStorage")
	p.tupleFromMark()
	p.persistentID()
	want = append(want, `pid(s:"storage",torch.FloatStorage)`)
	p.global("torch._utils", "_rebuild_tensor_v2")
	p.mark()
	p.int(3)
	p.ints([]int64{2, 3})
	p.tupleFromMark()
	p.call()
	want = append(want, "torch._utils._rebuild_tensor_v2(i:3,(i:2,i:3))")
	p.tupleFromMark()
	path := filepath.Join(t.TempDir(), "x.pkl")
	if err := os.WriteFile(path, p.finish(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(cpython, "-c", canonicalPy, path).CombinedOutput()
	if err != nil {
		t.Fatalf("CPython: %v\n%s", err, out)
	}
	if got, w := string(out), "("+strings.Join(want, ",")+")"; got != w {
		t.Errorf("CPython read\n %s\nwant\n %s", got, w)
	}
}

func jsonString(s string) string {
	// Python's json.dumps escapes non-ASCII as \uXXXX (ensure_ascii).
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r < 0x20 || r > 0x7e:
			if r > 0xffff {
				r1, r2 := 0xd800+((r-0x10000)>>10), 0xdc00+((r-0x10000)&0x3ff)
				fmt.Fprintf(&b, `\u%04x\u%04x`, r1, r2)
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
