package ortrain

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/testenv"
)

type rotationRef struct {
	Scenario struct {
		Seed            int     `json:"seed"`
		SaveTotalLimit  *int    `json:"save_total_limit"`
		GreaterIsBetter *bool   `json:"greater_is_better"`
		Metric          string  `json:"metric"`
		EvalSteps       int     `json:"eval_steps"`
		SaveSteps       int     `json:"save_steps"`
		MaxSteps        int     `json:"max_steps"`
		SaveStrategy    string  `json:"save_strategy"`
		Patience        int     `json:"patience"`
		Threshold       float64 `json:"threshold"`
		Strategy        string  `json:"strategy"`
		Epochs          float64 `json:"epochs"`
		TrainRows       int     `json:"train_rows"`
		GA              int     `json:"ga"`
		EvalDelay       float64 `json:"eval_delay"`
	} `json:"scenario"`
	EvalLosses    []float64 `json:"eval_losses"`
	EvalScores    []float64 `json:"eval_scores"`
	EvalStepsSeen []int     `json:"eval_steps_seen"`
	Saves         []struct {
		Step                int      `json:"step"`
		OnDisk              []string `json:"on_disk"`
		BestModelCheckpoint *string  `json:"best_model_checkpoint"`
	} `json:"saves"`
	FinalOnDisk         []string `json:"final_on_disk"`
	BestModelCheckpoint *string  `json:"best_model_checkpoint"`
	BestMetric          *float64 `json:"best_metric"`
	BestGlobalStep      *int     `json:"best_global_step"`
	GlobalStep          int      `json:"global_step"`
}

type saveRecord struct {
	Step   int
	OnDisk []string
	Best   string
}

type recorder struct {
	NopCallback
	dir   string
	evals []int
	saves []saveRecord
}

func (r *recorder) OnEvaluate(e *Event) error {
	r.evals = append(r.evals, e.State.GlobalStep)
	return nil
}

func (r *recorder) OnSave(e *Event) error {
	best := ""
	if e.State.BestModelCheckpoint != nil {
		best = filepath.Base(*e.State.BestModelCheckpoint)
	}
	r.saves = append(r.saves, saveRecord{e.State.GlobalStep, checkpointNames(r.dir), best})
	return nil
}

func checkpointNames(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "checkpoint-") {
			out = append(out, e.Name())
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, _ := strconv.Atoi(strings.TrimPrefix(out[i], "checkpoint-"))
		b, _ := strconv.Atoi(strings.TrimPrefix(out[j], "checkpoint-"))
		return a < b
	})
	return out
}

