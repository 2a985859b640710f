package data

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"

	"github.com/ortrain/ortrain/tokenize"
)

// LabelPad is the label of padding positions, ignored by the loss (HF's
// label_pad_token_id).
const LabelPad = -100

// Batch is one padded batch, row-major. InputIDs and AttentionMask have
// shape [Rows, SourceLen]; DecoderInputIDs and Labels [Rows, TargetLen]
// (both absent when TargetLen is 0, e.g. prediction sets).
type Batch struct {
	Rows, SourceLen, TargetLen int
	InputIDs                   []int64
	AttentionMask              []int64
	DecoderInputIDs            []int64
	Labels                     []int64
	References                 [][]string // every reference of each row
	Indices                    []int      // dataset index of each row
}

// Collator pads examples into a batch as HF's DataCollatorForSeq2Seq does
// (padding="longest", right side).
type Collator struct {
	PadID          int
	DecoderStartID int
	// PadToMultipleOf rounds padded lengths up (HF's pad_to_multiple_of); 0: off.
	PadToMultipleOf int
}

// CollatorFor takes pad and decoder start ids from a model's tokenizer and
// config: decoderStart is the model config's decoder_start_token_id.
func CollatorFor(tok *tokenize.Pair, decoderStart int) (Collator, error) {
	pad := tok.Target.Special().Pad
	if pad < 0 {
		return Collator{}, fmt.Errorf("the tokenizer has no pad token; batches need one")
	}
	return Collator{PadID: pad, DecoderStartID: decoderStart}, nil
}

func (c Collator) roundUp(n int) int {
	if c.PadToMultipleOf > 1 && n%c.PadToMultipleOf != 0 {
		n += c.PadToMultipleOf - n%c.PadToMultipleOf
	}
	return n
}

// Collate builds the batch of the given examples (indices into d) into b,
// reusing b's slices.
func (c Collator) Collate(d *Dataset, idx []int, b *Batch) {
	b.Rows = len(idx)
	b.SourceLen, b.TargetLen = 0, 0
	hasTargets := false
	for _, i := range idx {
		b.SourceLen = max(b.SourceLen, len(d.Source[i]))
		b.TargetLen = max(b.TargetLen, len(d.Labels[i]))
		hasTargets = hasTargets || d.Labels[i] != nil
	}
	b.SourceLen = c.roundUp(b.SourceLen)
	if hasTargets {
		b.TargetLen = c.roundUp(b.TargetLen)
	}
	b.InputIDs = resize(b.InputIDs, b.Rows*b.SourceLen)
	b.AttentionMask = resize(b.AttentionMask, b.Rows*b.SourceLen)
	b.Labels = resize(b.Labels, b.Rows*b.TargetLen)
	b.DecoderInputIDs = resize(b.DecoderInputIDs, b.Rows*b.TargetLen)
	b.References = b.References[:0]
	b.Indices = append(b.Indices[:0], idx...)
	for r, i := range idx {
		src := b.InputIDs[r*b.SourceLen : (r+1)*b.SourceLen]
		mask := b.AttentionMask[r*b.SourceLen : (r+1)*b.SourceLen]
		for k := range src {
			if k < len(d.Source[i]) {
				src[k], mask[k] = int64(d.Source[i][k]), 1
			} else {
				src[k], mask[k] = int64(c.PadID), 0
			}
		}
		lab := b.Labels[r*b.TargetLen : (r+1)*b.TargetLen]
		dec := b.DecoderInputIDs[r*b.TargetLen : (r+1)*b.TargetLen]
		for k := range lab {
			if k < len(d.Labels[i]) {
				lab[k] = int64(d.Labels[i][k])
			} else {
				lab[k] = LabelPad
			}
		}
		// shift_tokens_right: start token, then labels[:-1], -100 -> pad.
		for k := range dec {
			v := int64(c.DecoderStartID)
			if k > 0 {
				v = lab[k-1]
			}
			if v == LabelPad {
				v = int64(c.PadID)
			}
			dec[k] = v
		}
		b.References = append(b.References, d.Examples[i].Targets)
	}
}

func resize(s []int64, n int) []int64 {
	if cap(s) < n {
		return make([]int64, n)
	}
	return s[:n]
}

