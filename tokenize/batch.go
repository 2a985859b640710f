package tokenize

import (
	"context"

	"github.com/ortrain/ortrain/internal/parallel"
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
	errs = parallel.Each(ctx, len(texts), workers, func(i int) error {
		var err error
		ids[i], err = t.EncodeWith(texts[i], opt)
		return err
	})
	return ids, errs
}
