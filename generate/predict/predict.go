package predict

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ortrain/ortrain/generate"
	"github.com/ortrain/ortrain/generate/ortdecoder"
	"github.com/ortrain/ortrain/internal/data"
	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/tokenize"
)

// Options describe a prediction job. The messages of the errors they cause
// name the ortrain predict flags that set them.
type Options struct {
	// Model is an exported model folder (Optimum layout or model.onnx),
	// Artifacts an ortrain artifact folder; give exactly one.
	Model, Artifacts string
	// Tokenizer is a tokenizer folder or tokenizer.json; empty means the
	// model folder.
	Tokenizer string
	// SourceLang and TargetLang are the language codes of a multilingual
	// tokenizer (mBART, mBART-50, M2M100, NLLB), which needs both: sources
	// are encoded with the source template, and generation starts the
	// target language as training does (data.TargetStart), before
	// GenerationConfig and the explicit settings apply.
	SourceLang, TargetLang string
	// Input holds the source texts, one per line; Output receives the
	// predictions, one per line.
	Input, Output string
	// Refs are reference files aligned line by line with Input. With any,
	// the predictions are scored into a Report.
	Refs []string
	// Report is the JSON report's path; empty means Output + ".metrics.json".
	Report string
	// Shard of Shards (0-based) selects the lines ShardRange gives; Shards 0
	// or 1 is the whole input.
	Shard, Shards int

	// GenerationConfig is a JSON file of generate() arguments applied over
	// the model's defaults; NumBeams and MaxNewTokens, when not nil,
	// override both.
	GenerationConfig       string
	NumBeams, MaxNewTokens *int
	// MaxSourceLength is the longest source in tokens; nil means the
	// model's limit, 0 no limit. Longer sources are an error unless
	// Truncate cuts them (keeping the end of sequence token).
	MaxSourceLength *int
	Truncate        bool
	BatchSize       int

	// ORTLibrary is the ONNX Runtime library (empty: onnxrt.Open's search).
	ORTLibrary string
	Device     string // cpu, cuda or cuda:N
	Threads    int    // ONNX Runtime intra-op threads; 0 is its default
	// DType is float32 (or empty: the model as exported), float16 or
	// bfloat16: generation with the model cast to that type, as
	// model.to(dtype) before HF's generate().
	DType   string
	NoCache bool // decode with the full graph, recomputing every step

	// Warn, when not nil, receives warnings (e.g. truncated sources).
	Warn func(msg string)
}

// Result is what a finished job produced.
type Result struct {
	// Lines is the processed part of Input, [lo, hi) 0-based.
	Lines       [2]int
	Predictions []string
	// Elapsed is the time spent encoding, generating and decoding.
	Elapsed time.Duration
	// Report is the scored report (nil without Refs), written to ReportPath.
	Report     *Report
	ReportPath string
}

// Validate checks the options that need no file.
func (o Options) Validate() error {
	if (o.Model == "") == (o.Artifacts == "") {
		return fault.Settingsf("give exactly one of --model DIR and --artifacts DIR")
	}
	if o.Input == "" || o.Output == "" {
		return fault.Settingsf("--input and --output are required")
	}
	if o.BatchSize < 1 {
		return fault.Settingsf("--batch-size must be at least 1, got %d", o.BatchSize)
	}
	if o.MaxSourceLength != nil && *o.MaxSourceLength < 0 {
		return fault.Settingsf("--max-source-length must be 0 (no limit) or positive, got %d", *o.MaxSourceLength)
	}
	if o.Threads < 0 {
		return fault.Settingsf("--threads must be 0 (ONNX Runtime's default) or positive, got %d", o.Threads)
	}
	if o.Shards < 0 || o.Shard < 0 || o.Shard >= max(o.Shards, 1) {
		return fault.Settingsf("--shard %d/%d: want i/N with 0 <= i < N (e.g. 0/4 ... 3/4)", o.Shard, o.Shards)
	}
	dt, err := ortdecoder.ParseDType(o.DType)
	if err != nil {
		return fault.Settingsf("--%v", err)
	}
	if dt == onnx.BFloat16 && (o.Device == "" || strings.HasPrefix(o.Device, "cpu")) {
		return fault.Settingsf("--dtype bfloat16 on the CPU: ONNX Runtime's CPU provider has no bfloat16 kernels; use --device cuda, or --dtype float16")
	}
	return nil
}

