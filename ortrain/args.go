package ortrain

import (
	"fmt"
	"math"
	"strings"

	"github.com/ortrain/ortrain/internal/fault"
)

// Optimizers (TrainingArguments.optim).
const (
	OptimAdamWTorch = "adamw_torch"
	OptimAdamWHF    = "adamw_hf"
	OptimSGD        = "sgd"
	OptimAdafactor  = "adafactor"
)

// HFVersion is the transformers release whose Trainer semantics this package
// reproduces (the reference JSON files record it too).
const HFVersion = "5.24.0"

// Strategy names, as in transformers.trainer_utils.IntervalStrategy/SaveStrategy.
const (
	StrategyNo    = "no"
	StrategySteps = "steps"
	StrategyEpoch = "epoch"
	StrategyBest  = "best" // save_strategy only
)

// TrainingArguments holds Seq2SeqTrainingArguments under their Hugging Face
// names (the json tags are the names used by flags and config files) plus a
// few ortrain-only fields (early stopping, device, threads). Optional values
// that HF defaults to None are pointers.
type TrainingArguments struct {
	OutputDir          string `json:"output_dir"`
	OverwriteOutputDir bool   `json:"overwrite_output_dir"`
	DoTrain            bool   `json:"do_train"`
	DoEval             bool   `json:"do_eval"`
	DoPredict          bool   `json:"do_predict"`

	NumTrainEpochs            float64 `json:"num_train_epochs"`
	MaxSteps                  int     `json:"max_steps"`
	PerDeviceTrainBatchSize   int     `json:"per_device_train_batch_size"`
	PerDeviceEvalBatchSize    int     `json:"per_device_eval_batch_size"`
	GradientAccumulationSteps int     `json:"gradient_accumulation_steps"`

	LearningRate float64 `json:"learning_rate"`
	WeightDecay  float64 `json:"weight_decay"`
	AdamBeta1    float64 `json:"adam_beta1"`
	AdamBeta2    float64 `json:"adam_beta2"`
	AdamEpsilon  float64 `json:"adam_epsilon"`
	MaxGradNorm  float64 `json:"max_grad_norm"`
	// Optim: adamw_torch (torch.optim.AdamW; adamw_torch_fused is the same
	// update), adamw_hf (transformers' legacy AdamW, which ONNX Runtime
	// training's adam_mode 1 computes), sgd or adafactor (transformers'
	// Adafactor as the Trainer builds it: scale_parameter, relative_step and
	// warmup_init off, the given learning rate).
	Optim string `json:"optim"`
	// IncludeNumInputTokensSeen: "no", "all" (input_ids.numel() of every
	// micro-batch) or "non_padding" (the attention mask's sum); true and
	// false mean "all" and "no". Logs then carry num_input_tokens_seen,
	// and the training logs train_runtime and train_tokens_per_second.
	IncludeNumInputTokensSeen string             `json:"include_num_input_tokens_seen"`
	LRSchedulerType           string             `json:"lr_scheduler_type"`
	LRSchedulerKwargs         map[string]float64 `json:"lr_scheduler_kwargs"`
	// WarmupSteps >= 1 is a step count, in [0,1) a ratio of max_steps (HF v5).
	WarmupSteps float64 `json:"warmup_steps"`
	// WarmupRatio is the 4.x argument that v5 removed; when set (and
	// warmup_steps is 0) it is copied into WarmupSteps, as v5.0-5.1 did.
	WarmupRatio float64 `json:"warmup_ratio"`

	LoggingStrategy     string  `json:"logging_strategy"`
	LoggingSteps        float64 `json:"logging_steps"`
	LoggingFirstStep    bool    `json:"logging_first_step"`
	LoggingNanInfFilter bool    `json:"logging_nan_inf_filter"`

	EvalStrategy string   `json:"eval_strategy"`
	EvalSteps    *float64 `json:"eval_steps"`
	EvalDelay    float64  `json:"eval_delay"`
	EvalOnStart  bool     `json:"eval_on_start"`

	SaveStrategy   string  `json:"save_strategy"`
	SaveSteps      float64 `json:"save_steps"`
	SaveTotalLimit *int    `json:"save_total_limit"`
	SaveOnlyModel  bool    `json:"save_only_model"`

	LoadBestModelAtEnd bool    `json:"load_best_model_at_end"`
	MetricForBestModel *string `json:"metric_for_best_model"`
	GreaterIsBetter    *bool   `json:"greater_is_better"`

	Seed     int  `json:"seed"`
	DataSeed *int `json:"data_seed"`

	PredictWithGenerate  bool    `json:"predict_with_generate"`
	GenerationMaxLength  *int    `json:"generation_max_length"`
	GenerationNumBeams   *int    `json:"generation_num_beams"`
	LabelSmoothingFactor float64 `json:"label_smoothing_factor"`

	// Mixed precision. fp16/bf16 train, evaluate and generate with the
	// graphs of torch.autocast (float16 with GradScaler's dynamic loss
	// scaling); fp16_full_eval/bf16_full_eval evaluate and predict outside
	// training with the whole model in half precision; tf32 (nil: off, as
	// PyTorch's default) lets the CUDA provider use TensorFloat-32.
	BF16         bool  `json:"bf16"`
	FP16         bool  `json:"fp16"`
	BF16FullEval bool  `json:"bf16_full_eval"`
	FP16FullEval bool  `json:"fp16_full_eval"`
	TF32         *bool `json:"tf32"`

	// ActivationCheckpointing recomputes each transformer layer's
	// activations in the backward pass instead of keeping them (less memory,
	// a second forward pass of every layer; the gradients are the same).
	// GradientCheckpointing is its older name, which transformers 5 keeps
	// as a deprecated alias; either turns it on, and Finalize sets both.
	ActivationCheckpointing bool `json:"activation_checkpointing"`
	GradientCheckpointing   bool `json:"gradient_checkpointing"`

	ReportTo []string `json:"report_to"`
	// ResumeFromCheckpoint: "" (no), "true" (last checkpoint in output_dir) or a path.
	ResumeFromCheckpoint string `json:"resume_from_checkpoint"`
	IgnoreDataSkip       bool   `json:"ignore_data_skip"`
	// ResumeWithoutOptimizerState resumes from a checkpoint that lacks its
	// optimizer or scheduler state (one half deleted, or copied without
	// them) with a fresh optimizer and schedule; without it such a
	// checkpoint is refused (ortrain only: HF continues with a warning).
	ResumeWithoutOptimizerState bool `json:"resume_without_optimizer_state"`

	// EarlyStoppingPatience > 0 adds HF's EarlyStoppingCallback.
	EarlyStoppingPatience  int     `json:"early_stopping_patience"`
	EarlyStoppingThreshold float64 `json:"early_stopping_threshold"`

	Device  string `json:"device"`  // cpu, cuda, cuda:N
	Threads int    `json:"threads"` // 0: ONNX Runtime's default
}

