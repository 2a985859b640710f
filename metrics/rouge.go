package metrics

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/ortrain/ortrain/metrics/internal/nprand"
	"github.com/ortrain/ortrain/metrics/internal/porter"
)

// RougeScoreVersion is the rouge-score release this package reproduces.
const RougeScoreVersion = "0.1.2"

// DefaultROUGETypes are the types Hugging Face's evaluate "rouge" reports.
func DefaultROUGETypes() []string { return []string{"rouge1", "rouge2", "rougeL", "rougeLsum"} }

// ROUGEOptions are rouge_scorer.RougeScorer's arguments.
type ROUGEOptions struct {
	// Types: rouge1 ... rouge9, rougeL, rougeLsum; empty means DefaultROUGETypes().
	Types      []string `json:"types"`
	UseStemmer bool     `json:"use_stemmer"`
	// SplitSummaries asks rougeLsum to split summaries into sentences itself.
	// rouge-score does this with nltk.sent_tokenize (the Punkt model, which is
	// data this package does not carry); here it is refused, so that a score
	// that differs from rouge-score's is never printed. Put one sentence per
	// line (with --jsonl for multi-line summaries) instead.
	SplitSummaries bool `json:"split_summaries"`
}

func (o ROUGEOptions) normalized() (ROUGEOptions, error) {
	if len(o.Types) == 0 {
		o.Types = DefaultROUGETypes()
	}
	o.Types = append([]string(nil), o.Types...)
	seen := map[string]bool{}
	for _, t := range o.Types {
		if _, err := rougeN(t); err != nil {
			return o, err
		}
		if seen[t] {
			return o, fmt.Errorf("ROUGE type %q given twice", t)
		}
		seen[t] = true
	}
	if o.SplitSummaries {
		return o, errors.New("split_summaries needs NLTK's Punkt sentence tokenizer, which ortrain does not carry; " +
			"give rougeLsum summaries with one sentence per line (use JSON lines for multi-line summaries)")
	}
	return o, nil
}

// rougeN returns n for rougeN, 0 for rougeL, -1 for rougeLsum.
func rougeN(t string) (int, error) {
	switch t {
	case "rougeL":
		return 0, nil
	case "rougeLsum":
		return -1, nil
	}
	if len(t) == 6 && strings.HasPrefix(t, "rouge") && t[5] >= '0' && t[5] <= '9' {
		if t[5] == '0' {
			return 0, fmt.Errorf("rougen requires positive n: %s", t)
		}
		return int(t[5] - '0'), nil
	}
	return 0, fmt.Errorf("invalid ROUGE type %q (want rouge1 ... rouge9, rougeL or rougeLsum)", t)
}

// ROUGEScore is rouge-score's Score tuple.
type ROUGEScore struct {
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
	FMeasure  float64 `json:"fmeasure"`
}

func newROUGEScore(p, r float64) ROUGEScore {
	f := 0.0
	if p+r > 0 {
		f = 2 * p * r / (p + r)
	}
	return ROUGEScore{Precision: p, Recall: r, FMeasure: f}
}

// ROUGEStats are ROUGE's sufficient statistics: the number of pairs and the
// exact sums of each measure per type; Pairs keeps every pair's scores
// (types in order, precision/recall/F each) when bootstrap intervals are wanted.
type ROUGEStats struct {
	Types []string      `json:"types"`
	Count int64         `json:"count"`
	Sums  [][3]exactSum `json:"sums"`
	Pairs [][]float64   `json:"pairs,omitempty"`
}

func (s ROUGEStats) clone() ROUGEStats {
	c := ROUGEStats{Types: append([]string(nil), s.Types...), Count: s.Count}
	for _, t := range s.Sums {
		c.Sums = append(c.Sums, [3]exactSum{t[0].clone(), t[1].clone(), t[2].clone()})
	}
	for _, p := range s.Pairs {
		c.Pairs = append(c.Pairs, append([]float64(nil), p...))
	}
	return c
}

