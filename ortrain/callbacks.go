package ortrain

import (
	"fmt"
	"io"
	"math"
)

// Event is what every callback receives: the arguments, the state and the
// control (the only thing a callback should change), plus the logs or the
// metrics for OnLog / OnEvaluate.
type Event struct {
	Args    *TrainingArguments
	State   *TrainerState
	Control *TrainerControl
	Logs    Logs // OnLog
	Metrics Logs // OnEvaluate, OnPredict
}

// Callback is HF's TrainerCallback. Callbacks decide (set Control flags);
// the loop acts. Embed NopCallback to implement only some events.
type Callback interface {
	OnTrainBegin(e *Event) error
	OnTrainEnd(e *Event) error
	OnEpochBegin(e *Event) error
	OnEpochEnd(e *Event) error
	OnStepBegin(e *Event) error
	OnSubstepEnd(e *Event) error
	OnStepEnd(e *Event) error
	OnEvaluate(e *Event) error
	OnPredict(e *Event) error
	OnSave(e *Event) error
	OnLog(e *Event) error
	OnPredictionStep(e *Event) error
}

// StatefulCallback is HF's ExportableState: its state is saved in
// trainer_state.json's stateful_callbacks and restored on resume.
type StatefulCallback interface {
	Callback
	StateName() string
	State() map[string]any // {"args": {...}, "attributes": {...}}
	RestoreState(map[string]any) error
}

// NopCallback implements every event as a no-op.
type NopCallback struct{}

var (
	_ Callback         = NopCallback{}
	_ Callback         = DefaultFlowCallback{}
	_ StatefulCallback = (*EarlyStoppingCallback)(nil)
	_ Callback         = (*ConsoleCallback)(nil)
	_ reporter         = (*JSONLCallback)(nil)
	_ reporter         = (*TensorBoardCallback)(nil)
)

func (NopCallback) OnTrainBegin(*Event) error     { return nil }
func (NopCallback) OnTrainEnd(*Event) error       { return nil }
func (NopCallback) OnEpochBegin(*Event) error     { return nil }
func (NopCallback) OnEpochEnd(*Event) error       { return nil }
func (NopCallback) OnStepBegin(*Event) error      { return nil }
func (NopCallback) OnSubstepEnd(*Event) error     { return nil }
func (NopCallback) OnStepEnd(*Event) error        { return nil }
func (NopCallback) OnEvaluate(*Event) error       { return nil }
func (NopCallback) OnPredict(*Event) error        { return nil }
func (NopCallback) OnSave(*Event) error           { return nil }
func (NopCallback) OnLog(*Event) error            { return nil }
func (NopCallback) OnPredictionStep(*Event) error { return nil }

// callbackHandler is HF's CallbackHandler: it resets the control switches
// the way HF does before dispatching.
type callbackHandler struct {
	callbacks []Callback
}

func (h *callbackHandler) call(e *Event, f func(Callback, *Event) error) error {
	for _, cb := range h.callbacks {
		if err := f(cb, e); err != nil {
			return fmt.Errorf("callback %T: %w", cb, err)
		}
	}
	return nil
}

func (h *callbackHandler) trainBegin(e *Event) error {
	e.Control.ShouldTrainingStop = false
	return h.call(e, Callback.OnTrainBegin)
}
func (h *callbackHandler) trainEnd(e *Event) error { return h.call(e, Callback.OnTrainEnd) }
func (h *callbackHandler) epochBegin(e *Event) error {
	e.Control.ShouldEpochStop = false
	return h.call(e, Callback.OnEpochBegin)
}
func (h *callbackHandler) epochEnd(e *Event) error { return h.call(e, Callback.OnEpochEnd) }
func (h *callbackHandler) stepBegin(e *Event) error {
	e.Control.ShouldLog, e.Control.ShouldEvaluate, e.Control.ShouldSave = false, false, false
	return h.call(e, Callback.OnStepBegin)
}
func (h *callbackHandler) substepEnd(e *Event) error { return h.call(e, Callback.OnSubstepEnd) }
func (h *callbackHandler) stepEnd(e *Event) error    { return h.call(e, Callback.OnStepEnd) }
func (h *callbackHandler) evaluate(e *Event) error {
	e.Control.ShouldEvaluate = false
	return h.call(e, Callback.OnEvaluate)
}
func (h *callbackHandler) predict(e *Event) error { return h.call(e, Callback.OnPredict) }
func (h *callbackHandler) save(e *Event) error {
	e.Control.ShouldSave = false
	return h.call(e, Callback.OnSave)
}
func (h *callbackHandler) log(e *Event) error {
	e.Control.ShouldLog = false
	return h.call(e, Callback.OnLog)
}
func (h *callbackHandler) predictionStep(e *Event) error { return h.call(e, Callback.OnPredictionStep) }

