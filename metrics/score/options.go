package score

import (
	"math"
	"strings"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/metrics"
)

// Options describe a scoring job. Every field is an ortrain score flag.
type Options struct {
	// Metric is metrics.MetricBLEU, MetricCHRF or MetricROUGE.
	Metric string
	// Hyp holds the hypotheses, one segment per line; Refs one file per
	// reference position, aligned with Hyp. With JSONL every line is a JSON
	// string, or null for "no reference here".
	Hyp   string
	Refs  []string
	JSONL bool
	// PerLine scores every line on its own (--sentence, --per-line).
	PerLine bool
	// Workers is the number of scoring goroutines (0: one per CPU).
	Workers int
	// StatsOut, when set, receives the corpus's sufficient statistics, a
	// statistics file for Merge.
	StatsOut string

	// BLEU: sacrebleu's options. EffectiveOrder nil means on with PerLine
	// (sentence_bleu) and off otherwise; SmoothValue nil the method's
	// default. Lowercase applies to chrF too.
	Tokenize, SmoothMethod string
	SmoothValue            *float64
	Lowercase              bool
	EffectiveOrder         *bool
	MaxNgramOrder          int
	Force                  bool

	// chrF: sacrebleu's options.
	CharOrder, WordOrder, Beta int
	EpsSmoothing, Whitespace   bool

	// ROUGE: rouge-score's options (nil ROUGETypes: the default types).
	ROUGETypes                 []string
	UseStemmer, SplitSummaries bool

	Bootstrap Bootstrap

	// Warn, when not nil, receives warnings (BLEU hypotheses that look
	// tokenized).
	Warn func(msg string)
}

// Bootstrap asks for a bootstrap estimate of the corpus score.
type Bootstrap struct {
	// Samples is the number of resamples; 0 asks for none.
	Samples int
	// Seed is SACREBLEU_SEED for BLEU and chrF, numpy.random.seed's
	// argument for ROUGE.
	Seed int
	// Confidence is the coverage of ROUGE's interval.
	Confidence float64
}

// MergeOptions describe the merge of statistics files.
type MergeOptions struct {
	// Files are statistics files written with Options.StatsOut.
	Files []string
	// StatsOut, when set, receives the merged statistics.
	StatsOut  string
	Bootstrap Bootstrap
}

// DefaultOptions are the defaults of the ortrain score flags: sacrebleu's
// and rouge-score's.
func DefaultOptions() Options {
	return Options{
		Tokenize: metrics.Tokenize13a, SmoothMethod: metrics.SmoothExp, MaxNgramOrder: 4,
		CharOrder: 6, Beta: 2, ROUGETypes: metrics.DefaultROUGETypes(),
		Bootstrap: Bootstrap{Seed: metrics.DefaultSacreBLEUSeed, Confidence: 0.95},
	}
}

// ParseROUGETypes splits the comma list of --rouge-types, dropping blanks.
func ParseROUGETypes(list string) []string {
	var types []string
	for _, t := range strings.Split(list, ",") {
		if t = strings.TrimSpace(t); t != "" {
			types = append(types, t)
		}
	}
	return types
}

// Validate checks the options without reading any file.
func (o Options) Validate() error {
	switch o.Metric {
	case metrics.MetricBLEU, metrics.MetricCHRF, metrics.MetricROUGE:
	case "":
		return fault.Settingsf("--metric is required (bleu, chrf or rouge)")
	default:
		return fault.Settingsf("unknown --metric %q (want bleu, chrf or rouge)", o.Metric)
	}
	if o.Hyp == "" || len(o.Refs) == 0 {
		return fault.Settingsf("--hyp and at least one --ref are required")
	}
	if o.PerLine && o.StatsOut != "" {
		return fault.Settingsf("--stats-out writes corpus statistics; drop --sentence/--per-line")
	}
	if o.Workers < 0 {
		return fault.Settingsf("--workers %d: must be 0 (one per CPU) or positive", o.Workers)
	}
	if _, err := o.scorer(); err != nil {
		return fault.Mark(fault.Settings, err)
	}
	// The metrics take 0 for their defaults; a flag set to 0 is a mistake.
	switch {
	case o.Metric == metrics.MetricBLEU && o.MaxNgramOrder <= 0:
		return fault.Settingsf("--max-ngram-order must be at least 1")
	case o.Metric == metrics.MetricCHRF && (o.CharOrder <= 0 || o.Beta <= 0):
		return fault.Settingsf("--char-order and --beta must be at least 1")
	}
	return o.Bootstrap.check(o.Metric, o.PerLine)
}

// scorer is an empty scorer of the metric, with the options.
func (o Options) scorer() (metrics.Scorer, error) {
	var s metrics.Scorer
	var err error
	switch o.Metric {
	case metrics.MetricBLEU:
		eff := o.PerLine
		if o.EffectiveOrder != nil {
			eff = *o.EffectiveOrder
		}
		s, err = metrics.NewBLEU(metrics.BLEUOptions{Tokenize: o.Tokenize, SmoothMethod: o.SmoothMethod, SmoothValue: o.SmoothValue,
			Lowercase: o.Lowercase, EffectiveOrder: eff, MaxNgramOrder: o.MaxNgramOrder, Force: o.Force})
	case metrics.MetricCHRF:
		s, err = metrics.NewCHRF(metrics.CHRFOptions{CharOrder: o.CharOrder, WordOrder: o.WordOrder, Beta: o.Beta,
			Lowercase: o.Lowercase, Whitespace: o.Whitespace, EpsSmoothing: o.EpsSmoothing})
	default:
		s, err = metrics.NewROUGE(metrics.ROUGEOptions{Types: o.ROUGETypes, UseStemmer: o.UseStemmer, SplitSummaries: o.SplitSummaries}, false)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Validate checks the options without reading any file.
func (o MergeOptions) Validate() error {
	if len(o.Files) == 0 {
		return fault.Settingsf("--merge needs statistics files as arguments (written with --stats-out)")
	}
	return nil
}

// check checks the bootstrap options for metric: the peers' ranges, and a
// corpus to resample.
func (b Bootstrap) check(metric string, perLine bool) error {
	if metric == metrics.MetricROUGE {
		switch {
		case b.Samples < 0:
			return fault.Settingsf("--bootstrap must not be negative")
		case b.Seed < 0 || int64(b.Seed) > math.MaxUint32:
			return fault.Settingsf("--seed must be between 0 and 2**32 - 1, as numpy.random.seed requires")
		case b.Samples > 0 && !perLine && (b.Confidence < 0 || b.Confidence > 1):
			// rouge-score's message; per line there is no interval to check
			return fault.Settingsf("confidence_interval must be in range [0, 1]")
		}
		return nil
	}
	switch {
	case b.Samples < 0 || b.Samples == 1:
		return fault.Settingsf("--bootstrap must be 0 (off) or at least 2")
	case b.Samples > 0 && perLine:
		return fault.Settingsf("--bootstrap needs corpus scoring; drop --sentence/--per-line")
	case b.Seed < 0:
		return fault.Settingsf("--seed must not be negative")
	}
	return nil
}

func (b Bootstrap) options() metrics.BootstrapOptions {
	return metrics.BootstrapOptions{Samples: b.Samples, Seed: uint64(b.Seed), Confidence: b.Confidence}
}
