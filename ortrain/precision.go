package ortrain

// OverflowSkipper is implemented by engines that scale the loss
// dynamically (float16 mixed precision, torch.amp.GradScaler): an optimizer
// step whose gradients hold an inf or NaN is skipped, and then HF's Trainer
// does not step the learning-rate scheduler either, and keeps training past
// a non-finite loss (logging_nan_inf_filter decides what the logged loss
// adds).
type OverflowSkipper interface {
	// SkipsOverflow reports whether the engine skips such steps.
	SkipsOverflow() bool
	// StepSkipped reports whether the last OptimizerStep was skipped.
	StepSkipped() bool
}

// TrainingMode is implemented by engines whose evaluation differs inside
// Train: HF casts the model to half precision for fp16_full_eval and
// bf16_full_eval only when evaluate() or predict() run outside train().
type TrainingMode interface {
	SetTraining(bool)
}

func (t *Trainer) stepSkipped() bool {
	s, ok := t.Engine.(OverflowSkipper)
	return ok && s.StepSkipped()
}

func (t *Trainer) skipsOverflow() bool {
	s, ok := t.Engine.(OverflowSkipper)
	return ok && s.SkipsOverflow()
}

// setTraining tells the engine that Train starts or ends.
func (t *Trainer) setTraining(on bool) {
	if m, ok := t.Engine.(TrainingMode); ok {
		m.SetTraining(on)
	}
}