// DefaultFlowCallback is transformers 5.24's DefaultFlowCallback: it decides
// when to log, evaluate and save. Unlike 4.5x it also forces an evaluation
// at the last step when eval_strategy is steps and the last step is not a
// multiple of eval_steps.
type DefaultFlowCallback struct{ NopCallback }

func (DefaultFlowCallback) OnStepEnd(e *Event) error {
	a, s, c := e.Args, e.State, e.Control
	if s.GlobalStep == 1 && a.LoggingFirstStep {
		c.ShouldLog = true
	}
	if a.LoggingStrategy == StrategySteps && s.LoggingSteps > 0 && s.GlobalStep%s.LoggingSteps == 0 {
		c.ShouldLog = true
	}
	if a.EvalStrategy == StrategySteps && s.EvalSteps > 0 && s.GlobalStep%s.EvalSteps == 0 && a.EvalDelay <= float64(s.GlobalStep) {
		c.ShouldEvaluate = true
	}
	if a.SaveStrategy == StrategySteps && s.SaveSteps > 0 && s.GlobalStep%s.SaveSteps == 0 {
		c.ShouldSave = true
	}
	if s.GlobalStep >= s.MaxSteps {
		c.ShouldTrainingStop = true
		if a.EvalStrategy == StrategySteps && s.EvalSteps > 0 && s.GlobalStep%s.EvalSteps != 0 && a.EvalDelay <= float64(s.GlobalStep) {
			c.ShouldEvaluate = true
		}
		if a.SaveStrategy == StrategySteps {
			c.ShouldSave = true
		}
	}
	return nil
}

func (DefaultFlowCallback) OnEpochEnd(e *Event) error {
	a, s, c := e.Args, e.State, e.Control
	if a.LoggingStrategy == StrategyEpoch {
		c.ShouldLog = true
	}
	if a.EvalStrategy == StrategyEpoch && a.EvalDelay <= s.Epoch {
		c.ShouldEvaluate = true
	}
	if a.SaveStrategy == StrategyEpoch {
		c.ShouldSave = true
	}
	return nil
}

// EarlyStoppingCallback is HF's: training stops after `patience`
// evaluations without an improvement larger than `threshold` over
// state.best_metric. Its counter is saved in checkpoints and restored on
// resume. It runs in OnEvaluate, before the trainer updates best_metric.
type EarlyStoppingCallback struct {
	NopCallback
	Patience  int
	Threshold float64
	Counter   int
	warn      io.Writer
}

func (c *EarlyStoppingCallback) check(a *TrainingArguments, s *TrainerState, v float64) {
	better := v < 0
	if s.BestMetric != nil {
		if *a.GreaterIsBetter {
			better = v > *s.BestMetric
		} else {
			better = v < *s.BestMetric
		}
	}
	if s.BestMetric == nil || (better && math.Abs(v-*s.BestMetric) > c.Threshold) {
		c.Counter = 0
	} else {
		c.Counter++
	}
}

func (c *EarlyStoppingCallback) OnEvaluate(e *Event) error {
	key := e.Args.MetricToCheck()
	v, ok := e.Metrics.Get(key)
	if !ok {
		if c.warn != nil {
			fmt.Fprintf(c.warn, "early stopping required metric_for_best_model, but did not find %s so early stopping is disabled\n", key)
		}
		return nil
	}
	c.check(e.Args, e.State, v)
	if c.Counter >= c.Patience {
		e.Control.ShouldTrainingStop = true
	}
	return nil
}

func (c *EarlyStoppingCallback) StateName() string { return "EarlyStoppingCallback" }

func (c *EarlyStoppingCallback) State() map[string]any {
	return map[string]any{
		"args": map[string]any{
			"early_stopping_patience":  c.Patience,
			"early_stopping_threshold": c.Threshold,
		},
		"attributes": map[string]any{"early_stopping_patience_counter": c.Counter},
	}
}

func (c *EarlyStoppingCallback) RestoreState(m map[string]any) error {
	attrs, _ := m["attributes"].(map[string]any)
	if v, ok := attrs["early_stopping_patience_counter"]; ok {
		f, err := jsonFloat(v)
		if err != nil {
			if n, ok := v.(int); ok {
				f = float64(n)
			} else {
				return fmt.Errorf("early_stopping_patience_counter: %v", err)
			}
		}
		c.Counter = int(f)
	}
	return nil
}
