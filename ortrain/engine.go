package ortrain

import "context"

// Batch is what the trainer needs to know about a batch. The data
// pipeline's batches are wrapped to satisfy it; the engine and the
// generator receive the same value back and unwrap it.
type Batch interface {
	// NumExamples is the number of rows.
	NumExamples() int
	// NumLabelTokens counts labels != -100 (HF's num_items_in_batch).
	NumLabelTokens() int
	// NumInputTokens is input_ids.numel() (HF's floating_point_ops input).
	NumInputTokens() int
}

// NonPaddingCounter is a Batch that counts its non-padding input tokens
// (the attention mask's sum), for include_num_input_tokens_seen
// "non_padding"; other batches count all tokens, as HF falls back to.
type NonPaddingCounter interface {
	NumNonPaddingInputTokens() int
}

// LabeledBatch exposes the label ids (with -100 for ignored positions) for
// computing generation metrics.
type LabeledBatch interface {
	Batch
	LabelIDs() [][]int
}

// BatchIterator yields batches; Next returns io.EOF after the last one,
// and ctx's error once ctx is done.
type BatchIterator interface {
	Next(ctx context.Context) (Batch, error)
}

// TrainData is the training set: a fixed number of micro-batches per epoch
// in a per-epoch seeded order that does not depend on earlier epochs, so
// resume can start anywhere.
type TrainData interface {
	NumExamples() int
	NumBatches() int
	// Epoch iterates epoch's micro-batches, skipping the first skip.
	Epoch(epoch, skip int) (BatchIterator, error)
}

// EvalData is an evaluation or test set in a fixed order.
type EvalData interface {
	NumExamples() int
	Batches() (BatchIterator, error)
}

// Engine trains and evaluates the model. Implementations keep parameters,
// gradient accumulators and optimizer state.
type Engine interface {
	// TrainMicroBatch runs forward+backward on b with the loss multiplied by
	// lossScale, adds the gradients to the accumulators and returns the
	// micro-batch's mean loss, unscaled.
	TrainMicroBatch(ctx context.Context, b Batch, lossScale float64, dropoutSeed uint64) (float64, error)
	// OptimizerStep clips the accumulated gradients (max_grad_norm),
	// applies AdamW with learning rate lr, zeroes the accumulators and
	// returns the pre-clip global gradient norm.
	OptimizerStep(ctx context.Context, lr float64) (gradNorm float64, err error)
	// EvalLoss is the teacher-forced mean loss of b (label smoothing as in
	// training).
	EvalLoss(ctx context.Context, b Batch) (float64, error)
	// SaveModel writes model.safetensors (the model's own parameter names)
	// into dir; SaveOptimizer writes the optimizer state.
	SaveModel(dir string) error
	SaveOptimizer(dir string) error
	LoadModel(dir string) error
	LoadOptimizer(dir string) error
}

// ParameterCounter is implemented by engines that know their parameter
// count, for HF's total_flos (6 * input tokens * non-embedding parameters).
type ParameterCounter interface {
	NumParameters(excludeEmbeddings bool) int64
}

// InferenceExporter is implemented by engines that can write the trained
// model as ONNX inference graph(s) next to model.safetensors.
type InferenceExporter interface {
	ExportInference(dir string) error
}

// Generator produces token ids for predict_with_generate. maxLength and
// numBeams of 0 mean the model's generation defaults.
type Generator interface {
	Generate(ctx context.Context, b Batch, maxLength, numBeams int) ([][]int, error)
}

// MetricsFunc is compute_metrics for generated predictions: preds are
// generated ids, labels carry -100 at ignored positions. Keys come back
// without the "eval_" prefix (bleu, rouge1, gen_len, ...).
type MetricsFunc func(preds, labels [][]int) (Logs, error)

// LossScaling says how each micro-batch loss is scaled before backward
// under gradient accumulation.
type LossScaling int

const (
	// LossScalingHF is transformers 5.24's rule for seq2seq models whose
	// forward takes **kwargs (T5, MT5, BART, Marian, ...): the Trainer
	// passes num_items_in_batch and does not divide by the accumulation
	// steps, but the model's own CrossEntropyLoss ignores num_items_in_batch
	// and returns the micro-batch mean. So without label smoothing every
	// micro-batch mean is used unscaled (a window's loss and gradients are
	// the sum of its micro-batch means); with label smoothing the
	// LabelSmoother divides the token sum by the window's label count, i.e.
	// the micro-batch mean scaled by its share of the window's tokens.
	LossScalingHF LossScaling = iota
	// LossScalingMean divides each micro-batch mean by the number of
	// micro-batches in its window (models without loss kwargs, and
	// transformers before 4.46).
	LossScalingMean
	// LossScalingTokens weights each micro-batch mean by its share of the
	// window's label tokens (what a loss-kwargs-aware model computes).
	LossScalingTokens
)