// DefaultArguments returns HF's defaults (transformers 5.24 TrainingArguments
// + Seq2SeqTrainingArguments), with output_dir "trainer_output".
func DefaultArguments() TrainingArguments {
	return TrainingArguments{
		OutputDir:                 "trainer_output",
		NumTrainEpochs:            3,
		MaxSteps:                  -1,
		PerDeviceTrainBatchSize:   8,
		PerDeviceEvalBatchSize:    8,
		GradientAccumulationSteps: 1,
		LearningRate:              5e-5,
		AdamBeta1:                 0.9,
		AdamBeta2:                 0.999,
		AdamEpsilon:               1e-8,
		MaxGradNorm:               1.0,
		Optim:                     OptimAdamWTorch,
		IncludeNumInputTokensSeen: "no",
		LRSchedulerType:           "linear",
		LoggingStrategy:           StrategySteps,
		LoggingSteps:              500,
		LoggingNanInfFilter:       true,
		EvalStrategy:              StrategyNo,
		SaveStrategy:              StrategySteps,
		SaveSteps:                 500,
		Seed:                      42,
		Device:                    "cpu",
	}
}

func intervalRepr(s string) string {
	return "IntervalStrategy." + strings.ToUpper(s)
}

func saveRepr(s string) string {
	return "SaveStrategy." + strings.ToUpper(s)
}

// ArgumentError is a TrainingArguments validation failure. Message is HF's
// ValueError text where HF has one.
type ArgumentError struct {
	Field   string
	Message string
}

func (e *ArgumentError) Error() string { return e.Message }

// Is makes an ArgumentError a bad setting (ErrSettings).
func (e *ArgumentError) Is(target error) bool { return target == fault.Settings }

func argErr(field, format string, a ...any) error {
	return &ArgumentError{Field: field, Message: fmt.Sprintf(format, a...)}
}

