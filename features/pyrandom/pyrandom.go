// Package pyrandom reproduces CPython's random module where m2mix needs it:
// random.seed(int), getrandbits, random() and shuffle, bit for bit.
//
// MultiBench splits MIMIC-III by calling random.seed(10) and then
// random.shuffle on the sample list, so the only way to obtain the paper's
// exact train/validation/test membership (and order) is to replay CPython's
// Mersenne Twister and its shuffle loop exactly. Nothing here is meant as a
// general-purpose random source.
package pyrandom

// Mersenne Twister MT19937 parameters (Matsumoto & Nishimura), as in
// CPython's Modules/_randommodule.c.
const (
	n         = 624
	m         = 397
	matrixA   = 0x9908b0df
	upperMask = 0x80000000
	lowerMask = 0x7fffffff
)

// Random is one CPython random.Random instance's generator state.
// The zero value is not seeded; use New.
type Random struct {
	mt    [n]uint32
	index int
}

// New returns a generator seeded as CPython's random.seed(seed) (or
// random.Random(seed)) seeds it for an int argument.
func New(seed int64) *Random {
	r := &Random{}
	r.Seed(seed)
	return r
}

// Seed reseeds as CPython does for an int: the absolute value is split into
// 32-bit words, least significant first (one word 0 for seed 0), and fed to
// init_by_array. Python ints are unbounded; int64 covers every seed m2mix uses.
func (r *Random) Seed(seed int64) {
	u := uint64(seed)
	if seed < 0 {
		u = -u // two's complement negation gives |seed| even for MinInt64
	}
	key := []uint32{uint32(u)}
	if hi := uint32(u >> 32); hi != 0 {
		key = append(key, hi)
	}
	r.initByArray(key)
}

func (r *Random) initGenrand(s uint32) {
	r.mt[0] = s
	for i := 1; i < n; i++ {
		r.mt[i] = 1812433253*(r.mt[i-1]^(r.mt[i-1]>>30)) + uint32(i)
	}
	r.index = n
}

func (r *Random) initByArray(key []uint32) {
	r.initGenrand(19650218)
	i, j := 1, 0
	k := max(n, len(key))
	for ; k > 0; k-- {
		r.mt[i] = (r.mt[i] ^ ((r.mt[i-1] ^ (r.mt[i-1] >> 30)) * 1664525)) + key[j] + uint32(j)
		i++
		j++
		if i >= n {
			r.mt[0] = r.mt[n-1]
			i = 1
		}
		if j >= len(key) {
			j = 0
		}
	}
	for k = n - 1; k > 0; k-- {
		r.mt[i] = (r.mt[i] ^ ((r.mt[i-1] ^ (r.mt[i-1] >> 30)) * 1566083941)) - uint32(i)
		i++
		if i >= n {
			r.mt[0] = r.mt[n-1]
			i = 1
		}
	}
	r.mt[0] = 0x80000000 // guarantees a non-zero initial state
}

// Uint32 returns the next 32-bit output (CPython's genrand_uint32).
func (r *Random) Uint32() uint32 {
	if r.index >= n {
		r.twist()
	}
	y := r.mt[r.index]
	r.index++
	y ^= y >> 11
	y ^= (y << 7) & 0x9d2c5680
	y ^= (y << 15) & 0xefc60000
	y ^= y >> 18
	return y
}

func (r *Random) twist() {
	mag := func(y uint32) uint32 { return (y & 1) * matrixA }
	var kk int
	for kk = 0; kk < n-m; kk++ {
		y := (r.mt[kk] & upperMask) | (r.mt[kk+1] & lowerMask)
		r.mt[kk] = r.mt[kk+m] ^ (y >> 1) ^ mag(y)
	}
	for ; kk < n-1; kk++ {
		y := (r.mt[kk] & upperMask) | (r.mt[kk+1] & lowerMask)
		r.mt[kk] = r.mt[kk+(m-n)] ^ (y >> 1) ^ mag(y)
	}
	y := (r.mt[n-1] & upperMask) | (r.mt[0] & lowerMask)
	r.mt[n-1] = r.mt[m-1] ^ (y >> 1) ^ mag(y)
	r.index = 0
}

// Float64 is random.random(): 53 random bits from two outputs.
func (r *Random) Float64() float64 {
	a := r.Uint32() >> 5
	b := r.Uint32() >> 6
	return (float64(a)*67108864.0 + float64(b)) * (1.0 / 9007199254740992.0)
}

// GetRandBits is random.getrandbits(k) for 0 <= k <= 64. As in CPython,
// k <= 32 uses the top k bits of one output; wider values are assembled
// from 32-bit outputs, least significant word first, the last one
// truncated to its top bits. It panics for k outside [0, 64], a caller bug.
func (r *Random) GetRandBits(k int) uint64 {
	if k < 0 || k > 64 {
		panic("pyrandom: GetRandBits wants 0 <= k <= 64")
	}
	if k == 0 {
		return 0 // CPython 3.9+ returns 0 without drawing
	}
	if k <= 32 {
		return uint64(r.Uint32() >> (32 - k))
	}
	var v uint64
	for shift := 0; k > 0; shift, k = shift+32, k-32 {
		w := r.Uint32()
		if k < 32 {
			w >>= 32 - k
		}
		v |= uint64(w) << shift
	}
	return v
}

// randBelow is Random._randbelow_with_getrandbits: rejection sampling on
// n.bit_length() bits (not (n-1).bit_length(), which CPython deliberately
// avoids so that n == 1 works; this choice changes the stream, so it must
// match). n must be positive.
func (r *Random) randBelow(n uint64) uint64 {
	k := bitLength(n)
	v := r.GetRandBits(k)
	for v >= n {
		v = r.GetRandBits(k)
	}
	return v
}

// IntN returns random._randbelow(n) for n > 0, the primitive behind
// randrange and shuffle. It panics for n <= 0, a caller bug.
func (r *Random) IntN(n int) int {
	if n <= 0 {
		panic("pyrandom: IntN wants n > 0")
	}
	return int(r.randBelow(uint64(n)))
}

func bitLength(x uint64) int {
	b := 0
	for ; x != 0; x >>= 1 {
		b++
	}
	return b
}

// Shuffle permutes n items in place exactly as random.shuffle does on a
// list of length n, calling swap(i, j) for each exchange (including i == j,
// which is harmless): for i from n-1 down to 1, j = _randbelow(i+1).
func (r *Random) Shuffle(n int, swap func(i, j int)) {
	for i := n - 1; i >= 1; i-- {
		j := int(r.randBelow(uint64(i + 1)))
		swap(i, j)
	}
}

// ShuffledRange returns the list that random.seed(seed);
// x = list(range(n)); random.shuffle(x) leaves in x.
func ShuffledRange(seed int64, n int) []int {
	x := make([]int, n)
	for i := range x {
		x[i] = i
	}
	New(seed).Shuffle(n, func(i, j int) { x[i], x[j] = x[j], x[i] })
	return x
}
