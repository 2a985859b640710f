package ortrain

import (
	"context"
	"math"
	"path/filepath"
	"testing"
)

// skippingEngine skips chosen optimizer steps as a float16 loss scaler does
// when the gradients overflow.
type skippingEngine struct {
	*fakeEngine
	skipAt  map[int]bool // optimizer steps (1-based) to skip
	n       int
	skipped bool
	mode    []bool // SetTraining calls
}

func (e *skippingEngine) OptimizerStep(ctx context.Context, lr float64) (float64, error) {
	e.n++
	e.skipped = e.skipAt[e.n]
	if e.skipped {
		return math.Inf(1), nil
	}
	return e.fakeEngine.OptimizerStep(ctx, lr)
}
func (e *skippingEngine) SkipsOverflow() bool { return true }
func (e *skippingEngine) StepSkipped() bool   { return e.skipped }
func (e *skippingEngine) SetTraining(on bool) { e.mode = append(e.mode, on) }

// TestSkippedStepsHoldTheSchedule: a step the loss scaler skips logs its
// inf grad_norm and the learning rate it would have used, and the
// scheduler does not advance (HF steps lr_scheduler only when
// accelerator.optimizer_step_was_skipped is false); a non-finite loss does
// not stop training when the engine skips such steps, and
// logging_nan_inf_filter logs the average of the losses since the last log
// in its place. Train tells the engine it is training, and that it stopped.
func TestSkippedStepsHoldTheSchedule(t *testing.T) {
	a := DefaultArguments()
	a.OutputDir = filepath.Join(t.TempDir(), "out")
	a.DoTrain = true
	a.MaxSteps = 6
	a.LearningRate = 0.6
	a.LoggingSteps = 2
	a.SaveStrategy = StrategyNo
	if err := a.Finalize(); err != nil {
		t.Fatal(err)
	}
	eng := &skippingEngine{fakeEngine: &fakeEngine{maxNorm: 1}, skipAt: map[int]bool{2: true, 3: true}}
	eng.nanAtCall = 3 // the loss of step 3 (batch size 1 window) is NaN
	tr := &Trainer{Args: a, Engine: eng, TrainData: newFakeData(6, 2, 1, false)}
	if _, err := tr.Train(context.Background()); err != nil {
		t.Fatal(err)
	}
	var lrs, norms, losses []float64
	for _, e := range tr.State().LogHistory {
		if lr, ok := e.Logs.Get("learning_rate"); ok {
			gn, _ := e.Logs.Get("grad_norm")
			l, _ := e.Logs.Get("loss")
			lrs, norms, losses = append(lrs, lr), append(norms, gn), append(losses, l)
		}
	}
	// logs at steps 2, 4, 6; schedule positions used: 0, 1, 1, 1, 2, 3
	want := []float64{0.5, 0.5, 0.3} // linear 0.6 over 6 steps: lr(k) = 0.6*(6-k)/6
	for i := range want {
		if math.Abs(lrs[i]-want[i]) > 1e-12 {
			t.Errorf("log %d: learning_rate %v, want %v (all lrs %v)", i, lrs[i], want[i], lrs)
		}
	}
	if !math.IsInf(norms[0], 1) || math.IsInf(norms[2], 0) {
		t.Errorf("grad_norms %v: want inf at step 2 only", norms)
	}
	for i, l := range losses {
		if math.IsNaN(l) || math.IsInf(l, 0) {
			t.Errorf("logged loss %d is %v: the NaN loss should be filtered", i, l)
		}
	}
	if len(eng.mode) != 2 || !eng.mode[0] || eng.mode[1] {
		t.Errorf("SetTraining calls %v, want [true false]", eng.mode)
	}
}
