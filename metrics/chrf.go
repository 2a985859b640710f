package metrics

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// CHRFOptions are sacrebleu.metrics.CHRF's arguments. Zero CharOrder and
// Beta mean sacrebleu's defaults 6 and 2; WordOrder 2 gives chrF++.
type CHRFOptions struct {
	CharOrder    int  `json:"char_order"`
	WordOrder    int  `json:"word_order"`
	Beta         int  `json:"beta"`
	Lowercase    bool `json:"lowercase"`
	Whitespace   bool `json:"whitespace"`
	EpsSmoothing bool `json:"eps_smoothing"`
}

func (o CHRFOptions) normalized() (CHRFOptions, error) {
	if o.CharOrder == 0 {
		o.CharOrder = 6
	}
	if o.Beta == 0 {
		o.Beta = 2
	}
	if o.CharOrder < 0 || o.WordOrder < 0 || o.Beta < 0 {
		return o, fmt.Errorf("chrF orders and beta must not be negative (char order %d, word order %d, beta %d)", o.CharOrder, o.WordOrder, o.Beta)
	}
	if err := checkOrder("chrF character order", o.CharOrder); err != nil {
		return o, err
	}
	if err := checkOrder("chrF word order", o.WordOrder); err != nil {
		return o, err
	}
	if o.Beta > MaxOrder {
		return o, fmt.Errorf("chrF beta %d is more than %d", o.Beta, MaxOrder)
	}
	return o, nil
}

func (o CHRFOptions) order() int { return o.CharOrder + o.WordOrder }

// CHRFStats are chrF's sufficient statistics: for each order (character
// orders first, then word orders) the hypothesis, reference and matching
// n-gram counts, summed over segments.
type CHRFStats struct {
	Segments int64   `json:"segments"`
	Counts   []int64 `json:"counts"` // 3 per order: hyp, ref, match
	MinRefs  int     `json:"min_refs"`
	MaxRefs  int     `json:"max_refs"`
	// PerSegment, kept for bootstrap resampling, holds each segment's counts.
	PerSegment [][]int64 `json:"per_segment,omitempty"`
}

func (s CHRFStats) clone() CHRFStats {
	s.Counts = append([]int64(nil), s.Counts...)
	s.PerSegment = cloneRows(s.PerSegment)
	return s
}

func (s *CHRFStats) add(t CHRFStats) {
	if t.Segments == 0 {
		return
	}
	if s.Segments == 0 {
		s.MinRefs, s.MaxRefs = t.MinRefs, t.MaxRefs
	} else {
		s.MinRefs = min(s.MinRefs, t.MinRefs)
		s.MaxRefs = max(s.MaxRefs, t.MaxRefs)
	}
	s.Segments += t.Segments
	for i := range s.Counts {
		s.Counts[i] += t.Counts[i]
	}
	s.PerSegment = append(s.PerSegment, t.PerSegment...)
}

// CHRFScore is sacrebleu's CHRFScore.
type CHRFScore struct {
	Score     float64 `json:"score"`
	Name      string  `json:"name"`
	Signature string  `json:"signature"`
	// BootstrapCI is the bootstrap estimate, when one was asked for
	// (CHRF.CorpusScore); Signature then has its bs and seed.
	*BootstrapCI
}

// String formats the score as sacrebleu's text output does.
func (s CHRFScore) String() string {
	if s.BootstrapCI != nil {
		return fmt.Sprintf("%s|%s = %.2f (μ = %.2f ± %.2f)", s.Name, s.Signature, s.Score, s.Mean, s.CI)
	}
	return fmt.Sprintf("%s|%s = %.2f", s.Name, s.Signature, s.Score)
}

// CHRF accumulates corpus chrF / chrF++. Not safe for concurrent use.
type CHRF struct {
	opts     CHRFOptions
	seg      *chrfSegmenter
	stats    CHRFStats
	keepSegs bool
}

// KeepSegmentStats makes the accumulator keep every segment's statistics,
// which Bootstrap needs; call it before adding segments.
func (c *CHRF) KeepSegmentStats() { c.keepSegs = true }

// NewCHRF checks the options and returns an empty accumulator.
func NewCHRF(opts CHRFOptions) (*CHRF, error) {
	o, err := opts.normalized()
	if err != nil {
		return nil, err
	}
	return &CHRF{opts: o, seg: newCHRFSegmenter(o), stats: CHRFStats{Counts: make([]int64, 3*o.order())}}, nil
}

// Options returns the options with defaults filled in.
func (c *CHRF) Options() CHRFOptions { return c.opts }

// Add scores one segment and adds the statistics of its best reference.
func (c *CHRF) Add(hyp string, refs []string) error {
	st, err := c.seg.segment(hyp, refs)
	if err != nil {
		return err
	}
	if c.keepSegs {
		st.PerSegment = [][]int64{append([]int64(nil), st.Counts...)}
	}
	c.stats.add(st)
	return nil
}

