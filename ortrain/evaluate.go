package ortrain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
)

// Prediction is the output of Predict.
type Prediction struct {
	Predictions [][]int // generated ids (nil without predict_with_generate)
	Labels      [][]int
	Metrics     Logs
}

func (t *Trainer) genParams() (maxLength, numBeams int) {
	if t.Args.GenerationMaxLength != nil {
		maxLength = *t.Args.GenerationMaxLength
	}
	if t.Args.GenerationNumBeams != nil {
		numBeams = *t.Args.GenerationNumBeams
	}
	return
}

// evaluationLoop is Seq2SeqTrainer's evaluation_loop: eval_loss is the plain
// mean of per-batch mean losses (Seq2SeqTrainer gathers with
// accelerator.gather, so a short last batch weighs as much as a full one),
// non-finite batch losses dropped when logging_nan_inf_filter is on.
func (t *Trainer) evaluationLoop(ctx context.Context, data EvalData, prefix string) (*Prediction, error) {
	if data == nil {
		return nil, errors.New("no evaluation data")
	}
	it, err := data.Batches()
	if err != nil {
		return nil, err
	}
	withGen := t.Args.PredictWithGenerate && t.Generator != nil
	maxLen, beams := t.genParams()
	var batchLosses []float32
	var genBatches, labelBatches [][][]int // per batch, for gathering over the processes
	out := &Prediction{}
	for i := 0; ; i++ {
		b, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		loss, err := t.Engine.EvalLoss(ctx, b)
		if err != nil {
			return nil, fmt.Errorf("%s batch %d: %w", prefix, i, err)
		}
		scale, err := t.evalLossScale(b)
		if err != nil {
			return nil, err
		}
		if scale != 1 {
			loss = float64(float32(loss) * float32(scale))
		}
		batchLosses = append(batchLosses, float32(loss))
		if withGen {
			gen, err := t.Generator.Generate(ctx, b, maxLen, beams)
			if err != nil {
				return nil, fmt.Errorf("%s batch %d: generate: %w", prefix, i, err)
			}
			genBatches = append(genBatches, gen)
			if lb, ok := b.(LabeledBatch); ok {
				labelBatches = append(labelBatches, lb.LabelIDs())
			}
		}
		if t.state != nil {
			if err := t.handler.predictionStep(t.event()); err != nil {
				return nil, err
			}
		}
	}
	gathered, err := t.gatherBatchLosses(batchLosses)
	if err != nil {
		return nil, err
	}
	if withGen {
		if out.Predictions, err = t.gatherBatchRows(genBatches); err != nil {
			return nil, err
		}
		if labelBatches != nil {
			if out.Labels, err = t.gatherBatchRows(labelBatches); err != nil {
				return nil, err
			}
		}
	}
	// HF repeats each batch loss eval_batch_size times before the mean.
	losses := make([]float64, 0, len(gathered)*t.Args.PerDeviceEvalBatchSize)
	for _, l := range gathered {
		for r := 0; r < t.Args.PerDeviceEvalBatchSize; r++ {
			losses = append(losses, float64(l))
		}
	}
	var metrics Logs
	if withGen && t.ComputeMetrics != nil && out.Labels != nil {
		m, err := t.ComputeMetrics(out.Predictions, out.Labels)
		if err != nil {
			return nil, fmt.Errorf("computing %s metrics: %w", prefix, err)
		}
		metrics = m
	}
	if len(losses) > 0 {
		kept := losses
		if t.Args.LoggingNanInfFilter {
			var finite []float64
			for _, l := range losses {
				if !math.IsNaN(l) && !math.IsInf(l, 0) {
					finite = append(finite, l)
				}
			}
			if len(finite) > 0 {
				kept = finite
			}
		}
		// numpy's mean of float32 values (pairwise sum in float32, then /n).
		metrics = append(metrics, Metric{prefix + "_loss", float64(meanFloat32(kept))})
	}
	// Prefix every key not already prefixed, moving it after the others.
	var prefixed, moved Logs
	for _, m := range metrics {
		if len(m.Key) > len(prefix) && m.Key[:len(prefix)+1] == prefix+"_" {
			prefixed = append(prefixed, m)
		} else {
			moved = append(moved, Metric{prefix + "_" + m.Key, m.Value})
		}
	}
	out.Metrics = append(prefixed, moved...)
	return out, nil
}

