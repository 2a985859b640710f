package generate

import (
	"context"
	"sort"
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

	cands := make([]candidate, 0, k*nb)
	prefixes := make([][]int64, 0, nSources*nb)
	for curLen := prompt; len(active) > 0; curLen++ {
		prefixes = prefixes[:0]
		for _, a := range active {
			for _, h := range items[a].running {
				prefixes = append(prefixes, h.tokens)
			}
		}
		logits, err := s.step(ctx, prefixes)
		if err != nil {
			return nil, err
		}
		divisor := lengthDivisor(curLen+1-prompt, cfg.LengthPenalty)
		nextActive := active[:0:0]
		rows = rows[:0]
		for ai, a := range active {
			it := items[a]
			// top-K continuations over num_beams × vocab
			cands = cands[:0]
			for b := range nb {
				row := append(s.buf[:0], logits.Row(ai*nb+b)...)
				s.buf = row
				logSoftmax(row)
				s.proc.apply(it.running[b].tokens, row)
				base := it.running[b].score
				for t, v := range row {
					row[t] = v + base
				}
				cands = topInto(cands, row, b, k)
			}
			sortCandidates(cands)
			cands = cands[:k]
			hits := make([]bool, k)
			for j, c := range cands {
				hits[j] = cfg.isEOS(c.token) || curLen+1 >= s.maxLen
			}
			s.updateFinished(it, cands, hits, divisor)
			// next running beams: the best num_beams candidates that did not stop
			order := make([]int, k)
			adj := make([]float32, k)
			for j, c := range cands {
				order[j] = j
				adj[j] = c.score
				if hits[j] {
					adj[j] = c.score + notFinishedScore
				}
			}
			sort.SliceStable(order, func(x, y int) bool { return adj[order[x]] > adj[order[y]] })
			allHit := true
			for _, h := range hits {
				allHit = allHit && h
			}
			running := make([]hyp, nb)
			src := make([]int, nb)
			for b := range nb {
				c := cands[order[b]]
				toks := make([]int64, len(it.running[c.beam].tokens)+1, s.maxLen)
				copy(toks, it.running[c.beam].tokens)
				toks[len(toks)-1] = c.token
				running[b] = hyp{tokens: toks, score: adj[order[b]]}
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
	return s.beamOutput(items, prompt), nil
}

// topInto merges the best k entries of row (tokens of beam b) into cands.
func topInto(cands []candidate, row []float32, b, k int) []candidate {
	// a small selection: keep the k best of this beam, lower token first on ties
	local := make([]candidate, 0, k+1)
	for t, v := range row {
		if len(local) == k && !(v > local[k-1].score) {
			continue
		}
		pos := len(local)
		for pos > 0 && v > local[pos-1].score {
			pos--
		}
		local = append(local, candidate{})
		copy(local[pos+1:], local[pos:])
		local[pos] = candidate{beam: b, token: int64(t), score: v}
		if len(local) > k {
			local = local[:k]
		}
	}
	return append(cands, local...)
}

// sortCandidates orders by score, best first; ties by the lower flat index
// (beam·vocab + token).
func sortCandidates(c []candidate) {
	sort.SliceStable(c, func(i, j int) bool {
		if c[i].score != c[j].score {
			return c[i].score > c[j].score
		}
		if c[i].beam != c[j].beam {
			return c[i].beam < c[j].beam
		}
		return c[i].token < c[j].token
	})
}

// updateFinished is HF's _update_finished_beams for one item: candidates in
// the top num_beams ranks that stopped join the finished set with their
// length-normalised score, unless the item is full under early_stopping=True
// or can no longer improve.
func (s *search) updateFinished(it *beamItem, cands []candidate, hits []bool, divisor float32) {
	nb := s.cfg.NumBeams
	if (s.cfg.EarlyStopping == EarlyStopTrue && it.allFinished()) || !it.improvable {
		return
	}
	merged := append([]hyp(nil), it.slots...)
	added := false
	for j := 0; j < nb; j++ {
		if !hits[j] {
			continue
		}
		c := cands[j]
		toks := make([]int64, len(it.running[c.beam].tokens)+1)
		copy(toks, it.running[c.beam].tokens)
		toks[len(toks)-1] = c.token
		merged = append(merged, hyp{tokens: toks, score: c.score / divisor, finished: true})
		added = true
	}
	if !added {
		return
	}
	sort.SliceStable(merged, func(x, y int) bool { return merged[x].score > merged[y].score })
	it.slots = merged[:nb]
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
func (s *search) beamOutput(items []*beamItem, prompt int) *Output {
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
	_ = prompt
	return out
}