// AddBatch adds many segments over up to workers goroutines (0: one per CPU).
func (c *CHRF) AddBatch(hyps []string, refs [][]string, workers int) error {
	if len(hyps) != len(refs) {
		return fmt.Errorf("%d hypotheses but %d reference lists", len(hyps), len(refs))
	}
	parts, err := parallelChunks(len(hyps), workers, func(lo, hi int) (CHRFStats, error) {
		seg := c.seg
		if lo != 0 {
			seg = newCHRFSegmenter(c.opts)
		}
		acc := CHRFStats{Counts: make([]int64, 3*c.opts.order())}
		for i := lo; i < hi; i++ {
			st, err := seg.segment(hyps[i], refs[i])
			if err != nil {
				return acc, fmt.Errorf("segment %d: %w", i+1, err)
			}
			if c.keepSegs {
				st.PerSegment = [][]int64{append([]int64(nil), st.Counts...)}
			}
			acc.add(st)
		}
		return acc, nil
	})
	if err != nil {
		return err
	}
	for _, p := range parts {
		c.stats.add(p)
	}
	return nil
}

// Stats returns a copy of the accumulated statistics.
func (c *CHRF) Stats() CHRFStats { return c.stats.clone() }

// Merge adds statistics of another shard computed with the same options.
func (c *CHRF) Merge(s CHRFStats) error {
	if len(s.Counts) != 3*c.opts.order() {
		return fmt.Errorf("chrF statistics have %d counts, want %d", len(s.Counts), 3*c.opts.order())
	}
	if err := checkRows(s.PerSegment, s.Segments, 3*c.opts.order(), c.keepSegs); err != nil {
		return err
	}
	if err := s.check(); err != nil {
		return err
	}
	for i, v := range s.Counts {
		if c.stats.Counts[i]+v >= maxCount {
			return errors.New("merged chrF statistics exceed 2^53 n-grams")
		}
	}
	if !c.keepSegs {
		s.PerSegment = nil
	}
	c.stats.add(s)
	return nil
}

// Score is the corpus chrF of everything added so far.
func (c *CHRF) Score() CHRFScore { return c.score(c.stats) }

// SentenceScore is the chrF of one segment on its own.
func (c *CHRF) SentenceScore(hyp string, refs []string) (CHRFScore, error) {
	st, err := c.seg.segment(hyp, refs)
	if err != nil {
		return CHRFScore{}, err
	}
	return c.score(st), nil
}

func (c *CHRF) score(s CHRFStats) CHRFScore {
	return CHRFScore{
		Score:     c.opts.fScore(s.Counts),
		Name:      fmt.Sprintf("chrF%d%s", c.opts.Beta, strings.Repeat("+", c.opts.WordOrder)),
		Signature: c.opts.signature(nrefsField(s.MinRefs, s.MaxRefs)),
	}
}

func (o CHRFOptions) signature(nrefs string) string {
	return fmt.Sprintf("nrefs:%s|case:%s|eff:%s|nc:%d|nw:%d|space:%s|version:%s",
		nrefs, yesNo(o.Lowercase, "lc", "mixed"), yesNo(!o.EpsSmoothing, "yes", "no"),
		o.CharOrder, o.WordOrder, yesNo(o.Whitespace, "yes", "no"), SacreBLEUVersion)
}

// fScore is sacrebleu's CHRF._compute_f_score, operation for operation.
func (o CHRFOptions) fScore(st []int64) float64 {
	const eps = 1e-16
	score := 0.0
	effectiveOrder := 0
	factor := float64(o.Beta * o.Beta)
	avgPrec, avgRec := 0.0, 0.0
	for i := 0; i < o.order(); i++ {
		nHyp, nRef, nMatch := st[3*i], st[3*i+1], st[3*i+2]
		prec, rec := eps, eps
		if nHyp > 0 {
			prec = float64(nMatch) / float64(nHyp)
		}
		if nRef > 0 {
			rec = float64(nMatch) / float64(nRef)
		}
		denom := factor*prec + rec
		if denom > 0 {
			score += (1 + factor) * prec * rec / denom
		} else {
			score += eps
		}
		if nHyp > 0 && nRef > 0 {
			avgPrec += prec
			avgRec += rec
			effectiveOrder++
		}
	}
	if o.EpsSmoothing {
		return 100 * score / float64(o.order())
	}
	if effectiveOrder == 0 {
		avgPrec, avgRec = 0, 0
	} else {
		avgPrec /= float64(effectiveOrder)
		avgRec /= float64(effectiveOrder)
	}
	if avgPrec+avgRec != 0 {
		score = (1 + factor) * avgPrec * avgRec
		score /= (factor * avgPrec) + avgRec
		return 100 * score
	}
	return 0
}

