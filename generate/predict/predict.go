package predict

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ortrain/ortrain/generate"
	"github.com/ortrain/ortrain/generate/ortdecoder"
	"github.com/ortrain/ortrain/internal/arch"
	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/data"
	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/lora"
	"github.com/ortrain/ortrain/internal/modelfile"
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
	// Adapter is a PEFT LoRA adapter folder (adapter_config.json,
	// adapter_model.safetensors) to generate with, on the base model of
	// Model (or in the LoRA artifact folder Artifacts, built with the same
	// LoRA config): its branches run beside the base layers, unmerged,
	// unless MergeLoRA.
	Adapter string
	// MergeLoRA merges the adapter into the base weights before generation
	// (PEFT's merge_and_unload: W + scaling·B·A), so that the base model's
	// graphs run, with no adapter branches.
	MergeLoRA bool
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
	Lines [2]int
	// Resumed is how many of those lines an earlier, interrupted run of the
	// same job had predicted (they were kept, not decoded again).
	Resumed int
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
	if o.MergeLoRA && o.Adapter == "" {
		return fault.Settingsf("--merge_lora merges a LoRA adapter into the base model's weights: give --adapter DIR with it")
	}
	if o.Adapter != "" && o.DType != "" && o.DType != "float32" {
		return fault.Settingsf("--adapter generates in float32; drop --dtype %s", o.DType)
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
	if err := onnxrt.CheckThreads("--threads", o.Threads); err != nil {
		return err
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

// Run predicts the selected lines of opts.Input and writes them to
// opts.Output as they come (see output: an interrupted job keeps its lines
// in Output.partial and the same job resumes after them); with references,
// it scores them and writes the report and statistics files. Files are
// read a line at a time, never whole. progress, when not nil, is called
// with done = 0 (or the lines resumed) when decoding starts, after each
// batch with the number of sources done, and last with done == total.
func Run(ctx context.Context, opts Options, progress func(done, total int)) (*Result, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := checkOutputPath(opts); err != nil {
		return nil, err
	}
	shards := max(opts.Shards, 1)
	tokPath := opts.Tokenizer
	if tokPath == "" {
		tokPath = opts.Model + opts.Artifacts // exactly one is set
	}
	scan, err := scanLines(opts.Input, true)
	if err != nil {
		return nil, err
	}
	for _, p := range opts.Refs {
		if err := checkRefLines(p, scan.lines); err != nil {
			return nil, err
		}
	}
	lo, hi := ShardRange(scan.lines, opts.Shard, shards)

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
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	model, cleanup, err := openModel(env, opts)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	defer model.Close()
	base := model.Config
	if base.VocabSize == 0 {
		base.VocabSize = model.VocabSize
	}
	// An unknown model type starts as decoder_start_token_id says; only the
	// architecture table knows of models that start from a label token.
	a, _ := arch.Lookup(model.ModelType)
	forced, first := data.TargetStart(tok, a.DecoderStart == arch.LastLabelToken)
	base.StartTarget(int64(forced), int64(first))
	cfg, err := generationConfig(base, opts)
	if err != nil {
		return nil, err
	}
	if err := checkTokenizerMatchesModel(tok, model, tokPath); err != nil {
		return nil, err
	}
	job := &job{model: model, tok: tok, cfg: cfg, batch: opts.BatchSize, maxSrc: model.MaxSourceLength,
		trunc: opts.Truncate, warn: opts.Warn, inPath: opts.Input, lo: lo, hi: hi, progress: progress}
	if opts.MaxSourceLength != nil {
		job.maxSrc = *opts.MaxSourceLength
	}
	if err := job.fitMemory(cfg.NumBeams, cfg.VocabSize, availableMemory()); err != nil {
		return nil, err
	}
	out, err := openOutput(opts.Output, job.fingerprint(scan, opts, tokPath))
	if err != nil {
		return nil, err
	}
	defer out.close()

	var sc *scorer
	if len(opts.Refs) > 0 {
		if sc, err = newScorer(); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	res := &Result{Lines: [2]int{lo, hi}, Resumed: out.done}
	if err := job.run(ctx, out, opts.Refs, sc); err != nil {
		if ctx.Err() != nil {
			return nil, fault.Mark(fault.Interrupted, fmt.Errorf("interrupted after %d of %d lines; they are kept in %s, and the same command continues from there", out.done, hi-lo, out.partial))
		}
		return nil, err
	}
	res.Elapsed = time.Since(start)
	if err := out.finish(); err != nil {
		return nil, err
	}
	if sc == nil {
		return res, nil
	}
	res.ReportPath = opts.Report
	if res.ReportPath == "" {
		res.ReportPath = opts.Output + ".metrics.json"
	}
	res.Report, err = sc.writeReport(reportRun{
		model: opts.Model + opts.Artifacts, decoder: model.Kind, numBeams: cfg.NumBeams, maxNewTokens: cfg.MaxNewTokens,
		shard: opts.Shard, shards: shards, lo: lo, hi: hi, elapsed: res.Elapsed, decoded: hi - lo - res.Resumed,
		out: opts.Output, reportPath: res.ReportPath,
	})
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

// openModel opens the model to generate with; cleanup removes what it
// made for it (the adapted model), after the model closes.
func openModel(env *onnxrt.Env, opts Options) (m *ortdecoder.Model, cleanup func(), err error) {
	cleanup = func() {}
	dt, err := ortdecoder.ParseDType(opts.DType)
	if err != nil {
		return nil, cleanup, fault.Settingsf("--%v", err)
	}
	o := ortdecoder.Options{Device: opts.Device, IntraOpThreads: opts.Threads, DType: dt}
	switch {
	case opts.Adapter != "":
		dir, err := adaptedModel(opts)
		if err != nil {
			return nil, cleanup, err
		}
		cleanup = func() { os.RemoveAll(dir) }
		m, err := ortdecoder.OpenModel(env, filepath.Join(dir, "model"), ortdecoder.OpenOptions{Options: o, NoCache: opts.NoCache})
		if err != nil {
			cleanup()
		}
		return m, cleanup, err
	case opts.Model != "":
		m, err := ortdecoder.OpenModel(env, opts.Model, ortdecoder.OpenOptions{Options: o, NoCache: opts.NoCache})
		return m, cleanup, err
	}
	m, err = ortdecoder.OpenArtifactModel(env, opts.Artifacts, o)
	if errors.Is(err, fault.Input) {
		err = fault.Mark(fault.Input, err)
	}
	return m, cleanup, err
}

// adaptedModel writes, in a temporary folder (returned; the caller removes
// it), the model that generates with the LoRA adapter, as an exported model
// folder in its "model" sub-folder: the generation graphs of artifacts
// with the adapter applied (built from --model with the adapter, or the
// LoRA --artifacts folder with the adapter's weights), their parameters as
// constants. The adapter branches run beside the base layers, or with
// --merge_lora the adapter is merged into the base weights and the graphs
// have no branches. The source's configs are copied beside them.
func adaptedModel(opts Options) (string, error) {
	dir, err := os.MkdirTemp("", "ortrain-predict-adapter-")
	if err != nil {
		return "", err
	}
	fail := func(err error) (string, error) {
		os.RemoveAll(dir)
		return "", err
	}
	model := filepath.Join(dir, "model")
	if err := os.Mkdir(model, 0o755); err != nil {
		return fail(err)
	}
	if opts.Model != "" {
		bc, err := artifacts.FolderConfig(opts.Model)
		if err != nil {
			return fail(err)
		}
		built := filepath.Join(dir, "artifacts")
		bc.Out, bc.Adapter, bc.RequireArchitecture = built, opts.Adapter, false
		if _, err := artifacts.Build(bc); err != nil {
			return fail(fmt.Errorf("--adapter %s on --model %s: %w", opts.Adapter, opts.Model, err))
		}
		if err := artifacts.WriteInference(built, model, artifacts.InferenceOptions{MergeLoRA: opts.MergeLoRA}); err != nil {
			return fail(err)
		}
		if err := copyConfigs(opts.Model, model); err != nil {
			return fail(err)
		}
		os.RemoveAll(built) // the training graphs are not needed
		return dir, nil
	}
	src := opts.Artifacts
	man, err := artifacts.ReadManifest(src)
	if err != nil {
		return fail(err)
	}
	if man.LoRA == nil {
		return fail(fault.Settingsf("--artifacts %s was built without LoRA, so it cannot take --adapter: use --model BASE --adapter %s (the exported base model), or build LoRA artifacts with ortrain artifacts --model BASE --adapter %s", src, opts.Adapter, opts.Adapter))
	}
	ac, _, err := lora.ReadConfig(opts.Adapter)
	if err != nil {
		return fail(err)
	}
	if !man.LoRA.Config.Equal(ac) {
		return fail(fault.Settingsf("--adapter %s holds an adapter with %s, but --artifacts %s was built for one with %s: use --model BASE --adapter %s, or rebuild the artifacts with ortrain artifacts --model BASE --adapter %s", opts.Adapter, ac, src, man.LoRA.Config, opts.Adapter, opts.Adapter))
	}
	vals, err := man.LoRA.ReadWeights(opts.Adapter)
	if err != nil {
		return fail(err)
	}
	if err := artifacts.WriteInference(src, model, artifacts.InferenceOptions{Adapter: vals, MergeLoRA: opts.MergeLoRA}); err != nil {
		return fail(err)
	}
	if err := copyConfigs(src, model); err != nil {
		return fail(err)
	}
	if err := configsFromManifest(man, model); err != nil {
		return fail(err)
	}
	return dir, nil
}

// configsFromManifest writes, where an artifact folder had no configs
// beside it, what its manifest knows of them: the model type and the
// special token ids, as config.json and generation_config.json.
func configsFromManifest(man *artifacts.Manifest, dir string) error {
	for _, f := range []string{"config.json", "generation_config.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return nil
		}
	}
	for _, f := range []struct {
		name string
		v    any
	}{{"config.json", map[string]any{"model_type": man.ModelType}}, {"generation_config.json", man.SpecialTokens}} {
		b, err := json.Marshal(f.v)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, f.name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// copyConfigs copies the model's configs that generation reads from the
// folder from to the folder to.
func copyConfigs(from, to string) error {
	for _, f := range []string{"config.json", "generation_config.json", "tokenizer_config.json"} {
		b, err := modelfile.ReadIn(from, f, 16<<20)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(to, f), b, 0o644)
		}
		if err != nil {
			return err
		}
	}
	return nil
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
	data, err := modelfile.ReadFile(path, 16<<20)
	if err != nil {
		return err
	}
	m, err := generate.ParseJSONObject(path, data)
	if err != nil {
		return fault.Inputf("want a JSON object of generate() arguments: %w", err)
	}
	if err := cfg.ApplyJSON(m); err != nil {
		return fault.Inputf("%s: %w", path, err)
	}
	if err := cfg.CheckValues(); err != nil {
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
	lo, hi   int // the shard's lines, [lo, hi) 0-based
	progress func(done, total int)
}

func (j *job) report(done, total int) {
	if j.progress != nil {
		j.progress(done, total)
	}
}

// checkOutputPath refuses an output that would overwrite an input: the
// input or a reference file, or a model file (a predictions file may live
// in the model folder, not under a model file's name).
func checkOutputPath(opts Options) error {
	inputs := map[string]string{"--input": opts.Input, "--generation-config": opts.GenerationConfig}
	for i, r := range opts.Refs {
		inputs[fmt.Sprintf("--refs #%d", i+1)] = r
	}
	if err := modelfile.CheckOutput("--output", opts.Output, inputs); err != nil {
		return err
	}
	for _, dir := range []string{opts.Model, opts.Artifacts} {
		if dir == "" || !modelfile.SamePath(filepath.Dir(opts.Output), dir) {
			continue
		}
		switch filepath.Ext(opts.Output) {
		case ".onnx", ".safetensors", ".json", ".spm", ".model", ".data", ".bin":
			return fault.Settingsf("--output %s would overwrite a file of the model folder %s; write the predictions elsewhere", opts.Output, dir)
		}
	}
	return nil
}

// fitMemory bounds what a decoding step holds by the memory available
// (avail bytes; 0: unknown): every beam of every source of a batch is a row
// of vocab float32 scores, in ONNX Runtime's logits and again in Go. The
// batch shrinks until it fits in half of it (predictions do not depend on
// the batch); beams that do not fit for one source are refused.
func (j *job) fitMemory(beams, vocab int, avail int64) error {
	perSource := int64(beams) * int64(vocab) * 4 * 2
	if avail <= 0 || perSource <= 0 {
		return nil
	}
	budget := avail / 2
	if perSource > budget {
		return fault.Settingsf("%d beams over a vocabulary of %d need about %d MB per source for the decoder's scores, more than half of the %d MB this machine has available; use fewer beams",
			beams, vocab, perSource>>20, avail>>20)
	}
	if fit := budget / perSource; int64(j.batch) > fit {
		if j.warn != nil {
			j.warn(fmt.Sprintf("batch size lowered from %d to %d so that %d beams over a vocabulary of %d fit in memory", j.batch, fit, beams, vocab))
		}
		j.batch = int(fit)
	}
	return nil
}

// availableMemory is MemAvailable of /proc/meminfo in bytes (0 when
// unknown).
func availableMemory() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
					return kb << 10
				}
			}
		}
	}
	return 0
}

