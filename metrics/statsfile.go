package metrics

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
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
	switch {
	case f.Metric == MetricBLEU && f.BLEUOptions != nil && f.BLEU != nil:
	case f.Metric == MetricCHRF && f.CHRFOptions != nil && f.CHRF != nil:
	case f.Metric == MetricROUGE && f.ROUGEOptions != nil && f.ROUGE != nil:
	default:
		return f, fmt.Errorf("metric %q without its options and statistics", f.Metric)
	}
	return f, nil
}

// BLEUAccumulator rebuilds a BLEU accumulator holding the file's statistics.
func (f StatsFile) BLEUAccumulator() (*BLEU, error) {
	if f.Metric != MetricBLEU || f.BLEUOptions == nil || f.BLEU == nil {
		return nil, fmt.Errorf("statistics are for %q, not BLEU", f.Metric)
	}
	b, err := NewBLEU(*f.BLEUOptions)
	if err != nil {
		return nil, err
	}
	if f.BLEU.Segments > 0 && int64(len(f.BLEU.PerSegment)) == f.BLEU.Segments {
		b.KeepSegmentStats()
	}
	return b, b.Merge(*f.BLEU)
}

// CHRFAccumulator rebuilds a chrF accumulator holding the file's statistics.
func (f StatsFile) CHRFAccumulator() (*CHRF, error) {
	if f.Metric != MetricCHRF || f.CHRFOptions == nil || f.CHRF == nil {
		return nil, fmt.Errorf("statistics are for %q, not chrF", f.Metric)
	}
	c, err := NewCHRF(*f.CHRFOptions)
	if err != nil {
		return nil, err
	}
	if f.CHRF.Segments > 0 && int64(len(f.CHRF.PerSegment)) == f.CHRF.Segments {
		c.KeepSegmentStats()
	}
	return c, c.Merge(*f.CHRF)
}

// ROUGEAccumulator rebuilds a ROUGE accumulator holding the file's
// statistics; it keeps per-pair scores when the file has all of them.
func (f StatsFile) ROUGEAccumulator() (*ROUGE, error) {
	if f.Metric != MetricROUGE || f.ROUGEOptions == nil || f.ROUGE == nil {
		return nil, fmt.Errorf("statistics are for %q, not ROUGE", f.Metric)
	}
	keep := int64(len(f.ROUGE.Pairs)) == f.ROUGE.Count
	r, err := NewROUGE(*f.ROUGEOptions, keep)
	if err != nil {
		return nil, err
	}
	return r, r.Merge(*f.ROUGE)
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
	mismatch := func(i int, a, b any) error {
		x, _ := json.Marshal(a)
		y, _ := json.Marshal(b)
		return fmt.Errorf("statistics %d were computed with options %s, statistics 1 with %s; only shards scored alike merge", i+1, y, x)
	}
	switch first.Metric {
	case MetricBLEU:
		acc, err := NewBLEU(*first.BLEUOptions)
		if err != nil {
			return StatsFile{}, fmt.Errorf("statistics 1: %w", err)
		}
		keep := true
		for _, f := range files {
			keep = keep && int64(len(f.BLEU.PerSegment)) == f.BLEU.Segments
		}
		if keep {
			acc.KeepSegmentStats()
		}
		for i, f := range files {
			o, err := f.BLEUOptions.normalized()
			if err != nil || !o.equal(acc.opts) {
				return StatsFile{}, mismatch(i, acc.opts, f.BLEUOptions)
			}
			st := *f.BLEU
			if !keep {
				st.PerSegment = nil
			}
			if err := acc.Merge(st); err != nil {
				return StatsFile{}, fmt.Errorf("statistics %d: %w", i+1, err)
			}
		}
		return acc.StatsFile(), nil
	case MetricCHRF:
		acc, err := NewCHRF(*first.CHRFOptions)
		if err != nil {
			return StatsFile{}, fmt.Errorf("statistics 1: %w", err)
		}
		keep := true
		for _, f := range files {
			keep = keep && int64(len(f.CHRF.PerSegment)) == f.CHRF.Segments
		}
		if keep {
			acc.KeepSegmentStats()
		}
		for i, f := range files {
			o, err := f.CHRFOptions.normalized()
			if err != nil || o != acc.opts {
				return StatsFile{}, mismatch(i, acc.opts, f.CHRFOptions)
			}
			st := *f.CHRF
			if !keep {
				st.PerSegment = nil
			}
			if err := acc.Merge(st); err != nil {
				return StatsFile{}, fmt.Errorf("statistics %d: %w", i+1, err)
			}
		}
		return acc.StatsFile(), nil
	case MetricROUGE:
		keep := true
		for _, f := range files {
			keep = keep && int64(len(f.ROUGE.Pairs)) == f.ROUGE.Count
		}
		acc, err := NewROUGE(*first.ROUGEOptions, keep)
		if err != nil {
			return StatsFile{}, fmt.Errorf("statistics 1: %w", err)
		}
		for i, f := range files {
			o, err := f.ROUGEOptions.normalized()
			if err != nil || !slices.Equal(o.Types, acc.opts.Types) || o.UseStemmer != acc.opts.UseStemmer {
				return StatsFile{}, mismatch(i, acc.opts, f.ROUGEOptions)
			}
			s := *f.ROUGE
			if !keep {
				s.Pairs = nil
			}
			if err := acc.Merge(s); err != nil {
				return StatsFile{}, fmt.Errorf("statistics %d: %w", i+1, err)
			}
		}
		return acc.StatsFile(), nil
	}
	return StatsFile{}, fmt.Errorf("unknown metric %q", first.Metric)
}
