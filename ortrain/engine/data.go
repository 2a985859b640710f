package engine

import (
	"context"
	"io"

	"github.com/ortrain/ortrain/internal/data"
	"github.com/ortrain/ortrain/ortrain"
)

// Data serves a tokenized data.Dataset to the trainer: training epochs in
// Order (seeded per epoch), evaluation in file order. Its batches are
// *data.Batch, the type the Engine and the Generator run.
type Data struct {
	Dataset *data.Dataset
	Order   data.Order
	Collate data.Collator
}

var (
	_ ortrain.TrainData = (*Data)(nil)
	_ ortrain.EvalData  = (*Data)(nil)
)

func (d *Data) NumExamples() int { return d.Dataset.Len() }
func (d *Data) NumBatches() int  { return d.Order.NumBatches(d.Dataset.Len()) }

type dataIter struct{ r *data.BatchReader }

func (it dataIter) Next(ctx context.Context) (ortrain.Batch, error) {
	if !it.r.Next(ctx) {
		if err := it.r.Err(); err != nil {
			return nil, err
		}
		return nil, io.EOF
	}
	return it.r.Batch(), nil
}

// Epoch iterates a training epoch, skipping the first skip batches.
func (d *Data) Epoch(epoch, skip int) (ortrain.BatchIterator, error) {
	r := d.Dataset.Epoch(d.Order, d.Collate, epoch, skip)
	if err := r.Err(); err != nil {
		return nil, err
	}
	return dataIter{r}, nil
}

// Batches iterates in file order (evaluation and prediction).
func (d *Data) Batches() (ortrain.BatchIterator, error) {
	r := d.Dataset.Epoch(data.Order{BatchSize: d.Order.BatchSize, Rank: d.Order.Rank, Ranks: d.Order.Ranks}, d.Collate, 0, 0)
	if err := r.Err(); err != nil {
		return nil, err
	}
	return dataIter{r}, nil
}
