package avmnist

import (
	"math/rand/v2"
	"testing"
)

func TestSimExplore(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	lengths := make([]int, 70000)
	for i := range lengths {
		lengths[i] = 2400 + r.IntN(4000)
	}
	for _, w := range []int{14, 15, 16, 17, 18, 20} {
		o := RaceOrder(lengths, 8000, PoolRace{Workers: w, BaseMS: 30, PerSecondMS: 10, JitterMS: 5, Seed: 1})
		t.Logf("W %d: in place %.3f", w, InPlace(o))
	}
}
