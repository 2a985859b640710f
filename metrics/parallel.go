package metrics

import "github.com/ortrain/ortrain/internal/parallel"

// minPerWorker keeps small batches on one goroutine, where starting more
// would cost more than it saves.
const minPerWorker = 512

// parallelChunks splits [0, n) into contiguous chunks of at least
// minPerWorker items, runs fn on each over parallel.Chunks and returns the
// results in chunk order, so callers can combine them deterministically.
// Chunk 0 always starts at 0 and runs on the calling goroutine, letting fn
// reuse the caller's scratch state there and make fresh state elsewhere.
func parallelChunks[T any](n, workers int, fn func(lo, hi int) (T, error)) ([]T, error) {
	if n == 0 {
		return nil, nil
	}
	workers = max(1, min(parallel.Workers(workers), n/minPerWorker))
	res := make([]T, workers)
	errs := make([]error, workers)
	parallel.Chunks(n, workers, func(w, lo, hi int) { res[w], errs[w] = fn(lo, hi) })
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return res, nil
}