// chrfSegmenter extracts n-gram counts. Character n-grams are substrings of
// the whitespace-free segment, so map keys share its memory.
type chrfSegmenter struct {
	opts   CHRFOptions
	hyp    []map[string]int32
	ref    []map[string]int32
	words  []string
	fields []string
	buf    []byte
	stats  []int64
	// packed path
	alpha            map[rune]uint64
	wordIDs          map[string]uint64
	ids              []uint64
	hypKeys, refKeys [][]uint64
}

func newCHRFSegmenter(o CHRFOptions) *chrfSegmenter {
	s := &chrfSegmenter{opts: o}
	for i := 0; i < o.order(); i++ {
		s.hyp = append(s.hyp, make(map[string]int32))
		s.ref = append(s.ref, make(map[string]int32))
	}
	return s
}

const chrfPuncts = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

// words is CHRF._remove_punctuation: split on whitespace and peel one ASCII
// punctuation character off the end, else off the start, of each word.
func (s *chrfSegmenter) wordsOf(line string) []string {
	s.fields = pyFields(s.fields[:0], line)
	s.words = s.words[:0]
	for _, w := range s.fields {
		if utf8.RuneCountInString(w) == 1 {
			s.words = append(s.words, w)
			continue
		}
		last, first := w[len(w)-1], w[0]
		switch {
		case strings.IndexByte(chrfPuncts, last) >= 0:
			s.words = append(s.words, w[:len(w)-1], w[len(w)-1:])
		case strings.IndexByte(chrfPuncts, first) >= 0:
			s.words = append(s.words, w[:1], w[1:])
		default:
			s.words = append(s.words, w)
		}
	}
	return s.words
}

// extract fills maps (one per order) with the n-gram counts of line.
func (s *chrfSegmenter) extract(maps []map[string]int32, line string) {
	for _, m := range maps {
		clear(m)
	}
	chars := line
	if !s.opts.Whitespace {
		s.fields = pyFields(s.fields[:0], line)
		chars = strings.Join(s.fields, "")
	}
	// Byte offsets of code points, so n-grams of code points are substrings.
	var offs []int
	for i := range chars {
		offs = append(offs, i)
	}
	offs = append(offs, len(chars))
	nc := len(offs) - 1
	for n := 1; n <= s.opts.CharOrder; n++ {
		m := maps[n-1]
		for i := 0; i+n <= nc; i++ {
			m[chars[offs[i]:offs[i+n]]]++
		}
	}
	if s.opts.WordOrder > 0 {
		words := s.wordsOf(line)
		for n := 1; n <= s.opts.WordOrder; n++ {
			m := maps[s.opts.CharOrder+n-1]
			for i := 0; i+n <= len(words); i++ {
				if n == 1 {
					m[words[i]]++
					continue
				}
				s.buf = s.buf[:0]
				for j, w := range words[i : i+n] {
					if j > 0 {
						s.buf = append(s.buf, ' ')
					}
					s.buf = append(s.buf, w...)
				}
				if _, ok := m[string(s.buf)]; ok {
					m[string(s.buf)]++
				} else {
					m[string(s.buf)] = 1
				}
			}
		}
	}
}

func (s *chrfSegmenter) segment(hyp string, refs []string) (CHRFStats, error) {
	if len(refs) == 0 {
		return CHRFStats{}, errors.New("no reference for this segment")
	}
	if s.opts.Lowercase {
		hyp = pyLower(hyp)
		lower := make([]string, len(refs))
		for i, r := range refs {
			lower[i] = pyLower(r)
		}
		refs = lower
	}
	if st, ok := s.segmentPacked(hyp, refs); ok {
		return st, nil
	}
	return s.segmentMaps(hyp, refs), nil
}

// segmentMaps counts n-grams in maps keyed by the n-gram strings; it is the
// general path, for orders or alphabets that do not fit segmentPacked.
func (s *chrfSegmenter) segmentMaps(hyp string, refs []string) CHRFStats {
	order := s.opts.order()
	best := CHRFStats{Counts: make([]int64, 3*order)}
	s.extract(s.hyp, hyp)
	bestF := -1.0
	if cap(s.stats) < 3*order {
		s.stats = make([]int64, 3*order)
	}
	st := s.stats[:3*order]
	for _, r := range refs {
		s.extract(s.ref, r)
		for i := 0; i < order; i++ {
			var hypCount, refCount, match int64
			for ng, c := range s.hyp[i] {
				hypCount += int64(c)
				if rc, ok := s.ref[i][ng]; ok {
					match += int64(min(c, rc))
				}
			}
			for _, c := range s.ref[i] {
				refCount += int64(c)
			}
			if len(s.ref[i]) == 0 {
				hypCount = 0
			}
			st[3*i], st[3*i+1], st[3*i+2] = hypCount, refCount, match
		}
		if f := s.opts.fScore(st); f > bestF {
			bestF = f
			copy(best.Counts, st)
		}
	}
	best.Segments = 1
	best.MinRefs, best.MaxRefs = len(refs), len(refs)
	return best
}

