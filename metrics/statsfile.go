package metrics

import (
	"encoding/json"
	"fmt"
	"io"
)

// StatsFormat names the statistics file format. A statistics file is one
// JSON object:
//
//	{"format": "ortrain-score-stats/1", "metric": "bleu" | "chrf" | "rouge",
//	 "bleu_options": {...}, "bleu": {...}}   // or chrf_options/chrf, rouge_options/rouge
//
// holding the options and the sufficient statistics (BLEUStats, CHRFStats,
// ROUGEStats) of one shard. Files with the same metric and options merge by
// MergeStatsFiles into exactly the statistics of a single pass over all
// shards, whatever their order (ROUGE's per-pair list, kept for bootstrap,
// follows the order given).
const StatsFormat = "ortrain-score-stats/1"

// StatsFile is one shard's statistics, as written to and read from disk.
type StatsFile struct {
	Format       string        `json:"format"`
	Metric       string        `json:"metric"`
	BLEUOptions  *BLEUOptions  `json:"bleu_options,omitempty"`
	BLEU         *BLEUStats    `json:"bleu,omitempty"`
	CHRFOptions  *CHRFOptions  `json:"chrf_options,omitempty"`
	CHRF         *CHRFStats    `json:"chrf,omitempty"`
	ROUGEOptions *ROUGEOptions `json:"rouge_options,omitempty"`
	ROUGE        *ROUGEStats   `json:"rouge,omitempty"`
}

// Metric names used in statistics files and by the CLI.
const (
	MetricBLEU  = "bleu"
	MetricCHRF  = "chrf"
	MetricROUGE = "rouge"
)

// StatsFile returns the accumulated statistics as a statistics file.
func (b *BLEU) StatsFile() StatsFile {
	o, s := b.opts, b.Stats()
	return StatsFile{Format: StatsFormat, Metric: MetricBLEU, BLEUOptions: &o, BLEU: &s}
}

// StatsFile returns the accumulated statistics as a statistics file.
func (c *CHRF) StatsFile() StatsFile {
	o, s := c.opts, c.Stats()
	return StatsFile{Format: StatsFormat, Metric: MetricCHRF, CHRFOptions: &o, CHRF: &s}
}

// StatsFile returns the accumulated statistics as a statistics file.
func (r *ROUGE) StatsFile() StatsFile {
	o, s := r.opts, r.Stats()
	return StatsFile{Format: StatsFormat, Metric: MetricROUGE, ROUGEOptions: &o, ROUGE: &s}
}

// WriteStatsFile writes f as indented JSON.
func WriteStatsFile(w io.Writer, f StatsFile) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(f)
}

// ReadStatsFile reads and checks one statistics file.
func ReadStatsFile(r io.Reader) (StatsFile, error) {
	var f StatsFile
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return f, fmt.Errorf("not an ortrain statistics file: %w", err)
	}
	if f.Format != StatsFormat {
		return f, fmt.Errorf("format is %q, want %q", f.Format, StatsFormat)
	}
	if !f.wellFormed() {
		return f, fmt.Errorf("metric %q without its options and statistics", f.Metric)
	}
	return f, nil
}

// wellFormed reports whether f holds the options and statistics of its
// metric.
func (f StatsFile) wellFormed() bool {
	switch f.Metric {
	case MetricBLEU:
		return f.BLEUOptions != nil && f.BLEU != nil
	case MetricCHRF:
		return f.CHRFOptions != nil && f.CHRF != nil
	case MetricROUGE:
		return f.ROUGEOptions != nil && f.ROUGE != nil
	}
	return false
}

// options are the options of f's metric, for messages.
func (f StatsFile) options() any {
	switch f.Metric {
	case MetricBLEU:
		return f.BLEUOptions
	case MetricCHRF:
		return f.CHRFOptions
	case MetricROUGE:
		return f.ROUGEOptions
	}
	return nil
}

// hasSegmentStats reports whether f holds every segment's own statistics
// (every pair's scores for ROUGE), which a bootstrap estimate needs.
func (f StatsFile) hasSegmentStats() bool {
	switch {
	case f.Metric == MetricBLEU && f.BLEU != nil:
		return int64(len(f.BLEU.PerSegment)) == f.BLEU.Segments
	case f.Metric == MetricCHRF && f.CHRF != nil:
		return int64(len(f.CHRF.PerSegment)) == f.CHRF.Segments
	case f.Metric == MetricROUGE && f.ROUGE != nil:
		return int64(len(f.ROUGE.Pairs)) == f.ROUGE.Count
	}
	return false
}

