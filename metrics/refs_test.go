package metrics

import (
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/ortrain/ortrain/internal/testenv"
)

// The reference files come from scripts/refs/metrics_refs.py (sacrebleu
// 2.6.0, rouge-score 0.1.2); see their "meta" field.

const tol = 1e-9

type textSet struct {
	Hyps []string   `json:"hyps"`
	Refs [][]string `json:"refs"`
}

func loadRefs(t testing.TB, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(testenv.Testdata(t, "metrics", name))
	if err != nil {
		t.Fatalf("reading reference file (regenerate with scripts/refs/metrics_refs.py): %v", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func near(a, b float64) bool {
	return math.Abs(a-b) <= tol*math.Max(1, math.Abs(b))
}

func nearSlice(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !near(a[i], b[i]) {
			return false
		}
	}
	return true
}
