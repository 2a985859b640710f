package engine

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/ortrain/ortrain/generate"
	"github.com/ortrain/ortrain/generate/ortdecoder"
	"github.com/ortrain/ortrain/internal/arch"
	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/collective"
	"github.com/ortrain/ortrain/internal/collective/nccl"
	"github.com/ortrain/ortrain/internal/data"
	"github.com/ortrain/ortrain/internal/demo"
	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/lora"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/ortimport"
	"github.com/ortrain/ortrain/ortrain"
	"github.com/ortrain/ortrain/tokenize"
)

// Runtime is a loaded ONNX Runtime library; one per process.
type Runtime = onnxrt.Env

// OpenRuntime loads ONNX Runtime from lib, else $ORTRAIN_ORT_LIB, else the
// user cache that scripts/fetch-onnxruntime.sh fills.
func OpenRuntime(lib string) (*Runtime, error) { return onnxrt.Open(lib) }

// DataFormat says how to read the data files: JSONL translation records
// (SourceLang, TargetLang) or flat fields and columns (SourceField,
// TargetField) of JSONL, CSV, TSV, Parquet and Arrow files, or parallel
// text files named by the languages.
type DataFormat = data.Format

// Config says what to train on besides the TrainingArguments.
type Config struct {
	Args TrainingArgs
	// Comm, with several processes, makes this process one of a
	// data-parallel job (mpirun): its share of the data, gradients
	// averaged over the processes, process 0 building the artifacts and
	// writing the output. nil is one process.
	Comm collective.Comm
	// Model is an exported model folder (model.onnx, or Optimum's export:
	// encoder_model.onnx with decoder_model.onnx, decoder_with_past_model.onnx
	// or decoder_model_merged.onnx; model.safetensors where there is one;
	// config.json, tokenizer); artifacts are built from it into
	// output_dir/artifacts. Artifacts instead names a prebuilt folder.
	Model, Artifacts string
	// ParamNames names initializers of the model's graphs by hand (ONNX
	// name -> the model's tensor name), for those ortrain cannot identify.
	ParamNames map[string]string
	Tokenizer  string // default: the model folder
	// Data files (JSONL, CSV, TSV, Parquet, save_to_disk folders, parallel
	// text), read as HF's run_translation does.
	TrainFile, ValidationFile, TestFile string
	Format                              DataFormat
	SourcePrefix                        string
	MaxSourceLength, MaxTargetLength    int
	// The HF example scripts' data arguments (run_translation.py,
	// run_summarization.py): the first that many examples of each file
	// (0: all); the target length of evaluation and prediction data
	// (val_max_target_length; 0: MaxTargetLength); every batch padded to
	// the length limits (pad_to_max_length); padded label positions
	// counted by the loss as pad tokens (ignore_pad_token_for_loss false).
	MaxTrainSamples, MaxEvalSamples, MaxPredictSamples int
	ValMaxTargetLength                                 int
	PadToMaxLength                                     bool
	CountPadInLoss                                     bool
	GroupByLength                                      bool
	RougeUseStemmer                                    bool
	// AssumeArchitecture trains the model as the transformers model type it
	// names would train (internal/arch), whatever config.json says.
	AssumeArchitecture string
	// LoRA trains LoRA adapters (PEFT's LoraConfig) instead of the
	// model's weights; its Seed (the initial lora_A draws) defaults to
	// Args.Seed. Adapter starts them from a PEFT adapter folder (its
	// config, unless LoRA is also set and then must agree).
	LoRA    *lora.Config
	Adapter string
	// NCCL configures the NCCL library that averages gradients in GPU
	// memory when several processes train on CUDA; nil: libnccl.so.2 or
	// $ORTRAIN_NCCL_LIB. When set, or when $ORTRAIN_NCCL_LIB is, the
	// stand-in device uses NCCL too (tests with the stand-in NCCL of
	// internal/testenv).
	NCCL *nccl.Options
	// NoCPUArena allocates CPU tensors without the shared arena
	// (onnxrt.SessionOptions): slower, and no less memory for training.
	NoCPUArena bool
	Version    string // recorded in artifacts
	Warn       io.Writer
}