// pyNum formats a number the way Python's str() shows the value the user
// gave: integers without a decimal point, ratios as floats.
func pyNum(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return fmt.Sprintf("%d", int64(v))
	}
	return fmt.Sprint(v)
}

// Finalize applies HF's __post_init__ derivations and _validate_args checks,
// in HF's order, and returns HF's error messages. It mutates a.
func (a *TrainingArguments) Finalize() error {
	if a.OutputDir == "" {
		a.OutputDir = "trainer_output"
	}
	// As TrainingArguments.__post_init__: the old name mirrors the new one.
	a.ActivationCheckpointing = a.ActivationCheckpointing || a.GradientCheckpointing
	a.GradientCheckpointing = a.ActivationCheckpointing
	for _, s := range []struct{ field, v string }{{"logging_strategy", a.LoggingStrategy}, {"eval_strategy", a.EvalStrategy}} {
		switch s.v {
		case StrategyNo, StrategySteps, StrategyEpoch:
		default:
			return argErr(s.field, "%q is not a valid IntervalStrategy (%s: no, steps, epoch)", s.v, s.field)
		}
	}
	switch a.SaveStrategy {
	case StrategyNo, StrategySteps, StrategyEpoch, StrategyBest:
	default:
		return argErr("save_strategy", "%q is not a valid SaveStrategy (save_strategy: no, steps, epoch, best)", a.SaveStrategy)
	}
	switch strings.ToLower(a.IncludeNumInputTokensSeen) {
	case "true", "all":
		a.IncludeNumInputTokensSeen = "all"
	case "false", "no", "":
		a.IncludeNumInputTokensSeen = "no"
	case "non_padding":
		a.IncludeNumInputTokensSeen = "non_padding"
	default:
		return argErr("include_num_input_tokens_seen", "%q: want all, non_padding or no (or true/false)", a.IncludeNumInputTokensSeen)
	}
	switch a.Optim {
	case OptimAdamWTorch, "adamw_torch_fused", OptimAdamWHF, OptimSGD, OptimAdafactor:
	default:
		return argErr("optim", "%q is not a supported OptimizerNames (optim: adamw_torch, adamw_torch_fused, adamw_hf, sgd, adafactor)", a.Optim)
	}
	switch a.LRSchedulerType {
	case "linear", "cosine", "constant", "constant_with_warmup", "polynomial", "inverse_sqrt":
	default:
		return argErr("lr_scheduler_type", "%q is not a supported SchedulerType (lr_scheduler_type: linear, cosine, constant, constant_with_warmup, polynomial, inverse_sqrt)", a.LRSchedulerType)
	}
	if a.WarmupRatio != 0 {
		if a.WarmupRatio < 0 || a.WarmupRatio >= 1 {
			return argErr("warmup_ratio", "warmup_ratio must lie within the range [0, 1), got %v", a.WarmupRatio)
		}
		if a.WarmupSteps != 0 {
			return argErr("warmup_ratio", "both warmup_steps (%v) and warmup_ratio (%v) are set: warmup_ratio is the 4.x name of a ratio warmup_steps; set only warmup_steps", a.WarmupSteps, a.WarmupRatio)
		}
		a.WarmupSteps = a.WarmupRatio
		a.WarmupRatio = 0
	}

	if !a.DoEval && a.EvalStrategy != StrategyNo {
		a.DoEval = true
	}
	if a.EvalStrategy == StrategySteps && (a.EvalSteps == nil || *a.EvalSteps == 0) {
		if a.LoggingSteps > 0 {
			v := a.LoggingSteps
			a.EvalSteps = &v
		} else {
			return argErr("eval_steps", "evaluation strategy %s requires either non-zero --eval_steps or --logging_steps", intervalRepr(a.EvalStrategy))
		}
	}
	if a.LoadBestModelAtEnd && a.MetricForBestModel == nil {
		m := "loss"
		a.MetricForBestModel = &m
	}
	if a.GreaterIsBetter == nil && a.MetricForBestModel != nil {
		g := !strings.HasSuffix(*a.MetricForBestModel, "loss")
		a.GreaterIsBetter = &g
	}
	var report []string
	for _, r := range a.ReportTo {
		for _, p := range strings.Split(r, ",") {
			p = strings.TrimSpace(p)
			switch p {
			case "", "none":
			case "all":
				report = append(report, "tensorboard", "jsonl")
			case "tensorboard", "jsonl", "mlflow":
				report = append(report, p)
			default:
				return argErr("report_to", "report_to %q is not supported (use none, tensorboard, jsonl, mlflow or all)", p)
			}
		}
	}
	a.ReportTo = report

	// _validate_args
	if a.LoggingStrategy == StrategySteps && a.LoggingSteps == 0 {
		return argErr("logging_steps", "logging strategy %s requires non-zero --logging_steps", intervalRepr(a.LoggingStrategy))
	}
	if a.LoggingStrategy == StrategySteps && a.LoggingSteps > 1 {
		if a.LoggingSteps != math.Trunc(a.LoggingSteps) {
			return argErr("logging_steps", "--logging_steps must be an integer if bigger than 1: %v", a.LoggingSteps)
		}
	}
	if a.EvalStrategy == StrategySteps && *a.EvalSteps > 1 {
		if *a.EvalSteps != math.Trunc(*a.EvalSteps) {
			return argErr("eval_steps", "--eval_steps must be an integer if bigger than 1: %v", *a.EvalSteps)
		}
	}
	if a.SaveStrategy == StrategySteps && a.SaveSteps > 1 {
		if a.SaveSteps != math.Trunc(a.SaveSteps) {
			return argErr("save_steps", "--save_steps must be an integer if bigger than 1: %v", a.SaveSteps)
		}
	}
	if a.LoadBestModelAtEnd && a.SaveStrategy != StrategyBest {
		if a.EvalStrategy != a.SaveStrategy {
			return argErr("load_best_model_at_end", "--load_best_model_at_end requires the save and eval strategy to match, except when --save_strategy=\"best\", but found\n- Evaluation strategy: %s\n- Save strategy: %s",
				intervalRepr(a.EvalStrategy), saveRepr(a.SaveStrategy))
		}
		if a.EvalStrategy == StrategySteps && math.Mod(a.SaveSteps, *a.EvalSteps) != 0 {
			es, ss := *a.EvalSteps, a.SaveSteps
			if es < 1 || ss < 1 {
				if !(es < 1 && ss < 1) {
					return argErr("save_steps", "--load_best_model_at_end requires the saving steps to be a multiple of the evaluation steps, which cannot get guaranteed when mixing ratio and absolute steps for save_steps %s and eval_steps %s.", pyNum(ss), pyNum(es))
				}
				const large = 1_000_000
				if math.Mod(ss*large, es*large) != 0 {
					return argErr("save_steps", "--load_best_model_at_end requires the saving steps to be a multiple of the evaluation steps, but found %s, which is not a multiple of %s.", pyNum(ss), pyNum(es))
				}
			} else {
				return argErr("save_steps", "--load_best_model_at_end requires the saving steps to be a round multiple of the evaluation steps, but found %s, which is not a round multiple of %s.", pyNum(ss), pyNum(es))
			}
		}
	}
	if a.FP16 && a.BF16 {
		return argErr("bf16", "At most one of fp16 and bf16 can be True, but not both")
	}
	if a.FP16FullEval && a.BF16FullEval {
		return argErr("bf16_full_eval", "At most one of fp16 and bf16 can be True for full eval, but not both")
	}
	if a.WarmupSteps < 0 {
		return argErr("warmup_steps", "Got warmup_steps = %s, Expected value warmup_steps >= 0", pyNum(a.WarmupSteps))
	}

	// Checks HF does elsewhere (dataclass typing, optimizer/dataloader
	// construction) or that only ortrain needs.
	switch {
	case a.PerDeviceTrainBatchSize < 1:
		return argErr("per_device_train_batch_size", "per_device_train_batch_size must be at least 1, got %d", a.PerDeviceTrainBatchSize)
	case a.PerDeviceEvalBatchSize < 1:
		return argErr("per_device_eval_batch_size", "per_device_eval_batch_size must be at least 1, got %d", a.PerDeviceEvalBatchSize)
	case a.GradientAccumulationSteps < 1:
		return argErr("gradient_accumulation_steps", "gradient_accumulation_steps must be at least 1, got %d", a.GradientAccumulationSteps)
	case a.MaxSteps <= 0 && a.NumTrainEpochs <= 0 && a.DoTrain:
		return argErr("num_train_epochs", "nothing to train: max_steps is %d and num_train_epochs is %v; set one of them to a positive value", a.MaxSteps, a.NumTrainEpochs)
	case a.LabelSmoothingFactor < 0 || a.LabelSmoothingFactor >= 1:
		return argErr("label_smoothing_factor", "label_smoothing_factor must lie within [0, 1), got %v", a.LabelSmoothingFactor)
	case a.EarlyStoppingPatience < 0:
		return argErr("early_stopping_patience", "early_stopping_patience must be >= 0, got %d", a.EarlyStoppingPatience)
	case a.GenerationNumBeams != nil && *a.GenerationNumBeams < 1:
		return argErr("generation_num_beams", "generation_num_beams must be at least 1, got %d", *a.GenerationNumBeams)
	case a.GenerationMaxLength != nil && *a.GenerationMaxLength < 1:
		return argErr("generation_max_length", "generation_max_length must be at least 1, got %d", *a.GenerationMaxLength)
	case a.Threads < 0:
		return argErr("threads", "threads must be >= 0, got %d", a.Threads)
	}
	if a.EarlyStoppingPatience > 0 {
		// EarlyStoppingCallback.on_train_begin asserts these.
		if a.MetricForBestModel == nil {
			return argErr("early_stopping_patience", "EarlyStoppingCallback requires metric_for_best_model to be defined")
		}
		if a.EvalStrategy == StrategyNo {
			return argErr("early_stopping_patience", "EarlyStoppingCallback requires IntervalStrategy of steps or epoch")
		}
	}
	if (a.SaveStrategy == StrategyBest || a.LoadBestModelAtEnd) && a.MetricForBestModel == nil {
		return argErr("metric_for_best_model", "`args.metric_for_best_model` must be provided when using 'best' save_strategy or if `args.load_best_model_at_end` is set to `True`.")
	}
	if !strings.HasPrefix(a.Device, "cpu") && !strings.HasPrefix(a.Device, "cuda") {
		return argErr("device", "device %q is not supported (use cpu, cuda or cuda:N)", a.Device)
	}
	onCPU := strings.HasPrefix(a.Device, "cpu")
	if a.TF32 != nil && *a.TF32 && onCPU {
		// HF's check (TF32 is a property of Ampere and newer GPUs).
		return argErr("tf32", "--tf32 requires Ampere or a newer GPU arch, cuda>=11 and torch>=1.7")
	}
	if (a.BF16 || a.BF16FullEval) && onCPU {
		flag := "bf16"
		if !a.BF16 {
			flag = "bf16_full_eval"
		}
		return argErr(flag, "--%s on the CPU: ONNX Runtime's CPU provider has no bfloat16 kernels (PyTorch's CPU autocast has them); use --device cuda, or --fp16 / --fp16_full_eval on the CPU", flag)
	}
	return nil
}

