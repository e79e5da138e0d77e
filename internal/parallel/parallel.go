// Package parallel splits index ranges across goroutines: the one loop
// behind the project's data-parallel work (PCA, reading inputs), where each
// index writes only its own slots, so results do not depend on the split.
package parallel

import (
	"runtime"
	"sync"
)

// Ranges splits [0, n) into at most workers contiguous ranges (at least one
// index each) and runs f(w, lo, hi) for range w on its own goroutine,
// returning when all are done. workers <= 0 means GOMAXPROCS. It returns the
// number of ranges, so callers can size per-range results.
func Ranges(n, workers int, f func(w, lo, hi int)) int {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = max(1, min(workers, n))
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(w, w*n/workers, (w+1)*n/workers)
		}()
	}
	wg.Wait()
	return workers
}

// Each runs f(i) for every i in [0, n) on all cores and returns the error of
// the lowest index that failed.
func Each(n int, f func(i int) error) error {
	errs := make([]error, n)
	Ranges(n, 0, func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			errs[i] = f(i)
		}
	})
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
