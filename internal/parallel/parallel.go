// Package parallel spreads a loop over n items on several goroutines, the
// fan-out that metrics, beam search and the tokenizer share.
//
// Chunks splits the items up front into contiguous, numbered chunks, so
// callers can keep per-worker state (scratch buffers, partial sums) and
// combine the results in chunk order, which keeps them deterministic
// whatever the scheduling. Each is for independent items with a result of
// their own, and honours a context.
package parallel

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
)

// Workers is the goroutine count that workers asks for: itself when
// positive, otherwise one per CPU (GOMAXPROCS).
func Workers(workers int) int {
	if workers <= 0 {
		return runtime.GOMAXPROCS(0)
	}
	return workers
}

// Chunks splits [0, n) into k = min(Workers(workers), n) contiguous chunks,
// chunk w being [n*w/k, n*(w+1)/k) (sizes differ by at most one), and runs
// fn(w, lo, hi) on each. Chunk 0 runs on the calling goroutine, so fn may
// use the caller's own scratch state there; the others run on goroutines of
// their own. Chunks returns when every chunk is done; n <= 0 runs nothing.
func Chunks(n, workers int, fn func(worker, lo, hi int)) {
	k := min(Workers(workers), n)
	run(k, func(w int) { fn(w, n*w/k, n*(w+1)/k) })
}

// eachBlock is how many items an Each worker takes at a time: enough to
// make the shared counter cheap, few enough to balance items of uneven cost.
const eachBlock = 64

// Each runs fn(i) for every i in [0, n) on up to Workers(workers)
// goroutines and returns every item's error, in item order; one failing
// item does not stop the others. Items are handed out in blocks as workers
// become free rather than split up front, because their costs can differ
// widely (a corpus of short sentences followed by long documents). Once ctx
// is done, items not yet started are not run: their error is ctx's.
func Each(ctx context.Context, n, workers int, fn func(i int) error) []error {
	errs := make([]error, max(n, 0))
	var next atomic.Int64
	run(min(Workers(workers), n), func(int) {
		for {
			hi := int(next.Add(eachBlock))
			lo := hi - eachBlock
			if lo >= n {
				return
			}
			for i := lo; i < min(hi, n); i++ {
				if err := ctx.Err(); err != nil {
					errs[i] = err
					continue
				}
				errs[i] = fn(i)
			}
		}
	})
	return errs
}

// run calls fn(w) for every w in [0, k): w = 0 on the calling goroutine,
// the others on goroutines of their own, and returns when all are done. A
// panic in a worker goroutine is carried over to the calling goroutine once
// all are done (a panic on a goroutine of its own would end the process
// before the command could report it).
func run(k int, fn func(w int)) {
	if k <= 0 {
		return
	}
	var wg sync.WaitGroup
	var panicked atomic.Pointer[workerPanic]
	for w := 1; w < k; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil {
					panicked.CompareAndSwap(nil, &workerPanic{value: r, stack: debug.Stack()})
				}
			}()
			fn(w)
		}()
	}
	fn(0)
	wg.Wait()
	if p := panicked.Load(); p != nil {
		panic(p)
	}
}

// workerPanic is a worker goroutine's panic, re-raised on the caller's.
type workerPanic struct {
	value any
	stack []byte
}

func (p *workerPanic) String() string {
	return fmt.Sprintf("%v [in a worker goroutine]\n%s", p.value, p.stack)
}
