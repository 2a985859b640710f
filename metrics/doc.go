// Package metrics computes BLEU and chrF exactly as sacrebleu 2.6.0 does and
// ROUGE exactly as rouge-score 0.1.2 does, in pure Go, as streaming
// accumulators whose sufficient statistics merge across shards.
//
// # What "exactly" means
//
// Scores and statistics equal the peers' to 1e-9 (in practice to the last
// bit or two): testdata/metrics holds sacrebleu and rouge-score results on
// subsets of real corpora and on adversarial strings, produced by
// scripts/refs/metrics_refs.py, and the tests compare against them. The
// details that make this hold:
//
//   - Text is handled as Python handles it: str.split() and str.strip()
//     whitespace (which includes U+001C..U+001F and U+0085), str.lower() with
//     its full mapping (U+0130 becomes "i̇", final capital sigma becomes ς),
//     code points (not bytes) for chrF's character n-grams. Python 3.11 uses
//     Unicode 14.0 and Go 1.26 Unicode 15.0; no case mapping differs, and
//     the intl tokenizer's classes add the code points the regex module
//     (a newer Unicode) knows (unicode_newer.go). TestPythonUnicodeTables
//     checks every code point.
//   - BLEU tokenizers: 13a and zh reproduce the sequential, non-overlapping
//     re.sub passes of sacrebleu's TokenizerRegexp; zh keeps sacrebleu's
//     _UCODE_RANGES quirk (the entries written '\u20000' and '\u2f800' are
//     two-character strings in Python, so U+2001..U+2A6D, i.e. general
//     punctuation, arrows and math symbols, count as Chinese, and the CJK
//     extension planes do not); intl follows the regex module's \p{N},
//     \p{P}, \p{S}.
//   - compute_bleu is followed operation for operation: smoothing defaults
//     (floor 0.1, add-k 1, exp), add-k's increments visible in Counts and
//     Totals, effective order counting every order with n-grams, my_log's
//     floor, the brevity penalty, the closest (then shortest) reference
//     length, the "no match" early return. Corpus BLEU defaults to
//     effective order off; SentenceBLEUOptions gives sentence_bleu's (on).
//   - ROUGE: rouge-score's tokenizer (lowercase, runs of [a-z0-9], Porter
//     stems for tokens longer than 3 characters with NLTK's PorterStemmer in
//     its default NLTK_EXTENSIONS mode, package internal/porter), n-gram
//     and LCS scores, rougeLsum's union-LCS with its double-counting guard
//     and newline-split summaries, score_multi's per-type best target (first
//     on ties).
//   - Bootstrap intervals reproduce rouge-score's BootstrapAggregator after
//     numpy.random.seed(seed): NumPy's legacy MT19937 and its masked
//     rejection sampling (internal/nprand) draw the same resamples, and the
//     percentiles use numpy's linear method, so low, mid and high match too.
//
// ROUGEOptions.SplitSummaries is refused: rouge-score splits with
// nltk.sent_tokenize, whose English Punkt model is data this package does not
// carry, and no other splitter would give rouge-score's numbers. Give
// rougeLsum summaries one sentence per line instead (as Hugging Face's
// summarization examples do before calling rouge-score).
//
//   - BLEU and chrF bootstrap estimates (BLEU.Bootstrap, CHRF.Bootstrap)
//     reproduce sacrebleu's corpus_score(n_bootstrap=N): resample indices
//     from numpy.random.default_rng(SACREBLEU_SEED) (SeedSequence, PCG64,
//     Lemire draws, internal/nprand), statistics summed in float32 and
//     scored with NumPy 2's float32 promotion (pynum.go), then
//     estimate_ci's mean and half interval. Summing in float32 is exact up
//     to 2**24 tokens per statistic; beyond that NumPy's summation order
//     would matter, and it is assumed sequential here.
//
// # Streaming and sharding
//
// BLEU and CHRF accumulate integer statistics (n-gram matches and totals,
// lengths); ROUGE accumulates the number of pairs and exact sums (Shewchuk
// partials, as math.fsum) of precision, recall and F per type, plus every
// pair's scores when bootstrap intervals are wanted. Stats() of several
// shards, merged with Merge or MergeStatsFiles (the JSON StatsFile format),
// give exactly the single-pass result, whatever the shard order.
//
// BLEU, CHRF and ROUGE implement Scorer, which is all a scoring job needs:
// add segments or score each on its own, score the corpus (with a
// bootstrap estimate), write statistics files and merge them back
// (StatsFile.Scorer).
//
// # Input files
//
// ReadSegments reads what `ortrain score` reads: UTF-8 only (invalid bytes
// are an error naming file and line, where Python would raise
// UnicodeDecodeError), one segment per line, each right-stripped as the
// sacrebleu command line does (so CRLF files score like LF files), an empty
// file is an error, and hypothesis and reference files must have the same
// number of lines (sacrebleu: "System and reference streams have different
// lengths"). With JSON lines, strings are taken verbatim and null marks a
// missing reference (sacrebleu's None: a variable number of references,
// nrefs:var in the signature).
package metrics
