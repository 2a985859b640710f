package schedule

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/ortrain/ortrain/internal/testenv"
)

type scheduleRef struct {
	Type           string             `json:"type"`
	NumWarmupSteps int                `json:"num_warmup_steps"`
	Total          int                `json:"total"`
	Kwargs         map[string]float64 `json:"kwargs"`
	LearningRate   float64            `json:"learning_rate"`
	LRs            []float64          `json:"lrs"`
}

// TestAgainstTransformers compares every step's learning rate with
// transformers.get_scheduler + torch LambdaLR (scripts/refs/trainer_basic_refs.py).
func TestAgainstTransformers(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "testdata", "trainer", "basic_refs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Schedules []scheduleRef `json:"schedules"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Schedules) == 0 {
		t.Fatal("no schedule references")
	}
	for _, c := range doc.Schedules {
		s, err := New(c.Type, c.LearningRate, c.NumWarmupSteps, c.Total, c.Kwargs)
		if err != nil {
			t.Fatalf("%s: %v", c.Type, err)
		}
		for step, want := range c.LRs {
			got := s.LR(step)
			if math.Abs(got-want) > 1e-15*math.Max(1, math.Abs(want)) {
				t.Errorf("%s warmup=%d total=%d kwargs=%v step %d: lr %v, transformers %v", c.Type, c.NumWarmupSteps, c.Total, c.Kwargs, step, got, want)
			}
		}
	}
}

func TestRejectsUnknownKwargs(t *testing.T) {
	if _, err := New("linear", 1e-3, 0, 10, map[string]float64{"power": 2}); err == nil {
		t.Fatal("linear accepted power")
	}
	if _, err := New("polynomial", 1e-8, 0, 10, nil); err == nil {
		t.Fatal("polynomial accepted lr_end >= lr")
	}
}