// ROUGE scores prediction/target pairs and accumulates the mean per type.
// Not safe for concurrent use; AddBatch spreads work over goroutines itself.
type ROUGE struct {
	opts      ROUGEOptions
	keepPairs bool
	sc        *rougeScorer
	stats     ROUGEStats
}

// NewROUGE checks the options and returns an empty accumulator. With
// keepPairs the per-pair scores are kept for Bootstrap.
func NewROUGE(opts ROUGEOptions, keepPairs bool) (*ROUGE, error) {
	o, err := opts.normalized()
	if err != nil {
		return nil, err
	}
	r := &ROUGE{opts: o, keepPairs: keepPairs, sc: newROUGEScorer(o)}
	r.stats = ROUGEStats{Types: o.Types, Sums: make([][3]exactSum, len(o.Types))}
	return r, nil
}

// Options returns the options with defaults filled in.
func (r *ROUGE) Options() ROUGEOptions { return r.opts }

// Types are the ROUGE types, in the order of every []ROUGEScore returned.
func (r *ROUGE) Types() []string { return r.opts.Types }

// ScorePair is RougeScorer.score_multi(targets, prediction): per type, the
// scores of the target with the highest F-measure (the first on ties). One
// target gives RougeScorer.score.
func (r *ROUGE) ScorePair(prediction string, targets []string) ([]ROUGEScore, error) {
	return r.sc.scoreMulti(prediction, targets)
}

// Add scores one pair and adds it to the mean.
func (r *ROUGE) Add(prediction string, targets []string) ([]ROUGEScore, error) {
	s, err := r.sc.scoreMulti(prediction, targets)
	if err != nil {
		return nil, err
	}
	r.addScores(s)
	return s, nil
}

func (r *ROUGE) addScores(s []ROUGEScore) {
	r.stats.Count++
	for i, x := range s {
		r.stats.Sums[i][0].add(x.Precision)
		r.stats.Sums[i][1].add(x.Recall)
		r.stats.Sums[i][2].add(x.FMeasure)
	}
	if r.keepPairs {
		p := make([]float64, 0, 3*len(s))
		for _, x := range s {
			p = append(p, x.Precision, x.Recall, x.FMeasure)
		}
		r.stats.Pairs = append(r.stats.Pairs, p)
	}
}

// AddBatch scores many pairs over up to workers goroutines (0: one per CPU)
// and adds them in order; it returns every pair's scores.
func (r *ROUGE) AddBatch(predictions []string, targets [][]string, workers int) ([][]ROUGEScore, error) {
	if len(predictions) != len(targets) {
		return nil, fmt.Errorf("%d predictions but %d target lists", len(predictions), len(targets))
	}
	out, err := r.scoreBatch(predictions, targets, workers)
	if err != nil {
		return nil, err
	}
	for _, s := range out {
		r.addScores(s)
	}
	return out, nil
}

// scoreBatch is ScorePair of every pair, over up to workers goroutines.
func (r *ROUGE) scoreBatch(predictions []string, targets [][]string, workers int) ([][]ROUGEScore, error) {
	return eachSegment(predictions, targets, workers, "pair", r.sc, func() *rougeScorer { return newROUGEScorer(r.opts) }, (*rougeScorer).scoreMulti)
}

// Stats returns a copy of the accumulated statistics.
func (r *ROUGE) Stats() ROUGEStats { return r.stats.clone() }

