package engine

import (
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/safetensors"
	"github.com/ortrain/ortrain/internal/testenv"
)

type adafactorRef struct {
	Optimizer struct {
		LR          float64 `json:"lr"`
		WeightDecay float64 `json:"weight_decay"`
		MaxGradNorm float64 `json:"max_grad_norm"`
	} `json:"optimizer"`
	Steps []struct {
		Loss     float32 `json:"loss"`
		GradNorm float32 `json:"grad_norm"`
		Clipped  bool    `json:"clipped"`
		LR       float64 `json:"learning_rate"`
	} `json:"steps"`
	Final map[string]struct {
		Shape []int64   `json:"shape"`
		Value []float32 `json:"value"`
	} `json:"final_parameters"`
	State map[string]struct {
		Shape []int64   `json:"shape"`
		Value []float32 `json:"value"`
	} `json:"final_state"`
}

// TestAdafactorTrajectoryMatchesPyTorch trains the T5 fixture for 30 steps
// with optim adafactor (transformers' Adafactor as the Trainer builds it;
// weight decay on, clipping active in the first steps) and compares loss,
// grad_norm, the final parameters and the saved optimizer state (factored
// moments of matrices, torch's keys and shapes) with PyTorch
// (scripts/refs/adafactor_refs.py).
func TestAdafactorTrajectoryMatchesPyTorch(t *testing.T) {
	for _, double := range []bool{false, true} {
		name := "in-place"
		if double {
			name = "double-buffered"
		}
		t.Run(name, func(t *testing.T) { adafactorTrajectory(t, double) })
	}
}

func adafactorTrajectory(t *testing.T, double bool) {
	env := openEnv(t)
	var ref adafactorRef
	readJSON(t, testenv.Testdata(t, "adafactor", "t5-tiny.json"), &ref)
	var gref gradRef
	readJSON(t, testenv.Testdata(t, "gradients", "t5-tiny.json"), &gref)
	dir, man := buildFixture(t, "t5-tiny", artifacts.Config{})
	transposed := 0
	for _, p := range man.Trainable() {
		if p.Transposed {
			transposed++
		}
	}
	o := ref.Optimizer
	tr := openTrainer(t, env, dir, Options{DoubleBuffer: double, Optimizer: "adafactor", Hyper: Hyper{WeightDecay: o.WeightDecay, MaxGradNorm: o.MaxGradNorm}})
	b := refBatch(gref.Batch)
	clipped, worstLoss, worstNorm := 0, 0.0, 0.0
	for _, s := range ref.Steps {
		loss, _, err := tr.trainMicroBatch(b, 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		norm, err := tr.optimizerStep(s.LR)
		if err != nil {
			t.Fatal(err)
		}
		if s.Clipped {
			clipped++
		}
		worstLoss = math.Max(worstLoss, math.Abs(float64(loss-s.Loss))/float64(s.Loss))
		if testing.Verbose() {
			t.Logf("step loss %v torch %v, norm %v torch %v", loss, s.Loss, norm, s.GradNorm)
		}
		worstNorm = math.Max(worstNorm, math.Abs(float64(norm-s.GradNorm))/float64(s.GradNorm))
	}
	if clipped == 0 {
		t.Error("the reference never clips; the test would not cover clipping")
	}
	worstParam, worstParamName := 0.0, ""
	names := make([]string, 0, len(ref.Final))
	for n := range ref.Final {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		got, err := tr.Param(n)
		if err != nil {
			t.Fatal(err)
		}
		if e := l2Diff(got, ref.Final[n].Value) / l2(ref.Final[n].Value); e > worstParam {
			worstParam, worstParamName = e, n
		}
	}
	// The saved state: torch's keys, shapes and values.
	path := filepath.Join(t.TempDir(), "optimizer.safetensors")
	if err := tr.SaveOptimizerState(path); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tensors) != len(ref.State) {
		t.Errorf("%d state tensors saved, torch keeps %d", len(f.Tensors), len(ref.State))
	}
	worstState, worstStateName, factored := 0.0, "", 0
	for n, want := range ref.State {
		ts, ok := f.Tensors[n]
		if !ok || fmt.Sprint(ts.Shape) != fmt.Sprint(want.Shape) {
			t.Errorf("state %s: missing or shape %v, torch %v", n, ts.Shape, want.Shape)
			continue
		}
		if strings.HasPrefix(n, "exp_avg_sq_row.") {
			factored++
		}
		got, err := ts.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		if e := l2Diff(got, want.Value) / l2(want.Value); e > worstState {
			worstState, worstStateName = e, n
		}
	}
	first, last := ref.Steps[0], ref.Steps[len(ref.Steps)-1]
	t.Logf("%d Adafactor steps (%d clipped, %d transposed parameters, %d matrices with factored moments): loss %v -> %v; max relative error vs torch: loss %.3g, grad_norm %.3g, parameters (L2, per tensor) %.3g (%s), state %.3g (%s)",
		len(ref.Steps), clipped, transposed, factored, first.Loss, last.Loss, worstLoss, worstNorm, worstParam, worstParamName, worstState, worstStateName)
	if worstLoss > 1e-4 || worstNorm > 1e-4 {
		t.Errorf("per-step loss or grad_norm differs from torch by more than 1e-4 relative: %.3g, %.3g", worstLoss, worstNorm)
	}
	if worstParam > 1e-4 || worstState > 1e-4 {
		t.Errorf("final parameters or state differ from torch by more than 1e-4 (L2-relative): %.3g (%s), %.3g (%s)", worstParam, worstParamName, worstState, worstStateName)
	}
	// A checkpoint's state loads back.
	tr2 := openTrainer(t, env, dir, Options{Optimizer: "adafactor"})
	if err := tr2.LoadOptimizerState(path); err != nil {
		t.Fatal(err)
	}
	if tr2.Step() != int64(len(ref.Steps)) {
		t.Errorf("loaded step %d", tr2.Step())
	}
}
