package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/metrics"
)

const scoreDescription = `Scores hypotheses against references with BLEU and chrF exactly as
sacrebleu ` + metrics.SacreBLEUVersion + ` computes them, or ROUGE exactly as rouge-score ` + metrics.RougeScoreVersion + `.

Files hold one segment per line (UTF-8; trailing whitespace, including the
"\r" of CRLF files, is stripped as the sacrebleu command line does). With
--jsonl each line is a JSON string instead (so a summary can hold newlines
for rougeLsum), or null in a reference file for "no reference here". Several
--ref files give several references per segment; ROUGE takes the best one
per type, as rouge-score's score_multi.

Defaults follow the peers: BLEU tokenizer 13a, smoothing exp, no effective
order for corpus BLEU; --sentence scores each line and turns effective order
on, as sacrebleu's sentence_bleu, unless --effective-order=false is given.
--bootstrap N resamples as the peers do, with NumPy's random streams
reproduced: for BLEU and chrF sacrebleu's 95% interval (numpy default_rng
seeded by --seed, as SACREBLEU_SEED; float32 statistics, as sacrebleu), printed
as confidence_mean and confidence_var with bs and seed in the signature; for
ROUGE rouge-score's BootstrapAggregator low/mid/high (numpy.random.seed(--seed)). --split-summaries is refused: it needs NLTK's Punkt model.

Sharded evaluation: score each shard with --stats-out FILE, then
  ortrain score --merge [--json] SHARD.json...
prints the corpus score, exactly as one pass would (flags before the files).
A statistics file is one JSON object {"format": "` + metrics.StatsFormat + `",
"metric": "bleu"|"chrf"|"rouge", "<metric>_options": {...}, "<metric>": {...}}
with the options and sufficient statistics: BLEU sys_len, ref_len, correct
and total n-gram counts per order, min/max references per segment; chrF
hypothesis/reference/match counts per order; ROUGE the pair count, exact
partial sums of precision, recall and F per type; with --bootstrap also every
segment's statistics (every pair's scores for ROUGE). Only files with the same metric and options merge.
With --merge and --stats-out the merged statistics are written too.`