// withoutSegmentStats is f without per-segment statistics (f's own are
// left alone).
func (f StatsFile) withoutSegmentStats() StatsFile {
	if f.BLEU != nil {
		s := *f.BLEU
		s.PerSegment, f.BLEU = nil, &s
	}
	if f.CHRF != nil {
		s := *f.CHRF
		s.PerSegment, f.CHRF = nil, &s
	}
	if f.ROUGE != nil {
		s := *f.ROUGE
		s.Pairs, f.ROUGE = nil, &s
	}
	return f
}

// newScorer is an empty scorer of f's metric with f's options.
func (f StatsFile) newScorer() (statsScorer, error) {
	if !f.wellFormed() {
		return nil, fmt.Errorf("metric %q without its options and statistics", f.Metric)
	}
	switch f.Metric {
	case MetricBLEU:
		return asStatsScorer(NewBLEU(*f.BLEUOptions))
	case MetricCHRF:
		return asStatsScorer(NewCHRF(*f.CHRFOptions))
	}
	return asStatsScorer(NewROUGE(*f.ROUGEOptions, false))
}

// asStatsScorer keeps a failed constructor's nil pointer out of the
// interface.
func asStatsScorer[T statsScorer](s T, err error) (statsScorer, error) {
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Scorer rebuilds a scorer holding the file's statistics. It keeps the
// per-segment statistics (for bootstrap) when the file has them all.
func (f StatsFile) Scorer() (Scorer, error) {
	s, err := f.newScorer()
	if err != nil {
		return nil, err
	}
	if f.hasSegmentStats() {
		s.KeepSegmentStats()
	}
	if err := s.MergeStatsFile(f); err != nil {
		return nil, err
	}
	return s, nil
}

// BLEUAccumulator rebuilds a BLEU accumulator holding the file's statistics.
func (f StatsFile) BLEUAccumulator() (*BLEU, error) { return accumulator[*BLEU](f, MetricBLEU, "BLEU") }

// CHRFAccumulator rebuilds a chrF accumulator holding the file's statistics.
func (f StatsFile) CHRFAccumulator() (*CHRF, error) { return accumulator[*CHRF](f, MetricCHRF, "chrF") }

// ROUGEAccumulator rebuilds a ROUGE accumulator holding the file's
// statistics; it keeps per-pair scores when the file has all of them.
func (f StatsFile) ROUGEAccumulator() (*ROUGE, error) {
	return accumulator[*ROUGE](f, MetricROUGE, "ROUGE")
}

func accumulator[T Scorer](f StatsFile, metric, name string) (T, error) {
	var none T
	if f.Metric != metric || !f.wellFormed() {
		return none, fmt.Errorf("statistics are for %q, not %s", f.Metric, name)
	}
	s, err := f.Scorer()
	if err != nil {
		return none, err
	}
	return s.(T), nil
}

// MergeStatsFiles adds up shards of one metric computed with the same
// options. Per-segment (BLEU, chrF) and per-pair (ROUGE) statistics, kept
// for bootstrap, survive only when every shard has them.
func MergeStatsFiles(files []StatsFile) (StatsFile, error) {
	if len(files) == 0 {
		return StatsFile{}, fmt.Errorf("no statistics to merge")
	}
	first := files[0]
	for i, f := range files[1:] {
		if f.Metric != first.Metric {
			return StatsFile{}, fmt.Errorf("statistics %d are for %s, statistics 1 for %s", i+2, f.Metric, first.Metric)
		}
	}
	acc, err := first.newScorer()
	if err != nil {
		return StatsFile{}, fmt.Errorf("statistics 1: %w", err)
	}
	keep := true
	for _, f := range files {
		keep = keep && f.hasSegmentStats()
	}
	if keep {
		acc.KeepSegmentStats()
	}
	for i, f := range files {
		if !fits(acc, f) {
			return StatsFile{}, fmt.Errorf("statistics %d were computed with options %s, statistics 1 with %s; only shards scored alike merge",
				i+1, jsonText(f.options()), jsonText(acc.options()))
		}
		if !keep {
			f = f.withoutSegmentStats()
		}
		if err := acc.MergeStatsFile(f); err != nil {
			return StatsFile{}, fmt.Errorf("statistics %d: %w", i+1, err)
		}
	}
	return acc.StatsFile(), nil
}

// jsonText is v as JSON, for messages.
func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
