package generate

import (
	"math"
	"sort"
)

var negInf = float32(math.Inf(-1))

// processor applies HF's logits processors, in _get_logits_processor's order,
// to one row's scores: RepetitionPenalty, NoRepeatNGram, EncoderNoRepeatNGram, NoBadWords,
// MinLength, MinNewTokens (folded into MinLength: both block EOS below the
// same length), ForcedBOS, ForcedEOS, then the sampling warpers.
type processor struct {
	cfg       Config
	badWords  [][]int64 // bad_words_ids without lone EOS ids
	maxLen    int
	minLen    int
	penalty   float32
	seen      []bool // scratch for the repetition penalty, indexed by token
	sortIdx   []int  // scratch for top-p
	sortVals  []float32
	sampleBuf []float64
	rowEdits  RowEdits // scratch for apply
	// encNGrams maps, per source, each (n-1)-gram of the source to the
	// tokens that followed it (encoder_no_repeat_ngram_size); read-only,
	// shared by the copies of a processor.
	encNGrams []map[string][]int64
}

func newProcessor(cfg Config, maxLen, minLen int, sources [][]int64) *processor {
	p := &processor{cfg: cfg, maxLen: maxLen, minLen: minLen, penalty: float32(cfg.RepetitionPenalty)}
	if n := cfg.EncoderNoRepeatNGramSize; n > 0 {
		p.encNGrams = sourceNGrams(sources, n, cfg.PadTokenID)
	}
	for _, seq := range cfg.BadWordsIDs {
		if len(seq) == 1 && cfg.isEOS(seq[0]) {
			continue
		}
		p.badWords = append(p.badWords, seq)
	}
	return p
}

// clone returns a processor with the same settings and its own scratch.
func (p *processor) clone() *processor {
	return &processor{cfg: p.cfg, badWords: p.badWords, maxLen: p.maxLen, minLen: p.minLen, penalty: p.penalty, encNGrams: p.encNGrams}
}

// sourceNGrams is HF's _get_ngrams over the encoder input_ids, which are
// the sources right-padded with pad to the longest (the padding is part of
// the n-grams, as in HF).
func sourceNGrams(sources [][]int64, n int, pad int64) []map[string][]int64 {
	width := 0
	for _, s := range sources {
		width = max(width, len(s))
	}
	out := make([]map[string][]int64, len(sources))
	row := make([]int64, width)
	for i, s := range sources {
		copy(row, s)
		for k := len(s); k < width; k++ {
			row[k] = pad
		}
		m := map[string][]int64{}
		for start := 0; start+n <= width; start++ {
			k := ngramKey(row[start : start+n-1])
			m[k] = append(m[k], row[start+n-1])
		}
		out[i] = m
	}
	return out
}

func ngramKey(tokens []int64) string {
	b := make([]byte, 0, 8*len(tokens))
	for _, t := range tokens {
		u := uint64(t)
		b = append(b, byte(u), byte(u>>8), byte(u>>16), byte(u>>24), byte(u>>32), byte(u>>40), byte(u>>48), byte(u>>56))
	}
	return string(b)
}

// edits lists what the processors (all but the sampling warpers) change in
// the scores of a row of source src whose decoder sequence so far is
// tokens, over a vocabulary of vocab ids: the ids the repetition penalty
// touches (distinct, in order of first appearance; none when the penalty
// is 1), the banned ids (set to -inf; repeats allowed), and, when force
// is true, the only ids left finite (at 0) by ForcedBOS/ForcedEOS. The
// slices reuse e's.
func (p *processor) edits(tokens []int64, src, vocab int, e *RowEdits) (forced []int64, force bool) {
	cur := len(tokens)
	e.Penalized, e.Banned = e.Penalized[:0], e.Banned[:0]
	if p.cfg.RepetitionPenalty != 1.0 {
		// every id present in the decoder sequence (start token included), once
		if cap(p.seen) < vocab {
			p.seen = make([]bool, vocab)
		}
		seen := p.seen[:vocab]
		for _, t := range tokens {
			if t >= 0 && int(t) < vocab && !seen[t] {
				seen[t] = true
				e.Penalized = append(e.Penalized, t)
			}
		}
		for _, t := range e.Penalized {
			seen[t] = false
		}
	}
	if n := p.cfg.NoRepeatNGramSize; n > 0 && cur >= n {
		// ban every token that would complete an n-gram already present
		prefix := tokens[cur-n+1:]
		for start := 0; start+n <= cur; start++ {
			match := true
			for j := 0; j < n-1; j++ {
				if tokens[start+j] != prefix[j] {
					match = false
					break
				}
			}
			if match {
				if t := tokens[start+n-1]; t >= 0 && int(t) < vocab {
					e.Banned = append(e.Banned, t)
				}
			}
		}
	}
	if n := p.cfg.EncoderNoRepeatNGramSize; n > 0 && cur >= n-1 && src < len(p.encNGrams) {
		// ban every token that would complete an n-gram of the source
		for _, t := range p.encNGrams[src][ngramKey(tokens[cur-n+1:])] {
			if t >= 0 && int(t) < vocab {
				e.Banned = append(e.Banned, t)
			}
		}
	}
	for _, seq := range p.badWords {
		// ban the last token where the sequence's prefix ends the decoder sequence
		// (ids beyond the logits are skipped; HF raises an error for them)
		prefix := seq[:len(seq)-1]
		last := seq[len(seq)-1]
		if len(prefix) > cur || last < 0 || last >= int64(vocab) {
			continue
		}
		match := true
		for j, t := range prefix {
			if tokens[cur-len(prefix)+j] != t {
				match = false
				break
			}
		}
		if match {
			e.Banned = append(e.Banned, last)
		}
	}
	if cur < p.minLen {
		for _, id := range p.cfg.EOSTokenIDs {
			if id >= 0 && int(id) < vocab {
				e.Banned = append(e.Banned, id)
			}
		}
	}
	if p.cfg.ForcedBOSTokenID != NoToken && cur == 1 {
		return []int64{p.cfg.ForcedBOSTokenID}, true
	}
	if len(p.cfg.ForcedEOSTokenIDs) > 0 && cur == p.maxLen-1 {
		return p.cfg.ForcedEOSTokenIDs, true
	}
	return nil, false
}