func newScoreCommand() *cli.Command {
	return &cli.Command{
		Name:        "score",
		Usage:       "BLEU, chrF or ROUGE of hypotheses against references (sacrebleu / rouge-score exact)",
		UsageText:   "ortrain score --metric bleu|chrf|rouge --hyp FILE --ref FILE [--ref FILE ...] [options]\n   ortrain score --merge [--json] [--stats-out FILE] STATS.json ...",
		Description: scoreDescription,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "metric", Usage: "bleu, chrf or rouge"},
			&cli.StringFlag{Name: "hyp", Usage: "hypotheses (predictions), one per line"},
			&cli.StringSliceFlag{Name: "ref", Usage: "references, one per line; repeat for several references"},
			&cli.BoolFlag{Name: "jsonl", Usage: "each line of --hyp/--ref is a JSON string (null: no reference)"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
			&cli.BoolFlag{Name: "sentence", Usage: "score every line on its own (BLEU, chrF; ROUGE as --per-line)"},
			&cli.BoolFlag{Name: "per-line", Usage: "print every pair's scores (ROUGE; BLEU and chrF as --sentence)"},
			&cli.IntFlag{Name: "workers", Usage: "goroutines for scoring (0: one per CPU)"},
			&cli.StringFlag{Name: "stats-out", Usage: "also write the sufficient statistics to FILE (for --merge)"},
			&cli.BoolFlag{Name: "merge", Usage: "merge the statistics files given as arguments and print their score"},
			// BLEU
			&cli.StringFlag{Name: "tokenize", Value: metrics.Tokenize13a, Usage: "BLEU tokenizer: none, 13a, intl, char, zh"},
			&cli.StringFlag{Name: "smooth-method", Value: metrics.SmoothExp, Usage: "BLEU smoothing: none, floor, add-k, exp"},
			&cli.Float64Flag{Name: "smooth-value", Usage: "BLEU smoothing value for floor and add-k", DefaultText: "0.1 for floor, 1 for add-k"},
			&cli.BoolFlag{Name: "lowercase", Usage: "lowercase before scoring (BLEU, chrF)"},
			&cli.BoolFlag{Name: "effective-order", Usage: "BLEU: average only the n-gram orders that have n-grams (--effective-order=false turns off --sentence's default)", DefaultText: "off; on with --sentence"},
			&cli.IntFlag{Name: "max-ngram-order", Value: 4, Usage: "BLEU maximum n-gram order"},
			&cli.BoolFlag{Name: "force", Usage: "BLEU: do not warn about hypotheses that look tokenized"},
			// chrF
			&cli.IntFlag{Name: "char-order", Value: 6, Usage: "chrF character n-gram order"},
			&cli.IntFlag{Name: "word-order", Value: 0, Usage: "chrF word n-gram order (2: chrF++)"},
			&cli.IntFlag{Name: "beta", Value: 2, Usage: "chrF recall weight"},
			&cli.BoolFlag{Name: "eps-smoothing", Usage: "chrF: epsilon smoothing as chrF++.py instead of effective order"},
			&cli.BoolFlag{Name: "whitespace", Usage: "chrF: keep whitespace in character n-grams"},
			// ROUGE
			&cli.StringFlag{Name: "rouge-types", Value: strings.Join(metrics.DefaultROUGETypes(), ","), Usage: "comma list of rouge1..rouge9, rougeL, rougeLsum"},
			&cli.BoolFlag{Name: "use-stemmer", Usage: "ROUGE: Porter-stem tokens longer than 3 characters"},
			&cli.BoolFlag{Name: "split-summaries", Usage: "ROUGE: split rougeLsum summaries into sentences (refused: needs NLTK Punkt)"},
			&cli.IntFlag{Name: "bootstrap", Usage: "bootstrap resamples: BLEU/chrF 95% interval as sacrebleu --confidence-n; ROUGE low/mid/high as BootstrapAggregator (0: none; both peers default to 1000)"},
			&cli.IntFlag{Name: "seed", Value: metrics.DefaultSacreBLEUSeed, Usage: "bootstrap seed: SACREBLEU_SEED for BLEU/chrF (numpy default_rng), numpy.random.seed for ROUGE"},
			&cli.Float64Flag{Name: "confidence", Value: 0.95, Usage: "ROUGE bootstrap confidence interval"},
		},
		Action: runScore,
	}
}

func runScore(c *cli.Context) error {
	if c.Bool("merge") {
		return runScoreMerge(c)
	}
	if c.NArg() > 0 {
		return fault.Settingsf("unexpected arguments %q (files go in --hyp and --ref; statistics files need --merge)", c.Args().Slice())
	}
	metric := c.String("metric")
	switch metric {
	case metrics.MetricBLEU, metrics.MetricCHRF, metrics.MetricROUGE:
	case "":
		return fault.Settingsf("--metric is required (bleu, chrf or rouge)")
	default:
		return fault.Settingsf("unknown --metric %q (want bleu, chrf or rouge)", metric)
	}
	if c.String("hyp") == "" || len(c.StringSlice("ref")) == 0 {
		return fault.Settingsf("--hyp and at least one --ref are required")
	}
	perLine := c.Bool("sentence") || c.Bool("per-line")
	if perLine && c.String("stats-out") != "" {
		return fault.Settingsf("--stats-out writes corpus statistics; drop --sentence/--per-line")
	}
	if n := c.Int("workers"); n < 0 {
		return fault.Settingsf("--workers %d: must be 0 (one per CPU) or positive", n)
	}
	// Bad options are usage errors, reported before any file is read.
	if err := validateScoreFlags(c, metric, perLine); err != nil {
		return err
	}
	hyps, refs, err := readScoreInputs(c.String("hyp"), c.StringSlice("ref"), c.Bool("jsonl"))
	if err != nil {
		return err
	}
	switch metric {
	case metrics.MetricBLEU:
		return scoreBLEU(c, hyps, refs, perLine)
	case metrics.MetricCHRF:
		return scoreCHRF(c, hyps, refs, perLine)
	default:
		return scoreROUGE(c, hyps, refs, perLine)
	}
}

