package generate

import (
	"context"
	"fmt"
	"runtime"

	"github.com/ortrain/ortrain/internal/parallel"
)

// notFinishedScore is the -1e9 that HF's beam search uses for "no score":
// the initial score of beams 1.. and of the empty finished slots, and the
// penalty added to candidates that may not continue or may not finish.
const notFinishedScore float32 = -1e9

type hyp struct {
	tokens   []int64
	score    float32
	finished bool
}

// beamItem is one source sentence's beam search.
type beamItem struct {
	running []hyp // num_beams, best first
	slots   []hyp // num_beams finished hypotheses (or placeholders), best first
	// improvable is HF's is_early_stop_heuristic_unsatisfied; it never comes back once false.
	improvable bool
}

func (b *beamItem) allFinished() bool {
	for _, h := range b.slots {
		if !h.finished {
			return false
		}
	}
	return true
}

// candidate is one of the top-K continuations of an item.
type candidate struct {
	beam  int
	token int64
	score float32 // accumulated log-probability
}

// beam is HF's vectorised _beam_search (transformers >= 4.50), one batch item
// at a time; items whose finished set can no longer change leave the decoder.
func (s *search) beam(ctx context.Context, nSources int) (*Output, error) {
	cfg := s.cfg
	nb := cfg.NumBeams
	nEOS := len(cfg.EOSTokenIDs)
	k := max(2, 1+nEOS) * nb
	prompt := 1
	start := cfg.decoderStart()

	items := make([]*beamItem, nSources)
	rows := make([]int, 0, nSources*nb)
	for i := range items {
		it := &beamItem{running: make([]hyp, nb), slots: make([]hyp, nb), improvable: true}
		for b := range it.running {
			it.running[b] = hyp{tokens: []int64{start}, score: notFinishedScore}
			it.slots[b] = hyp{tokens: []int64{start}, score: notFinishedScore}
			rows = append(rows, i)
		}
		it.running[0].score = 0 // only beam 0 expands at the first step
		items[i] = it
	}
	if err := s.state.Reorder(rows); err != nil {
		return nil, err
	}
	active := make([]int, nSources) // item of each block of nb state rows
	for i := range active {
		active[i] = i
	}

	cands := make([]candidate, 0, k)
	var scores []float32
	prefixes := make([][]int64, 0, nSources*nb)
	sel, _ := s.state.(Selector)
	selects, vocab := false, 0
	if sel != nil {
		selects, vocab = sel.Selects()
	}
	for curLen := prompt; len(active) > 0; curLen++ {
		prefixes = prefixes[:0]
		for _, a := range active {
			for _, h := range items[a].running {
				prefixes = append(prefixes, h.tokens)
			}
		}
		rowsNow := len(active) * nb
		// width is the number of scores per row: the vocabulary, or the
		// decoding head's k best; ids maps them to tokens (nil: identity)
		var ids []int64
		width := 0
		if selects && vocab > 0 {
			top, forced, err := s.selectBeams(ctx, sel, prefixes, items, active, vocab, min(k, vocab))
			if err != nil {
				return nil, err
			}
			width, ids, scores = top.K, top.IDs, top.Values
			if forced {
				// a forced step (every row has the same length): the full
				// rows are known without the logits, -inf but 0 at the forced
				// ids, and ranking them over num_beams × vocab keeps torch's
				// order among the equal scores
				width, ids = vocab, nil
				scores = make([]float32, rowsNow*vocab)
				for r := range rowsNow {
					row := scores[r*vocab : (r+1)*vocab]
					forceOnly(row, s.edits.Rows[r].Forced...)
				}
			}
			for r := range rowsNow {
				h := items[active[r/nb]].running[r%nb]
				row := scores[r*width : (r+1)*width]
				for j, v := range row {
					row[j] = v + h.score
				}
			}
		} else {
			logits, err := s.step(ctx, prefixes)
			if err != nil {
				return nil, err
			}
			vocab, width = logits.Vocab, logits.Vocab
			// log-softmax, processors and running score of every row, rows in parallel
			if cap(scores) < rowsNow*width {
				scores = make([]float32, rowsNow*width)
			}
			scores = scores[:rowsNow*width]
			s.parallelRows(rowsNow, width, func(p *processor, r int) {
				row := scores[r*width : (r+1)*width]
				copy(row, logits.Row(r))
				logSoftmax(row)
				h := items[active[r/nb]].running[r%nb]
				p.apply(h.tokens, active[r/nb], row)
				for t, v := range row {
					row[t] = v + h.score
				}
			})
		}
		divisor := lengthDivisor(curLen+1-prompt, cfg.LengthPenalty)
		nextActive := active[:0:0]
		rows = rows[:0]
		for ai, a := range active {
			it := items[a]
			// top-K continuations over the flattened num_beams × vocab scores
			// (of the num_beams × k best, which hold them, on the device path)
			flat := scores[ai*nb*width : (ai+1)*nb*width]
			cands = cands[:0]
			for _, fi := range topK(flat, k) {
				tok := int64(fi % width)
				if ids != nil {
					tok = ids[ai*nb*width+fi]
				}
				cands = append(cands, candidate{beam: fi / width, token: tok, score: flat[fi]})
			}
			hits := make([]bool, k)
			allHit := true
			for j, c := range cands {
				hits[j] = cfg.isEOS(c.token) || curLen+1 >= s.maxLen
				allHit = allHit && hits[j]
			}
			s.updateFinished(it, cands, hits, divisor)
			// next running beams: the best num_beams candidates that did not stop
			adj := make([]float32, k)
			for j, c := range cands {
				adj[j] = c.score
				if hits[j] {
					adj[j] = c.score + notFinishedScore
				}
			}
			running := make([]hyp, nb)
			src := make([]int, nb)
			for b, j := range topK(adj, nb) {
				c := cands[j]
				running[b] = hyp{tokens: extend(it.running[c.beam].tokens, c.token), score: adj[j]}
				src[b] = ai*nb + c.beam
			}
			it.running = running
			s.checkImprovable(it, curLen+1, prompt)
			done := !it.improvable || (cfg.EarlyStopping == EarlyStopTrue && it.allFinished()) || allHit
			if !done {
				nextActive = append(nextActive, a)
				rows = append(rows, src...)
			}
		}
		active = nextActive
		if len(active) > 0 {
			if err := s.state.Reorder(rows); err != nil {
				return nil, err
			}
		}
	}
	return s.beamOutput(items), nil
}