// apply edits scores (length vocab) for a row of source src whose decoder
// sequence so far is tokens: the edits above, then the sampling warpers.
func (p *processor) apply(tokens []int64, src int, scores []float32) {
	forced, force := p.edits(tokens, src, len(scores), &p.rowEdits)
	for _, t := range p.rowEdits.Penalized {
		if s := scores[t]; s < 0 {
			scores[t] = s * p.penalty
		} else {
			scores[t] = s / p.penalty
		}
	}
	for _, t := range p.rowEdits.Banned {
		scores[t] = negInf
	}
	if force {
		forceOnly(scores, forced...)
	}
	if p.cfg.DoSample {
		p.warp(scores)
	}
}

func forceOnly(scores []float32, ids ...int64) {
	for i := range scores {
		scores[i] = negInf
	}
	for _, id := range ids {
		if id >= 0 && int(id) < len(scores) {
			scores[id] = 0
		}
	}
}

// warp applies TemperatureLogitsWarper, TopKLogitsWarper and TopPLogitsWarper
// (min_tokens_to_keep 1).
func (p *processor) warp(scores []float32) {
	if t := p.cfg.Temperature; t != 1.0 {
		tf := float32(t)
		for i := range scores {
			scores[i] /= tf
		}
	}
	if k := p.cfg.TopK; k > 0 && k < len(scores) {
		vals := append(p.sortVals[:0], scores...)
		sort.Slice(vals, func(i, j int) bool { return vals[i] > vals[j] })
		kth := vals[k-1]
		for i, s := range scores {
			if s < kth {
				scores[i] = negInf
			}
		}
		p.sortVals = vals
	}
	if tp := p.cfg.TopP; tp < 1.0 {
		idx := p.sortIdx[:0]
		for i := range scores {
			idx = append(idx, i)
		}
		// ascending, as torch.sort(descending=False)
		sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] < scores[idx[b]] })
		probs := softmax64(scores, idx, &p.sampleBuf)
		cum := 0.0
		limit := 1 - tp
		for r, i := range idx {
			cum += probs[r]
			if cum <= limit && r < len(idx)-1 {
				scores[i] = negInf
			}
		}
		p.sortIdx = idx
	}
}

// softmax64 returns the softmax of scores taken in the order of idx.
func softmax64(scores []float32, idx []int, buf *[]float64) []float64 {
	out := (*buf)[:0]
	maxv := math.Inf(-1)
	for _, i := range idx {
		maxv = math.Max(maxv, float64(scores[i]))
	}
	sum := 0.0
	for _, i := range idx {
		e := math.Exp(float64(scores[i]) - maxv)
		out = append(out, e)
		sum += e
	}
	for r := range out {
		out[r] /= sum
	}
	*buf = out
	return out
}

// logSoftmax replaces x by log_softmax(x) as PyTorch computes it in float32:
// (x - max) - log(sum(exp(x - max))).
func logSoftmax(x []float32) {
	maxv := negInf
	for _, v := range x {
		if v > maxv {
			maxv = v
		}
	}
	sum := 0.0
	for _, v := range x {
		sum += math.Exp(float64(v - maxv))
	}
	ls := float32(math.Log(sum))
	for i, v := range x {
		x[i] = (v - maxv) - ls
	}
}
