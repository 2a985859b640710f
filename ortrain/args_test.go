package ortrain

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/testenv"
)

type basicRefs struct {
	Validation []struct {
		Args     map[string]any `json:"args"`
		Error    *string        `json:"error"`
		Resolved map[string]any `json:"resolved"`
	} `json:"validation"`
	ComputeSteps []struct {
		LoggingSteps float64  `json:"logging_steps"`
		EvalSteps    *float64 `json:"eval_steps"`
		SaveSteps    float64  `json:"save_steps"`
		MaxSteps     int      `json:"max_steps"`
		State        []int    `json:"state"`
	} `json:"compute_steps"`
}

func loadBasicRefs(t *testing.T) basicRefs {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "testdata", "trainer", "basic_refs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r basicRefs
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// TestValidationMatchesHF checks TrainingArguments.__post_init__ errors and
// derived values against transformers (scripts/refs/trainer_basic_refs.py).
func TestValidationMatchesHF(t *testing.T) {
	refs := loadBasicRefs(t)
	if len(refs.Validation) < 10 {
		t.Fatal("too few validation references")
	}
	for _, c := range refs.Validation {
		a := DefaultArguments()
		for k, v := range c.Args {
			if err := a.Set(k, v); err != nil {
				t.Fatalf("%v: %v", c.Args, err)
			}
		}
		err := a.Finalize()
		if c.Error != nil {
			if err == nil {
				t.Errorf("%v: no error, HF: %s", c.Args, *c.Error)
			} else if err.Error() != *c.Error {
				t.Errorf("%v:\n got %q\nwant %q", c.Args, err.Error(), *c.Error)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: unexpected error %v", c.Args, err)
			continue
		}
		r := c.Resolved
		if es := r["eval_steps"]; es != nil && (a.EvalSteps == nil || *a.EvalSteps != es.(float64)) {
			t.Errorf("%v: eval_steps %v, HF %v", c.Args, a.EvalSteps, es)
		}
		if m := r["metric_for_best_model"]; (m == nil) != (a.MetricForBestModel == nil) || (m != nil && *a.MetricForBestModel != m.(string)) {
			t.Errorf("%v: metric_for_best_model %v, HF %v", c.Args, a.MetricForBestModel, m)
		}
		if g := r["greater_is_better"]; (g == nil) != (a.GreaterIsBetter == nil) || (g != nil && *a.GreaterIsBetter != g.(bool)) {
			t.Errorf("%v: greater_is_better %v, HF %v", c.Args, a.GreaterIsBetter, g)
		}
		if a.DoEval != r["do_eval"].(bool) {
			t.Errorf("%v: do_eval %v, HF %v", c.Args, a.DoEval, r["do_eval"])
		}
	}
}

func TestComputeStepsMatchesHF(t *testing.T) {
	refs := loadBasicRefs(t)
	for _, c := range refs.ComputeSteps {
		a := DefaultArguments()
		a.LoggingSteps = c.LoggingSteps
		a.SaveSteps = c.SaveSteps
		if c.EvalSteps != nil {
			a.EvalStrategy = StrategySteps
			a.EvalSteps = c.EvalSteps
		}
		if err := a.Finalize(); err != nil {
			t.Fatal(err)
		}
		st := newTrainerState()
		st.computeSteps(&a, c.MaxSteps)
		got := []int{st.LoggingSteps, st.EvalSteps, st.SaveSteps}
		for i := range got {
			if got[i] != c.State[i] {
				t.Errorf("%+v: state steps %v, HF %v", c, got, c.State)
				break
			}
		}
	}
}

func TestConfigFileAndFlagNames(t *testing.T) {
	dir := t.TempDir()
	yml := filepath.Join(dir, "args.yaml")
	os.WriteFile(yml, []byte("output_dir: out\neval-steps: 0.25\nsave_total_limit: 2\nreport_to: [jsonl]\nlr_scheduler_kwargs: {num_cycles: 1.5}\ngreater_is_better: null\n"), 0o644)
	a := DefaultArguments()
	if err := a.LoadConfigFile(yml); err != nil {
		t.Fatal(err)
	}
	if a.OutputDir != "out" || a.EvalSteps == nil || *a.EvalSteps != 0.25 || *a.SaveTotalLimit != 2 || a.ReportTo[0] != "jsonl" || a.LRSchedulerKwargs["num_cycles"] != 1.5 {
		t.Fatalf("yaml not applied: %+v", a)
	}
	js := filepath.Join(dir, "args.json")
	os.WriteFile(js, []byte("{\n  \"learning_rate\": 0.001,\n  \"bogus_key\": 1\n}\n"), 0o644)
	err := a.LoadConfigFile(js)
	if err == nil || !strings.Contains(err.Error(), js+":3") || !strings.Contains(err.Error(), "bogus_key") {
		t.Fatalf("want an error naming file, line and key, got %v", err)
	}
	os.WriteFile(js, []byte(`{"max_steps": 2.5}`), 0o644)
	if err := a.LoadConfigFile(js); err == nil || !strings.Contains(err.Error(), "max_steps") {
		t.Fatalf("want an integer error for max_steps, got %v", err)
	}
	// training_args.json round trip
	b := DefaultArguments()
	b.EvalStrategy = StrategySteps
	if err := b.Finalize(); err != nil {
		t.Fatal(err)
	}
	c, err := ArgumentsFromMap(b.ToMap())
	if err != nil {
		t.Fatal(err)
	}
	if *c.EvalSteps != *b.EvalSteps || c.EvalStrategy != b.EvalStrategy {
		t.Fatalf("round trip lost values: %+v", c)
	}
}

func TestOrtrainOnlyValidation(t *testing.T) {
	for _, c := range []struct {
		set  map[string]any
		want string
	}{
		{map[string]any{"early_stopping_patience": 2}, "EarlyStoppingCallback requires metric_for_best_model to be defined"},
		{map[string]any{"early_stopping_patience": 2, "metric_for_best_model": "bleu"}, "EarlyStoppingCallback requires IntervalStrategy of steps or epoch"},
		{map[string]any{"save_strategy": "best"}, "`args.metric_for_best_model` must be provided"},
		{map[string]any{"lr_scheduler_type": "cosine_with_restarts"}, "not a supported SchedulerType"},
		{map[string]any{"warmup_ratio": 0.1, "warmup_steps": 3}, "both warmup_steps"},
		{map[string]any{"device": "tpu"}, "device"},
	} {
		a := DefaultArguments()
		for k, v := range c.set {
			if err := a.Set(k, v); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.Finalize(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want %q", c.set, err, c.want)
		}
	}
	a := DefaultArguments()
	a.WarmupRatio = 0.1
	if err := a.Finalize(); err != nil || a.WarmupSteps != 0.1 || a.WarmupStepsFor(25) != 3 {
		t.Fatalf("warmup_ratio: %v %v", err, a.WarmupSteps)
	}
}
