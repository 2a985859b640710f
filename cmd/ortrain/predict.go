package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/ortrain/ortrain/generate"
	"github.com/ortrain/ortrain/metrics"
	"github.com/ortrain/ortrain/ortrain/gendec"
	"github.com/ortrain/ortrain/tokenize"
)

const predictDescription = `Generates one prediction per input line with greedy or beam search, with
the semantics of Hugging Face's generate() (defaults from the model's
generation_config.json, else config.json; flags override them). Predictions
are written in input order, one per line.

--model DIR is an exported model folder: Optimum's encoder_model.onnx,
decoder_model.onnx and decoder_with_past_model.onnx (KV cache), or model.onnx
(the full graph, recomputed each step; also with --no-cache).
--artifacts DIR is an ortrain artifact folder (its generation graphs and
model.safetensors). --tokenizer defaults to the model folder.

With --refs (one reference per line; repeat for several references) the
predictions are also scored with BLEU (sacrebleu defaults) and ROUGE
(rouge-score, F-measure means), and a JSON report is written (--report, by
default OUTPUT.metrics.json) together with the metrics' sufficient statistics
(OUTPUT.bleu-stats.json, OUTPUT.rouge-stats.json).

--shard i/N (0 <= i < N) processes only lines [i*L/N, (i+1)*L/N) of the L
input lines: run the N shards anywhere (e.g. as an array job), concatenate
the prediction files in shard order, and combine the scores with
  ortrain score --merge OUT0.bleu-stats.json OUT1.bleu-stats.json ...
which gives exactly the unsharded corpus score.

Inputs longer than the model takes (--max-source-length, by default the
model's tokenizer_config.json model_max_length or max_position_embeddings)
are an error naming the line, or with --truncate are cut (keeping the end of
sequence token) with a warning. Empty input lines are an error.`

func newPredictCommand() *cli.Command {
	return &cli.Command{
		Name:        "predict",
		Usage:       "generate predictions for a file of inputs (greedy or beam search, HF generate semantics), optionally scored",
		UsageText:   "ortrain predict (--model DIR | --artifacts DIR) [--tokenizer PATH] --input FILE --output FILE [options]",
		Description: predictDescription,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Usage: "exported model folder (Optimum layout or model.onnx)"},
			&cli.StringFlag{Name: "artifacts", Usage: "ortrain artifact folder"},
			&cli.StringFlag{Name: "tokenizer", Usage: "tokenizer folder or tokenizer.json (default: the model folder)"},
			&cli.StringFlag{Name: "input", Usage: "source texts, one per line"},
			&cli.StringFlag{Name: "output", Usage: "predictions file to write"},
			&cli.IntFlag{Name: "num-beams", Usage: "beam width (default: the model's generation config; 1 is greedy)"},
			&cli.IntFlag{Name: "max-new-tokens", Usage: "maximum generated tokens (default: the model's generation config)"},
			&cli.StringFlag{Name: "generation-config", Usage: "JSON file of generate() arguments (length_penalty, no_repeat_ngram_size, ...) applied over the model's defaults"},
			&cli.IntFlag{Name: "batch-size", Value: 16, Usage: "sources per batch"},
			&cli.StringFlag{Name: "device", Value: "cpu", Usage: "cpu, cuda or cuda:N"},
			&cli.IntFlag{Name: "threads", Usage: "ONNX Runtime intra-op threads (0: its default)"},
			&cli.BoolFlag{Name: "no-cache", Usage: "decode with the full graph model.onnx, recomputing every step"},
			&cli.StringSliceFlag{Name: "refs", Usage: "reference file, one per line; repeat for several references"},
			&cli.StringFlag{Name: "report", Usage: "JSON report path (default OUTPUT.metrics.json when --refs is given)"},
			&cli.StringFlag{Name: "shard", Usage: "process shard i of N (0-based), as i/N"},
			&cli.IntFlag{Name: "max-source-length", Usage: "longest source in tokens (default: the model's limit; 0 there means none)"},
			&cli.BoolFlag{Name: "truncate", Usage: "cut sources longer than the limit (with a warning) instead of failing"},
			&cli.BoolFlag{Name: "no-progress", Usage: "no progress bar even on a terminal"},
		},
		Action: runPredict,
	}
}

type predictJob struct {
	model   *gendec.Model
	tok     *tokenize.Pair
	cfg     generate.Config
	batch   int
	maxSrc  int
	trunc   bool
	stderr  io.Writer
	inPath  string
	lineOff int // line number of the shard's first line, minus one
}

