package score

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/metrics"
)

// tokenizedWarnAt is how many hypotheses ending in " ." make sacrebleu warn
// that the hypotheses look tokenized.
const tokenizedWarnAt = 100

// Run scores opts.Hyp against opts.Refs: every line on its own with
// PerLine, else the corpus, whose statistics it then writes to
// opts.StatsOut when set.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	hyps, refs, err := readInputs(opts.Hyp, opts.Refs, opts.JSONL)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sc, err := opts.scorer()
	if err != nil {
		return nil, fault.Mark(fault.Settings, err)
	}
	if opts.PerLine {
		seg, err := sc.SegmentScores(hyps, refs, opts.Workers)
		if err != nil {
			return nil, fault.Mark(fault.Input, err)
		}
		return &Report{Metric: opts.Metric, Segments: seg}, nil
	}
	if opts.Bootstrap.Samples > 0 {
		sc.KeepSegmentStats()
	}
	if err := sc.AddSegments(hyps, refs, opts.Workers); err != nil {
		return nil, fault.Mark(fault.Input, err)
	}
	if b, ok := sc.(*metrics.BLEU); ok && opts.Warn != nil {
		if n := b.Stats().TokenizedPeriods; n >= tokenizedWarnAt {
			opts.Warn(fmt.Sprintf(`%d hypotheses end in a tokenized period (" ."); detokenize them, or pass --force`, n))
		}
	}
	if opts.StatsOut != "" {
		if err := writeStats(opts.StatsOut, sc.StatsFile()); err != nil {
			return nil, err
		}
	}
	return corpusReport(ctx, sc, opts.Bootstrap)
}

// Merge merges the statistics files of shards scored alike and scores them
// as one corpus, exactly as a single pass would; the merged statistics go
// to opts.StatsOut when set.
func Merge(ctx context.Context, opts MergeOptions) (*Report, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	var files []metrics.StatsFile
	for _, p := range opts.Files {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fault.Mark(fault.Input, err)
		}
		f, err := metrics.ReadStatsFile(bytes.NewReader(b))
		if err != nil {
			return nil, fault.Inputf("%s: %w", p, err)
		}
		files = append(files, f)
	}
	merged, err := metrics.MergeStatsFiles(files)
	if err != nil {
		return nil, fault.Mark(fault.Input, err)
	}
	// The metric, which the bootstrap ranges depend on, is known only now.
	if err := opts.Bootstrap.check(merged.Metric, false); err != nil {
		return nil, err
	}
	if opts.StatsOut != "" {
		if err := writeStats(opts.StatsOut, merged); err != nil {
			return nil, err
		}
	}
	sc, err := merged.Scorer()
	if err != nil {
		return nil, fault.Mark(fault.Input, err)
	}
	if r := merged.ROUGE; r != nil && opts.Bootstrap.Samples > 0 && int64(len(r.Pairs)) != r.Count {
		return nil, fault.Mark(fault.Input, errors.New("--bootstrap needs every pair's scores: write all shards with --bootstrap"))
	}
	return corpusReport(ctx, sc, opts.Bootstrap)
}

func writeStats(path string, f metrics.StatsFile) error {
	var buf bytes.Buffer
	if err := metrics.WriteStatsFile(&buf, f); err != nil {
		return err
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("writing statistics: %w", err)
	}
	return nil
}

// corpusReport scores the corpus sc holds.
func corpusReport(ctx context.Context, sc metrics.Scorer, b Bootstrap) (*Report, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s, err := sc.CorpusScore(b.options())
	if err != nil {
		return nil, fault.Mark(fault.Input, err)
	}
	return &Report{Metric: sc.Metric(), Corpus: s}, nil
}

// readInputs reads the hypotheses and, per hypothesis, the references
// present.
func readInputs(hypPath string, refPaths []string, jsonl bool) ([]string, [][]string, error) {
	hyp, err := readSegments(hypPath, jsonl)
	if err != nil {
		return nil, nil, err
	}
	var refs []metrics.Segments
	for _, p := range refPaths {
		r, err := readSegments(p, jsonl)
		if err != nil {
			return nil, nil, err
		}
		refs = append(refs, r)
	}
	paired, err := metrics.PairSegments(hyp, refs)
	if err != nil {
		return nil, nil, fault.Mark(fault.Input, err)
	}
	return hyp.Lines, paired, nil
}

func readSegments(path string, jsonl bool) (metrics.Segments, error) {
	f, err := os.Open(path)
	if err != nil {
		return metrics.Segments{}, fault.Mark(fault.Input, err)
	}
	defer f.Close()
	s, err := metrics.ReadSegments(f, path, jsonl)
	return s, fault.Mark(fault.Input, err)
}
