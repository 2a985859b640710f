package metrics

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// SacreBLEUVersion is the sacrebleu release whose BLEU and chrF this package
// reproduces; it is the version field of the signatures.
const SacreBLEUVersion = "2.6.0"

// BLEU smoothing methods (Chen and Cherry, 2014), as sacrebleu names them.
const (
	SmoothNone  = "none"
	SmoothFloor = "floor"
	SmoothAddK  = "add-k"
	SmoothExp   = "exp"
)

// BLEUOptions are sacrebleu.metrics.BLEU's arguments. Zero values mean
// sacrebleu's defaults: tokenizer 13a, smoothing exp, maximum order 4, and
// for floor and add-k the smoothing values 0.1 and 1.
type BLEUOptions struct {
	Tokenize       string   `json:"tokenize"`
	SmoothMethod   string   `json:"smooth_method"`
	SmoothValue    *float64 `json:"smooth_value,omitempty"`
	Lowercase      bool     `json:"lowercase"`
	EffectiveOrder bool     `json:"effective_order"`
	MaxNgramOrder  int      `json:"max_ngram_order"`
	// Force silences the warning about hypotheses that look tokenized; it
	// never changes the score.
	Force bool `json:"force"`
}

// SentenceBLEUOptions are the defaults of sacrebleu.sentence_bleu: as for
// corpus BLEU but with effective order on.
func SentenceBLEUOptions() BLEUOptions {
	return BLEUOptions{EffectiveOrder: true}
}

func (o BLEUOptions) normalized() (BLEUOptions, error) {
	if o.Tokenize == "" {
		o.Tokenize = Tokenize13a
	}
	if o.SmoothMethod == "" {
		o.SmoothMethod = SmoothExp
	}
	if o.MaxNgramOrder == 0 {
		o.MaxNgramOrder = 4
	}
	if o.MaxNgramOrder < 0 {
		return o, fmt.Errorf("max n-gram order must be positive, got %d", o.MaxNgramOrder)
	}
	if err := checkOrder("max n-gram order", o.MaxNgramOrder); err != nil {
		return o, err
	}
	switch o.SmoothMethod {
	case SmoothNone, SmoothFloor, SmoothAddK, SmoothExp:
	default:
		return o, fmt.Errorf("unknown smoothing method %q (want none, floor, add-k or exp)", o.SmoothMethod)
	}
	if o.SmoothValue != nil {
		if v := *o.SmoothValue; math.IsNaN(v) || math.IsInf(v, 0) {
			return o, fmt.Errorf("smoothing value must be finite, got %v", v)
		}
		v := *o.SmoothValue
		o.SmoothValue = &v // never share the caller's variable
	}
	if _, err := newBLEUTokenizer(o.Tokenize); err != nil {
		return o, err
	}
	return o, nil
}

// smoothValue is the value compute_bleu uses: the given one or the default.
func (o BLEUOptions) smoothValue() (float64, bool) {
	if o.SmoothValue != nil {
		return *o.SmoothValue, true
	}
	switch o.SmoothMethod {
	case SmoothFloor:
		return 0.1, true
	case SmoothAddK:
		return 1, true
	}
	return 0, false
}

func (o BLEUOptions) equal(p BLEUOptions) bool {
	a, _ := o.smoothValue()
	b, _ := p.smoothValue()
	return o.Tokenize == p.Tokenize && o.SmoothMethod == p.SmoothMethod && a == b &&
		o.Lowercase == p.Lowercase && o.EffectiveOrder == p.EffectiveOrder && o.MaxNgramOrder == p.MaxNgramOrder
}