// Merge adds the statistics of another shard scored with the same types.
func (r *ROUGE) Merge(s ROUGEStats) error {
	if strings.Join(s.Types, ",") != strings.Join(r.opts.Types, ",") {
		return fmt.Errorf("ROUGE statistics are for types %v, want %v", s.Types, r.opts.Types)
	}
	if len(s.Sums) != len(r.opts.Types) {
		return fmt.Errorf("ROUGE statistics have %d sums for %d types", len(s.Sums), len(r.opts.Types))
	}
	if r.keepPairs && int64(len(s.Pairs)) != s.Count {
		return fmt.Errorf("ROUGE statistics hold %d of %d pair scores; bootstrap needs them all (write the shards with bootstrap on)", len(s.Pairs), s.Count)
	}
	for _, p := range s.Pairs {
		if len(p) != 3*len(r.opts.Types) {
			return fmt.Errorf("ROUGE statistics: a pair has %d values, want %d", len(p), 3*len(r.opts.Types))
		}
	}
	if err := s.check(); err != nil {
		return err
	}
	if r.stats.Count+s.Count >= maxCount {
		return errors.New("merged ROUGE statistics exceed 2^53 pairs")
	}
	r.stats.Count += s.Count
	for i := range r.stats.Sums {
		for j := 0; j < 3; j++ {
			r.stats.Sums[i][j].merge(s.Sums[i][j])
		}
	}
	if r.keepPairs {
		for _, p := range s.Pairs {
			r.stats.Pairs = append(r.stats.Pairs, append([]float64(nil), p...))
		}
	}
	return nil
}

// Count is the number of pairs added.
func (r *ROUGE) Count() int64 { return r.stats.Count }

// Mean is the mean precision, recall and F-measure per type (zero without pairs).
func (r *ROUGE) Mean() []ROUGEScore {
	out := make([]ROUGEScore, len(r.opts.Types))
	if r.stats.Count == 0 {
		return out
	}
	n := float64(r.stats.Count)
	for i := range out {
		out[i] = ROUGEScore{
			Precision: r.stats.Sums[i][0].value() / n,
			Recall:    r.stats.Sums[i][1].value() / n,
			FMeasure:  r.stats.Sums[i][2].value() / n,
		}
	}
	return out
}

// ROUGEInterval is rouge-score's AggregateScore: bootstrap percentiles.
type ROUGEInterval struct {
	Low  ROUGEScore `json:"low"`
	Mid  ROUGEScore `json:"mid"`
	High ROUGEScore `json:"high"`
}

// Bootstrap is scoring.BootstrapAggregator(confidence, samples).aggregate()
// run right after numpy.random.seed(seed): it draws the same resamples as
// NumPy's legacy generator, type after type in Types order.
func (r *ROUGE) Bootstrap(samples int, confidence float64, seed uint32) ([]ROUGEInterval, error) {
	if confidence < 0 || confidence > 1 {
		return nil, errors.New("confidence_interval must be in range [0, 1]")
	}
	if samples <= 0 {
		return nil, errors.New("n_samples must be positive")
	}
	if !r.keepPairs {
		return nil, errors.New("bootstrap needs the per-pair scores: create the accumulator with keepPairs")
	}
	n := len(r.stats.Pairs)
	if n == 0 {
		return nil, errors.New("bootstrap needs at least one scored pair")
	}
	out := make([]ROUGEInterval, len(r.opts.Types))
	means := make([][3]float64, samples)
	col := make([]float64, samples)
	delta := (1 - confidence) / 2
	qs := [3]float64{100 * delta, 100 * 0.5, 100 * (1 - delta)}
	vals := make([]float64, 3*n)
	// One goroutine draws each resample's indices (the random stream is
	// sequential: every type's resamples, type after type) while this one
	// sums the previous resample.
	draws := make(chan []int32, 2)
	spare := make(chan []int32, 3)
	for i := 0; i < 3; i++ {
		spare <- make([]int32, n)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		rng := nprand.New(seed)
		bound := nprand.NewBound(n)
		for k := 0; k < len(r.opts.Types)*samples; k++ {
			var buf []int32
			select {
			case buf = <-spare:
			case <-stop:
				return
			}
			for i := range buf {
				buf[i] = int32(rng.Draw(bound))
			}
			draws <- buf
		}
	}()
	for t := range r.opts.Types {
		// This type's scores, contiguous: the resampling loop is all reads.
		for i, p := range r.stats.Pairs {
			copy(vals[3*i:3*i+3], p[3*t:3*t+3])
		}
		for s := 0; s < samples; s++ {
			idx := <-draws
			var p, rc, f float64
			for _, j := range idx {
				i := 3 * int(j)
				p += vals[i]
				rc += vals[i+1]
				f += vals[i+2]
			}
			spare <- idx
			means[s] = [3]float64{p / float64(n), rc / float64(n), f / float64(n)}
		}
		var res [3][3]float64 // [bound][measure]
		for j := 0; j < 3; j++ {
			for s := range means {
				col[s] = means[s][j]
			}
			sort.Float64s(col)
			for b, q := range qs {
				res[b][j] = percentile(col, q)
			}
		}
		out[t] = ROUGEInterval{
			Low:  ROUGEScore{res[0][0], res[0][1], res[0][2]},
			Mid:  ROUGEScore{res[1][0], res[1][1], res[1][2]},
			High: ROUGEScore{res[2][0], res[2][1], res[2][2]},
		}
	}
	return out, nil
}