// TrainingArgs is ortrain.TrainingArguments (an alias, to keep Config short).
type TrainingArgs = ortrain.TrainingArguments

// Session is a prepared trainer with what it owns.
type Session struct {
	Trainer  *ortrain.Trainer
	Test     ortrain.EvalData
	Decode   func([]int) string
	engine   *Engine
	gen      *Generator
	nccl     *nccl.Comm
	Manifest *artifacts.Manifest
}

// Close releases ONNX Runtime sessions and the NCCL communicator.
func (s *Session) Close() error {
	if s.gen != nil {
		s.gen.Close()
	}
	var err error
	if s.engine != nil {
		err = s.engine.Close()
	}
	if s.nccl != nil {
		err = errors.Join(err, s.nccl.Close())
		s.nccl = nil
	}
	return err
}

// gradientComm opens the NCCL communicator that averages gradients in
// GPU memory when several processes train on CUDA, as Horovod and DDP do;
// nil means the host path (the CPU, one process, or $ORTRAIN_NCCL_LIB=none:
// an all-reduce over MPI through host memory). NCCL that cannot be loaded
// is an error, not a silent fallback: the host path copies every gradient
// to the host and back at each optimizer step.
func gradientComm(world collective.Comm, device string, opts *nccl.Options) (*nccl.Comm, error) {
	if world.Size() == 1 || nccl.Disabled() {
		return nil, nil
	}
	dev, err := onnxrt.ParseDevice(device)
	if err != nil {
		return nil, err
	}
	// The stand-in device takes NCCL only when told which library (tests
	// with the stand-in NCCL).
	standIn := dev == onnxrt.StandIn && (opts != nil || os.Getenv(onnxrt.NCCLLibEnvVar) != "")
	if dev.Kind != "cuda" && !standIn {
		return nil, nil
	}
	var o nccl.Options
	if opts != nil {
		o = *opts
	}
	c, err := nccl.Open(world, dev, o)
	if err != nil {
		return nil, fmt.Errorf("averaging gradients in GPU memory over %d processes: %w (or set $%s=%s to average them through host memory over MPI)",
			world.Size(), err, onnxrt.NCCLLibEnvVar, nccl.Off)
	}
	return c, nil
}

// lossScalingFor is HF's gradient-accumulation rule for the model, from
// the architecture table (internal/arch) as recorded in the manifest: a
// forward with loss kwargs whose loss ignores num_items_in_batch sums the
// micro-batch means (ortrain.LossScalingHF), one whose loss divides by it
// weighs micro-batches by their label tokens, and a model without loss
// kwargs — ortrain's own demo, or a folder without config.json — divides
// each micro-batch loss by the micro-batches in its window.
func lossScalingFor(man *artifacts.Manifest) ortrain.LossScaling {
	a := man.ArchitectureOf()
	if a == nil {
		return ortrain.LossScalingMean
	}
	switch a.GradientAccumulation {
	case arch.SumOfMeans:
		return ortrain.LossScalingHF
	case arch.TokenWeighted:
		return ortrain.LossScalingTokens
	}
	return ortrain.LossScalingMean
}

