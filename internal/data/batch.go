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

// Batch is one padded batch, row-major: the one batch type of ortrain,
// from the collator through the trainer to the training graphs. InputIDs
// and AttentionMask have shape [Rows, SourceLen]; DecoderInputIDs, Labels
// and DecoderAttentionMask [Rows, TargetLen] (absent when TargetLen is 0,
// e.g. prediction sets).
type Batch struct {
	Rows, SourceLen, TargetLen int
	InputIDs                   []int64
	AttentionMask              []int64
	DecoderInputIDs            []int64
	Labels                     []int64
	// DecoderAttentionMask is nil from the collator: HF's collator passes
	// none, which the model reads as all ones (and so do the graphs);
	// Collator.MaskPadDecoderInputs sets it for models that mask pad
	// positions themselves when given none.
	DecoderAttentionMask []int64
	References           [][]string // every reference of each row
	Indices              []int      // dataset index of each row
}

// Collator pads examples into a batch as HF's DataCollatorForSeq2Seq does
// (padding="longest", right side).
type Collator struct {
	PadID          int
	DecoderStartID int
	// StartFromLastLabel starts each row's decoder inputs with its last
	// non-pad label token instead of DecoderStartID, as mBART's, PLBart's
	// and FSMT's shift_tokens_right do (the target's language code or
	// </s> moves to the front).
	StartFromLastLabel bool
	// PadLabelsWithPad pads labels with PadID instead of -100, so the loss
	// counts the padded positions: what HF's collator hands FSMT, whose
	// prepare_decoder_input_ids_from_labels overwrites -100 in place.
	PadLabelsWithPad bool
	// MaskPadDecoderInputs sets DecoderAttentionMask to 0 where the decoder
	// input is PadID, as FSMT's decoder does when given no mask.
	MaskPadDecoderInputs bool
	// PadToMultipleOf rounds padded lengths up (HF's pad_to_multiple_of); 0: off.
	PadToMultipleOf int
	// SourceLen and TargetLen pad every batch to these lengths (the HF
	// scripts' pad_to_max_length: the tokenizer pads to max_length, and
	// default_data_collator stacks the rows); 0: the longest row.
	SourceLen, TargetLen int
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

// Collate builds the batch of the given examples (indices into d).
func (c Collator) Collate(d *Dataset, idx []int) *Batch {
	b := &Batch{}
	b.Rows = len(idx)
	b.SourceLen, b.TargetLen = 0, 0
	hasTargets := false
	for _, i := range idx {
		b.SourceLen = max(b.SourceLen, len(d.Source[i]))
		b.TargetLen = max(b.TargetLen, len(d.Labels[i]))
		hasTargets = hasTargets || d.Labels[i] != nil
	}
	b.SourceLen = c.roundUp(max(b.SourceLen, c.SourceLen))
	if hasTargets {
		b.TargetLen = c.roundUp(max(b.TargetLen, c.TargetLen))
	}
	b.InputIDs = make([]int64, b.Rows*b.SourceLen)
	b.AttentionMask = make([]int64, b.Rows*b.SourceLen)
	b.Labels = make([]int64, b.Rows*b.TargetLen)
	b.DecoderInputIDs = make([]int64, b.Rows*b.TargetLen)
	b.Indices = append([]int(nil), idx...)
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
		start := int64(c.DecoderStartID)
		if c.StartFromLastLabel {
			start = lastLabelToken(lab, int64(c.PadID))
		}
		if c.PadLabelsWithPad {
			for k, v := range lab {
				if v == LabelPad {
					lab[k] = int64(c.PadID)
				}
			}
		}
		for k := range dec {
			v := start
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
	if c.MaskPadDecoderInputs && b.TargetLen > 0 {
		b.DecoderAttentionMask = PadMask(b.DecoderInputIDs, int64(c.PadID))
	}
	return b
}

// PadMask is 0 where ids hold pad and 1 elsewhere.
func PadMask(ids []int64, pad int64) []int64 {
	m := make([]int64, len(ids))
	for i, v := range ids {
		if v != pad {
			m[i] = 1
		}
	}
	return m
}

// lastLabelToken is mBART's decoder start: labels with -100 read as pad,
// the token at (number of non-pad tokens - 1), as torch's gather indexes
// it (an all-pad row gives the last position).
func lastLabelToken(lab []int64, pad int64) int64 {
	if len(lab) == 0 {
		return pad
	}
	n := 0
	for _, v := range lab {
		if v != LabelPad && v != pad {
			n++
		}
	}
	i := n - 1
	if i < 0 {
		i = len(lab) - 1
	}
	if lab[i] == LabelPad {
		return pad
	}
	return lab[i]
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
	// Rank of Ranks (Ranks > 1: data-parallel processes) takes its share of
	// the batches as accelerate deals them (ShardBatches).
	Rank, Ranks int
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

// NumBatches is the number of batches of an epoch over n examples (this
// rank's share when Ranks > 1).
func (o Order) NumBatches(n int) int {
	if o.BatchSize <= 0 {
		return 0
	}
	all := (n + o.BatchSize - 1) / o.BatchSize
	if o.DropLast {
		all = n / o.BatchSize
	}
	if o.Ranks <= 1 || all == 0 {
		return all
	}
	if all%o.Ranks == 0 || o.DropLast {
		return all / o.Ranks
	}
	return all/o.Ranks + 1
}

// batches cuts perm into this rank's batches.
func (o Order) batches(perm []int) [][]int {
	var all [][]int
	for lo := 0; lo < len(perm); lo += o.BatchSize {
		b := perm[lo:min(lo+o.BatchSize, len(perm))]
		if len(b) < o.BatchSize && o.DropLast {
			break
		}
		all = append(all, b)
	}
	if o.Ranks <= 1 {
		return all
	}
	return ShardBatches(all, o.BatchSize, o.Rank, o.Ranks, o.DropLast)
}

// ShardBatches deals batches (of size batchSize, the last possibly
// shorter) to ranks as accelerate's BatchSamplerShard does with
// split_batches=False and even_batches=True (HF Trainer's data-parallel
// default): batch i goes to rank i mod ranks, and a rank only gets its
// batch of a group once the group's last batch is full. Unless dropLast,
// the last group is then completed — its short batch filled up and the
// missing batches made — with examples taken in order from the first
// ranks*batchSize examples (repeated if the data has fewer), so that every
// rank gets the same number of full batches. Examples are thus seen twice
// at the end of an epoch, as in HF.
func ShardBatches(all [][]int, batchSize, rank, ranks int, dropLast bool) [][]int {
	var out [][]int
	var initialData []int
	var toYield []int
	var last []int
	idx := -1
	for i, b := range all {
		idx = i
		last = b
		if !dropLast && i < ranks {
			initialData = append(initialData, b...)
		}
		if i%ranks == rank {
			toYield = b
		}
		if i%ranks == ranks-1 && len(b) == batchSize {
			out = append(out, toYield)
			toYield = nil
		}
	}
	if dropLast || len(initialData) == 0 {
		return out
	}
	if len(toYield) == batchSize {
		out = append(out, toYield)
	}
	for len(initialData) < ranks*batchSize {
		initialData = append(initialData, initialData...)
	}
	batch := append([]int(nil), last...)
	if len(batch) == batchSize {
		batch = nil
		idx++
	}
	cycle := 0
	for idx%ranks != 0 || len(batch) > 0 {
		end := cycle + batchSize - len(batch)
		batch = append(batch, initialData[cycle:end]...)
		if idx%ranks == rank {
			out = append(out, batch)
		}
		cycle = end
		batch = nil
		idx++
	}
	return out
}

// BatchReader yields the batches of one epoch, Scanner style:
//
//	r := d.Epoch(order, col, epoch, skip)
//	for r.Next(ctx) { b := r.Batch() ... }
//	if err := r.Err(); err != nil { ... }
type BatchReader struct {
	d     *Dataset
	col   Collator
	order Order
	batch [][]int // this rank's batches of the epoch, as example indices
	pos   int     // next batch number
	n     int     // batches in the epoch
	b     *Batch
	err   error
}

// Epoch returns a reader over epoch's batches, starting after the first
// skip batches (resume: skip = batches already trained in this epoch).
func (d *Dataset) Epoch(order Order, col Collator, epoch, skip int) *BatchReader {
	r := &BatchReader{d: d, col: col, order: order}
	if order.BatchSize <= 0 {
		r.err = fmt.Errorf("batch size %d: must be positive", order.BatchSize)
		return r
	}
	r.batch = order.batches(order.Permutation(d.Len(), epoch, func(i int) int { return len(d.Source[i]) }))
	r.n = len(r.batch)
	if skip < 0 || skip > r.n {
		r.err = fmt.Errorf("cannot skip %d batches of an epoch of %d", skip, r.n)
		return r
	}
	r.pos = skip
	return r
}

// Next prepares the next batch; false at the end of the epoch, on error or
// when ctx is done.
func (r *BatchReader) Next(ctx context.Context) bool {
	if r.err != nil || r.pos >= r.n {
		return false
	}
	if err := ctx.Err(); err != nil {
		r.err = err
		return false
	}
	r.b = r.col.Collate(r.d, r.batch[r.pos])
	r.pos++
	return true
}

// Batch is the current batch; the reader never reuses it.
func (r *BatchReader) Batch() *Batch { return r.b }

// Position is the number of batches consumed so far in the epoch (skipped
// ones included): what a checkpoint records for resuming.
func (r *BatchReader) Position() int { return r.pos }

// Len is the number of batches in the epoch.
func (r *BatchReader) Len() int { return r.n }

// Err is the first error; nil at a clean end.
func (r *BatchReader) Err() error { return r.err }

// NumExamples is the number of rows.
func (b *Batch) NumExamples() int { return b.Rows }

// NumInputTokens is input_ids.numel() (HF's floating_point_ops input).
func (b *Batch) NumInputTokens() int { return b.Rows * b.SourceLen }

// NumNonPaddingInputTokens is the attention mask's sum (HF's
// include_num_input_tokens_seen "non_padding").
func (b *Batch) NumNonPaddingInputTokens() int {
	n := 0
	for _, m := range b.AttentionMask {
		n += int(m)
	}
	return n
}

// NumLabelTokens counts the labels that are not padding: HF's
// num_items_in_batch contribution of this batch.
func (b *Batch) NumLabelTokens() int {
	n := 0
	for _, v := range b.Labels {
		if v != LabelPad {
			n++
		}
	}
	return n
}

// LabelIDs are the labels row by row, LabelPad at ignored positions (for
// compute_metrics); nil for a batch without targets.
func (b *Batch) LabelIDs() [][]int {
	if b.TargetLen == 0 {
		return nil
	}
	out := make([][]int, b.Rows)
	for i := range out {
		out[i] = make([]int, b.TargetLen)
		for j := range out[i] {
			out[i][j] = int(b.Labels[i*b.TargetLen+j])
		}
	}
	return out
}

// SourceIDs are the unpadded input ids of each row (what generation
// starts from).
func (b *Batch) SourceIDs() [][]int64 {
	out := make([][]int64, b.Rows)
	for i := range out {
		for j := 0; j < b.SourceLen; j++ {
			if b.AttentionMask[i*b.SourceLen+j] != 0 {
				out[i] = append(out[i], b.InputIDs[i*b.SourceLen+j])
			}
		}
	}
	return out
}

// DecoderMask is DecoderAttentionMask, or all ones when the batch has none
// (HF's collator passes none; the model then attends to every position).
func (b *Batch) DecoderMask() []int64 {
	if b.DecoderAttentionMask != nil {
		return b.DecoderAttentionMask
	}
	m := make([]int64, b.Rows*b.TargetLen)
	for i := range m {
		m[i] = 1
	}
	return m
}

// TargetStart says how generation must start to continue what this
// package's batches teach the model, for tok's target template and the
// model's shift rule; -1 where nothing changes:
//   - forced: a multilingual tokenizer's labels that start with the target
//     language code ("<code> text </s>": mBART-50, M2M100, NLLB) make that
//     code the first generated token (HF's forced_bos_token_id, as its
//     translation pipeline and those models' documentation set it);
//   - start: a model whose decoder inputs start with a label token
//     (startFromLastLabel, Collator.StartFromLastLabel: mBART) starts
//     generation with the token its
//     labels end with — the target code of MBartTokenizer's
//     "text </s> <code>" (HF's decoder_start_token_id, as the mBART
//     documentation sets it), the end of sequence token of mBART-50's.
func TargetStart(tok *tokenize.Pair, startFromLastLabel bool) (forced, start int) {
	forced, start = -1, -1
	if l := tok.Languages(); l != nil && l.TargetCodeFirst {
		forced = l.TargetID
	}
	if startFromLastLabel {
		if ids, err := tok.Target.Encode(""); err == nil && len(ids) > 0 {
			start = ids[len(ids)-1]
		}
	}
	return forced, start
}
