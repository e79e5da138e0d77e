package parallel

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
)

// TestRanges: the ranges cover [0, n) exactly once, in order by worker,
// whatever n and the worker count.
func TestRanges(t *testing.T) {
	for _, tc := range []struct{ n, workers int }{{0, 4}, {1, 4}, {3, 8}, {10, 3}, {1000, 7}, {5, 0}} {
		t.Run(fmt.Sprint(tc.n, "/", tc.workers), func(t *testing.T) {
			seen := make([]atomic.Int32, tc.n)
			bounds := make([][2]int, max(tc.workers, 64))
			got := Ranges(tc.n, tc.workers, func(w, lo, hi int) {
				bounds[w] = [2]int{lo, hi}
				for i := lo; i < hi; i++ {
					seen[i].Add(1)
				}
			})
			for i := range seen {
				if seen[i].Load() != 1 {
					t.Fatalf("index %d visited %d times", i, seen[i].Load())
				}
			}
			for w := 1; w < got; w++ {
				if bounds[w][0] != bounds[w-1][1] {
					t.Fatalf("range %d starts at %d, range %d ended at %d", w, bounds[w][0], w-1, bounds[w-1][1])
				}
			}
			if tc.n > 0 && (bounds[0][0] != 0 || bounds[got-1][1] != tc.n) {
				t.Fatalf("ranges span %d..%d, want 0..%d", bounds[0][0], bounds[got-1][1], tc.n)
			}
		})
	}
}

// TestEach: every index runs, and the lowest failing index's error is returned.
func TestEach(t *testing.T) {
	var ran atomic.Int32
	err := Each(100, func(i int) error {
		ran.Add(1)
		if i == 37 || i == 80 {
			return fmt.Errorf("index %d: %w", i, errors.ErrUnsupported)
		}
		return nil
	})
	if ran.Load() != 100 || err == nil || err.Error() != "index 37: unsupported operation" {
		t.Fatalf("ran %d, error %v", ran.Load(), err)
	}
	if err := Each(0, func(int) error { return errors.New("never") }); err != nil {
		t.Fatal(err)
	}
}