func runPredict(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("unexpected arguments %q", c.Args().Slice())
	}
	modelDir, artDir := c.String("model"), c.String("artifacts")
	if (modelDir == "") == (artDir == "") {
		return usagef("give exactly one of --model DIR and --artifacts DIR")
	}
	if c.String("input") == "" || c.String("output") == "" {
		return usagef("--input and --output are required")
	}
	if c.Int("batch-size") < 1 {
		return usagef("--batch-size must be at least 1, got %d", c.Int("batch-size"))
	}
	shard, shards, err := parseShard(c.String("shard"))
	if err != nil {
		return err
	}
	tokPath := c.String("tokenizer")
	if tokPath == "" {
		tokPath = modelDir + artDir
	}
	lines, err := readSourceLines(c.String("input"))
	if err != nil {
		return err
	}
	var refs [][]string
	for _, p := range c.StringSlice("refs") {
		r, err := readRefLines(p, len(lines))
		if err != nil {
			return err
		}
		refs = append(refs, r)
	}
	lo, hi := shardRange(len(lines), shard, shards)

	tok, err := tokenize.Load(tokPath)
	if err != nil {
		return dataError{err}
	}
	env, err := openRuntime(c)
	if err != nil {
		return err
	}
	defer env.Close()
	opts := gendec.Options{Device: c.String("device"), IntraOpThreads: c.Int("threads")}
	var model *gendec.Model
	if modelDir != "" {
		model, err = gendec.OpenModel(env, modelDir, gendec.OpenOptions{Options: opts, NoCache: c.Bool("no-cache")})
	} else {
		model, err = gendec.OpenArtifactModel(env, artDir, opts)
	}
	if err != nil {
		return err
	}
	defer model.Close()

	cfg := model.Config
	if p := c.String("generation-config"); p != "" {
		if err := applyGenerationFile(&cfg, p); err != nil {
			return err
		}
	}
	if c.IsSet("num-beams") {
		cfg.NumBeams = c.Int("num-beams")
	}
	if c.IsSet("max-new-tokens") {
		if c.Int("max-new-tokens") < 1 {
			return usagef("--max-new-tokens must be at least 1, got %d", c.Int("max-new-tokens"))
		}
		cfg.MaxNewTokens = c.Int("max-new-tokens")
	}
	if err := cfg.Validate(); err != nil {
		return usagef("generation settings: %v", err)
	}
	if err := checkTokenizerMatchesModel(tok, model, tokPath); err != nil {
		return err
	}
	job := &predictJob{model: model, tok: tok, cfg: cfg, batch: c.Int("batch-size"), maxSrc: model.MaxSourceLength,
		trunc: c.Bool("truncate"), stderr: c.App.ErrWriter, inPath: c.String("input"), lineOff: lo}
	if c.IsSet("max-source-length") {
		job.maxSrc = c.Int("max-source-length")
	}

	start := time.Now()
	var bar *progressBar
	if !c.Bool("no-progress") && isTerminal(c.App.ErrWriter) {
		bar = &progressBar{w: c.App.ErrWriter, total: hi - lo, start: start}
	}
	preds, err := job.run(c.Context, lines[lo:hi], bar)
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	if err := writeLines(c.String("output"), preds); err != nil {
		return err
	}
	if len(refs) == 0 {
		return nil
	}
	shardRefs := make([][]string, hi-lo)
	for i := range shardRefs {
		for _, r := range refs {
			shardRefs[i] = append(shardRefs[i], r[lo+i])
		}
	}
	report := c.String("report")
	if report == "" {
		report = c.String("output") + ".metrics.json"
	}
	return writePredictReport(c, report, preds, shardRefs, model, cfg, shard, shards, lo, hi, elapsed)
}

