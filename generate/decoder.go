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
