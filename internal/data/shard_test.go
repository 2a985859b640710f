package data

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/ortrain/ortrain/internal/testenv"
)

// testdata/trainer/ddp/shards.json comes from
// scripts/refs/accelerate_shard_refs.py: the batches accelerate's
// BatchSamplerShard gives each process over a sequential BatchSampler.
func TestShardBatchesMatchesAccelerate(t *testing.T) {
	var ref struct {
		Cases []struct {
			N         int  `json:"n"`
			BatchSize int  `json:"batch_size"`
			Ranks     int  `json:"ranks"`
			DropLast  bool `json:"drop_last"`
			Shards    []struct {
				Batches [][]int `json:"batches"`
				Len     int     `json:"len"`
			} `json:"shards"`
		} `json:"cases"`
	}
	b, err := os.ReadFile(testenv.Testdata(t, "trainer", "ddp", "shards.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	if len(ref.Cases) < 100 {
		t.Fatalf("only %d cases", len(ref.Cases))
	}
	for _, c := range ref.Cases {
		for r, want := range c.Shards {
			o := Order{BatchSize: c.BatchSize, DropLast: c.DropLast, Rank: r, Ranks: c.Ranks}
			perm := o.Permutation(c.N, 0, nil)
			got := o.batches(perm)
			name := fmt.Sprintf("n=%d bs=%d ranks=%d drop_last=%v rank %d", c.N, c.BatchSize, c.Ranks, c.DropLast, r)
			if fmt.Sprint(got) != fmt.Sprint(want.Batches) && !(len(got) == 0 && len(want.Batches) == 0) {
				t.Errorf("%s: got %v, accelerate %v", name, got, want.Batches)
			}
			if n := o.NumBatches(c.N); n != want.Len {
				t.Errorf("%s: NumBatches %d, accelerate len %d", name, n, want.Len)
			}
		}
	}
}