// percentile is numpy.percentile's default (linear) method on sorted data.
func percentile(sorted []float64, q float64) float64 {
	n := len(sorted)
	v := (q / 100) * float64(n-1)
	if v <= 0 {
		return sorted[0]
	}
	if v >= float64(n-1) {
		return sorted[n-1]
	}
	lo := int(v)
	g := v - float64(lo)
	a, b := sorted[lo], sorted[lo+1]
	d := b - a
	if g >= 0.5 {
		return b - d*(1-g)
	}
	return a + d*g
}

// rougeScorer holds one goroutine's scratch state: the token intern table,
// the stem cache and the n-gram and LCS buffers.
type rougeScorer struct {
	opts      ROUGEOptions
	ns        []int
	needToks  bool
	ids       map[string]int32
	stems     map[string]string
	m4a, m4b  map[[4]int32]int32
	m9a, m9b  map[[9]int32]int32
	table     []int32
	row       []int32
	cntR      map[int32]int32
	cntC      map[int32]int32
	mark      []bool
	tokBuf    []byte
	predToks  []int32
	tgtToks   []int32
	predSents [][]int32
	tgtSents  [][]int32
}

func newROUGEScorer(o ROUGEOptions) *rougeScorer {
	s := &rougeScorer{opts: o, ids: make(map[string]int32), stems: make(map[string]string),
		m4a: make(map[[4]int32]int32), m4b: make(map[[4]int32]int32),
		m9a: make(map[[9]int32]int32), m9b: make(map[[9]int32]int32),
		cntR: make(map[int32]int32), cntC: make(map[int32]int32)}
	for _, t := range o.Types {
		n, _ := rougeN(t)
		s.ns = append(s.ns, n)
		if n >= 0 {
			s.needToks = true
		}
	}
	return s
}