// evalLossScale is what HF multiplies an evaluation batch's mean loss by
// with several processes: Trainer.prediction_step passes
// num_items_in_batch (the batch's label tokens summed over the processes)
// as training does; Seq2SeqTrainer's own prediction_step, which runs with
// predict_with_generate, takes the plain mean.
func (t *Trainer) evalLossScale(b Batch) (float64, error) {
	if !t.distributed() || !t.passesNumItems() || t.Args.PredictWithGenerate {
		return 1, nil
	}
	if t.LossScaling == LossScalingHF && t.Args.LabelSmoothingFactor == 0 {
		return t.processFactor(), nil // the model ignores num_items_in_batch
	}
	total, err := t.labelTokens([]Batch{b})
	if err != nil || total == 0 {
		return 0, err
	}
	return float64(b.NumLabelTokens()) / float64(total) * t.processFactor(), nil
}

// timedLoop runs the evaluation loop (with a fresh state and the callbacks
// when called outside training) and appends HF's speed metrics.
func (t *Trainer) timedLoop(ctx context.Context, data EvalData, prefix string) (*Prediction, error) {
	if t.state == nil {
		t.state = newTrainerState()
		t.handler = callbackHandler{callbacks: append([]Callback{DefaultFlowCallback{}}, t.userCallbacks()...)}
	}
	start := t.now()
	out, err := t.evaluationLoop(ctx, data, prefix)
	if err != nil {
		return nil, err
	}
	n := float64(data.NumExamples())
	steps := math.Ceil(n / float64(t.Args.PerDeviceEvalBatchSize*t.world().Size()))
	out.Metrics = append(out.Metrics, speedMetrics(prefix, t.now().Sub(start).Seconds(), &n, &steps)...)
	return out, nil
}

// Evaluate is Seq2SeqTrainer.evaluate: metrics prefixed with prefix, speed
// metrics, logged into log_history (with epoch), then on_evaluate.
func (t *Trainer) Evaluate(ctx context.Context, data EvalData, prefix string) (Logs, error) {
	out, err := t.timedLoop(ctx, data, prefix)
	if err != nil {
		return nil, err
	}
	metrics, err := t.log(out.Metrics)
	if err != nil {
		return nil, err
	}
	e := t.event()
	e.Metrics = metrics
	if err := t.handler.evaluate(e); err != nil {
		return nil, err
	}
	return metrics, nil
}

// Predict is Seq2SeqTrainer.predict: like Evaluate but not logged; returns
// the generated ids.
func (t *Trainer) Predict(ctx context.Context, data EvalData, prefix string) (*Prediction, error) {
	out, err := t.timedLoop(ctx, data, prefix)
	if err != nil {
		return nil, err
	}
	e := t.event()
	e.Metrics = out.Metrics
	if err := t.handler.predict(e); err != nil {
		return nil, err
	}
	return out, nil
}

// meanFloat32 is numpy's float32 mean: pairwise summation in float32
// (blocks of 8 unrolled, as numpy does for n <= 128 per block) then divide.
func meanFloat32(xs []float64) float32 {
	v := make([]float32, len(xs))
	for i, x := range xs {
		v[i] = float32(x)
	}
	return pairwiseSum(v) / float32(len(v))
}

// pairwiseSum mirrors numpy's pairwise_sum for float32.
func pairwiseSum(a []float32) float32 {
	n := len(a)
	switch {
	case n < 8:
		var res float32
		for _, x := range a {
			res += x
		}
		return res
	case n <= 128:
		var r [8]float32
		copy(r[:], a[:8])
		i := 8
		for ; i < n-(n%8); i += 8 {
			for j := 0; j < 8; j++ {
				r[j] += a[i+j]
			}
		}
		res := ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
		for ; i < n; i++ {
			res += a[i]
		}
		return res
	default:
		n2 := n / 2
		n2 -= n2 % 8
		return pairwiseSum(a[:n2]) + pairwiseSum(a[n2:])
	}
}