// run encodes, generates and decodes the sources in batches, in input order.
func (j *predictJob) run(ctx context.Context, lines []string, bar *progressBar) ([]string, error) {
	sources := make([][]int64, len(lines))
	truncated := 0
	for i, line := range lines {
		opt := tokenize.EncodeOptions{}
		if j.trunc && j.maxSrc > 0 {
			opt.MaxLength = j.maxSrc
		}
		ids, err := j.tok.Source.EncodeWith(line, opt)
		if err != nil {
			return nil, dataError{fmt.Errorf("%s:%d: %w", j.inPath, j.lineOff+i+1, err)}
		}
		if j.maxSrc > 0 && !j.trunc {
			if full, _ := j.tok.Source.Encode(line); len(full) > j.maxSrc {
				return nil, dataError{fmt.Errorf("%s:%d: the source is %d tokens long, the model takes at most %d; shorten it, raise --max-source-length if the model allows, or pass --truncate", j.inPath, j.lineOff+i+1, len(full), j.maxSrc)}
			}
		}
		if j.trunc && j.maxSrc > 0 {
			if full, _ := j.tok.Source.Encode(line); len(full) > len(ids) {
				truncated++
			}
		}
		src := make([]int64, len(ids))
		for k, id := range ids {
			src[k] = int64(id)
		}
		sources[i] = src
	}
	if truncated > 0 {
		fmt.Fprintf(j.stderr, "ortrain: warning: %d of %d sources were longer than %d tokens and were truncated\n", truncated, len(lines), j.maxSrc)
	}
	preds := make([]string, 0, len(lines))
	for start := 0; start < len(sources); start += j.batch {
		end := min(start+j.batch, len(sources))
		out, err := generate.Generate(ctx, j.model, sources[start:end], j.cfg)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("%s lines %d-%d: %w", j.inPath, j.lineOff+start+1, j.lineOff+end, err)
		}
		nrs := len(out.Sequences) / (end - start)
		for r := 0; r < len(out.Sequences); r += nrs { // the best sequence of each source
			seq := out.Trimmed(r)
			ids := make([]int, len(seq))
			for k, id := range seq {
				ids[k] = int(id)
			}
			preds = append(preds, j.tok.Target.Decode(ids, true))
		}
		bar.update(end)
	}
	bar.finish()
	return preds, nil
}

// checkTokenizerMatchesModel refuses a tokenizer that cannot belong to the model.
func checkTokenizerMatchesModel(tok *tokenize.Pair, m *gendec.Model, tokPath string) error {
	if m.VocabSize > 0 {
		for _, t := range []*tokenize.Tokenizer{tok.Source, tok.Target} {
			if n := t.VocabSize(); n > m.VocabSize {
				return usagef("tokenizer %s has %d ids but the model's logits have only %d: the tokenizer does not belong to this model (pass the model's own --tokenizer)", tokPath, n, m.VocabSize)
			}
		}
	}
	if eos := tok.Target.Special().EOS; eos >= 0 && len(m.Config.EOSTokenIDs) > 0 && int64(eos) != m.Config.EOSTokenIDs[0] {
		return usagef("tokenizer %s ends sequences with id %d, the model's generation config with %d: the tokenizer does not belong to this model", tokPath, eos, m.Config.EOSTokenIDs[0])
	}
	if pad := tok.Source.Special().Pad; pad >= 0 && m.Config.PadTokenID != generate.NoToken && int64(pad) != m.Config.PadTokenID {
		return usagef("tokenizer %s pads with id %d, the model with %d: the tokenizer does not belong to this model", tokPath, pad, m.Config.PadTokenID)
	}
	return nil
}

func parseShard(s string) (int, int, error) {
	if s == "" {
		return 0, 1, nil
	}
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return 0, 0, usagef("--shard %q: want i/N with 0 <= i < N (e.g. 0/4 ... 3/4)", s)
	}
	return i, n, nil
}

// shardRange is shard i's slice of n lines: contiguous, in order, sizes differing by at most one.
func shardRange(n, i, shards int) (int, int) { return i * n / shards, (i + 1) * n / shards }

func readFileLines(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, dataError{err}
	}
	if !utf8.Valid(data) {
		return nil, dataError{fmt.Errorf("%s is not valid UTF-8", path)}
	}
	text := strings.TrimSuffix(string(data), "\n")
	if text == "" {
		return nil, nil
	}
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\r")
	}
	return lines, nil
}

func readSourceLines(path string) ([]string, error) {
	lines, err := readFileLines(path)
	if err != nil {
		return nil, err
	}
	if len(lines) == 0 {
		return nil, dataError{fmt.Errorf("%s has no lines to predict", path)}
	}
	for i, l := range lines {
		if strings.TrimSpace(l) == "" {
			return nil, dataError{fmt.Errorf("%s:%d: empty line; every line must hold one source text (remove empty lines, keeping the references aligned)", path, i+1)}
		}
	}
	return lines, nil
}

func readRefLines(path string, want int) ([]string, error) {
	lines, err := readFileLines(path)
	if err != nil {
		return nil, err
	}
	if len(lines) != want {
		return nil, dataError{fmt.Errorf("%s has %d lines, the input has %d: references must be aligned line by line", path, len(lines), want)}
	}
	return lines, nil
}

