package pyrandom

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// vectors mirrors testdata/vectors.json, written by CPython itself
// (testdata/make_vectors.py).
type vectors struct {
	Python   string `json:"python"`
	Shuffles []struct {
		Seed   int64  `json:"seed"`
		N      int    `json:"n"`
		SHA256 string `json:"sha256"`
		First  []int  `json:"first"`
		Last   []int  `json:"last"`
		Order  []int  `json:"order"`
	} `json:"shuffles"`
	GetRandBits []struct {
		Seed   int64    `json:"seed"`
		K      int      `json:"k"`
		Values []string `json:"values"`
	} `json:"getrandbits"`
	Random []struct {
		Seed   int64    `json:"seed"`
		Values []string `json:"values"`
	} `json:"random"`
}

func loadVectors(t *testing.T) *vectors {
	t.Helper()
	b, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectors
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Shuffles) == 0 || len(v.GetRandBits) == 0 || len(v.Random) == 0 {
		t.Fatal("vectors.json is missing sections")
	}
	return &v
}

func orderDigest(xs []int) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.Itoa(x)
	}
	s := sha256.Sum256([]byte(strings.Join(parts, ",")))
	return hex.EncodeToString(s[:])
}

func TestShuffleMatchesCPython(t *testing.T) {
	v := loadVectors(t)
	for _, c := range v.Shuffles {
		t.Run(strconv.FormatInt(c.Seed, 10)+"/"+strconv.Itoa(c.N), func(t *testing.T) {
			got := ShuffledRange(c.Seed, c.N)
			if c.Order != nil && !slices.Equal(got, c.Order) {
				t.Fatalf("order differs from CPython's:\n got %v\nwant %v", head(got), head(c.Order))
			}
			if d := orderDigest(got); d != c.SHA256 {
				t.Fatalf("sha256 %s, CPython's %s (first %v, want %v)", d, c.SHA256, head(got), c.First)
			}
			if !slices.Equal(got[:min(10, len(got))], c.First) || !slices.Equal(got[max(0, len(got)-10):], c.Last) {
				t.Fatalf("ends %v..%v, CPython's %v..%v", got[:min(10, len(got))], got[max(0, len(got)-10):], c.First, c.Last)
			}
		})
	}
}

func head(x []int) []int { return x[:min(len(x), 12)] }

func TestGetRandBitsMatchesCPython(t *testing.T) {
	v := loadVectors(t)
	for _, c := range v.GetRandBits {
		r := New(c.Seed)
		for i, want := range c.Values {
			got := strconv.FormatUint(r.GetRandBits(c.K), 10)
			if got != want {
				t.Fatalf("seed %d getrandbits(%d) #%d = %s, CPython %s", c.Seed, c.K, i, got, want)
			}
		}
	}
}

func TestFloat64MatchesCPython(t *testing.T) {
	v := loadVectors(t)
	for _, c := range v.Random {
		r := New(c.Seed)
		for i, want := range c.Values {
			w, err := strconv.ParseFloat(want, 64)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Float64(); got != w {
				t.Fatalf("seed %d random() #%d = %v, CPython %v", c.Seed, i, got, w)
			}
		}
	}
}

func TestShuffleIsAPermutation(t *testing.T) {
	for _, n := range []int{0, 1, 5, 777} {
		got := ShuffledRange(10, n)
		s := slices.Clone(got)
		slices.Sort(s)
		for i := range s {
			if s[i] != i {
				t.Fatalf("n=%d: not a permutation of range(n)", n)
			}
		}
	}
}

func TestBitLength(t *testing.T) {
	for _, c := range []struct {
		x    uint64
		want int
	}{{0, 0}, {1, 1}, {2, 2}, {3, 2}, {4, 3}, {1 << 31, 32}, {1<<32 - 1, 32}, {1<<64 - 1, 64}} {
		if got := bitLength(c.x); got != c.want {
			t.Errorf("bitLength(%d) = %d, want %d", c.x, got, c.want)
		}
	}
}

func BenchmarkShuffledRange32616(b *testing.B) {
	for b.Loop() {
		ShuffledRange(10, 32616)
	}
}
