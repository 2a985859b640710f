package metrics

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Scorer is what BLEU, CHRF and ROUGE share, so that one scoring job serves
// all three: add segments or score each on its own, keep what a bootstrap
// estimate needs, score the corpus, and write and merge the sufficient
// statistics of shards.
type Scorer interface {
	// Metric is the metric's name in statistics files and on the command
	// line: MetricBLEU, MetricCHRF or MetricROUGE.
	Metric() string
	// KeepSegmentStats keeps every segment's statistics (every pair's
	// scores for ROUGE), which a bootstrap estimate needs; call it before
	// adding segments.
	KeepSegmentStats()
	// AddSegments adds the statistics of hyps[i] against refs[i] on up to
	// workers goroutines (0: one per CPU), as adding them in turn would.
	AddSegments(hyps []string, refs [][]string, workers int) error
	// SegmentScores scores every segment on its own, without adding it:
	// sentence BLEU and chrF, rouge-score's per-pair scores.
	SegmentScores(hyps []string, refs [][]string, workers int) ([]Score, error)
	// CorpusScore scores the statistics added and merged so far, with a
	// bootstrap estimate when b.Samples > 0.
	CorpusScore(b BootstrapOptions) (Score, error)
	// StatsFile returns the options and statistics as a statistics file.
	StatsFile() StatsFile
	// MergeStatsFile adds the statistics of a file scored with the same
	// metric and options (another shard).
	MergeStatsFile(f StatsFile) error
}

var (
	_ Scorer = (*BLEU)(nil)
	_ Scorer = (*CHRF)(nil)
	_ Scorer = (*ROUGE)(nil)
)

// Score is a Scorer's result for one segment or a corpus: a BLEUScore, a
// CHRFScore or a ROUGEResult. String is its text form (sacrebleu's line for
// BLEU and chrF).
type Score interface {
	String() string
}

// BootstrapOptions ask CorpusScore for a bootstrap estimate.
type BootstrapOptions struct {
	// Samples is the number of resamples; 0 asks for no estimate.
	Samples int
	// Seed is SACREBLEU_SEED for BLEU and chrF, and numpy.random.seed's
	// argument (32 bits) for ROUGE.
	Seed uint64
	// Confidence is the coverage of ROUGE's interval; BLEU and chrF use
	// sacrebleu's fixed 95%.
	Confidence float64
}

// statsScorer is a Scorer with what merging statistics files needs.
type statsScorer interface {
	Scorer
	// options are the scorer's options, for messages.
	options() any
	// sameOptions reports whether f's options, of the scorer's metric, are
	// the scorer's.
	sameOptions(f StatsFile) bool
	// mergeStats merges f's statistics, of the scorer's metric.
	mergeStats(f StatsFile) error
}

// fits reports whether f holds statistics that merge into s.
func fits(s statsScorer, f StatsFile) bool {
	return f.Metric == s.Metric() && f.wellFormed() && s.sameOptions(f)
}

// mergeStatsFile is every Scorer's MergeStatsFile.
func mergeStatsFile(s statsScorer, f StatsFile) error {
	if !fits(s, f) {
		return fmt.Errorf("%s statistics with options %s do not merge into %s with options %s",
			f.Metric, jsonText(f.options()), s.Metric(), jsonText(s.options()))
	}
	return s.mergeStats(f)
}

// sentenceScores is SegmentScores of the metrics whose statistics of one
// segment score it on its own (BLEU, chrF).
func sentenceScores[S interface {
	segment(string, []string) (St, error)
}, St any](hyps []string, refs [][]string, workers int, own S, fresh func() S, score func(St) Score) ([]Score, error) {
	if len(hyps) != len(refs) {
		return nil, fmt.Errorf("%d hypotheses but %d reference lists", len(hyps), len(refs))
	}
	return eachSegment(hyps, refs, workers, "segment", own, fresh, func(s S, hyp string, refs []string) (Score, error) {
		st, err := s.segment(hyp, refs)
		if err != nil {
			return nil, err
		}
		return score(st), nil
	})
}