// BLEUStats are BLEU's sufficient statistics: sums over segments, so the
// statistics of shards add up to those of the whole corpus.
type BLEUStats struct {
	Segments int64   `json:"segments"`
	SysLen   int64   `json:"sys_len"`
	RefLen   int64   `json:"ref_len"`
	Correct  []int64 `json:"correct"`
	Total    []int64 `json:"total"`
	// MinRefs and MaxRefs give the signature's nrefs ("var" when they differ).
	MinRefs int `json:"min_refs"`
	MaxRefs int `json:"max_refs"`
	// TokenizedPeriods counts hypotheses ending in " ." (sacrebleu warns at 100).
	TokenizedPeriods int64 `json:"tokenized_periods"`
	// PerSegment, kept for bootstrap resampling, holds each segment's
	// [sys_len, ref_len, correct..., total...], sacrebleu's segment list.
	PerSegment [][]int64 `json:"per_segment,omitempty"`
}

func newBLEUStats(order int) BLEUStats {
	return BLEUStats{Correct: make([]int64, order), Total: make([]int64, order)}
}

func (s BLEUStats) clone() BLEUStats {
	s.Correct = append([]int64(nil), s.Correct...)
	s.Total = append([]int64(nil), s.Total...)
	s.PerSegment = cloneRows(s.PerSegment)
	return s
}

func cloneRows(rows [][]int64) [][]int64 {
	if rows == nil {
		return nil
	}
	out := make([][]int64, len(rows))
	for i, r := range rows {
		out[i] = append([]int64(nil), r...)
	}
	return out
}

// row is the segment's statistics as one list, as sacrebleu keeps them.
func (s BLEUStats) row() []int64 {
	r := append([]int64{s.SysLen, s.RefLen}, s.Correct...)
	return append(r, s.Total...)
}

// add merges t into s.
func (s *BLEUStats) add(t BLEUStats) {
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
	s.SysLen += t.SysLen
	s.RefLen += t.RefLen
	for i := range s.Correct {
		s.Correct[i] += t.Correct[i]
		s.Total[i] += t.Total[i]
	}
	s.TokenizedPeriods += t.TokenizedPeriods
	s.PerSegment = append(s.PerSegment, t.PerSegment...)
}

// NRefs is the signature's nrefs field.
func (s BLEUStats) NRefs() string { return nrefsField(s.MinRefs, s.MaxRefs) }

func nrefsField(lo, hi int) string {
	if lo != hi {
		return "var"
	}
	return fmt.Sprint(lo)
}

// BLEUScore is sacrebleu's BLEUScore. Counts and Totals are what
// compute_bleu leaves in them, so add-k smoothing shows in them as there.
type BLEUScore struct {
	Score      float64   `json:"score"`
	Counts     []float64 `json:"counts"`
	Totals     []float64 `json:"totals"`
	Precisions []float64 `json:"precisions"`
	BP         float64   `json:"bp"`
	SysLen     int64     `json:"sys_len"`
	RefLen     int64     `json:"ref_len"`
	Signature  string    `json:"signature"`
	// BootstrapCI is the bootstrap estimate, when one was asked for
	// (BLEU.CorpusScore); Signature then has its bs and seed.
	*BootstrapCI
}

// String formats the score as sacrebleu's text output does.
func (s BLEUScore) String() string {
	if s.BootstrapCI != nil {
		return fmt.Sprintf("BLEU|%s = %.2f (μ = %.2f ± %.2f) %s", s.Signature, s.Score, s.Mean, s.CI, s.Verbose())
	}
	return fmt.Sprintf("BLEU|%s = %.2f %s", s.Signature, s.Score, s.Verbose())
}

// Verbose is the part sacrebleu prints after the score: precisions, brevity
// penalty, length ratio and lengths.
func (s BLEUScore) Verbose() string {
	prec := make([]string, len(s.Precisions))
	for i, p := range s.Precisions {
		prec[i] = fmt.Sprintf("%.1f", p)
	}
	ratio := 0.0
	if s.RefLen != 0 {
		ratio = float64(s.SysLen) / float64(s.RefLen)
	}
	return fmt.Sprintf("%s (BP = %.3f ratio = %.3f hyp_len = %d ref_len = %d)",
		strings.Join(prec, "/"), s.BP, ratio, s.SysLen, s.RefLen)
}