// fingerprint names the job, for resuming its partial output: the input's
// content and the shard, the model, the tokenizer and every setting that
// changes a prediction.
func (j *job) fingerprint(scan lineScan, opts Options, tokPath string) string {
	h := sha256.New()
	model, _ := filepath.Abs(opts.Model + opts.Artifacts)
	if opts.Adapter != "" {
		a, _ := filepath.Abs(opts.Adapter)
		model += "\x00adapter " + a
		if opts.MergeLoRA {
			model += " merged"
		}
	}
	fmt.Fprintf(h, "ortrain-predict-v1\x00%x\x00%d %d\x00%s\x00%s\x00%s\x00%+v\x00%d %v %v",
		scan.hash, j.lo, j.hi, model, j.tok.Fingerprint(), tokPath, j.cfg, j.maxSrc, j.trunc, opts.NoCache)
	return hex.EncodeToString(h.Sum(nil))
}

// run decodes the shard's lines in batches, in input order, reading them a
// batch at a time, writing each batch's predictions as it is done, and
// scoring them (sc, when not nil) against the references read alongside.
func (j *job) run(ctx context.Context, out *output, refPaths []string, sc *scorer) error {
	total := j.hi - j.lo
	in, err := openLines(j.inPath)
	if err != nil {
		return err
	}
	defer in.Close()
	var refs []*lineReader
	for _, p := range refPaths {
		r, err := openLines(p)
		if err != nil {
			return err
		}
		defer r.Close()
		if err := r.skip(j.lo); err != nil {
			return err
		}
		refs = append(refs, r)
	}
	nextRefs := func() ([]string, error) {
		var rs []string
		for _, r := range refs {
			s, ok, err := r.text()
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, errLinesChanged(r.path)
			}
			rs = append(rs, s)
		}
		return rs, nil
	}
	if sc != nil {
		// the lines an interrupted run of this job finished
		if err := out.readDone(func(i int, pred string) error {
			rs, err := nextRefs()
			if err != nil {
				return err
			}
			return sc.add(j.lo+i+1, pred, rs)
		}); err != nil {
			return err
		}
	}
	if err := in.skip(j.lo + out.done); err != nil {
		return err
	}
	j.report(out.done, total)
	resumed, truncated := out.done, 0
	sources := make([][]int64, 0, j.batch)
	for done := out.done; done < total; {
		n := min(j.batch, total-done)
		sources = sources[:0]
		for k := 0; k < n; k++ {
			src, cut, err := j.encode(in, j.lo+done+k+1)
			if err != nil {
				return err
			}
			if cut {
				truncated++
			}
			sources = append(sources, src)
		}
		outSeqs, err := generate.Generate(ctx, j.model, sources, j.cfg)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("%s lines %d-%d: %w", j.inPath, j.lo+done+1, j.lo+done+n, err)
		}
		preds := make([]string, 0, n)
		nrs := len(outSeqs.Sequences) / n
		for r := 0; r < len(outSeqs.Sequences); r += nrs { // the best sequence of each source
			seq := outSeqs.Trimmed(r)
			ids := make([]int, len(seq))
			for k, id := range seq {
				ids[k] = int(id)
			}
			preds = append(preds, oneLine(j.tok.Target.Decode(ids, true)))
		}
		if err := out.write(preds); err != nil {
			return err
		}
		if sc != nil {
			for k, p := range preds {
				rs, err := nextRefs()
				if err != nil {
					return err
				}
				if err := sc.add(j.lo+done+k+1, p, rs); err != nil {
					return err
				}
			}
		}
		done += n
		j.report(done, total)
	}
	if truncated > 0 && j.warn != nil {
		j.warn(fmt.Sprintf("%d of %d sources were longer than %d tokens and were truncated", truncated, total-resumed, j.maxSrc))
	}
	return nil
}