func validateScoreFlags(c *cli.Context, metric string, perLine bool) error {
	var err error
	switch metric {
	case metrics.MetricBLEU:
		_, err = metrics.NewBLEU(scoreBLEUOptions(c, perLine))
	case metrics.MetricCHRF:
		_, err = metrics.NewCHRF(scoreCHRFOptions(c))
	case metrics.MetricROUGE:
		_, err = metrics.NewROUGE(scoreROUGEOptions(c), false)
	}
	if err != nil {
		return fault.Mark(fault.Settings, err)
	}
	return nil
}

func readScoreInputs(hypPath string, refPaths []string, jsonl bool) ([]string, [][]string, error) {
	read := func(path string) (metrics.Segments, error) {
		f, err := os.Open(path)
		if err != nil {
			return metrics.Segments{}, fault.Mark(fault.Input, err)
		}
		defer f.Close()
		s, err := metrics.ReadSegments(f, path, jsonl)
		if err != nil {
			return s, fault.Mark(fault.Input, err)
		}
		return s, nil
	}
	hyp, err := read(hypPath)
	if err != nil {
		return nil, nil, err
	}
	var refs []metrics.Segments
	for _, p := range refPaths {
		r, err := read(p)
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

func scoreBLEUOptions(c *cli.Context, sentence bool) metrics.BLEUOptions {
	o := metrics.BLEUOptions{
		Tokenize: c.String("tokenize"), SmoothMethod: c.String("smooth-method"),
		Lowercase: c.Bool("lowercase"), EffectiveOrder: c.Bool("effective-order"),
		MaxNgramOrder: c.Int("max-ngram-order"), Force: c.Bool("force"),
	}
	if sentence && !c.IsSet("effective-order") {
		o.EffectiveOrder = true
	}
	if c.IsSet("smooth-value") {
		v := c.Float64("smooth-value")
		o.SmoothValue = &v
	}
	return o
}

func scoreBLEU(c *cli.Context, hyps []string, refs [][]string, sentence bool) error {
	if c.IsSet("max-ngram-order") && c.Int("max-ngram-order") <= 0 {
		return fault.Settingsf("--max-ngram-order must be at least 1")
	}
	b, err := metrics.NewBLEU(scoreBLEUOptions(c, sentence))
	if err != nil {
		return fault.Mark(fault.Settings, err)
	}
	if err := checkBootstrapFlags(c, sentence); err != nil {
		return err
	}
	if c.Int("bootstrap") > 0 {
		b.KeepSegmentStats()
	}
	w := bufio.NewWriter(c.App.Writer)
	defer w.Flush()
	if sentence {
		for i, h := range hyps {
			s, err := b.SentenceScore(h, refs[i])
			if err != nil {
				return fault.Inputf("line %d: %w", i+1, err)
			}
			if err := printBLEU(w, s, c.Bool("json"), false); err != nil {
				return err
			}
		}
		return nil
	}
	if err := b.AddBatch(hyps, refs, c.Int("workers")); err != nil {
		return fault.Mark(fault.Input, err)
	}
	if st := b.Stats(); st.TokenizedPeriods >= 100 {
		fmt.Fprintf(c.App.ErrWriter, "ortrain: warning: %d hypotheses end in a tokenized period (\" .\"); detokenize them, or pass --force\n", st.TokenizedPeriods)
	}
	if err := writeScoreStats(c, b.StatsFile()); err != nil {
		return err
	}
	return finishScoreBLEU(c, w, b)
}

// checkBootstrapFlags validates --bootstrap and --seed for BLEU and chrF.
func checkBootstrapFlags(c *cli.Context, perLine bool) error {
	n := c.Int("bootstrap")
	switch {
	case n < 0 || n == 1:
		return fault.Settingsf("--bootstrap must be 0 (off) or at least 2")
	case n > 0 && perLine:
		return fault.Settingsf("--bootstrap needs corpus scoring; drop --sentence/--per-line")
	case c.Int("seed") < 0:
		return fault.Settingsf("--seed must not be negative")
	}
	return nil
}

type scoreBLEUJSON struct {
	metrics.BLEUScore
	*metrics.BootstrapCI
}

func finishScoreBLEU(c *cli.Context, w io.Writer, b *metrics.BLEU) error {
	s := b.Score()
	n := c.Int("bootstrap")
	if n == 0 {
		return printBLEU(w, s, c.Bool("json"), true)
	}
	ci, err := b.Bootstrap(n, uint64(c.Int("seed")))
	if err != nil {
		return fault.Mark(fault.Input, err)
	}
	s.Signature = ci.Signature
	if c.Bool("json") {
		return writeScoreJSON(w, scoreBLEUJSON{s, &ci}, true)
	}
	_, err = fmt.Fprintf(w, "BLEU|%s = %.2f (μ = %.2f ± %.2f) %s\n", s.Signature, s.Score, ci.Mean, ci.CI, s.Verbose())
	return err
}

func printBLEU(w io.Writer, s metrics.BLEUScore, asJSON, indent bool) error {
	if asJSON {
		return writeScoreJSON(w, s, indent)
	}
	_, err := fmt.Fprintln(w, s.String())
	return err
}

func scoreCHRFOptions(c *cli.Context) metrics.CHRFOptions {
	return metrics.CHRFOptions{
		CharOrder: c.Int("char-order"), WordOrder: c.Int("word-order"), Beta: c.Int("beta"),
		Lowercase: c.Bool("lowercase"), Whitespace: c.Bool("whitespace"), EpsSmoothing: c.Bool("eps-smoothing"),
	}
}

func scoreCHRF(c *cli.Context, hyps []string, refs [][]string, sentence bool) error {
	m, err := metrics.NewCHRF(scoreCHRFOptions(c))
	if err != nil {
		return fault.Mark(fault.Settings, err)
	}
	if c.Int("char-order") <= 0 || c.Int("beta") <= 0 {
		return fault.Settingsf("--char-order and --beta must be at least 1")
	}
	if err := checkBootstrapFlags(c, sentence); err != nil {
		return err
	}
	if c.Int("bootstrap") > 0 {
		m.KeepSegmentStats()
	}
	w := bufio.NewWriter(c.App.Writer)
	defer w.Flush()
	if sentence {
		for i, h := range hyps {
			s, err := m.SentenceScore(h, refs[i])
			if err != nil {
				return fault.Inputf("line %d: %w", i+1, err)
			}
			if err := printCHRF(w, s, c.Bool("json"), false); err != nil {
				return err
			}
		}
		return nil
	}
	if err := m.AddBatch(hyps, refs, c.Int("workers")); err != nil {
		return fault.Mark(fault.Input, err)
	}
	if err := writeScoreStats(c, m.StatsFile()); err != nil {
		return err
	}
	return finishScoreCHRF(c, w, m)
}

func finishScoreCHRF(c *cli.Context, w io.Writer, m *metrics.CHRF) error {
	s := m.Score()
	n := c.Int("bootstrap")
	if n == 0 {
		return printCHRF(w, s, c.Bool("json"), true)
	}
	ci, err := m.Bootstrap(n, uint64(c.Int("seed")))
	if err != nil {
		return fault.Mark(fault.Input, err)
	}
	if c.Bool("json") {
		return writeScoreJSON(w, struct {
			scoreCHRFJSON
			*metrics.BootstrapCI
		}{scoreCHRFJSON{s.Score, ci.Signature}, &ci}, true)
	}
	_, err = fmt.Fprintf(w, "%s|%s = %.2f (μ = %.2f ± %.2f)\n", s.Name, ci.Signature, s.Score, ci.Mean, ci.CI)
	return err
}

type scoreCHRFJSON struct {
	Score     float64 `json:"score"`
	Signature string  `json:"signature"`
}

func printCHRF(w io.Writer, s metrics.CHRFScore, asJSON, indent bool) error {
	if asJSON {
		return writeScoreJSON(w, scoreCHRFJSON{s.Score, s.Signature}, indent)
	}
	_, err := fmt.Fprintln(w, s.String())
	return err
}

func scoreROUGEOptions(c *cli.Context) metrics.ROUGEOptions {
	var types []string
	for _, t := range strings.Split(c.String("rouge-types"), ",") {
		if t = strings.TrimSpace(t); t != "" {
			types = append(types, t)
		}
	}
	return metrics.ROUGEOptions{Types: types, UseStemmer: c.Bool("use-stemmer"), SplitSummaries: c.Bool("split-summaries")}
}

func scoreROUGE(c *cli.Context, preds []string, targets [][]string, perLine bool) error {
	boot := c.Int("bootstrap")
	if boot < 0 {
		return fault.Settingsf("--bootstrap must not be negative")
	}
	if c.Int("seed") < 0 || int64(c.Int("seed")) > 1<<32-1 {
		return fault.Settingsf("--seed must be between 0 and 2**32 - 1, as numpy.random.seed requires")
	}
	r, err := metrics.NewROUGE(scoreROUGEOptions(c), boot > 0)
	if err != nil {
		return fault.Mark(fault.Settings, err)
	}
	scores, err := r.AddBatch(preds, targets, c.Int("workers"))
	if err != nil {
		return fault.Mark(fault.Input, err)
	}
	w := bufio.NewWriter(c.App.Writer)
	defer w.Flush()
	if perLine {
		for _, s := range scores {
			if err := printROUGE(w, r.Types(), s, nil, c.Bool("json"), false, 0); err != nil {
				return err
			}
		}
		return nil
	}
	if err := writeScoreStats(c, r.StatsFile()); err != nil {
		return err
	}
	return finishScoreROUGE(c, w, r)
}

func finishScoreROUGE(c *cli.Context, w io.Writer, r *metrics.ROUGE) error {
	var iv []metrics.ROUGEInterval
	if n := c.Int("bootstrap"); n > 0 {
		var err error
		if iv, err = r.Bootstrap(n, c.Float64("confidence"), uint32(c.Int("seed"))); err != nil {
			return fault.Mark(fault.Settings, err)
		}
	}
	return printROUGE(w, r.Types(), r.Mean(), iv, c.Bool("json"), true, r.Count())
}

// printROUGE writes {"rouge1": {"precision", "recall", "fmeasure"[, "low",
// "mid", "high"]}, ...} with the types in the order asked for.
func printROUGE(w io.Writer, types []string, s []metrics.ROUGEScore, iv []metrics.ROUGEInterval, asJSON, indent bool, n int64) error {
	if asJSON {
		var buf bytes.Buffer
		buf.WriteByte('{')
		for i, t := range types {
			if i > 0 {
				buf.WriteByte(',')
			}
			if indent {
				buf.WriteString("\n  ")
			}
			k, _ := json.Marshal(t)
			buf.Write(k)
			buf.WriteByte(':')
			var v []byte
			if iv != nil {
				v, _ = json.Marshal(struct {
					metrics.ROUGEScore
					metrics.ROUGEInterval
				}{s[i], iv[i]})
			} else {
				v, _ = json.Marshal(s[i])
			}
			buf.Write(v)
		}
		if indent {
			buf.WriteByte('\n')
		}
		buf.WriteString("}\n")
		_, err := w.Write(buf.Bytes())
		return err
	}
	if !indent { // one line per pair
		parts := make([]string, len(types))
		for i, t := range types {
			parts[i] = fmt.Sprintf("%s P=%.6f R=%.6f F=%.6f", t, s[i].Precision, s[i].Recall, s[i].FMeasure)
		}
		_, err := fmt.Fprintln(w, strings.Join(parts, "  "))
		return err
	}
	fmt.Fprintf(w, "ROUGE (rouge-score %s), mean of %d pairs\n", metrics.RougeScoreVersion, n)
	for i, t := range types {
		fmt.Fprintf(w, "%-10s P %.6f  R %.6f  F %.6f", t, s[i].Precision, s[i].Recall, s[i].FMeasure)
		if iv != nil {
			fmt.Fprintf(w, "   F low %.6f mid %.6f high %.6f", iv[i].Low.FMeasure, iv[i].Mid.FMeasure, iv[i].High.FMeasure)
		}
		fmt.Fprintln(w)
	}
	return nil
}

func writeScoreJSON(w io.Writer, v any, indent bool) error {
	enc := json.NewEncoder(w)
	if indent {
		enc.SetIndent("", "  ")
	}
	return enc.Encode(v)
}

func writeScoreStats(c *cli.Context, f metrics.StatsFile) error {
	path := c.String("stats-out")
	if path == "" {
		return nil
	}
	var buf bytes.Buffer
	if err := metrics.WriteStatsFile(&buf, f); err != nil {
		return err
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("writing statistics: %w", err)
	}
	return nil
}

func runScoreMerge(c *cli.Context) error {
	if c.NArg() == 0 {
		return fault.Settingsf("--merge needs statistics files as arguments (written with --stats-out)")
	}
	if c.String("hyp") != "" || len(c.StringSlice("ref")) > 0 {
		return fault.Settingsf("--merge takes statistics files, not --hyp/--ref")
	}
	var files []metrics.StatsFile
	for _, p := range c.Args().Slice() {
		b, err := os.ReadFile(p)
		if err != nil {
			return fault.Mark(fault.Input, err)
		}
		f, err := metrics.ReadStatsFile(bytes.NewReader(b))
		if err != nil {
			return fault.Inputf("%s: %w", p, err)
		}
		files = append(files, f)
	}
	merged, err := metrics.MergeStatsFiles(files)
	if err != nil {
		return fault.Mark(fault.Input, err)
	}
	if err := writeScoreStats(c, merged); err != nil {
		return err
	}
	w := bufio.NewWriter(c.App.Writer)
	defer w.Flush()
	switch merged.Metric {
	case metrics.MetricBLEU:
		b, err := merged.BLEUAccumulator()
		if err != nil {
			return fault.Mark(fault.Input, err)
		}
		if err := checkBootstrapFlags(c, false); err != nil {
			return err
		}
		return finishScoreBLEU(c, w, b)
	case metrics.MetricCHRF:
		m, err := merged.CHRFAccumulator()
		if err != nil {
			return fault.Mark(fault.Input, err)
		}
		if err := checkBootstrapFlags(c, false); err != nil {
			return err
		}
		return finishScoreCHRF(c, w, m)
	case metrics.MetricROUGE:
		r, err := merged.ROUGEAccumulator()
		if err != nil {
			return fault.Mark(fault.Input, err)
		}
		if c.Int("bootstrap") > 0 && int64(len(merged.ROUGE.Pairs)) != merged.ROUGE.Count {
			return fault.Mark(fault.Input, errors.New("--bootstrap needs every pair's scores: write all shards with --bootstrap"))
		}
		return finishScoreROUGE(c, w, r)
	}
	return fault.Inputf("unknown metric %q", merged.Metric)
}