// BLEU accumulates corpus BLEU segment by segment. It is not safe for
// concurrent use; AddBatch spreads work over goroutines itself.
type BLEU struct {
	opts     BLEUOptions
	seg      *bleuSegmenter
	stats    BLEUStats
	keepSegs bool
}

// KeepSegmentStats makes the accumulator keep every segment's statistics,
// which Bootstrap needs; call it before adding segments.
func (b *BLEU) KeepSegmentStats() { b.keepSegs = true }

// NewBLEU checks the options and returns an empty accumulator.
func NewBLEU(opts BLEUOptions) (*BLEU, error) {
	o, err := opts.normalized()
	if err != nil {
		return nil, err
	}
	return &BLEU{opts: o, seg: newBLEUSegmenter(o), stats: newBLEUStats(o.MaxNgramOrder)}, nil
}

// Options returns the options with defaults filled in.
func (b *BLEU) Options() BLEUOptions { return b.opts }

// Add scores one segment against its references and adds its statistics.
func (b *BLEU) Add(hyp string, refs []string) error {
	st, err := b.seg.segment(hyp, refs)
	if err != nil {
		return err
	}
	if b.keepSegs {
		st.PerSegment = [][]int64{st.row()}
	}
	b.stats.add(st)
	return nil
}

// AddBatch adds many segments, spreading them over up to workers goroutines
// (0 means one per CPU). The result equals calling Add on each in turn.
func (b *BLEU) AddBatch(hyps []string, refs [][]string, workers int) error {
	if len(hyps) != len(refs) {
		return fmt.Errorf("%d hypotheses but %d reference lists", len(hyps), len(refs))
	}
	parts, err := parallelChunks(len(hyps), workers, func(lo, hi int) (BLEUStats, error) {
		seg := b.seg
		if lo != 0 {
			seg = newBLEUSegmenter(b.opts)
		}
		acc := newBLEUStats(b.opts.MaxNgramOrder)
		for i := lo; i < hi; i++ {
			st, err := seg.segment(hyps[i], refs[i])
			if err != nil {
				return acc, fmt.Errorf("segment %d: %w", i+1, err)
			}
			if b.keepSegs {
				st.PerSegment = [][]int64{st.row()}
			}
			acc.add(st)
		}
		return acc, nil
	})
	if err != nil {
		return err
	}
	for _, p := range parts {
		b.stats.add(p)
	}
	return nil
}

// Stats returns a copy of the accumulated statistics.
func (b *BLEU) Stats() BLEUStats { return b.stats.clone() }

// Merge adds statistics computed elsewhere (another shard) with the same options.
func (b *BLEU) Merge(s BLEUStats) error {
	if len(s.Correct) != b.opts.MaxNgramOrder || len(s.Total) != b.opts.MaxNgramOrder {
		return fmt.Errorf("BLEU statistics have %d/%d n-gram orders, want %d", len(s.Correct), len(s.Total), b.opts.MaxNgramOrder)
	}
	if err := checkRows(s.PerSegment, s.Segments, 2+2*b.opts.MaxNgramOrder, b.keepSegs); err != nil {
		return err
	}
	if err := s.check(); err != nil {
		return err
	}
	if b.stats.SysLen+s.SysLen >= maxCount || b.stats.RefLen+s.RefLen >= maxCount || b.stats.Segments+s.Segments >= maxCount {
		return errors.New("merged BLEU statistics exceed 2^53 tokens")
	}
	if !b.keepSegs {
		s.PerSegment = nil
	}
	b.stats.add(s)
	return nil
}

// Score is the corpus BLEU of everything added so far.
func (b *BLEU) Score() BLEUScore { return b.opts.score(b.stats) }