// selectBeams runs a step through the Selector: every row's log-softmax
// and processors where the logits are, and its k best scores and tokens
// back (k = HF's beams_to_keep, so the top k of an item's num_beams ×
// vocab candidates are among its rows' top k).
// It also tells whether every row was forced (ForcedBOS/ForcedEOS).
func (s *search) selectBeams(ctx context.Context, sel Selector, prefixes [][]int64, items []*beamItem, active []int, vocab, k int) (TopK, bool, error) {
	if err := ctx.Err(); err != nil {
		return TopK{}, false, err
	}
	if !s.idsChecked {
		c := s.cfg
		c.VocabSize = vocab
		if err := c.checkIDs(); err != nil {
			return TopK{}, false, fmt.Errorf("generation config: %w (the decoder's logits have %d ids)", err, vocab)
		}
		s.idsChecked = true
	}
	nb := s.cfg.NumBeams
	rows := len(active) * nb
	if cap(s.edits.Rows) < rows {
		s.edits.Rows = make([]RowEdits, rows)
	}
	s.edits.Rows = s.edits.Rows[:rows]
	s.edits.Penalty, s.edits.LogSoftmax = s.proc.penalty, true
	allForced := rows > 0
	for r := range rows {
		h := items[active[r/nb]].running[r%nb]
		e := &s.edits.Rows[r]
		forced, force := s.proc.edits(h.tokens, active[r/nb], vocab, e)
		e.Force, e.Forced = force, e.Forced[:0]
		allForced = allForced && force
		for _, id := range forced {
			if id >= 0 && int(id) < vocab {
				e.Forced = append(e.Forced, id)
			}
		}
	}
	top, err := sel.SelectStep(ctx, prefixes, s.edits, k)
	if err != nil {
		return TopK{}, false, err
	}
	if top.Rows != rows || top.K != k || len(top.IDs) != rows*k || len(top.Values) != rows*k || top.Vocab != vocab {
		return TopK{}, false, fmt.Errorf("decoder selected %d×%d tokens over %d ids, want %d×%d over %d", top.Rows, top.K, top.Vocab, rows, k, vocab)
	}
	return top, allForced, nil
}