// sacreCorpusScore is CorpusScore of the metrics with sacrebleu's bootstrap
// (BLEU, chrF): the score, with the estimate and its signature when asked.
func sacreCorpusScore[T interface {
	Score
	withBootstrap(BootstrapCI) Score
}](s T, o BootstrapOptions, bootstrap func(samples int, seed uint64) (BootstrapCI, error)) (Score, error) {
	if o.Samples == 0 {
		return s, nil
	}
	ci, err := bootstrap(o.Samples, o.Seed)
	if err != nil {
		return nil, err
	}
	return s.withBootstrap(ci), nil
}

// eachSegment runs score on every pair (hyps[i], refs[i]) over
// parallelChunks and returns the results in order. The chunk on the calling
// goroutine uses own, the scorer's scratch state; the others fresh ones.
// Errors name the item (what) by its 1-based number.
func eachSegment[S, T any](hyps []string, refs [][]string, workers int, what string, own S, fresh func() S, score func(S, string, []string) (T, error)) ([]T, error) {
	out := make([]T, len(hyps))
	_, err := parallelChunks(len(hyps), workers, func(lo, hi int) (struct{}, error) {
		s := own
		if lo != 0 {
			s = fresh()
		}
		for i := lo; i < hi; i++ {
			var err error
			if out[i], err = score(s, hyps[i], refs[i]); err != nil {
				return struct{}{}, fmt.Errorf("%s %d: %w", what, i+1, err)
			}
		}
		return struct{}{}, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Metric is MetricBLEU.
func (b *BLEU) Metric() string { return MetricBLEU }

// AddSegments is AddBatch.
func (b *BLEU) AddSegments(hyps []string, refs [][]string, workers int) error {
	return b.AddBatch(hyps, refs, workers)
}

// SegmentScores is SentenceScore of every segment, over up to workers
// goroutines.
func (b *BLEU) SegmentScores(hyps []string, refs [][]string, workers int) ([]Score, error) {
	return sentenceScores(hyps, refs, workers, b.seg, func() *bleuSegmenter { return newBLEUSegmenter(b.opts) },
		func(st BLEUStats) Score { return b.opts.score(st) })
}

// CorpusScore is Score, with Bootstrap's estimate and signature when asked.
func (b *BLEU) CorpusScore(o BootstrapOptions) (Score, error) {
	return sacreCorpusScore(b.Score(), o, b.Bootstrap)
}

func (s BLEUScore) withBootstrap(ci BootstrapCI) Score {
	s.Signature, s.BootstrapCI = ci.Signature, &ci
	return s
}

// MergeStatsFile merges the BLEU statistics of a file with the same options.
func (b *BLEU) MergeStatsFile(f StatsFile) error { return mergeStatsFile(b, f) }

func (b *BLEU) options() any                 { return b.opts }
func (b *BLEU) mergeStats(f StatsFile) error { return b.Merge(*f.BLEU) }

func (b *BLEU) sameOptions(f StatsFile) bool {
	o, err := f.BLEUOptions.normalized()
	return err == nil && o.equal(b.opts)
}

// Metric is MetricCHRF.
func (c *CHRF) Metric() string { return MetricCHRF }

// AddSegments is AddBatch.
func (c *CHRF) AddSegments(hyps []string, refs [][]string, workers int) error {
	return c.AddBatch(hyps, refs, workers)
}

// SegmentScores is SentenceScore of every segment, over up to workers
// goroutines.
func (c *CHRF) SegmentScores(hyps []string, refs [][]string, workers int) ([]Score, error) {
	return sentenceScores(hyps, refs, workers, c.seg, func() *chrfSegmenter { return newCHRFSegmenter(c.opts) },
		func(st CHRFStats) Score { return c.score(st) })
}

// CorpusScore is Score, with Bootstrap's estimate and signature when asked.
func (c *CHRF) CorpusScore(o BootstrapOptions) (Score, error) {
	return sacreCorpusScore(c.Score(), o, c.Bootstrap)
}

func (s CHRFScore) withBootstrap(ci BootstrapCI) Score {
	s.Signature, s.BootstrapCI = ci.Signature, &ci
	return s
}

// MergeStatsFile merges the chrF statistics of a file with the same options.
func (c *CHRF) MergeStatsFile(f StatsFile) error { return mergeStatsFile(c, f) }

func (c *CHRF) options() any                 { return c.opts }
func (c *CHRF) mergeStats(f StatsFile) error { return c.Merge(*f.CHRF) }

func (c *CHRF) sameOptions(f StatsFile) bool {
	o, err := f.CHRFOptions.normalized()
	return err == nil && o == c.opts
}

// ROUGEResult is ROUGE's Score: per type, in Types order, the scores of one
// pair or, with Corpus, their mean over Pairs pairs and, after a bootstrap,
// the Intervals.
type ROUGEResult struct {
	Types     []string
	Scores    []ROUGEScore
	Intervals []ROUGEInterval
	Corpus    bool
	Pairs     int64
}

// String is one line for a pair; for a corpus a heading and a line per
// type, F-measure intervals last.
func (r ROUGEResult) String() string {
	var b strings.Builder
	if !r.Corpus {
		for i, t := range r.Types {
			if i > 0 {
				b.WriteString("  ")
			}
			fmt.Fprintf(&b, "%s P=%.6f R=%.6f F=%.6f", t, r.Scores[i].Precision, r.Scores[i].Recall, r.Scores[i].FMeasure)
		}
		return b.String()
	}
	fmt.Fprintf(&b, "ROUGE (rouge-score %s), mean of %d pairs", RougeScoreVersion, r.Pairs)
	for i, t := range r.Types {
		s := r.Scores[i]
		fmt.Fprintf(&b, "\n%-10s P %.6f  R %.6f  F %.6f", t, s.Precision, s.Recall, s.FMeasure)
		if r.Intervals != nil {
			iv := r.Intervals[i]
			fmt.Fprintf(&b, "   F low %.6f mid %.6f high %.6f", iv.Low.FMeasure, iv.Mid.FMeasure, iv.High.FMeasure)
		}
	}
	return b.String()
}

// Metric is MetricROUGE.
func (r *ROUGE) Metric() string { return MetricROUGE }

// KeepSegmentStats keeps every pair's scores, as NewROUGE's keepPairs does;
// call it before adding pairs.
func (r *ROUGE) KeepSegmentStats() { r.keepPairs = true }

// AddSegments is AddBatch without the pairs' scores.
func (r *ROUGE) AddSegments(predictions []string, targets [][]string, workers int) error {
	_, err := r.AddBatch(predictions, targets, workers)
	return err
}

// SegmentScores is ScorePair of every pair, over up to workers goroutines.
func (r *ROUGE) SegmentScores(predictions []string, targets [][]string, workers int) ([]Score, error) {
	if len(predictions) != len(targets) {
		return nil, fmt.Errorf("%d predictions but %d target lists", len(predictions), len(targets))
	}
	pairs, err := r.scoreBatch(predictions, targets, workers)
	if err != nil {
		return nil, err
	}
	out := make([]Score, len(pairs))
	for i, s := range pairs {
		out[i] = ROUGEResult{Types: r.opts.Types, Scores: s}
	}
	return out, nil
}

// CorpusScore is Mean, with Bootstrap's intervals when asked.
func (r *ROUGE) CorpusScore(o BootstrapOptions) (Score, error) {
	res := ROUGEResult{Types: r.opts.Types, Scores: r.Mean(), Corpus: true, Pairs: r.Count()}
	if o.Samples == 0 {
		return res, nil
	}
	if o.Seed > math.MaxUint32 {
		return nil, fmt.Errorf("seed %d does not fit numpy.random.seed's 32 bits", o.Seed)
	}
	iv, err := r.Bootstrap(o.Samples, o.Confidence, uint32(o.Seed))
	if err != nil {
		return nil, err
	}
	res.Intervals = iv
	return res, nil
}

// MergeStatsFile merges the ROUGE statistics of a file with the same
// options.
func (r *ROUGE) MergeStatsFile(f StatsFile) error { return mergeStatsFile(r, f) }

func (r *ROUGE) options() any                 { return r.opts }
func (r *ROUGE) mergeStats(f StatsFile) error { return r.Merge(*f.ROUGE) }

func (r *ROUGE) sameOptions(f StatsFile) bool {
	o, err := f.ROUGEOptions.normalized()
	return err == nil && slices.Equal(o.Types, r.opts.Types) && o.UseStemmer == r.opts.UseStemmer
}