func writeLines(path string, lines []string) error {
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString(strings.ReplaceAll(l, "\n", " "))
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("writing predictions: %w", err)
	}
	return nil
}

func applyGenerationFile(cfg *generate.Config, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return dataError{err}
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return dataError{fmt.Errorf("%s: want a JSON object of generate() arguments: %w", path, err)}
	}
	if err := cfg.ApplyJSON(m); err != nil {
		return dataError{fmt.Errorf("%s: %w", path, err)}
	}
	return nil
}

type predictReport struct {
	Model           string                        `json:"model"`
	Decoder         string                        `json:"decoder"`
	Shard           string                        `json:"shard,omitempty"`
	Lines           [2]int                        `json:"lines"` // first (1-based) and last line processed
	Predictions     int                           `json:"predictions"`
	Seconds         float64                       `json:"seconds"`
	SentencesPerSec float64                       `json:"sentences_per_second"`
	NumBeams        int                           `json:"num_beams"`
	MaxNewTokens    int                           `json:"max_new_tokens,omitempty"`
	BLEU            metrics.BLEUScore             `json:"bleu"`
	ROUGE           map[string]metrics.ROUGEScore `json:"rouge"`
	StatsFiles      map[string]string             `json:"stats_files"`
}

func writePredictReport(c *cli.Context, path string, preds []string, refs [][]string, model *gendec.Model, cfg generate.Config, shard, shards, lo, hi int, elapsed time.Duration) error {
	bleu, err := metrics.NewBLEU(metrics.BLEUOptions{})
	if err != nil {
		return err
	}
	rouge, err := metrics.NewROUGE(metrics.ROUGEOptions{}, false)
	if err != nil {
		return err
	}
	for i, p := range preds {
		if err := bleu.Add(p, refs[i]); err != nil {
			return dataError{fmt.Errorf("scoring line %d: %w", lo+i+1, err)}
		}
		if _, err := rouge.Add(p, refs[i]); err != nil {
			return dataError{fmt.Errorf("scoring line %d: %w", lo+i+1, err)}
		}
	}
	rep := predictReport{
		Model: c.String("model") + c.String("artifacts"), Decoder: model.Kind, Lines: [2]int{lo + 1, hi},
		Predictions: len(preds), Seconds: elapsed.Seconds(), NumBeams: cfg.NumBeams, MaxNewTokens: cfg.MaxNewTokens,
		BLEU: bleu.Score(), ROUGE: map[string]metrics.ROUGEScore{}, StatsFiles: map[string]string{},
	}
	if shards > 1 {
		rep.Shard = fmt.Sprintf("%d/%d", shard, shards)
	}
	if s := elapsed.Seconds(); s > 0 {
		rep.SentencesPerSec = float64(len(preds)) / s
	}
	for i, t := range rouge.Types() {
		rep.ROUGE[t] = rouge.Mean()[i]
	}
	out := c.String("output")
	for metric, sf := range map[string]metrics.StatsFile{metrics.MetricBLEU: bleu.StatsFile(), metrics.MetricROUGE: rouge.StatsFile()} {
		p := out + "." + metric + "-stats.json"
		var b bytes.Buffer
		if err := metrics.WriteStatsFile(&b, sf); err != nil {
			return err
		}
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			return err
		}
		rep.StatsFiles[metric] = p
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return err
	}
	w := c.App.Writer
	fmt.Fprintln(w, rep.BLEU.String())
	for _, t := range rouge.Types() {
		fmt.Fprintf(w, "%s F = %.4f\n", t, rep.ROUGE[t].FMeasure)
	}
	fmt.Fprintf(w, "report: %s\n", path)
	return nil
}

// progressBar draws on a terminal only.
type progressBar struct {
	w     io.Writer
	total int
	start time.Time
	last  time.Time
}

func (p *progressBar) update(done int) {
	if p == nil || (time.Since(p.last) < 100*time.Millisecond && done < p.total) {
		return
	}
	p.last = time.Now()
	const width = 30
	fill := width * done / max(p.total, 1)
	rate := float64(done) / max(time.Since(p.start).Seconds(), 1e-9)
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d sentences, %.1f/s", strings.Repeat("#", fill), strings.Repeat(".", width-fill), done, p.total, rate)
}

func (p *progressBar) finish() {
	if p != nil {
		fmt.Fprintln(p.w)
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
