package generate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// Output is the result of Generate, laid out as HF's generate() returns it.
type Output struct {
	// Sequences holds len(sources)·NumReturnSequences rows (source-major),
	// each starting with the decoder start token, all of one width (the
	// longest in the batch) and filled after their end as HF fills them.
	Sequences [][]int64
	// Lengths is the real length of each row: start token plus generated
	// tokens, the final EOS included.
	Lengths []int
	// Scores holds beam search's sequences_scores (length-normalised sum of
	// log-probabilities); nil for greedy search and sampling.
	Scores []float32
	// TokenScores holds, for greedy search and sampling, the processed score
	// of each generated token of each row (HF's output_scores at the chosen
	// token); nil for beam search.
	TokenScores [][]float32
}

// Trimmed returns row i without its fill: start token and generated tokens.
func (o *Output) Trimmed(i int) []int64 { return o.Sequences[i][:o.Lengths[i]] }

// Generate decodes every source with dec under cfg: greedy search, beam
// search (NumBeams > 1) or sampling (DoSample).
func Generate(ctx context.Context, dec Decoder, sources [][]int64, cfg Config) (*Output, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(sources) == 0 {
		return &Output{}, nil
	}
	for i, s := range sources {
		if len(s) == 0 {
			return nil, fmt.Errorf("source %d is empty", i)
		}
	}
	maxLen, minLen, err := cfg.lengths(1)
	if err != nil {
		return nil, err
	}
	st, err := dec.Start(ctx, sources)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	s := &search{cfg: cfg, state: st, maxLen: maxLen, proc: newProcessor(cfg, maxLen, minLen, sources)}
	if cfg.NumBeams > 1 {
		return s.beam(ctx, len(sources))
	}
	return s.greedy(ctx, len(sources))
}

type search struct {
	cfg    Config
	state  State
	maxLen int
	proc   *processor
	buf    []float32
	// workerProcs are the processors of parallelRows' goroutines.
	workerProcs []*processor
	idsChecked  bool
	edits       Edits // SelectStep's input, reused
}

func (s *search) step(ctx context.Context, prefixes [][]int64) (Logits, error) {
	if err := ctx.Err(); err != nil {
		return Logits{}, err
	}
	l, err := s.state.Step(ctx, prefixes)
	if err != nil {
		return l, err
	}
	if l.Rows != len(prefixes) || l.Vocab <= 0 || len(l.Data) != l.Rows*l.Vocab {
		return l, fmt.Errorf("decoder returned logits for %d rows × %d tokens (%d values), want %d rows", l.Rows, l.Vocab, len(l.Data), len(prefixes))
	}
	if !s.idsChecked {
		// the logits' width is the vocabulary: no configured id may lie beyond it
		c := s.cfg
		c.VocabSize = l.Vocab
		if err := c.checkIDs(); err != nil {
			return l, fmt.Errorf("generation config: %w (the decoder's logits have %d ids)", err, l.Vocab)
		}
		s.idsChecked = true
	}
	return l, nil
}

// greedy is HF's _sample: argmax (or a draw) of the processed logits, finished
// rows padded, until every row has hit EOS or max_length.
func (s *search) greedy(ctx context.Context, nSources int) (*Output, error) {
	nrs := s.cfg.NumReturnSequences
	n := nSources * nrs
	if nrs > 1 {
		rows := make([]int, n)
		for i := range rows {
			rows[i] = i / nrs
		}
		if err := s.state.Reorder(rows); err != nil {
			return nil, err
		}
	}
	start := s.cfg.decoderStart()
	seqs := make([][]int64, n)
	scores := make([][]float32, n)
	for i := range seqs {
		// grown as tokens come: max_length is a bound, not a size
		seqs[i] = make([]int64, 1, min(s.maxLen, 64))
		seqs[i][0] = start
	}
	var rng *rand.Rand
	if s.cfg.DoSample {
		rng = rand.New(rand.NewPCG(s.cfg.Seed, 0x6f727472))
	}
	active := make([]int, n) // output row of each state row
	for i := range active {
		active[i] = i
	}
	prefixes := make([][]int64, 0, n)
	sel, _ := s.state.(Selector)
	selects, vocab := false, 0
	if sel != nil && rng == nil {
		selects, vocab = sel.Selects()
	}
	for len(active) > 0 {
		prefixes = prefixes[:0]
		for _, r := range active {
			prefixes = append(prefixes, seqs[r])
		}
		if selects && vocab > 0 {
			// the processors' edits go to the device, the argmax comes back
			next, keep, err := s.selectGreedy(ctx, sel, prefixes, active, seqs, scores, vocab, nrs)
			if err != nil {
				return nil, err
			}
			if len(next) > 0 && len(next) < len(active) {
				if err := s.state.Reorder(keep); err != nil {
					return nil, err
				}
			}
			active = next
			continue
		}
		logits, err := s.step(ctx, prefixes)
		if err != nil {
			return nil, err
		}
		vocab = logits.Vocab
		keep := make([]int, 0, len(active))
		next := active[:0:0]
		for i, r := range active {
			row := append(s.buf[:0], logits.Row(i)...)
			s.buf = row
			s.proc.apply(seqs[r], r/nrs, row)
			var tok int
			if rng != nil {
				tok, err = s.draw(rng, row)
				if err != nil {
					return nil, err
				}
			} else {
				tok = argmax(row)
			}
			seqs[r] = append(seqs[r], int64(tok))
			scores[r] = append(scores[r], row[tok])
			if !s.cfg.isEOS(int64(tok)) && len(seqs[r]) < s.maxLen {
				keep = append(keep, i)
				next = append(next, r)
			}
		}
		if len(next) > 0 && len(next) < len(active) {
			if err := s.state.Reorder(keep); err != nil {
				return nil, err
			}
		}
		active = next
	}
	out := &Output{Sequences: seqs, Lengths: make([]int, n), TokenScores: scores}
	width := 0
	for i, q := range seqs {
		out.Lengths[i] = len(q)
		width = max(width, len(q))
	}
	pad := s.cfg.pad()
	for i, q := range seqs {
		for len(q) < width {
			q = append(q, pad)
		}
		seqs[i] = q
	}
	return out, nil
}