// tokenize is rouge_score.tokenize.tokenize: Python's lower(), runs of
// [a-z0-9] as tokens, Porter stems for tokens longer than 3 characters.
// Only two non-ASCII code points lowercase to ASCII letters in Python:
// U+0130 ("i" + U+0307) and U+212A KELVIN SIGN ("k").
func (s *rougeScorer) tokenize(dst []int32, text string) []int32 {
	s.tokBuf = s.tokBuf[:0]
	flush := func() {
		if len(s.tokBuf) == 0 {
			return
		}
		tok := s.tokBuf
		if s.opts.UseStemmer && len(tok) > 3 {
			st, ok := s.stems[string(tok)]
			if !ok {
				w := string(tok)
				st = porter.Stem(w)
				s.stems[w] = st
			}
			dst = append(dst, s.intern(st))
		} else {
			dst = append(dst, s.internBytes(tok))
		}
		s.tokBuf = s.tokBuf[:0]
	}
	for i := 0; i < len(text); {
		c := text[i]
		if c < utf8.RuneSelf {
			switch {
			case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
				s.tokBuf = append(s.tokBuf, c)
			case 'A' <= c && c <= 'Z':
				s.tokBuf = append(s.tokBuf, c+'a'-'A')
			default:
				flush()
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(text[i:])
		i += size
		switch r {
		case 0x130:
			s.tokBuf = append(s.tokBuf, 'i')
			flush()
		case 0x212a:
			s.tokBuf = append(s.tokBuf, 'k')
		default:
			flush()
		}
	}
	flush()
	return dst
}

func (s *rougeScorer) internBytes(b []byte) int32 {
	if id, ok := s.ids[string(b)]; ok {
		return id
	}
	return s.intern(string(b))
}

func (s *rougeScorer) intern(t string) int32 {
	if id, ok := s.ids[t]; ok {
		return id
	}
	id := int32(len(s.ids))
	s.ids[t] = id
	return id
}

// sentences is rougeLsum's get_sents without split_summaries: split on
// "\n", drop empty strings, tokenize each.
// sentencesOf is sentences, reusing the whole text's tokens (toks, when
// computed) for a text without newlines: one sentence, or none when empty.
func (s *rougeScorer) sentencesOf(dst [][]int32, text string, toks []int32) [][]int32 {
	if !s.needToks || strings.IndexByte(text, '\n') >= 0 {
		return s.sentences(dst, text)
	}
	dst = dst[:0]
	if text != "" {
		// Copy into dst's own buffer: aliasing toks would let a later
		// sentences() call write over the token list.
		var buf []int32
		if cap(dst) > 0 {
			buf = dst[:1][0][:0]
		}
		dst = append(dst, append(buf, toks...))
	}
	return dst
}

func (s *rougeScorer) sentences(dst [][]int32, text string) [][]int32 {
	dst = dst[:0]
	for {
		line, rest, found := strings.Cut(text, "\n")
		if line != "" {
			var buf []int32
			if len(dst) < cap(dst) {
				buf = dst[:len(dst)+1][len(dst)][:0]
			}
			dst = append(dst, s.tokenize(buf, line))
		}
		if !found {
			return dst
		}
		text = rest
	}
}

func (s *rougeScorer) scoreMulti(prediction string, targets []string) ([]ROUGEScore, error) {
	if len(targets) == 0 {
		return nil, errors.New("no target (reference) for this pair")
	}
	var best []ROUGEScore
	for k, t := range targets {
		sc := s.score(t, prediction)
		if k == 0 {
			best = sc
			continue
		}
		for i := range sc {
			if sc[i].FMeasure > best[i].FMeasure {
				best[i] = sc[i]
			}
		}
	}
	return best, nil
}

// score is RougeScorer.score(target, prediction).
func (s *rougeScorer) score(target, prediction string) []ROUGEScore {
	out := make([]ROUGEScore, len(s.ns))
	if s.needToks {
		s.tgtToks = s.tokenize(s.tgtToks[:0], target)
		s.predToks = s.tokenize(s.predToks[:0], prediction)
	}
	for i, n := range s.ns {
		switch {
		case n > 0:
			out[i] = s.scoreNgrams(n)
		case n == 0:
			out[i] = s.scoreLCS(s.tgtToks, s.predToks)
		default:
			s.tgtSents = s.sentencesOf(s.tgtSents, target, s.tgtToks)
			s.predSents = s.sentencesOf(s.predSents, prediction, s.predToks)
			out[i] = s.summaryLCS(s.tgtSents, s.predSents)
		}
	}
	return out
}

func (s *rougeScorer) scoreNgrams(n int) ROUGEScore {
	if n <= 4 {
		return scoreNgramMaps(s.tgtToks, s.predToks, n, s.m4a, s.m4b, func(ids []int32) [4]int32 {
			var k [4]int32
			copy(k[:], ids)
			return k
		})
	}
	return scoreNgramMaps(s.tgtToks, s.predToks, n, s.m9a, s.m9b, func(ids []int32) [9]int32 {
		var k [9]int32
		copy(k[:], ids)
		return k
	})
}

// scoreNgramMaps is _score_ngrams over _create_ngrams of both sides.
func scoreNgramMaps[K comparable](tgt, pred []int32, n int, tm, pm map[K]int32, key func([]int32) K) ROUGEScore {
	clear(tm)
	clear(pm)
	tc, pc := 0, 0
	for i := 0; i+n <= len(tgt); i++ {
		tm[key(tgt[i:i+n])]++
		tc++
	}
	for i := 0; i+n <= len(pred); i++ {
		pm[key(pred[i:i+n])]++
		pc++
	}
	inter := 0
	for k, c := range tm {
		inter += int(min(c, pm[k]))
	}
	return newROUGEScore(float64(inter)/float64(max(pc, 1)), float64(inter)/float64(max(tc, 1)))
}

// scoreLCS is _score_lcs: the LCS length with two DP rows.
func (s *rougeScorer) scoreLCS(tgt, pred []int32) ROUGEScore {
	if len(tgt) == 0 || len(pred) == 0 {
		return ROUGEScore{}
	}
	cols := len(pred) + 1
	if cap(s.row) < 2*cols {
		s.row = make([]int32, 2*cols)
	}
	prev, cur := s.row[:cols], s.row[cols:2*cols]
	clear(prev)
	for _, t := range tgt {
		cur[0] = 0
		for j, p := range pred {
			if t == p {
				cur[j+1] = prev[j] + 1
			} else {
				cur[j+1] = max(prev[j+1], cur[j])
			}
		}
		prev, cur = cur, prev
	}
	l := float64(prev[cols-1])
	return newROUGEScore(l/float64(len(pred)), l/float64(len(tgt)))
}

// lcsInd is lcs_ind: the full DP table and _backtrack_norec's path; it marks
// the indices of ref on that LCS in s.mark.
func (s *rougeScorer) lcsInd(ref, can []int32) {
	rows, cols := len(ref)+1, len(can)+1
	if cap(s.table) < rows*cols {
		s.table = make([]int32, rows*cols)
	}
	t := s.table[:rows*cols]
	clear(t[:cols])
	for i := 1; i < rows; i++ {
		t[i*cols] = 0
		for j := 1; j < cols; j++ {
			if ref[i-1] == can[j-1] {
				t[i*cols+j] = t[(i-1)*cols+j-1] + 1
			} else {
				t[i*cols+j] = max(t[(i-1)*cols+j], t[i*cols+j-1])
			}
		}
	}
	i, j := len(ref), len(can)
	for i > 0 && j > 0 {
		switch {
		case ref[i-1] == can[j-1]:
			s.mark[i-1] = true
			i--
			j--
		case t[i*cols+j-1] > t[(i-1)*cols+j]:
			j--
		default:
			i--
		}
	}
}

// summaryLCS is _summary_level_lcs: union LCS per reference sentence, with
// the token counters that stop double counting.
func (s *rougeScorer) summaryLCS(refSents, canSents [][]int32) ROUGEScore {
	if len(refSents) == 0 || len(canSents) == 0 {
		return ROUGEScore{}
	}
	m, n := 0, 0
	for _, r := range refSents {
		m += len(r)
	}
	for _, c := range canSents {
		n += len(c)
	}
	if m == 0 || n == 0 {
		return ROUGEScore{}
	}
	clear(s.cntR)
	clear(s.cntC)
	for _, r := range refSents {
		for _, t := range r {
			s.cntR[t]++
		}
	}
	for _, c := range canSents {
		for _, t := range c {
			s.cntC[t]++
		}
	}
	hits := 0
	for _, r := range refSents {
		if cap(s.mark) < len(r) {
			s.mark = make([]bool, len(r))
		}
		s.mark = s.mark[:len(r)]
		clear(s.mark)
		for _, c := range canSents {
			s.lcsInd(r, c)
		}
		for i, on := range s.mark {
			if !on {
				continue
			}
			t := r[i]
			if s.cntC[t] > 0 && s.cntR[t] > 0 {
				hits++
				s.cntC[t]--
				s.cntR[t]--
			}
		}
	}
	return newROUGEScore(float64(hits)/float64(n), float64(hits)/float64(m))
}
