package data

import (
	"context"
	"fmt"

	"github.com/ortrain/ortrain/tokenize"
)

// Stream yields batches from a file too large for memory: records are
// read, tokenized and batched in file order, a block of batches at a time.
// Shuffling needs the whole dataset and is not offered here; use Load for
// shuffled training sets that fit in memory.
type Stream struct {
	rr    *RecordReader
	tok   *tokenize.Pair
	opt   Options
	col   Collator
	bs    int
	block *Dataset
	pos   int // next row in block
	b     *Batch
	n     int // batches produced (skipped included)
	err   error
}

// streamBlockBatches is how many batches are tokenized together.
const streamBlockBatches = 16

// OpenStream opens path for streaming batches of batchSize, after skipping
// the first skip batches (their records are read but not tokenized).
func OpenStream(path string, format Format, tok *tokenize.Pair, opt Options, col Collator, batchSize, skip int) (*Stream, error) {
	if batchSize <= 0 {
		return nil, fmt.Errorf("batch size %d: must be positive", batchSize)
	}
	rr, err := OpenRecords(path, format, opt.SkipBad)
	if err != nil {
		return nil, err
	}
	s := &Stream{rr: rr, tok: tok, opt: opt, col: col, bs: batchSize}
	for i := 0; i < skip*batchSize && rr.Next(); i++ {
	}
	if err := rr.Err(); err != nil {
		rr.Close()
		return nil, err
	}
	s.n = skip
	return s, nil
}

// Next prepares the next batch; false at the end, on error or when ctx is
// done.
func (s *Stream) Next(ctx context.Context) bool {
	if s.err != nil {
		return false
	}
	if s.block == nil || s.pos >= s.block.Len() {
		if !s.fill(ctx) {
			return false
		}
	}
	hi := min(s.pos+s.bs, s.block.Len())
	idx := make([]int, 0, hi-s.pos)
	for i := s.pos; i < hi; i++ {
		idx = append(idx, i)
	}
	s.b = s.col.Collate(s.block, idx)
	for k, i := range idx {
		s.b.Indices[k] = s.block.Examples[i].Index
	}
	s.pos = hi
	s.n++
	return true
}

func (s *Stream) fill(ctx context.Context) bool {
	if err := ctx.Err(); err != nil {
		s.err = err
		return false
	}
	d := &Dataset{File: s.rr.file}
	for len(d.Examples) < s.bs*streamBlockBatches && s.rr.Next() {
		d.Examples = append(d.Examples, s.rr.Example())
	}
	if err := s.rr.Err(); err != nil {
		s.err = err
		return false
	}
	if len(d.Examples) == 0 {
		return false
	}
	if err := d.encode(ctx, s.tok, s.opt); err != nil {
		s.err = err
		return false
	}
	s.block, s.pos = d, 0
	return true
}

// Batch is the current batch; the stream never reuses it.
func (s *Stream) Batch() *Batch { return s.b }

// Position is the number of batches consumed (skipped ones included).
func (s *Stream) Position() int { return s.n }

// Skipped lists bad records passed over so far (Options.SkipBad).
func (s *Stream) Skipped() []*RecordError { return s.rr.Skipped }

// Err is the first error; nil at a clean end.
func (s *Stream) Err() error { return s.err }

// Close closes the file.
func (s *Stream) Close() error { return s.rr.Close() }
