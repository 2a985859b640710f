package engine

import (
	"context"
	"io"

	"github.com/ortrain/ortrain/internal/data"
	"github.com/ortrain/ortrain/ortrain"
)

// Data serves a tokenized data.Dataset to the trainer: training epochs in
// Order (seeded per epoch), evaluation in file order.
type Data struct {
	Ctx     context.Context
	Dataset *data.Dataset
	Order   data.Order
	Collate data.Collator
}

func (d *Data) NumExamples() int { return d.Dataset.Len() }
func (d *Data) NumBatches() int  { return d.Order.NumBatches(d.Dataset.Len()) }

func (d *Data) ctx() context.Context {
	if d.Ctx == nil {
		return context.Background()
	}
	return d.Ctx
}

type dataIter struct{ r *data.BatchReader }

func (it dataIter) Next() (ortrain.Batch, error) {
	if !it.r.Next() {
		if err := it.r.Err(); err != nil {
			return nil, err
		}
		return nil, io.EOF
	}
	return FromDataBatch(it.r.Batch()), nil
}

// Epoch iterates a training epoch, skipping the first skip batches.
func (d *Data) Epoch(epoch, skip int) (ortrain.BatchIterator, error) {
	r := d.Dataset.Epoch(d.ctx(), d.Order, d.Collate, epoch, skip)
	if err := r.Err(); err != nil {
		return nil, err
	}
	return dataIter{r}, nil
}

// Batches iterates in file order (evaluation and prediction).
func (d *Data) Batches() (ortrain.BatchIterator, error) {
	o := data.Order{BatchSize: d.Order.BatchSize}
	r := d.Dataset.Epoch(d.ctx(), o, d.Collate, 0, 0)
	if err := r.Err(); err != nil {
		return nil, err
	}
	return dataIter{r}, nil
}

// FromDataBatch copies a data.Batch (which the reader reuses) into a Batch.
// decoder_attention_mask is all ones: HF's collator passes none, which the
// model treats as all ones.
func FromDataBatch(b *data.Batch) *Batch {
	out := &Batch{}
	out.Rows, out.SourceLen, out.TargetLen = b.Rows, b.SourceLen, b.TargetLen
	out.InputIDs = append([]int64(nil), b.InputIDs...)
	out.AttentionMask = append([]int64(nil), b.AttentionMask...)
	out.DecoderInputIDs = append([]int64(nil), b.DecoderInputIDs...)
	out.Labels = append([]int64(nil), b.Labels...)
	out.DecoderAttentionMask = make([]int64, b.Rows*b.TargetLen)
	for i := range out.DecoderAttentionMask {
		out.DecoderAttentionMask[i] = 1
	}
	for i := 0; i < b.Rows; i++ {
		var src []int64
		for j := 0; j < b.SourceLen; j++ {
			if b.AttentionMask[i*b.SourceLen+j] != 0 {
				src = append(src, b.InputIDs[i*b.SourceLen+j])
			}
		}
		out.Sources = append(out.Sources, src)
		if b.TargetLen > 0 {
			lab := make([]int, b.TargetLen)
			for j := range lab {
				lab[j] = int(b.Labels[i*b.TargetLen+j])
				if lab[j] != -100 {
					out.labelTokens++
				}
			}
			out.labels = append(out.labels, lab)
		}
	}
	return out
}