// selectGreedy is one step of greedy search through a Selector: the
// processors' edits are computed on the host from the sequences alone and
// applied where the logits are, which returns each row's best token and its
// processed score; a forced step (ForcedBOS/ForcedEOS) needs no logits, its
// argmax is the lowest forced id (every forced id scores 0, the rest -inf).
// It returns the rows that go on and their positions in active.
func (s *search) selectGreedy(ctx context.Context, sel Selector, prefixes [][]int64, active []int, seqs [][]int64, scores [][]float32, vocab, nrs int) (next, keep []int, err error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if !s.idsChecked {
		c := s.cfg
		c.VocabSize = vocab
		if err := c.checkIDs(); err != nil {
			return nil, nil, fmt.Errorf("generation config: %w (the decoder's logits have %d ids)", err, vocab)
		}
		s.idsChecked = true
	}
	if cap(s.edits.Rows) < len(active) {
		s.edits.Rows = make([]RowEdits, len(active))
	}
	s.edits.Rows = s.edits.Rows[:len(active)]
	s.edits.Penalty, s.edits.LogSoftmax = s.proc.penalty, false
	forcedTok := make([]int64, len(active))
	forcedScore := make([]float32, len(active))
	isForced := make([]bool, len(active))
	for i, r := range active {
		forced, force := s.proc.edits(seqs[r], r/nrs, vocab, &s.edits.Rows[i])
		s.edits.Rows[i].Force = false // decided here: the argmax of a forced row needs no logits
		if force {
			isForced[i], forcedTok[i], forcedScore[i] = true, 0, negInf
			for _, id := range forced {
				if id >= 0 && int(id) < vocab && (forcedScore[i] != 0 || id < forcedTok[i]) {
					forcedTok[i], forcedScore[i] = id, 0
				}
			}
		}
	}
	top, err := sel.SelectStep(ctx, prefixes, s.edits, 1)
	if err != nil {
		return nil, nil, err
	}
	if top.Rows != len(active) || top.K != 1 || len(top.IDs) != top.Rows || len(top.Values) != top.Rows || top.Vocab != vocab {
		return nil, nil, fmt.Errorf("decoder selected %d×%d tokens over %d ids, want %d×1 over %d", top.Rows, top.K, top.Vocab, len(active), vocab)
	}
	for i, r := range active {
		tok, score := top.IDs[i], top.Values[i]
		if isForced[i] {
			tok, score = forcedTok[i], forcedScore[i]
		}
		seqs[r] = append(seqs[r], tok)
		scores[r] = append(scores[r], score)
		if !s.cfg.isEOS(tok) && len(seqs[r]) < s.maxLen {
			keep = append(keep, i)
			next = append(next, r)
		}
	}
	return next, keep, nil
}

// argmax returns the first index of the maximum, as torch.argmax does.
func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// draw samples a token from softmax(scores).
func (s *search) draw(rng *rand.Rand, scores []float32) (int, error) {
	maxv := math.Inf(-1)
	for _, v := range scores {
		maxv = math.Max(maxv, float64(v))
	}
	if math.IsInf(maxv, -1) || math.IsNaN(maxv) {
		return 0, errors.New("sampling: every token has probability 0 (all scores are -inf or NaN)")
	}
	sum := 0.0
	for _, v := range scores {
		sum += math.Exp(float64(v) - maxv)
	}
	u := rng.Float64() * sum
	last := 0
	for i, v := range scores {
		e := math.Exp(float64(v) - maxv)
		if e == 0 {
			continue
		}
		last = i
		if u < e {
			return i, nil
		}
		u -= e
	}
	return last, nil
}
