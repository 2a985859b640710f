package demo

import (
	"reflect"
	"testing"
)

// TestWeightsDeterministic: the same seed gives the same initial weights
// on every run (they were once drawn in map iteration order).
func TestWeightsDeterministic(t *testing.T) {
	want := initWeights(DefaultConfig(50))
	for i := 0; i < 20; i++ {
		if got := initWeights(DefaultConfig(50)); !reflect.DeepEqual(got, want) {
			t.Fatalf("run %d drew different initial weights from the same seed", i)
		}
	}
}