// Packed n-grams: code points and words get small per-segment ids, and an
// n-gram becomes one uint64 (6 characters of 10 bits, or 3 words of 21
// bits). Sorted key lists then give the counts and the clipped matches by a
// merge walk, with no hashing of strings.
const (
	packCharBits = 10
	packWordBits = 21
)

func (s *chrfSegmenter) segmentPacked(hyp string, refs []string) (CHRFStats, bool) {
	o := s.opts
	if o.CharOrder > 6 || o.WordOrder > 3 {
		return CHRFStats{}, false
	}
	order := o.order()
	if s.alpha == nil {
		s.alpha = make(map[rune]uint64)
		s.wordIDs = make(map[string]uint64)
	}
	clear(s.alpha)
	clear(s.wordIDs)
	if len(s.hypKeys) < order {
		s.hypKeys = make([][]uint64, order)
		s.refKeys = make([][]uint64, order)
	}
	if !s.packed(s.hypKeys[:order], hyp) {
		return CHRFStats{}, false
	}
	best := CHRFStats{Counts: make([]int64, 3*order)}
	if cap(s.stats) < 3*order {
		s.stats = make([]int64, 3*order)
	}
	st := s.stats[:3*order]
	bestF := -1.0
	for _, r := range refs {
		if !s.packed(s.refKeys[:order], r) {
			return CHRFStats{}, false
		}
		for i := 0; i < order; i++ {
			h, rk := s.hypKeys[i], s.refKeys[i]
			hypCount := int64(len(h))
			if len(rk) == 0 {
				hypCount = 0
			}
			st[3*i], st[3*i+1], st[3*i+2] = hypCount, int64(len(rk)), matchSorted(h, rk)
		}
		if f := o.fScore(st); f > bestF {
			bestF = f
			copy(best.Counts, st)
		}
	}
	best.Segments = 1
	best.MinRefs, best.MaxRefs = len(refs), len(refs)
	return best, true
}

// packed fills keys (one sorted list per order) for line; false when the
// segment has too many distinct characters or words to pack.
func (s *chrfSegmenter) packed(keys [][]uint64, line string) bool {
	o := s.opts
	s.ids = s.ids[:0]
	for _, r := range line {
		if !o.Whitespace && isPySpace(r) {
			continue
		}
		id := uint64(r)
		if r >= 128 {
			var ok bool
			if id, ok = s.alpha[r]; !ok {
				id = uint64(128 + len(s.alpha))
				s.alpha[r] = id
			}
			if id >= 1<<packCharBits {
				return false
			}
		}
		s.ids = append(s.ids, id)
	}
	for n := 1; n <= o.CharOrder; n++ {
		k := keys[n-1][:0]
		for i := 0; i+n <= len(s.ids); i++ {
			var v uint64
			for _, id := range s.ids[i : i+n] {
				v = v<<packCharBits | id
			}
			k = append(k, v)
		}
		slices.Sort(k)
		keys[n-1] = k
	}
	if o.WordOrder == 0 {
		return true
	}
	s.ids = s.ids[:0]
	for _, w := range s.wordsOf(line) {
		id, ok := s.wordIDs[w]
		if !ok {
			id = uint64(len(s.wordIDs))
			s.wordIDs[w] = id
		}
		if id >= 1<<packWordBits {
			return false
		}
		s.ids = append(s.ids, id)
	}
	for n := 1; n <= o.WordOrder; n++ {
		k := keys[o.CharOrder+n-1][:0]
		for i := 0; i+n <= len(s.ids); i++ {
			var v uint64
			for _, id := range s.ids[i : i+n] {
				v = v<<packWordBits | id
			}
			k = append(k, v)
		}
		slices.Sort(k)
		keys[o.CharOrder+n-1] = k
	}
	return true
}

// matchSorted is the sum over distinct keys of min(count in h, count in r).
func matchSorted(h, r []uint64) int64 {
	var m int64
	i, j := 0, 0
	for i < len(h) && j < len(r) {
		switch {
		case h[i] < r[j]:
			i++
		case h[i] > r[j]:
			j++
		default:
			v := h[i]
			ci, cj := 0, 0
			for i < len(h) && h[i] == v {
				i++
				ci++
			}
			for j < len(r) && r[j] == v {
				j++
				cj++
			}
			m += int64(min(ci, cj))
		}
	}
	return m
}
