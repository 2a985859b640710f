package ortrain

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/pyjson"
)

// Metric is one logged value.
type Metric struct {
	Key   string
	Value float64
}

// Logs is an ordered set of logged values (HF keeps dict insertion order for
// the console; trainer_state.json sorts keys).
type Logs []Metric

// Get returns the value of key.
func (l Logs) Get(key string) (float64, bool) {
	for _, m := range l {
		if m.Key == key {
			return m.Value, true
		}
	}
	return 0, false
}

// Set replaces key's value or appends it.
func (l *Logs) Set(key string, v float64) {
	for i := range *l {
		if (*l)[i].Key == key {
			(*l)[i].Value = v
			return
		}
	}
	*l = append(*l, Metric{key, v})
}

// Keys lists the keys in order.
func (l Logs) Keys() []string {
	k := make([]string, len(l))
	for i, m := range l {
		k[i] = m.Key
	}
	return k
}

func (l Logs) toMap() map[string]any {
	m := make(map[string]any, len(l))
	for _, e := range l {
		m[e.Key] = e.Value
	}
	return m
}

// LogEntry is one element of log_history: the logs plus the global step.
type LogEntry struct {
	Logs Logs
	Step int
}

// TrainerState mirrors transformers' TrainerState (5.24) and is written as
// trainer_state.json in HF's schema.
type TrainerState struct {
	Epoch               float64
	GlobalStep          int
	MaxSteps            int
	LoggingSteps        int
	EvalSteps           int
	SaveSteps           int
	TrainBatchSize      *int
	NumTrainEpochs      int
	NumInputTokensSeen  int
	TotalFlos           float64
	LogHistory          []LogEntry
	BestMetric          *float64
	BestGlobalStep      *int
	BestModelCheckpoint *string
	// StatefulCallbacks holds TrainerControl and stateful callbacks' state
	// under their HF class names.
	StatefulCallbacks map[string]any
}

func newTrainerState() *TrainerState {
	return &TrainerState{LoggingSteps: 500, EvalSteps: 500, SaveSteps: 500, StatefulCallbacks: map[string]any{}}
}

// computeSteps is TrainerState.compute_steps: ratios (< 1) of max_steps are
// rounded up; a missing argument keeps the default 500.
func (s *TrainerState) computeSteps(a *TrainingArguments, maxSteps int) {
	conv := func(v float64) int {
		if v < 1 {
			return int(math.Ceil(float64(maxSteps) * v))
		}
		return int(v)
	}
	s.LoggingSteps = conv(a.LoggingSteps)
	if a.EvalSteps != nil {
		s.EvalSteps = conv(*a.EvalSteps)
	}
	s.SaveSteps = conv(a.SaveSteps)
}