// Run predicts the selected lines of opts.Input, writes them to opts.Output
// and, with references, scores them and writes the report and statistics
// files. progress, when not nil, is called with done = 0 when decoding
// starts, after each batch with the number of sources decoded, and last
// with done == total.
func Run(ctx context.Context, opts Options, progress func(done, total int)) (*Result, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	shards := max(opts.Shards, 1)
	tokPath := opts.Tokenizer
	if tokPath == "" {
		tokPath = opts.Model + opts.Artifacts // exactly one is set
	}
	lines, err := readSourceLines(opts.Input)
	if err != nil {
		return nil, err
	}
	var refs [][]string
	for _, p := range opts.Refs {
		r, err := readRefLines(p, len(lines))
		if err != nil {
			return nil, err
		}
		refs = append(refs, r)
	}
	lo, hi := ShardRange(len(lines), opts.Shard, shards)

	tok, err := tokenize.Load(tokPath)
	if err != nil {
		return nil, fault.Mark(fault.Input, err)
	}
	if tok, err = withLanguages(tok, tokPath, opts); err != nil {
		return nil, err
	}
	env, err := onnxrt.Open(opts.ORTLibrary)
	if err != nil {
		return nil, err
	}
	defer env.Close()
	model, err := openModel(env, opts)
	if err != nil {
		return nil, err
	}
	defer model.Close()
	base := model.Config
	forced, first := data.TargetStart(tok, model.ModelType)
	base.StartTarget(int64(forced), int64(first))
	cfg, err := generationConfig(base, opts)
	if err != nil {
		return nil, err
	}
	if err := checkTokenizerMatchesModel(tok, model, tokPath); err != nil {
		return nil, err
	}
	job := &job{model: model, tok: tok, cfg: cfg, batch: opts.BatchSize, maxSrc: model.MaxSourceLength,
		trunc: opts.Truncate, warn: opts.Warn, inPath: opts.Input, lineOff: lo, progress: progress}
	if opts.MaxSourceLength != nil {
		job.maxSrc = *opts.MaxSourceLength
	}

	start := time.Now()
	preds, err := job.run(ctx, lines[lo:hi])
	if err != nil {
		return nil, err
	}
	res := &Result{Lines: [2]int{lo, hi}, Predictions: preds, Elapsed: time.Since(start)}
	if err := writeLines(opts.Output, preds); err != nil {
		return nil, err
	}
	if len(refs) == 0 {
		return res, nil
	}
	shardRefs := make([][]string, hi-lo)
	for i := range shardRefs {
		for _, r := range refs {
			shardRefs[i] = append(shardRefs[i], r[lo+i])
		}
	}
	res.ReportPath = opts.Report
	if res.ReportPath == "" {
		res.ReportPath = opts.Output + ".metrics.json"
	}
	res.Report, err = writeReport(reportRun{
		model: opts.Model + opts.Artifacts, decoder: model.Kind, numBeams: cfg.NumBeams, maxNewTokens: cfg.MaxNewTokens,
		shard: opts.Shard, shards: shards, lo: lo, hi: hi, elapsed: res.Elapsed, out: opts.Output, reportPath: res.ReportPath,
	}, preds, shardRefs)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// withLanguages sets a multilingual tokenizer's languages; any other
// tokenizer with languages given is a settings error.
func withLanguages(tok *tokenize.Pair, tokPath string, opts Options) (*tokenize.Pair, error) {
	if tok.Languages() == nil && opts.SourceLang == "" && opts.TargetLang == "" {
		return tok, nil
	}
	out, err := tok.WithLanguages(opts.SourceLang, opts.TargetLang)
	if err != nil && tok.Languages() != nil && (opts.SourceLang == "" || opts.TargetLang == "") {
		return nil, fmt.Errorf("%s: give --source-lang and --target-lang: %w", tokPath, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: --source-lang %q --target-lang %q: %w", tokPath, opts.SourceLang, opts.TargetLang, err)
	}
	return out, nil
}

func openModel(env *onnxrt.Env, opts Options) (*ortdecoder.Model, error) {
	dt, err := ortdecoder.ParseDType(opts.DType)
	if err != nil {
		return nil, fault.Settingsf("--%v", err)
	}
	o := ortdecoder.Options{Device: opts.Device, IntraOpThreads: opts.Threads, DType: dt}
	if opts.Model != "" {
		return ortdecoder.OpenModel(env, opts.Model, ortdecoder.OpenOptions{Options: o, NoCache: opts.NoCache})
	}
	m, err := ortdecoder.OpenArtifactModel(env, opts.Artifacts, o)
	if errors.Is(err, fault.Input) {
		return nil, fault.Mark(fault.Input, err)
	}
	return m, err
}

// generationConfig layers the generation config file and the explicit
// settings over the model's defaults.
func generationConfig(cfg generate.Config, opts Options) (generate.Config, error) {
	if opts.GenerationConfig != "" {
		if err := applyGenerationFile(&cfg, opts.GenerationConfig); err != nil {
			return cfg, err
		}
	}
	if opts.NumBeams != nil {
		cfg.NumBeams = *opts.NumBeams
	}
	if opts.MaxNewTokens != nil {
		if *opts.MaxNewTokens < 1 {
			return cfg, fault.Settingsf("--max-new-tokens must be at least 1, got %d", *opts.MaxNewTokens)
		}
		cfg.MaxNewTokens = *opts.MaxNewTokens
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fault.Settingsf("generation settings: %v", err)
	}
	return cfg, nil
}

func applyGenerationFile(cfg *generate.Config, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fault.Mark(fault.Input, err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return fault.Inputf("%s: want a JSON object of generate() arguments: %w", path, err)
	}
	if err := cfg.ApplyJSON(m); err != nil {
		return fault.Inputf("%s: %w", path, err)
	}
	return nil
}

// checkTokenizerMatchesModel refuses a tokenizer that cannot belong to the
// model, which would otherwise decode garbage or index past the logits.
func checkTokenizerMatchesModel(tok *tokenize.Pair, m *ortdecoder.Model, tokPath string) error {
	if m.VocabSize > 0 {
		for _, t := range []*tokenize.Tokenizer{tok.Source, tok.Target} {
			if n := t.VocabSize(); n > m.VocabSize {
				return fault.Settingsf("tokenizer %s has %d ids but the model's logits have only %d: the tokenizer does not belong to this model (pass the model's own --tokenizer)", tokPath, n, m.VocabSize)
			}
		}
	}
	if eos := tok.Target.Special().EOS; eos >= 0 && len(m.Config.EOSTokenIDs) > 0 && int64(eos) != m.Config.EOSTokenIDs[0] {
		return fault.Settingsf("tokenizer %s ends sequences with id %d, the model's generation config with %d: the tokenizer does not belong to this model", tokPath, eos, m.Config.EOSTokenIDs[0])
	}
	if pad := tok.Source.Special().Pad; pad >= 0 && m.Config.PadTokenID != generate.NoToken && int64(pad) != m.Config.PadTokenID {
		return fault.Settingsf("tokenizer %s pads with id %d, the model with %d: the tokenizer does not belong to this model", tokPath, pad, m.Config.PadTokenID)
	}
	return nil
}

type job struct {
	model    *ortdecoder.Model
	tok      *tokenize.Pair
	cfg      generate.Config
	batch    int
	maxSrc   int
	trunc    bool
	warn     func(string)
	inPath   string
	lineOff  int // line number of the shard's first line, minus one
	progress func(done, total int)
}

func (j *job) report(done, total int) {
	if j.progress != nil {
		j.progress(done, total)
	}
}

// run encodes, generates and decodes the sources in batches, in input order.
func (j *job) run(ctx context.Context, lines []string) ([]string, error) {
	j.report(0, len(lines))
	sources, err := j.encode(lines)
	if err != nil {
		return nil, err
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
		j.report(end, len(lines))
	}
	return preds, nil
}

// encode tokenizes the sources, refusing (or with trunc cutting) those
// longer than maxSrc.
func (j *job) encode(lines []string) ([][]int64, error) {
	sources := make([][]int64, len(lines))
	truncated := 0
	for i, line := range lines {
		opt := tokenize.EncodeOptions{}
		if j.trunc && j.maxSrc > 0 {
			opt.MaxLength = j.maxSrc
		}
		ids, err := j.tok.Source.EncodeWith(line, opt)
		if err != nil {
			return nil, fault.Inputf("%s:%d: %w", j.inPath, j.lineOff+i+1, err)
		}
		if j.maxSrc > 0 && !j.trunc {
			if full, _ := j.tok.Source.Encode(line); len(full) > j.maxSrc {
				return nil, fault.Inputf("%s:%d: the source is %d tokens long, the model takes at most %d; shorten it, raise --max-source-length if the model allows, or pass --truncate", j.inPath, j.lineOff+i+1, len(full), j.maxSrc)
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
	if truncated > 0 && j.warn != nil {
		j.warn(fmt.Sprintf("%d of %d sources were longer than %d tokens and were truncated", truncated, len(lines), j.maxSrc))
	}
	return sources, nil
}