// Signature is sacrebleu's signature string for the accumulated corpus.
func (b *BLEU) Signature() string { return b.opts.signature(b.stats.NRefs()) }

// SentenceScore is the BLEU of one segment on its own (sacrebleu's
// BLEU.sentence_score); it does not change the accumulated statistics.
func (b *BLEU) SentenceScore(hyp string, refs []string) (BLEUScore, error) {
	st, err := b.seg.segment(hyp, refs)
	if err != nil {
		return BLEUScore{}, err
	}
	return b.opts.score(st), nil
}

func (o BLEUOptions) signature(nrefs string) string {
	smooth := o.SmoothMethod
	if o.SmoothMethod == SmoothFloor || o.SmoothMethod == SmoothAddK {
		v, _ := o.smoothValue()
		smooth += fmt.Sprintf("[%.2f]", v)
	}
	return fmt.Sprintf("nrefs:%s|case:%s|eff:%s|tok:%s|smooth:%s|version:%s",
		nrefs, yesNo(o.Lowercase, "lc", "mixed"), yesNo(o.EffectiveOrder, "yes", "no"), o.Tokenize, smooth, SacreBLEUVersion)
}

func yesNo(b bool, yes, no string) string {
	if b {
		return yes
	}
	return no
}

// myLog is sacrebleu's utils.my_log.
func myLog(x float64) float64 {
	if x == 0 {
		return -9999999999
	}
	return math.Log(x)
}

// score is sacrebleu's BLEU.compute_bleu, operation for operation.
func (o BLEUOptions) score(s BLEUStats) BLEUScore {
	order := o.MaxNgramOrder
	correct := make([]float64, order)
	total := make([]float64, order)
	anyCorrect := false
	for i := 0; i < order; i++ {
		correct[i] = float64(s.Correct[i])
		total[i] = float64(s.Total[i])
		anyCorrect = anyCorrect || s.Correct[i] != 0
	}
	res := BLEUScore{Counts: correct, Totals: total, Precisions: make([]float64, order),
		SysLen: s.SysLen, RefLen: s.RefLen, Signature: o.signature(s.NRefs())}
	res.BP = 1.0
	if s.SysLen < s.RefLen {
		if s.SysLen > 0 {
			res.BP = math.Exp(1 - float64(s.RefLen)/float64(s.SysLen))
		} else {
			res.BP = 0
		}
	}
	if !anyCorrect {
		return res
	}
	smoothValue, _ := o.smoothValue()
	smoothMteval := 1.0
	effOrder := order
	for n := 1; n <= order; n++ {
		if o.SmoothMethod == SmoothAddK && n > 1 {
			correct[n-1] += smoothValue
			total[n-1] += smoothValue
		}
		if total[n-1] == 0 {
			break
		}
		if o.EffectiveOrder {
			effOrder = n
		}
		if correct[n-1] == 0 {
			switch o.SmoothMethod {
			case SmoothExp:
				smoothMteval *= 2
				res.Precisions[n-1] = 100. / (smoothMteval * total[n-1])
			case SmoothFloor:
				res.Precisions[n-1] = 100. * smoothValue / total[n-1]
			}
		} else {
			res.Precisions[n-1] = 100. * correct[n-1] / total[n-1]
		}
	}
	sum := 0.0
	for _, p := range res.Precisions[:effOrder] {
		sum += myLog(p)
	}
	res.Score = res.BP * math.Exp(sum/float64(effOrder))
	return res
}

// bleuSegmenter turns one segment into statistics. Tokens are interned to
// integers so n-grams up to order 4 are fixed-size map keys (no allocation
// per n-gram); longer orders fall back to string keys.
type bleuSegmenter struct {
	opts     BLEUOptions
	tok      *bleuTokenizer
	ids      map[string]int32
	idbuf    []int32
	refLens  []int
	ref4     map[[4]int32]int32
	cur4     map[[4]int32]int32
	refS     map[string]int32
	curS     map[string]int32
	keyBuf   []byte
	tokenErr error
	// packed path: per-segment ids of the tokens' global ids, stamped by
	// segment number so nothing needs clearing.
	segNo     uint32
	stamp     []uint32
	local     []uint16
	nLocal    int
	loc       []uint16
	keys      []uint64
	refKeys   [4][]uint64
	refCounts [4][]int32
	tmpKeys   []uint64
	tmpCounts []int32
	runKeys   []uint64
	runCounts []int32
}