// withLanguages gives a multilingual tokenizer (mBART, mBART-50, M2M100,
// NLLB) its source and target language codes, as run_translation sets
// tokenizer.src_lang and tgt_lang from --source_lang and --target_lang;
// without both it stops, as run_translation does. Other tokenizers are
// returned as they are (the languages only select translation records).
func withLanguages(tok *tokenize.Pair, tokPath string, f data.Format) (*tokenize.Pair, error) {
	l := tok.Languages()
	if l == nil {
		return tok, nil
	}
	out, err := tok.WithLanguages(f.SourceLang, f.TargetLang)
	if err != nil && (f.SourceLang == "" || f.TargetLang == "") {
		return nil, fmt.Errorf("%s: give --source_lang and --target_lang: %w", tokPath, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: --source_lang %q --target_lang %q: %w", tokPath, f.SourceLang, f.TargetLang, err)
	}
	return out, nil
}

// collatorFor is HF's DataCollatorForSeq2Seq for the model: decoder inputs
// start with the architecture's start token, or with the last label token
// (mBART, PLBart, FSMT); for FSMT the labels are padded with pad and the
// decoder masks pad positions, as HF's collator and model then do.
func collatorFor(man *artifacts.Manifest, pad int) data.Collator {
	col := data.Collator{PadID: pad, DecoderStartID: man.DecoderStartID(pad)}
	if a := man.ArchitectureOf(); a != nil {
		col.StartFromLastLabel = a.DecoderStart == arch.LastLabelToken
		col.PadLabelsWithPad = a.LabelsPaddedWithPad
		col.MaskPadDecoderInputs = a.DecoderMasksPad
	}
	return col
}

// datasetFingerprint hashes the token ids of every example, for comparing
// the processes' copies of a data file.
func datasetFingerprint(d *data.Dataset) []byte {
	h := sha256.New()
	var buf []byte
	put := func(ids []int32) {
		buf = binary.LittleEndian.AppendUint32(buf[:0], uint32(len(ids)))
		for _, id := range ids {
			buf = binary.LittleEndian.AppendUint32(buf, uint32(id))
		}
		h.Write(buf)
	}
	for i := range d.Source {
		put(d.Source[i])
		if i < len(d.Labels) {
			put(d.Labels[i])
		} else {
			put(nil)
		}
	}
	return h.Sum(nil)
}

// artifactsOptimizer maps TrainingArguments.optim to the artifact
// folder's optimizer graph.
func artifactsOptimizer(optim string) string {
	switch optim {
	case ortrain.OptimAdamWHF, ortrain.OptimSGD, ortrain.OptimAdafactor:
		return optim
	}
	return "adamw" // adamw_torch and adamw_torch_fused: torch.optim.AdamW
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Prepare loads the tokenizer and data, builds (or opens) the artifacts and
// wires engine, generator and metrics into a Trainer.
func Prepare(ctx context.Context, env *Runtime, cfg Config) (*Session, error) {
	a := cfg.Args
	if cfg.Model == "" && cfg.Artifacts == "" {
		return nil, errors.New("give a model folder (--model) or an artifact folder (--artifacts)")
	}
	tokPath := cfg.Tokenizer
	if tokPath == "" {
		tokPath = cfg.Model
		if tokPath == "" {
			tokPath = cfg.Artifacts
		}
	}
	tok, err := tokenize.Load(tokPath)
	if err != nil {
		return nil, err
	}
	if tok, err = withLanguages(tok, tokPath, cfg.Format); err != nil {
		return nil, err
	}

	prec, err := precisionsFor(a)
	if err != nil {
		return nil, err
	}
	artDir := cfg.Artifacts
	var man *artifacts.Manifest
	world := cfg.Comm
	if world == nil {
		world = collective.Single{}
	}
	if artDir == "" && world.Rank() != 0 {
		// Process 0 builds output_dir/artifacts; the others read them.
		if err := world.Barrier(); err != nil {
			return nil, err
		}
		artDir = filepath.Join(a.OutputDir, "artifacts")
		if man, err = artifacts.ReadManifest(artDir); err != nil {
			return nil, fmt.Errorf("reading the artifacts process 0 built (output_dir must be a folder every process sees): %w", err)
		}
	} else if artDir == "" {
		artDir = filepath.Join(a.OutputDir, "artifacts")
		m, err := artifacts.ReadManifest(artDir)
		if err == nil && a.ResumeFromCheckpoint != "" && m.LabelSmoothing == a.LabelSmoothingFactor && prec.in(m) == nil && sameLoRA(m, cfg) && (m.GradientCheckpointing != nil) == (a.ActivationCheckpointing || a.GradientCheckpointing) {
			man = m // resuming: keep the artifacts the checkpoints were made with
		} else {
			bc, err := artifacts.FolderConfig(cfg.Model)
			if err != nil {
				return nil, err
			}
			bc.Out, bc.LabelSmoothing, bc.Version, bc.ParamNames = artDir, a.LabelSmoothingFactor, cfg.Version, cfg.ParamNames
			bc.AssumeArchitecture, bc.RequireArchitecture = cfg.AssumeArchitecture, true
			bc.Precisions = prec.list()
			bc.Adapter = cfg.Adapter
			bc.GradientCheckpointing = a.ActivationCheckpointing || a.GradientCheckpointing
			if cfg.LoRA != nil {
				c := *cfg.LoRA
				if c.Seed == 0 {
					c.Seed = uint64(a.Seed)
				}
				bc.LoRA = &c
			}
			// Build makes artDir once the model is accepted, so that a refused
			// model leaves output_dir as it was.
			if man, err = artifacts.Build(bc); err != nil {
				return nil, err
			}
		}
		if world.Size() > 1 {
			if err := world.Barrier(); err != nil {
				return nil, err
			}
		}
	} else if man, err = artifacts.ReadManifest(artDir); err != nil {
		return nil, err
	} else if man.LabelSmoothing != a.LabelSmoothingFactor {
		return nil, fmt.Errorf("%s was built with label smoothing %v but label_smoothing_factor is %v; rebuild the artifacts or drop --artifacts", artDir, man.LabelSmoothing, a.LabelSmoothingFactor)
	} else if ckpt := a.ActivationCheckpointing || a.GradientCheckpointing; (man.GradientCheckpointing != nil) != ckpt {
		return nil, fault.Settingsf("%s was built %s gradient checkpointing but activation_checkpointing is %v; rebuild the artifacts (ortrain artifacts --gradient_checkpointing) or drop --artifacts", artDir, map[bool]string{true: "with", false: "without"}[man.GradientCheckpointing != nil], ckpt)
	} else if (cfg.LoRA != nil || cfg.Adapter != "") && !sameLoRA(man, cfg) {
		return nil, fault.Settingsf("%s was built %s; rebuild the artifacts with the same LoRA settings or drop --artifacts", artDir, describeLoRA(man))
	} else if err := prec.in(man); err != nil {
		return nil, fmt.Errorf("%s: %w: rebuild the artifacts with the same precision flags (ortrain artifacts --fp16, --bf16, --fp16_full_eval, --bf16_full_eval, --device) or drop --artifacts", artDir, err)
	} else if cfg.AssumeArchitecture != "" {
		ar, err := arch.Resolve(man.ModelType, nil, cfg.AssumeArchitecture)
		if err != nil {
			return nil, err
		}
		man.Architecture = artifacts.ArchitectureRecord(ar)
	}
	if ar := man.ArchitectureOf(); ar != nil && cfg.Warn != nil {
		if ar.AssumedFor != "" {
			fmt.Fprintf(cfg.Warn, "note: training model_type %s as %s (%s): %s gradient accumulation, decoder start %s\n",
				ar.AssumedFor, ar.ModelType, arch.AssumeFlag, ar.GradientAccumulation, ar.DecoderStart)
		}
		for _, d := range ar.Differences {
			fmt.Fprintf(cfg.Warn, "warning: %s\n", d)
		}
	}

	tf32 := a.TF32 != nil && *a.TF32
	so := onnxrt.SessionOptions{Device: a.Device, IntraOpThreads: a.Threads, NoCPUArena: cfg.NoCPUArena, TF32: tf32}
	eng, err := Open(artDir, env, Options{Session: so, Optimizer: artifactsOptimizer(a.Optim), ModelDir: cfg.Model, Hyper: Hyper{
		Beta1: a.AdamBeta1, Beta2: a.AdamBeta2, Eps: a.AdamEpsilon, WeightDecay: a.WeightDecay, MaxGradNorm: a.MaxGradNorm},
		Variant: prec.mixedName(), HalfEvalVariant: prec.halfName(), Scaler: prec.scaler, Comm: cfg.Comm})
	if err != nil {
		return nil, err
	}
	// A folder imported from ONNX Runtime's training artifacts carries the
	// optimizer's moments and step, so training continues where it stopped
	// (when resuming, the checkpoint's state replaces them later).
	if cfg.Artifacts != "" && a.ResumeFromCheckpoint == "" {
		if p := filepath.Join(artDir, ortimport.OptimizerStateFile); exists(p) {
			if err := eng.LoadOptimizerState(p); err != nil {
				eng.Close()
				return nil, err
			}
		}
	}
	// An adapter given with prebuilt artifacts starts the adapters it trains.
	if cfg.Artifacts != "" && cfg.Adapter != "" && a.ResumeFromCheckpoint == "" {
		if err := eng.LoadAdapter(cfg.Adapter); err != nil {
			eng.Close()
			return nil, err
		}
	}
	var gc *nccl.Comm
	if a.DoTrain {
		if gc, err = gradientComm(world, a.Device, cfg.NCCL); err != nil {
			eng.Close()
			return nil, err
		}
		if gc != nil {
			eng.opts.DeviceComm = gc
		}
	}
	s := &Session{engine: eng, Manifest: man, nccl: gc}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	pad := tok.Target.Special().Pad
	if pad < 0 {
		pad = 0
	}
	col := collatorFor(man, pad)
	if cfg.CountPadInLoss {
		col.PadLabelsWithPad = true // label_pad_token_id = pad_token_id
	}
	valTarget := cfg.MaxTargetLength
	if cfg.ValMaxTargetLength > 0 {
		valTarget = cfg.ValMaxTargetLength
	}
	evalCol := col
	if cfg.PadToMaxLength {
		if cfg.MaxSourceLength <= 0 || cfg.MaxTargetLength <= 0 {
			return nil, fault.Settingsf("pad_to_max_length pads to max_source_length and max_target_length: set both")
		}
		col.SourceLen, col.TargetLen = cfg.MaxSourceLength, cfg.MaxTargetLength
		evalCol.SourceLen, evalCol.TargetLen = cfg.MaxSourceLength, valTarget
	}
	load := func(path string, allowEmpty bool, maxTarget, maxExamples int) (*data.Dataset, error) {
		opt := data.Options{SourcePrefix: cfg.SourcePrefix, MaxSourceLength: cfg.MaxSourceLength, MaxTargetLength: maxTarget, MaxExamples: maxExamples}
		f := cfg.Format
		f.AllowEmptyTarget = allowEmpty
		if kind, _ := f.KindOf(path); (kind == "csv" || kind == "tsv") && tok.Languages() != nil {
			// Columns of CSV/TSV files: the languages are the tokenizer's
			// only (JSONL, Parquet and Arrow files have translation
			// records; parallel text files are named by them).
			f.SourceLang, f.TargetLang = "", ""
		}
		d, err := data.Load(ctx, path, f, tok, opt)
		if err == nil && world.Size() > 1 {
			// Each process reads its own copy (on its own host, maybe):
			// they must hold the same examples.
			err = collective.CheckSame(world, "tokenized "+path, datasetFingerprint(d))
		}
		return d, err
	}
	seed := uint64(a.Seed)
	if a.DataSeed != nil {
		seed = uint64(*a.DataSeed)
	}
	tr := &ortrain.Trainer{Args: a, Warn: cfg.Warn, LossScaling: lossScalingFor(man), Comm: cfg.Comm}
	rank, ranks := world.Rank(), world.Size()
	if a.DoTrain {
		if cfg.TrainFile == "" {
			return nil, errors.New("do_train needs a training file (--train_file)")
		}
		d, err := load(cfg.TrainFile, false, cfg.MaxTargetLength, cfg.MaxTrainSamples)
		if err != nil {
			return nil, err
		}
		tr.TrainData = &Data{Dataset: d, Collate: col,
			Order: data.Order{BatchSize: a.PerDeviceTrainBatchSize, Shuffle: true, Seed: seed, GroupByLength: cfg.GroupByLength, Rank: rank, Ranks: ranks}}
	}
	if cfg.ValidationFile != "" {
		d, err := load(cfg.ValidationFile, false, valTarget, cfg.MaxEvalSamples)
		if err != nil {
			return nil, err
		}
		tr.EvalData = &Data{Dataset: d, Collate: evalCol, Order: data.Order{BatchSize: a.PerDeviceEvalBatchSize, Rank: rank, Ranks: ranks}}
	}
	if cfg.TestFile != "" && a.DoPredict {
		d, err := load(cfg.TestFile, false, valTarget, cfg.MaxPredictSamples)
		if err != nil {
			return nil, err
		}
		s.Test = &Data{Dataset: d, Collate: evalCol, Order: data.Order{BatchSize: a.PerDeviceEvalBatchSize, Rank: rank, Ranks: ranks}}
	}
	modelDir := cfg.Model

	tr.Engine = eng
	s.Decode = func(ids []int) string { return tok.Target.Decode(ids, true) }
	if a.PredictWithGenerate {
		genCfg := generate.DefaultConfig()
		if modelDir != "" {
			if genCfg, err = generate.LoadConfig(modelDir); err != nil {
				return nil, err
			}
		} else if m, err := ortdecoder.OpenArtifactModel(env, artDir, ortdecoder.Options{Device: a.Device}); err == nil {
			genCfg = m.Config
			m.Close()
		}
		forced, start := data.TargetStart(tok, col.StartFromLastLabel)
		genCfg.StartTarget(int64(forced), int64(start))
		g := &Generator{Env: env, Dir: artDir, Engine: eng, Config: genCfg, Opts: ortdecoder.Options{Device: a.Device, IntraOpThreads: a.Threads, TF32: tf32}}
		if man.Files.DecoderWithPast == "" {
			if modelDir == "" && man.Files.Forward == "" {
				return nil, fmt.Errorf("%s has no KV-cache generation graphs; give --model so that ortrain can generate with the full graph", artDir)
			}
			if man.Files.Forward != "" {
				g.RecomputeGraph = filepath.Join(artDir, man.Files.Forward)
			} else {
				g.RecomputeGraph = filepath.Join(artDir, "generate_recompute.onnx")
				if err := WriteRecomputeGraph(filepath.Join(modelDir, "model.onnx"), man, g.RecomputeGraph); err != nil {
					return nil, err
				}
			}
		}
		s.gen = g
		tr.Generator = g
		tr.ComputeMetrics = ortrain.TextMetrics(s.Decode, pad, cfg.RougeUseStemmer)
		tr.MetricNames = ortrain.TextMetricNames
	}
	s.Trainer = tr
	ok = true
	return s, nil
}

// DemoConfig writes the embedded demo (a small transformer and a synthetic
// SVO-to-SOV translation task, internal/demo) into dir/model and returns a
// Config that trains it with the seed settings scaled down: steps-based
// evaluation and saving at the same interval, save_total_limit 3, the best
// model by eval_loss loaded at the end, logging every few steps,
// predict_with_generate with BLEU and ROUGE, gradient accumulation 2.
func DemoConfig(dir string, args ortrain.TrainingArguments) (Config, error) {
	modelDir := filepath.Join(dir, "model")
	if _, _, err := demo.WriteFolder(modelDir, 1); err != nil {
		return Config{}, err
	}
	return Config{
		Args: args, Model: modelDir,
		TrainFile:      filepath.Join(modelDir, demo.TrainFile),
		ValidationFile: filepath.Join(modelDir, demo.DevFile),
		TestFile:       filepath.Join(modelDir, demo.TestFile),
		Format:         data.Format{SourceLang: demo.SourceLang, TargetLang: demo.TargetLang},
	}, nil
}

// DemoArguments are the demo's TrainingArguments (flags may override them).
func DemoArguments(outputDir string) ortrain.TrainingArguments {
	a := ortrain.DefaultArguments()
	a.OutputDir = outputDir
	a.OverwriteOutputDir = true
	a.DoTrain, a.DoEval, a.DoPredict = true, true, true
	a.NumTrainEpochs = 3 // 189 optimizer steps
	a.PerDeviceTrainBatchSize = 32
	a.PerDeviceEvalBatchSize = 50
	a.GradientAccumulationSteps = 2
	a.LearningRate = 1e-3
	a.WeightDecay = 0.01
	a.WarmupSteps = 0.1
	a.LoggingSteps = 5
	a.EvalStrategy = ortrain.StrategySteps
	es := 20.0
	a.EvalSteps = &es
	a.EvalOnStart = true // the curves start from the untrained model
	a.SaveSteps = 20
	lim := 3
	a.SaveTotalLimit = &lim
	a.LoadBestModelAtEnd = true
	m := "eval_loss"
	a.MetricForBestModel = &m
	a.PredictWithGenerate = true
	ml := 32
	a.GenerationMaxLength = &ml
	a.ReportTo = []string{"jsonl"}
	a.Seed = 42
	return a
}