// encode reads and tokenizes the next source (line is its 1-based number),
// refusing (or with trunc cutting) one longer than maxSrc tokens. With a
// limit, no more of the line is kept than the tokens kept can come from
// (tokenize.CutText), so a huge line costs no more than a short one.
func (j *job) encode(in *lineReader, line int) ([]int64, bool, error) {
	limit := 0
	if j.maxSrc > 0 {
		limit = tokenize.TextBound(j.maxSrc) + 1
	}
	raw, longer, ok, err := in.next(limit, nil)
	if err != nil {
		return nil, false, err
	}
	if !ok {
		return nil, false, errLinesChanged(j.inPath)
	}
	text := string(raw)
	opt := tokenize.EncodeOptions{MaxLength: j.maxSrc}
	if !j.trunc && !longer {
		opt.MaxLength = 0 // the whole line, to say how long it is
	}
	ids, cut, err := j.tok.Source.EncodeTruncating(text, opt)
	if err != nil {
		return nil, false, fault.Inputf("%s:%d: %w", j.inPath, line, err)
	}
	if !j.trunc {
		const fix = "shorten it, raise --max-source-length if the model allows, or pass --truncate"
		if longer {
			return nil, false, fault.Inputf("%s:%d: the source is far longer than the %d tokens the model takes at most (%d bytes and more); %s", j.inPath, line, j.maxSrc, len(raw), fix)
		}
		if j.maxSrc > 0 && len(ids) > j.maxSrc {
			return nil, false, fault.Inputf("%s:%d: the source is %d tokens long, the model takes at most %d; %s", j.inPath, line, len(ids), j.maxSrc, fix)
		}
	}
	cut = cut || longer
	src := make([]int64, len(ids))
	for k, id := range ids {
		src[k] = int64(id)
	}
	return src, cut, nil
}
