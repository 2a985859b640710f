package generate

import "context"

// Decoder is an encoder-decoder model as the searches see it.
type Decoder interface {
	// Start encodes a batch of source sequences (token ids without padding)
	// once and returns the decoding state, with one row per source.
	Start(ctx context.Context, sources [][]int64) (State, error)
}

// State is one batch being decoded: the encoder outputs and, for decoders
// with a key/value cache, the past of every row.
type State interface {
	// Step returns the next-token logits of every row. prefixes[r] is row r's
	// whole decoder sequence so far, start token included; all prefixes have
	// the same length. A decoder with a cache feeds only the tokens it has not
	// seen yet; one without recomputes over the whole prefix. The returned
	// Logits may alias memory that the next Step or Reorder reuses.
	Step(ctx context.Context, prefixes [][]int64) (Logits, error)
	// Reorder rebuilds the rows: new row i continues current row rows[i].
	// Indices may repeat (beam expansion) and rows may be left out (finished
	// rows are dropped from the compute).
	Reorder(rows []int) error
	// Close releases the state's resources.
	Close() error
}

// Logits holds next-token logits, row-major: Data[r*Vocab+v].
type Logits struct {
	Rows, Vocab int
	Data        []float32
}

// Row returns the logits of row r.
func (l Logits) Row(r int) []float32 { return l.Data[r*l.Vocab : (r+1)*l.Vocab] }

// Selector is a State that can pick the next tokens where the logits are
// (a GPU's memory): it applies the logits processors' edits, given per row
// as short lists of token ids, and returns only each row's k best tokens,
// so that a step copies rows × k values and ids to the host instead of
// rows × vocabulary logits. Greedy and beam search use it when Selects
// says so (sampling never).
type Selector interface {
	// Selects reports whether SelectStep should be used (a decoder on the
	// CPU gains nothing from it) and the vocabulary size (0: unknown until
	// the first step).
	Selects() (ok bool, vocab int)
	// SelectStep advances like Step and returns, for every row, the k
	// highest processed logits in descending order, ties by lower id (as
	// torch.argmax and torch.topk pick among equal values on the first k).
	SelectStep(ctx context.Context, prefixes [][]int64, edits Edits, k int) (TopK, error)
}

// Edits are the logits processors' changes to one step's logits, after a
// log-softmax when LogSoftmax (beam search): for each row, the repetition
// penalty over Penalized (distinct ids, score divided by Penalty when
// positive, multiplied when negative), then Banned ids set to -inf, then,
// when Force, every score set to -inf but those of Forced, set to 0
// (ForcedBOS/ForcedEOS). All ids lie within the vocabulary.
type Edits struct {
	LogSoftmax bool
	Penalty    float32
	Rows       []RowEdits
}

// RowEdits are one row's edits.
type RowEdits struct {
	Penalized, Banned, Forced []int64
	Force                     bool
}

// TopK holds each row's k best tokens, row-major: Values[r*K+j], IDs[r*K+j].
type TopK struct {
	Rows, K, Vocab int
	Values         []float32
	IDs            []int64
}
