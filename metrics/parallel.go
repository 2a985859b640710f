package metrics

import (
	"runtime"
	"sync"
)

// minPerWorker keeps small batches on one goroutine, where starting more
// would cost more than it saves.
const minPerWorker = 512

// parallelChunks splits [0, n) into contiguous chunks, runs fn on each in
// its own goroutine and returns the results in chunk order, so callers can
// combine them deterministically. Chunk 0 always starts at 0, letting fn
// reuse the caller's scratch state there and make fresh state elsewhere.
func parallelChunks[T any](n, workers int, fn func(lo, hi int) (T, error)) ([]T, error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = max(1, min(workers, n/minPerWorker))
	if n == 0 {
		return nil, nil
	}
	res := make([]T, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		lo, hi := n*w/workers, n*(w+1)/workers
		if w == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[w], errs[w] = fn(lo, hi)
		}()
	}
	res[0], errs[0] = fn(0, n/workers)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return res, nil
}