// TestRotationAndBestMatchHF replays the scripted metric sequences of
// scripts/refs/trainer_rotation_refs.py (a real HF Trainer run per
// scenario) and compares when evaluation and saving happen, the checkpoints
// on disk after every save and at the end, best_model_checkpoint,
// best_metric, best_global_step and the final step (early stopping).
func TestRotationAndBestMatchHF(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "testdata", "trainer", "rotation_refs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Scenarios []rotationRef `json:"scenarios"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Scenarios) < 50 {
		t.Fatalf("only %d scenarios", len(doc.Scenarios))
	}
	limits := map[string]bool{}
	for _, ref := range doc.Scenarios {
		sc := ref.Scenario
		name := strconv.Itoa(sc.Seed)
		limits[strconv.Itoa(deref0(sc.SaveTotalLimit))+"/"+strconv.FormatBool(sc.GreaterIsBetter != nil && *sc.GreaterIsBetter)] = true
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			a := DefaultArguments()
			a.OutputDir = out
			a.DoTrain = true
			a.MaxSteps = sc.MaxSteps
			a.PerDeviceTrainBatchSize = 1
			a.PerDeviceEvalBatchSize = 2
			a.LearningRate = 1e-3
			strategy := StrategySteps
			if sc.Strategy != "" {
				strategy = sc.Strategy
			}
			a.EvalStrategy = strategy
			a.LoggingStrategy = strategy
			es := float64(sc.EvalSteps)
			a.EvalSteps = &es
			a.SaveStrategy = strategy
			if sc.SaveStrategy != "" {
				a.SaveStrategy = sc.SaveStrategy
			}
			a.NumTrainEpochs = 3
			if sc.Epochs > 0 {
				a.NumTrainEpochs = sc.Epochs
			}
			if sc.GA > 0 {
				a.GradientAccumulationSteps = sc.GA
			}
			a.EvalDelay = sc.EvalDelay
			rows := 64
			if sc.TrainRows > 0 {
				rows = sc.TrainRows
			}
			a.SaveSteps = float64(sc.SaveSteps)
			a.SaveTotalLimit = sc.SaveTotalLimit
			a.LoadBestModelAtEnd = true
			m := sc.Metric
			a.MetricForBestModel = &m
			a.GreaterIsBetter = sc.GreaterIsBetter
			a.LoggingSteps = es
			a.SaveOnlyModel = true
			a.EarlyStoppingPatience = sc.Patience
			a.EarlyStoppingThreshold = sc.Threshold
			a.PredictWithGenerate = true
			if err := a.Finalize(); err != nil {
				t.Fatal(err)
			}
			rec := &recorder{dir: out}
			eng := &fakeEngine{evalScript: ref.EvalLosses}
			tr := &Trainer{
				Args: a, Engine: eng,
				TrainData: newFakeData(rows, 1, 1, true), EvalData: newFakeData(1, 2, 2, false),
				Generator: fakeGenerator{}, ComputeMetrics: scriptedMetrics(ref.EvalScores), MetricNames: []string{"score"},
				Callbacks: []Callback{rec}, Clock: fixedClock(),
			}
			if _, err := tr.Train(context.Background()); err != nil {
				t.Fatal(err)
			}
			st := tr.State()
			if !reflect.DeepEqual(rec.evals, ref.EvalStepsSeen) {
				t.Errorf("evaluations at %v, HF %v", rec.evals, ref.EvalStepsSeen)
			}
			if len(rec.saves) != len(ref.Saves) {
				t.Errorf("saves %v, HF %+v", rec.saves, ref.Saves)
			} else {
				for i, s := range ref.Saves {
					got := rec.saves[i]
					if got.Step != s.Step || !reflect.DeepEqual(got.OnDisk, s.OnDisk) || got.Best != deref(s.BestModelCheckpoint) {
						t.Errorf("save %d: %+v, HF step %d on disk %v best %v", i, got, s.Step, s.OnDisk, deref(s.BestModelCheckpoint))
					}
				}
			}
			if got := checkpointNames(out); !reflect.DeepEqual(got, ref.FinalOnDisk) {
				t.Errorf("final checkpoints %v, HF %v", got, ref.FinalOnDisk)
			}
			gotBest := ""
			if st.BestModelCheckpoint != nil {
				gotBest = filepath.Base(*st.BestModelCheckpoint)
				if eng.loadedFrom != *st.BestModelCheckpoint {
					t.Errorf("best model not loaded at end: loaded %q", eng.loadedFrom)
				}
			}
			if gotBest != deref(ref.BestModelCheckpoint) {
				t.Errorf("best_model_checkpoint %q, HF %q", gotBest, deref(ref.BestModelCheckpoint))
			}
			if (st.BestMetric == nil) != (ref.BestMetric == nil) || (st.BestMetric != nil && *st.BestMetric != *ref.BestMetric) {
				t.Errorf("best_metric %v, HF %v", st.BestMetric, ref.BestMetric)
			}
			if (st.BestGlobalStep == nil) != (ref.BestGlobalStep == nil) || (st.BestGlobalStep != nil && *st.BestGlobalStep != *ref.BestGlobalStep) {
				t.Errorf("best_global_step %v, HF %v", st.BestGlobalStep, ref.BestGlobalStep)
			}
			if st.GlobalStep != ref.GlobalStep {
				t.Errorf("global_step %d, HF %d", st.GlobalStep, ref.GlobalStep)
			}
		})
	}
	for _, want := range []string{"0/true", "0/false", "1/true", "1/false", "2/true", "2/false", "3/true", "3/false"} {
		if !limits[want] {
			t.Errorf("no scenario for save_total_limit/greater_is_better %s", want)
		}
	}
}

func deref0(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}