// updateFinished is HF's _update_finished_beams for one item: candidates in
// the top num_beams ranks that stopped join the finished set with their
// length-normalised score; the item's full or unimprovable state, and not
// having stopped, push a candidate's score down by 1e9 each. The best
// num_beams of the current slots and the candidates become the new slots.
func (s *search) updateFinished(it *beamItem, cands []candidate, hits []bool, divisor float32) {
	nb := s.cfg.NumBeams
	full := s.cfg.EarlyStopping == EarlyStopTrue && it.allFinished()
	merged := make([]float32, 0, nb+len(cands))
	for _, h := range it.slots {
		merged = append(merged, h.score)
	}
	finished := make([]bool, len(cands))
	for j, c := range cands {
		v := c.score / divisor
		if full {
			v += notFinishedScore
		}
		if !it.improvable {
			v += notFinishedScore
		}
		finished[j] = hits[j] && j < nb
		if !finished[j] {
			v += notFinishedScore
		}
		merged = append(merged, v)
	}
	slots := make([]hyp, nb)
	for r, m := range topK(merged, nb) {
		if m < nb {
			slots[r] = it.slots[m]
			continue
		}
		j := m - nb
		c := cands[j]
		slots[r] = hyp{tokens: extend(it.running[c.beam].tokens, c.token), score: merged[m], finished: finished[j]}
	}
	it.slots = slots
}

// extend returns a copy of tokens with tok appended.
func extend(tokens []int64, tok int64) []int64 {
	out := make([]int64, len(tokens)+1)
	copy(out, tokens)
	out[len(tokens)] = tok
	return out
}

// checkImprovable is HF's _check_early_stop_heuristic after cur_len += 1.
func (s *search) checkImprovable(it *beamItem, curLen, prompt int) {
	if !it.improvable {
		return
	}
	length := curLen - prompt
	if s.cfg.EarlyStopping == EarlyStopNever && s.cfg.LengthPenalty > 0 {
		length = s.maxLen - prompt
	}
	best := it.running[0].score / lengthDivisor(length, s.cfg.LengthPenalty)
	worst := notFinishedScore
	if it.allFinished() {
		worst = it.slots[0].score
		for _, h := range it.slots {
			worst = min(worst, h.score)
		}
	}
	it.improvable = best > worst
}

// beamOutput takes the best num_return_sequences hypotheses of every item,
// padded to the longest with HF's fill value.
func (s *search) beamOutput(items []*beamItem) *Output {
	nrs := s.cfg.NumReturnSequences
	out := &Output{}
	width := 0
	for _, it := range items {
		for r := 0; r < nrs; r++ {
			h := it.slots[r]
			out.Sequences = append(out.Sequences, h.tokens)
			out.Lengths = append(out.Lengths, len(h.tokens))
			out.Scores = append(out.Scores, h.score)
			width = max(width, len(h.tokens))
		}
	}
	fill := s.cfg.beamFill()
	for i, q := range out.Sequences {
		row := make([]int64, width)
		copy(row, q)
		for j := len(q); j < width; j++ {
			row[j] = fill
		}
		out.Sequences[i] = row
	}
	return out
}

// parallelRows runs fn over rows 0..n-1 on up to GOMAXPROCS goroutines, each
// with its own processor (their scratch buffers are not shared); small
// batches stay on the calling goroutine with s.proc.
func (s *search) parallelRows(n, vocab int, fn func(p *processor, row int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	procs := []*processor{s.proc}
	if workers <= 1 || n*vocab < 1<<16 {
		workers = 1
	} else {
		for len(s.workerProcs) < workers {
			s.workerProcs = append(s.workerProcs, s.proc.clone())
		}
		procs = s.workerProcs
	}
	parallel.Chunks(n, workers, func(w, lo, hi int) {
		for r := lo; r < hi; r++ {
			fn(procs[w], r)
		}
	})
}