// Order says how an epoch visits a dataset.
type Order struct {
	BatchSize int
	// Shuffle visits examples in a permutation drawn from (Seed, epoch);
	// otherwise in file order (evaluation).
	Shuffle bool
	Seed    uint64
	// GroupByLength groups examples of similar source length, as HF's
	// LengthGroupedSampler does: a seeded permutation is cut into
	// megabatches of min(n/(4*BatchSize), 50)*BatchSize examples (at least
	// one batch), each megabatch is sorted by decreasing input length
	// (stable), and the longest example of all is swapped to the front so
	// that the first batch is the largest. Implies Shuffle.
	GroupByLength bool
	// DropLast drops a last, smaller batch (HF's dataloader_drop_last).
	DropLast bool
}

// Permutation is the order of example indices for an epoch: a pure
// function of (Seed, epoch, dataset size). It uses Go's PCG generator
// seeded with (Seed, epoch), so it is not torch's order; it is the same on
// every run and every machine, which is what resuming needs.
func (o Order) Permutation(n, epoch int, lengths func(i int) int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	if !o.Shuffle && !o.GroupByLength {
		return idx
	}
	rng := rand.New(rand.NewPCG(o.Seed, uint64(epoch)))
	rng.Shuffle(n, func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
	if !o.GroupByLength || lengths == nil || o.BatchSize <= 0 {
		return idx
	}
	mult := min(n/(o.BatchSize*4), 50)
	if mult == 0 {
		mult = 1
	}
	size := mult * o.BatchSize
	var megas [][]int
	for i := 0; i < n; i += size {
		m := idx[i:min(i+size, n)]
		sort.SliceStable(m, func(a, b int) bool { return lengths(m[a]) > lengths(m[b]) })
		megas = append(megas, m)
	}
	best := 0
	for k, m := range megas {
		if lengths(m[0]) > lengths(megas[best][0]) {
			best = k
		}
	}
	megas[0][0], megas[best][0] = megas[best][0], megas[0][0]
	return idx
}

// NumBatches is the number of batches of an epoch over n examples.
func (o Order) NumBatches(n int) int {
	if o.BatchSize <= 0 {
		return 0
	}
	if o.DropLast {
		return n / o.BatchSize
	}
	return (n + o.BatchSize - 1) / o.BatchSize
}

// BatchReader yields the batches of one epoch, Scanner style:
//
//	r := d.Epoch(ctx, order, col, epoch, skip)
//	for r.Next() { b := r.Batch() ... }
//	if err := r.Err(); err != nil { ... }
type BatchReader struct {
	ctx   context.Context
	d     *Dataset
	col   Collator
	order Order
	perm  []int
	pos   int // next batch number
	n     int // batches in the epoch
	b     Batch
	err   error
}

// Epoch returns a reader over epoch's batches, starting after the first
// skip batches (resume: skip = batches already trained in this epoch).
func (d *Dataset) Epoch(ctx context.Context, order Order, col Collator, epoch, skip int) *BatchReader {
	r := &BatchReader{ctx: ctx, d: d, col: col, order: order}
	if order.BatchSize <= 0 {
		r.err = fmt.Errorf("batch size %d: must be positive", order.BatchSize)
		return r
	}
	r.perm = order.Permutation(d.Len(), epoch, func(i int) int { return len(d.Source[i]) })
	r.n = order.NumBatches(d.Len())
	if skip < 0 || skip > r.n {
		r.err = fmt.Errorf("cannot skip %d batches of an epoch of %d", skip, r.n)
		return r
	}
	r.pos = skip
	return r
}

// Next prepares the next batch; false at the end of the epoch or on error.
func (r *BatchReader) Next() bool {
	if r.err != nil || r.pos >= r.n {
		return false
	}
	if err := r.ctx.Err(); err != nil {
		r.err = err
		return false
	}
	bs := r.order.BatchSize
	lo := r.pos * bs
	r.col.Collate(r.d, r.perm[lo:min(lo+bs, len(r.perm))], &r.b)
	r.pos++
	return true
}

// Batch is the current batch; it is valid until the next call to Next.
func (r *BatchReader) Batch() *Batch { return &r.b }

// Position is the number of batches consumed so far in the epoch (skipped
// ones included): what a checkpoint records for resuming.
func (r *BatchReader) Position() int { return r.pos }

// Len is the number of batches in the epoch.
func (r *BatchReader) Len() int { return r.n }

// Err is the first error; nil at a clean end.
func (r *BatchReader) Err() error { return r.err }

// LabelTokens counts the labels that are not padding: HF's
// num_items_in_batch contribution of this batch.
func (b *Batch) LabelTokens() int {
	n := 0
	for _, v := range b.Labels {
		if v != LabelPad {
			n++
		}
	}
	return n
}