func newBLEUSegmenter(o BLEUOptions) *bleuSegmenter {
	tok, err := newBLEUTokenizer(o.Tokenize)
	s := &bleuSegmenter{opts: o, tok: tok, tokenErr: err, ids: make(map[string]int32)}
	if o.MaxNgramOrder <= 4 {
		s.ref4 = make(map[[4]int32]int32)
		s.cur4 = make(map[[4]int32]int32)
	} else {
		s.refS = make(map[string]int32)
		s.curS = make(map[string]int32)
	}
	return s
}

// ids of the preprocessed segment's tokens, in s.idbuf; returns the length.
func (s *bleuSegmenter) tokenIDs(line string) []int32 {
	if s.opts.Lowercase {
		line = pyLower(line)
	}
	line = pyRstrip(line)
	s.idbuf = s.idbuf[:0]
	s.tok.eachToken(line, func(t string) {
		id, ok := s.ids[t]
		if !ok {
			id = int32(len(s.ids))
			s.ids[strings.Clone(t)] = id
		}
		s.idbuf = append(s.idbuf, id)
	})
	return s.idbuf
}

func (s *bleuSegmenter) segment(hyp string, refs []string) (BLEUStats, error) {
	order := s.opts.MaxNgramOrder
	st := newBLEUStats(order)
	if s.tokenErr != nil {
		return st, s.tokenErr
	}
	if len(refs) == 0 {
		return st, errors.New("no reference for this segment")
	}
	if s.opts.MaxNgramOrder <= 4 && s.segmentPacked(hyp, refs, &st) {
		return st, nil
	}
	return s.segmentMaps(hyp, refs), nil
}

// segmentMaps counts n-grams in maps: the general path, for orders above 4
// and segments too large for segmentPacked.
func (s *bleuSegmenter) segmentMaps(hyp string, refs []string) BLEUStats {
	order := s.opts.MaxNgramOrder
	st := newBLEUStats(order)
	small := s.ref4 != nil
	if small {
		clear(s.ref4)
	} else {
		clear(s.refS)
	}
	s.refLens = s.refLens[:0]
	for _, r := range refs {
		ids := s.tokenIDs(r)
		s.refLens = append(s.refLens, len(ids))
		if small {
			clear(s.cur4)
			count4(s.cur4, ids, order)
			for k, c := range s.cur4 {
				if c > s.ref4[k] {
					s.ref4[k] = c
				}
			}
		} else {
			clear(s.curS)
			s.countS(s.curS, ids, order)
			for k, c := range s.curS {
				if c > s.refS[k] {
					s.refS[k] = c
				}
			}
		}
	}
	if !s.opts.Force && strings.HasSuffix(hyp, " .") {
		st.TokenizedPeriods = 1
	}
	ids := s.tokenIDs(hyp)
	st.Segments = 1
	st.MinRefs, st.MaxRefs = len(refs), len(refs)
	st.SysLen = int64(len(ids))
	st.RefLen = int64(closestRefLen(len(ids), s.refLens))
	if small {
		clear(s.cur4)
		count4(s.cur4, ids, order)
		for k, c := range s.cur4 {
			n := 4
			for n > 1 && k[n-1] < 0 {
				n--
			}
			st.Total[n-1] += int64(c)
			if rc, ok := s.ref4[k]; ok {
				st.Correct[n-1] += int64(min(c, rc))
			}
		}
	} else {
		clear(s.curS)
		s.countS(s.curS, ids, order)
		for k, c := range s.curS {
			n := len(k) / 4
			st.Total[n-1] += int64(c)
			if rc, ok := s.refS[k]; ok {
				st.Correct[n-1] += int64(min(c, rc))
			}
		}
	}
	return st
}

