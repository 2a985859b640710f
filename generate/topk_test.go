package generate

import (
	"fmt"
	"math"
	"testing"
)

type topkCase struct {
	N, K    int
	Seed    uint64
	Levels  uint64
	Indices []int
}

// topkValues mirrors topk_values() in scripts/refs/generate_search_refs.py.
func topkValues(n int, seed, levels uint64) []float32 {
	out := make([]float32, n)
	for i := range out {
		level := (mix(seed^(uint64(i+1)*golden)) >> 58) % levels
		if level == 0 {
			out[i] = float32(math.Inf(-1))
		} else {
			out[i] = float32(float64(level)/2 - 2)
		}
	}
	return out
}

func TestTopKTieOrderMatchesTorch(t *testing.T) {
	var f struct{ Topk []topkCase }
	loadJSON(t, &f)
	if len(f.Topk) == 0 {
		t.Fatal("no topk cases in the reference file")
	}
	bad := 0
	for _, c := range f.Topk {
		got := topK(topkValues(c.N, c.Seed, c.Levels), c.K)
		if fmt.Sprint(got) != fmt.Sprint(c.Indices) {
			bad++
			t.Errorf("n=%d k=%d seed=%d levels=%d:\n got %v\nwant %v", c.N, c.K, c.Seed, c.Levels, got, c.Indices)
		}
	}
	t.Logf("%d torch.topk tie-order cases, %d mismatched", len(f.Topk), bad)
}