func optional[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// MarshalHF writes the state as TrainerState.save_to_json does:
// json.dumps(asdict(state), indent=2, sort_keys=True) + "\n".
func (s *TrainerState) MarshalHF() ([]byte, error) {
	hist := make([]any, len(s.LogHistory))
	for i, e := range s.LogHistory {
		m := e.Logs.toMap()
		m["step"] = e.Step
		hist[i] = m
	}
	sc := s.StatefulCallbacks
	if sc == nil {
		sc = map[string]any{}
	}
	doc := map[string]any{
		"best_global_step":      optional(s.BestGlobalStep),
		"best_metric":           optional(s.BestMetric),
		"best_model_checkpoint": optional(s.BestModelCheckpoint),
		"epoch":                 s.Epoch,
		"eval_steps":            s.EvalSteps,
		"global_step":           s.GlobalStep,
		"is_hyper_param_search": false,
		"is_local_process_zero": true,
		"is_world_process_zero": true,
		"log_history":           hist,
		"logging_steps":         s.LoggingSteps,
		"max_steps":             s.MaxSteps,
		"num_input_tokens_seen": s.NumInputTokensSeen,
		"num_train_epochs":      s.NumTrainEpochs,
		"save_steps":            s.SaveSteps,
		"stateful_callbacks":    sc,
		"total_flos":            s.TotalFlos,
		"train_batch_size":      optional(s.TrainBatchSize),
		"trial_name":            nil,
		"trial_params":          nil,
	}
	b, err := pyjson.Marshal(doc, 2)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// maxCount bounds every step, epoch and batch count of a trainer state:
// counts are integers a float64 holds exactly (a claimed global_step of
// 1e300 used to become a negative int and a loop without end).
const maxCount = 1 << 53

// LoadTrainerState reads a trainer_state.json written by ortrain or by HF.
// A malformed file, or a count that is negative, fractional or beyond
// 2^53, is bad input (fault.Input).
func LoadTrainerState(path string) (*TrainerState, error) {
	s, err := loadTrainerState(path)
	return s, fault.Mark(fault.Input, err)
}

func loadTrainerState(path string) (*TrainerState, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	// Python's json writes NaN/Infinity, which encoding/json rejects.
	clean := strings.NewReplacer(": NaN", `: "NaN"`, ": Infinity", `: "Infinity"`, ": -Infinity", `: "-Infinity"`).Replace(string(data))
	dec := json.NewDecoder(strings.NewReader(clean))
	dec.UseNumber()
	var raw map[string]any
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%s: not a trainer_state.json: %v", path, err)
	}
	s := newTrainerState()
	bad := func(key string) error { return fmt.Errorf("%s: field %q has the wrong type", path, key) }
	num := func(key string) (float64, bool, error) {
		v, ok := raw[key]
		if !ok || v == nil {
			return 0, false, nil
		}
		f, err := jsonFloat(v)
		if err != nil {
			return 0, false, bad(key)
		}
		return f, true, nil
	}
	ints := map[string]*int{"global_step": &s.GlobalStep, "max_steps": &s.MaxSteps, "logging_steps": &s.LoggingSteps,
		"eval_steps": &s.EvalSteps, "save_steps": &s.SaveSteps, "num_train_epochs": &s.NumTrainEpochs, "num_input_tokens_seen": &s.NumInputTokensSeen}
	count := func(key string, f float64) (int, error) {
		if f != math.Trunc(f) || f < 0 || f >= maxCount {
			return 0, fmt.Errorf("%s: field %q is %v; want a whole number from 0 to below 2^53", path, key, f)
		}
		return int(f), nil
	}
	for k, p := range ints {
		f, ok, err := num(k)
		if err != nil {
			return nil, err
		}
		if ok {
			if *p, err = count(k, f); err != nil {
				return nil, err
			}
		}
	}
	var err2 error
	if s.Epoch, _, err2 = num("epoch"); err2 != nil {
		return nil, err2
	}
	if s.TotalFlos, _, err2 = num("total_flos"); err2 != nil {
		return nil, err2
	}
	if f, ok, err := num("best_metric"); err != nil {
		return nil, err
	} else if ok {
		s.BestMetric = &f
	}
	if f, ok, err := num("best_global_step"); err != nil {
		return nil, err
	} else if ok {
		n, err := count("best_global_step", f)
		if err != nil {
			return nil, err
		}
		s.BestGlobalStep = &n
	}
	if f, ok, err := num("train_batch_size"); err != nil {
		return nil, err
	} else if ok {
		n, err := count("train_batch_size", f)
		if err != nil {
			return nil, err
		}
		s.TrainBatchSize = &n
	}
	if math.IsNaN(s.Epoch) || s.Epoch < 0 || s.Epoch >= maxCount {
		return nil, fmt.Errorf("%s: field \"epoch\" is %v; want a number from 0 to below 2^53", path, s.Epoch)
	}
	if v, ok := raw["best_model_checkpoint"].(string); ok {
		s.BestModelCheckpoint = &v
	}
	if v, ok := raw["stateful_callbacks"].(map[string]any); ok {
		s.StatefulCallbacks = v
	}
	hist, _ := raw["log_history"].([]any)
	for i, h := range hist {
		m, ok := h.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: log_history[%d] is not an object", path, i)
		}
		var e LogEntry
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if k == "step" {
				f, err := jsonFloat(m[k])
				if err != nil {
					return nil, bad("log_history.step")
				}
				if e.Step, err = count(fmt.Sprintf("log_history[%d].step", i), f); err != nil {
					return nil, err
				}
				continue
			}
			f, err := jsonFloat(m[k])
			if err != nil {
				continue // non-numeric values (strings) are not kept
			}
			e.Logs = append(e.Logs, Metric{k, f})
		}
		s.LogHistory = append(s.LogHistory, e)
	}
	return s, nil
}

func jsonFloat(v any) (float64, error) {
	switch x := v.(type) {
	case json.Number:
		return x.Float64()
	case string:
		switch x {
		case "NaN":
			return math.NaN(), nil
		case "Infinity":
			return math.Inf(1), nil
		case "-Infinity":
			return math.Inf(-1), nil
		}
	}
	return 0, fmt.Errorf("not a number: %v", v)
}

// TrainerControl mirrors transformers' TrainerControl: the switches
// callbacks set and the loop acts on.
type TrainerControl struct {
	ShouldTrainingStop bool
	ShouldEpochStop    bool
	ShouldSave         bool
	ShouldEvaluate     bool
	ShouldLog          bool
}

func (c *TrainerControl) stateMap() map[string]any {
	return map[string]any{
		"args": map[string]any{
			"should_training_stop": c.ShouldTrainingStop,
			"should_epoch_stop":    c.ShouldEpochStop,
			"should_save":          c.ShouldSave,
			"should_evaluate":      c.ShouldEvaluate,
			"should_log":           c.ShouldLog,
		},
		"attributes": map[string]any{},
	}
}