func count4(m map[[4]int32]int32, ids []int32, order int) {
	for n := 1; n <= order; n++ {
		for i := 0; i+n <= len(ids); i++ {
			k := [4]int32{-1, -1, -1, -1}
			copy(k[:], ids[i:i+n])
			m[k]++
		}
	}
}

func (s *bleuSegmenter) countS(m map[string]int32, ids []int32, order int) {
	for n := 1; n <= order; n++ {
		for i := 0; i+n <= len(ids); i++ {
			s.keyBuf = s.keyBuf[:0]
			for _, id := range ids[i : i+n] {
				s.keyBuf = append(s.keyBuf, byte(id), byte(id>>8), byte(id>>16), byte(id>>24))
			}
			if _, ok := m[string(s.keyBuf)]; ok {
				m[string(s.keyBuf)]++
			} else {
				m[string(s.keyBuf)] = 1
			}
		}
	}
}

// closestRefLen is sacrebleu's _get_closest_ref_len: the reference length
// nearest the hypothesis length, the shorter one on ties.
func closestRefLen(hypLen int, refLens []int) int {
	closestDiff, closestLen := -1, -1
	for _, r := range refLens {
		diff := hypLen - r
		if diff < 0 {
			diff = -diff
		}
		if closestDiff == -1 || diff < closestDiff {
			closestDiff, closestLen = diff, r
		} else if diff == closestDiff && r < closestLen {
			closestLen = r
		}
	}
	return closestLen
}

// segmentPacked computes the statistics with n-grams packed into uint64 (4
// ids of 16 bits, ids local to the segment) and counted by sorting, for
// orders up to 4. It returns false, with nothing written, when the segment
// has more than 65535 distinct tokens.
func (s *bleuSegmenter) segmentPacked(hyp string, refs []string, st *BLEUStats) bool {
	order := s.opts.MaxNgramOrder
	s.segNo++
	if s.segNo == 0 { // wrapped: forget every stamp
		clear(s.stamp)
		s.segNo = 1
	}
	s.nLocal = 0
	s.refLens = s.refLens[:0]
	for k, r := range refs {
		ids := s.tokenIDs(r)
		s.refLens = append(s.refLens, len(ids))
		if !s.localIDs(ids) {
			return false
		}
		for n := 1; n <= order; n++ {
			s.sortedKeys(n)
			s.runKeys, s.runCounts = runsOf(s.keys, s.runKeys[:0], s.runCounts[:0])
			if k == 0 {
				s.refKeys[n-1] = append(s.refKeys[n-1][:0], s.runKeys...)
				s.refCounts[n-1] = append(s.refCounts[n-1][:0], s.runCounts...)
				continue
			}
			s.tmpKeys, s.tmpCounts = mergeMaxRuns(s.refKeys[n-1], s.refCounts[n-1], s.runKeys, s.runCounts, s.tmpKeys[:0], s.tmpCounts[:0])
			s.refKeys[n-1], s.tmpKeys = s.tmpKeys, s.refKeys[n-1]
			s.refCounts[n-1], s.tmpCounts = s.tmpCounts, s.refCounts[n-1]
		}
	}
	ids := s.tokenIDs(hyp)
	if !s.localIDs(ids) {
		return false
	}
	for n := 1; n <= order; n++ {
		s.sortedKeys(n)
		st.Total[n-1] = int64(len(s.keys))
		st.Correct[n-1] = clippedMatches(s.keys, s.refKeys[n-1], s.refCounts[n-1])
	}
	if !s.opts.Force && strings.HasSuffix(hyp, " .") {
		st.TokenizedPeriods = 1
	}
	st.Segments = 1
	st.MinRefs, st.MaxRefs = len(refs), len(refs)
	st.SysLen = int64(len(ids))
	st.RefLen = int64(closestRefLen(len(ids), s.refLens))
	return true
}

