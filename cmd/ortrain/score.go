package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/metrics"
	"github.com/ortrain/ortrain/metrics/score"
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
	def := score.DefaultOptions()
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
			&cli.StringFlag{Name: "tokenize", Value: def.Tokenize, Usage: "BLEU tokenizer: none, 13a, intl, char, zh"},
			&cli.StringFlag{Name: "smooth-method", Value: def.SmoothMethod, Usage: "BLEU smoothing: none, floor, add-k, exp"},
			&cli.Float64Flag{Name: "smooth-value", Usage: "BLEU smoothing value for floor and add-k", DefaultText: "0.1 for floor, 1 for add-k"},
			&cli.BoolFlag{Name: "lowercase", Usage: "lowercase before scoring (BLEU, chrF)"},
			&cli.BoolFlag{Name: "effective-order", Usage: "BLEU: average only the n-gram orders that have n-grams (--effective-order=false turns off --sentence's default)", DefaultText: "off; on with --sentence"},
			&cli.IntFlag{Name: "max-ngram-order", Value: def.MaxNgramOrder, Usage: "BLEU maximum n-gram order"},
			&cli.BoolFlag{Name: "force", Usage: "BLEU: do not warn about hypotheses that look tokenized"},
			// chrF
			&cli.IntFlag{Name: "char-order", Value: def.CharOrder, Usage: "chrF character n-gram order"},
			&cli.IntFlag{Name: "word-order", Value: def.WordOrder, Usage: "chrF word n-gram order (2: chrF++)"},
			&cli.IntFlag{Name: "beta", Value: def.Beta, Usage: "chrF recall weight"},
			&cli.BoolFlag{Name: "eps-smoothing", Usage: "chrF: epsilon smoothing as chrF++.py instead of effective order"},
			&cli.BoolFlag{Name: "whitespace", Usage: "chrF: keep whitespace in character n-grams"},
			// ROUGE
			&cli.StringFlag{Name: "rouge-types", Value: strings.Join(def.ROUGETypes, ","), Usage: "comma list of rouge1..rouge9, rougeL, rougeLsum"},
			&cli.BoolFlag{Name: "use-stemmer", Usage: "ROUGE: Porter-stem tokens longer than 3 characters"},
			&cli.BoolFlag{Name: "split-summaries", Usage: "ROUGE: split rougeLsum summaries into sentences (refused: needs NLTK Punkt)"},
			&cli.IntFlag{Name: "bootstrap", Usage: "bootstrap resamples: BLEU/chrF 95% interval as sacrebleu --confidence-n; ROUGE low/mid/high as BootstrapAggregator (0: none; both peers default to 1000)"},
			&cli.IntFlag{Name: "seed", Value: def.Bootstrap.Seed, Usage: "bootstrap seed: SACREBLEU_SEED for BLEU/chrF (numpy default_rng), numpy.random.seed for ROUGE"},
			&cli.Float64Flag{Name: "confidence", Value: def.Bootstrap.Confidence, Usage: "ROUGE bootstrap confidence interval"},
		},
		Action: runScore,
	}
}

func runScore(c *cli.Context) error {
	boot := score.Bootstrap{Samples: c.Int("bootstrap"), Seed: c.Int("seed"), Confidence: c.Float64("confidence")}
	var rep *score.Report
	var err error
	if c.Bool("merge") {
		if c.NArg() > 0 && (c.String("hyp") != "" || len(c.StringSlice("ref")) > 0) {
			return fault.Settingsf("--merge takes statistics files, not --hyp/--ref")
		}
		rep, err = score.Merge(c.Context, score.MergeOptions{Files: c.Args().Slice(), StatsOut: c.String("stats-out"), Bootstrap: boot})
	} else {
		if c.NArg() > 0 {
			return fault.Settingsf("unexpected arguments %q (files go in --hyp and --ref; statistics files need --merge)", c.Args().Slice())
		}
		rep, err = score.Run(c.Context, score.Options{
			Metric: c.String("metric"), Hyp: c.String("hyp"), Refs: c.StringSlice("ref"), JSONL: c.Bool("jsonl"),
			PerLine: c.Bool("sentence") || c.Bool("per-line"), Workers: c.Int("workers"), StatsOut: c.String("stats-out"),
			Tokenize: c.String("tokenize"), SmoothMethod: c.String("smooth-method"), SmoothValue: optional(c, "smooth-value", c.Float64),
			Lowercase: c.Bool("lowercase"), EffectiveOrder: optional(c, "effective-order", c.Bool),
			MaxNgramOrder: c.Int("max-ngram-order"), Force: c.Bool("force"),
			CharOrder: c.Int("char-order"), WordOrder: c.Int("word-order"), Beta: c.Int("beta"),
			EpsSmoothing: c.Bool("eps-smoothing"), Whitespace: c.Bool("whitespace"),
			ROUGETypes: score.ParseROUGETypes(c.String("rouge-types")), UseStemmer: c.Bool("use-stemmer"), SplitSummaries: c.Bool("split-summaries"),
			Bootstrap: boot,
			Warn:      func(msg string) { fmt.Fprintf(c.App.ErrWriter, "ortrain: warning: %s\n", msg) },
		})
	}
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return rep.WriteJSON(c.App.Writer)
	}
	return rep.WriteText(c.App.Writer)
}