// Precision is the mixed precision of training ("float16", "bfloat16" or
// "" for float32).
func (a *TrainingArguments) Precision() string {
	switch {
	case a.FP16:
		return "float16"
	case a.BF16:
		return "bfloat16"
	}
	return ""
}

// FullEvalPrecision is the half precision of evaluation and prediction
// outside training (fp16_full_eval / bf16_full_eval), or "".
func (a *TrainingArguments) FullEvalPrecision() string {
	switch {
	case a.FP16FullEval:
		return "float16"
	case a.BF16FullEval:
		return "bfloat16"
	}
	return ""
}

// WarmupStepsFor is TrainingArguments.get_warmup_steps.
func (a *TrainingArguments) WarmupStepsFor(numTrainingSteps int) int {
	if a.WarmupSteps >= 1 {
		return int(a.WarmupSteps)
	}
	return int(math.Ceil(float64(numTrainingSteps) * a.WarmupSteps))
}

// MetricToCheck is metric_for_best_model with "eval_" prepended if missing.
func (a *TrainingArguments) MetricToCheck() string {
	if a.MetricForBestModel == nil {
		return ""
	}
	m := *a.MetricForBestModel
	if !strings.HasPrefix(m, "eval_") {
		m = "eval_" + m
	}
	return m
}

// saveTotalLimit returns the limit, 0 meaning unlimited (HF: None or <= 0).
func (a *TrainingArguments) saveTotalLimit() int {
	if a.SaveTotalLimit == nil || *a.SaveTotalLimit <= 0 {
		return 0
	}
	return *a.SaveTotalLimit
}

// dataSeed is data_seed, defaulting to seed.
func (a *TrainingArguments) dataSeed() int {
	if a.DataSeed != nil {
		return *a.DataSeed
	}
	return a.Seed
}