// localIDs maps global token ids to this segment's ids, in s.loc.
func (s *bleuSegmenter) localIDs(ids []int32) bool {
	if n := len(s.ids); n > len(s.stamp) {
		s.stamp = append(s.stamp, make([]uint32, n-len(s.stamp)+n/2)...)
		s.local = append(s.local, make([]uint16, len(s.stamp)-len(s.local))...)
	}
	s.loc = s.loc[:0]
	for _, g := range ids {
		if s.stamp[g] != s.segNo {
			if s.nLocal == 1<<16 {
				return false
			}
			s.stamp[g] = s.segNo
			s.local[g] = uint16(s.nLocal)
			s.nLocal++
		}
		s.loc = append(s.loc, s.local[g])
	}
	return true
}

// sortedKeys puts the sorted packed n-grams of order n of s.loc in s.keys.
func (s *bleuSegmenter) sortedKeys(n int) {
	s.keys = s.keys[:0]
	for i := 0; i+n <= len(s.loc); i++ {
		var v uint64
		for _, id := range s.loc[i : i+n] {
			v = v<<16 | uint64(id)
		}
		s.keys = append(s.keys, v)
	}
	slices.Sort(s.keys)
}

// runsOf turns sorted keys into distinct keys and their counts.
func runsOf(sorted []uint64, keys []uint64, counts []int32) ([]uint64, []int32) {
	for i := 0; i < len(sorted); {
		j := i + 1
		for j < len(sorted) && sorted[j] == sorted[i] {
			j++
		}
		keys = append(keys, sorted[i])
		counts = append(counts, int32(j-i))
		i = j
	}
	return keys, counts
}

// mergeMaxRuns is the union of two run lists with the larger count of each
// key: the reference counts of several references, as sacrebleu merges them.
func mergeMaxRuns(ak []uint64, ac []int32, bk []uint64, bc []int32, keys []uint64, counts []int32) ([]uint64, []int32) {
	i, j := 0, 0
	for i < len(ak) || j < len(bk) {
		switch {
		case j == len(bk) || (i < len(ak) && ak[i] < bk[j]):
			keys, counts = append(keys, ak[i]), append(counts, ac[i])
			i++
		case i == len(ak) || bk[j] < ak[i]:
			keys, counts = append(keys, bk[j]), append(counts, bc[j])
			j++
		default:
			keys, counts = append(keys, ak[i]), append(counts, max(ac[i], bc[j]))
			i++
			j++
		}
	}
	return keys, counts
}

// clippedMatches sums, over the distinct hypothesis n-grams, the smaller of
// the hypothesis count and the reference count.
func clippedMatches(hyp []uint64, rk []uint64, rc []int32) int64 {
	var m int64
	j := 0
	for i := 0; i < len(hyp); {
		k := hyp[i]
		c := 1
		for i+c < len(hyp) && hyp[i+c] == k {
			c++
		}
		i += c
		for j < len(rk) && rk[j] < k {
			j++
		}
		if j < len(rk) && rk[j] == k {
			m += int64(min(int32(c), rc[j]))
		}
	}
	return m
}

// checkRows checks per-segment statistics about to be merged: with keep,
// there must be one row of width values per segment.
func checkRows(rows [][]int64, segments int64, width int, keep bool) error {
	if keep && int64(len(rows)) != segments {
		return fmt.Errorf("statistics hold %d of %d segments' own statistics; bootstrap needs them all (write every shard with bootstrap on)", len(rows), segments)
	}
	for _, r := range rows {
		if len(r) != width {
			return fmt.Errorf("a segment's statistics have %d values, want %d", len(r), width)
		}
	}
	return nil
}
