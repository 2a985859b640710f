package tokenize

import (
	"context"
	"runtime"
	"sync"
)

// EncodeBatch encodes texts in parallel on up to workers goroutines (0:
// GOMAXPROCS). ids[i] and errs[i] belong to texts[i]; one bad text does not
// stop the others. (sugarme's EncodeBatch calls log.Fatal on an error,
// ending the process; it is never used.) If ctx is cancelled, texts not yet
// started get ctx's error.
func (t *Tokenizer) EncodeBatch(ctx context.Context, texts []string, workers int) (ids [][]int, errs []error) {
	return t.EncodeBatchWith(ctx, texts, EncodeOptions{}, workers)
}

// EncodeBatchWith is EncodeBatch with options.
func (t *Tokenizer) EncodeBatchWith(ctx context.Context, texts []string, opt EncodeOptions, workers int) (ids [][]int, errs []error) {
	ids = make([][]int, len(texts))
	errs = make([]error, len(texts))
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, len(texts))
	const chunk = 64
	var next int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				lo := next
				next += chunk
				mu.Unlock()
				if lo >= len(texts) {
					return
				}
				for i := lo; i < min(lo+chunk, len(texts)); i++ {
					if err := ctx.Err(); err != nil {
						errs[i] = err
						continue
					}
					ids[i], errs[i] = t.EncodeWith(texts[i], opt)
				}
			}
		}()
	}
	wg.Wait()
	return ids, errs
}
