package parallel

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Every item is covered once, chunks are contiguous and in worker order,
// their sizes differ by at most one, and no more workers run than items.
func TestChunksCoverInOrder(t *testing.T) {
	for n := 0; n <= 13; n++ {
		for workers := -1; workers <= 6; workers++ {
			var mu sync.Mutex
			got := map[int][2]int{}
			Chunks(n, workers, func(w, lo, hi int) {
				mu.Lock()
				defer mu.Unlock()
				if _, dup := got[w]; dup {
					t.Errorf("n=%d workers=%d: worker %d ran twice", n, workers, w)
				}
				got[w] = [2]int{lo, hi}
			})
			want := min(Workers(workers), n)
			if len(got) != want {
				t.Fatalf("n=%d workers=%d: %d chunks, want %d", n, workers, len(got), want)
			}
			next, smallest, largest := 0, n, 0
			for w := range want {
				c := got[w]
				if c[0] != next || c[1] <= c[0] {
					t.Fatalf("n=%d workers=%d: chunk %d = %v, want it to start at %d and be non-empty", n, workers, w, c, next)
				}
				next = c[1]
				smallest, largest = min(smallest, c[1]-c[0]), max(largest, c[1]-c[0])
			}
			if next != n || (n > 0 && largest-smallest > 1) {
				t.Errorf("n=%d workers=%d: cover to %d, sizes %d..%d", n, workers, next, smallest, largest)
			}
		}
	}
}

// Chunk 0 runs on the calling goroutine: state the caller owns (here not
// guarded at all) is safe to use there, and it is done when Chunks returns.
func TestChunkZeroRunsOnTheCaller(t *testing.T) {
	callerOnly := 0
	var others atomic.Int64
	Chunks(100, 4, func(w, lo, hi int) {
		if w == 0 {
			callerOnly = hi - lo
			return
		}
		others.Add(int64(hi - lo))
	})
	if callerOnly != 25 || others.Load() != 75 {
		t.Errorf("chunk 0 did %d items, the others %d", callerOnly, others.Load())
	}
}

func TestWorkers(t *testing.T) {
	if Workers(3) != 3 || Workers(0) != runtime.GOMAXPROCS(0) || Workers(-2) != runtime.GOMAXPROCS(0) {
		t.Errorf("Workers: %d %d %d", Workers(3), Workers(0), Workers(-2))
	}
}

// Each reports every item's own error in item order; one failing item does
// not stop the others.
func TestEachErrorsPerItem(t *testing.T) {
	done := make([]bool, 50)
	errs := Each(context.Background(), 50, 3, func(i int) error {
		done[i] = true
		if i%7 == 0 {
			return fmt.Errorf("item %d", i)
		}
		return nil
	})
	for i, err := range errs {
		if !done[i] {
			t.Errorf("item %d not run", i)
		}
		if (i%7 == 0) != (err != nil) || (err != nil && err.Error() != fmt.Sprintf("item %d", i)) {
			t.Errorf("item %d: %v", i, err)
		}
	}
	if errs := Each(context.Background(), 0, 0, nil); len(errs) != 0 {
		t.Errorf("no items: %v", errs)
	}
}

// Items not started when ctx is done get ctx's error and are not run; those
// already finished keep their own result.
func TestEachStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var ran atomic.Int64
	errs := Each(ctx, 40, 1, func(i int) error {
		ran.Add(1)
		if i == 9 {
			cancel()
		}
		return nil
	})
	if ran.Load() != 10 {
		t.Errorf("%d items ran after cancelling at item 9", ran.Load())
	}
	for i, err := range errs {
		if want := i >= 10; want != errors.Is(err, context.Canceled) {
			t.Errorf("item %d: %v", i, err)
		}
	}
	errs = Each(ctx, 5, 2, func(int) error { t.Error("ran after cancel"); return nil })
	for i, err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled before start, item %d: %v", i, err)
		}
	}
}

// Each runs every item exactly once, also when the items outnumber the
// blocks and the workers.
func TestEachRunsEveryItemOnce(t *testing.T) {
	for _, n := range []int{1, 63, 64, 65, 1000} {
		for _, workers := range []int{0, 1, 3, 50} {
			runs := make([]atomic.Int64, n)
			Each(context.Background(), n, workers, func(i int) error { runs[i].Add(1); return nil })
			for i := range runs {
				if runs[i].Load() != 1 {
					t.Fatalf("n=%d workers=%d: item %d ran %d times", n, workers, i, runs[i].Load())
				}
			}
		}
	}
}

// A panic in a worker goroutine reaches the caller, where the command's
// boundary can recover it, instead of ending the process.
func TestWorkerPanicReachesCaller(t *testing.T) {
	got := func() (r any) {
		defer func() { r = recover() }()
		Chunks(8, 4, func(w, lo, hi int) {
			if w == 3 {
				panic("boom")
			}
		})
		return nil
	}()
	if got == nil || !strings.Contains(fmt.Sprint(got), "boom") {
		t.Fatalf("recovered %v", got)
	}
}
