package metrics

import (
	"encoding/json"
	"fmt"
	"testing"
)

type rougeRefFile struct {
	Datasets map[string]struct {
		Preds   []string   `json:"preds"`
		Targets [][]string `json:"targets"`
	} `json:"datasets"`
	Cases []struct {
		Data       string                  `json:"data"`
		Types      []string                `json:"types"`
		UseStemmer bool                    `json:"use_stemmer"`
		Pairs      []map[string]ROUGEScore `json:"pairs"`
		Mean       map[string]ROUGEScore   `json:"mean"`
		Bootstrap  struct {
			Seed       uint32                   `json:"seed"`
			NSamples   int                      `json:"n_samples"`
			Confidence float64                  `json:"confidence"`
			Result     map[string]ROUGEInterval `json:"result"`
		} `json:"bootstrap"`
	} `json:"cases"`
}

func nearScore(a, b ROUGEScore) bool {
	return near(a.Precision, b.Precision) && near(a.Recall, b.Recall) && near(a.FMeasure, b.FMeasure)
}

func TestROUGEMatchesRougeScore(t *testing.T) {
	var ref rougeRefFile
	loadRefs(t, "rouge.json", &ref)
	compared := map[string]int{}
	for ci, c := range ref.Cases {
		d := ref.Datasets[c.Data]
		r, err := NewROUGE(ROUGEOptions{Types: c.Types, UseStemmer: c.UseStemmer}, true)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.AddBatch(d.Preds, d.Targets, 2)
		if err != nil {
			t.Fatal(err)
		}
		for k, want := range c.Pairs {
			for ti, typ := range c.Types {
				if !nearScore(got[k][ti], want[typ]) {
					t.Errorf("case %d %s stem=%v pair %d %s: got %+v want %+v\n pred %q\n targets %q",
						ci, c.Data, c.UseStemmer, k, typ, got[k][ti], want[typ], d.Preds[k], d.Targets[k])
				}
				compared[fmt.Sprintf("%s stem=%v", typ, c.UseStemmer)]++
			}
		}
		mean := r.Mean()
		for ti, typ := range c.Types {
			if !nearScore(mean[ti], c.Mean[typ]) {
				t.Errorf("case %d mean %s: got %+v want %+v", ci, typ, mean[ti], c.Mean[typ])
			}
		}
		b := c.Bootstrap
		iv, err := r.Bootstrap(b.NSamples, b.Confidence, b.Seed)
		if err != nil {
			t.Fatal(err)
		}
		for ti, typ := range c.Types {
			w := b.Result[typ]
			if !nearScore(iv[ti].Low, w.Low) || !nearScore(iv[ti].Mid, w.Mid) || !nearScore(iv[ti].High, w.High) {
				t.Errorf("case %d bootstrap %s: got %+v want %+v", ci, typ, iv[ti], w)
			}
		}
	}
	t.Logf("%d cases; pair scores compared per type: %v", len(ref.Cases), compared)
}

func TestROUGEShardsMergeExactly(t *testing.T) {
	var ref rougeRefFile
	loadRefs(t, "rouge.json", &ref)
	d := ref.Datasets["scitldr_lead3_multiref"]
	opts := ROUGEOptions{Types: []string{"rouge1", "rouge2", "rougeL", "rougeLsum"}, UseStemmer: true}
	whole, _ := NewROUGE(opts, true)
	for k, p := range d.Preds {
		if _, err := whole.Add(p, d.Targets[k]); err != nil {
			t.Fatal(err)
		}
	}
	merged, _ := NewROUGE(opts, true)
	// Shards in reverse order: the exact sums do not depend on the order.
	for hi := len(d.Preds); hi > 0; hi -= 29 {
		lo := max(0, hi-29)
		shard, _ := NewROUGE(opts, true)
		if _, err := shard.AddBatch(d.Preds[lo:hi], d.Targets[lo:hi], 2); err != nil {
			t.Fatal(err)
		}
		js, _ := json.Marshal(shard.Stats())
		var back ROUGEStats
		if err := json.Unmarshal(js, &back); err != nil {
			t.Fatal(err)
		}
		if err := merged.Merge(back); err != nil {
			t.Fatal(err)
		}
	}
	a, b := whole.Mean(), merged.Mean()
	for i := range a {
		if a[i] != b[i] {
			t.Errorf("%s: merged %+v != single pass %+v", opts.Types[i], b[i], a[i])
		}
	}
	if merged.Count() != int64(len(d.Preds)) {
		t.Errorf("merged count %d", merged.Count())
	}
}

func TestROUGEBadOptions(t *testing.T) {
	for _, typ := range []string{"rouge0", "rougeX", "rouge10", "rougel", ""} {
		if _, err := NewROUGE(ROUGEOptions{Types: []string{typ}}, false); err == nil {
			t.Errorf("type %q accepted", typ)
		}
	}
	if _, err := NewROUGE(ROUGEOptions{SplitSummaries: true}, false); err == nil {
		t.Error("split_summaries accepted without a Punkt model")
	}
	r, _ := NewROUGE(ROUGEOptions{}, false)
	if _, err := r.Add("x", nil); err == nil {
		t.Error("pair without target accepted")
	}
	if _, err := r.Bootstrap(10, 0.95, 1); err == nil {
		t.Error("bootstrap without kept pairs accepted")
	}
}

func TestExactSumIsOrderFree(t *testing.T) {
	xs := []float64{1e16, 1, -1e16, 0.1, 0.2, 0.3, 1e-20, 3, 1.0 / 3}
	var a, b exactSum
	for _, x := range xs {
		a.add(x)
	}
	for i := len(xs) - 1; i >= 0; i-- {
		b.add(xs[i])
	}
	// Python: math.fsum([1e16, 1, -1e16, 0.1, 0.2, 0.3, 1e-20, 3, 1/3])
	const want = 4.933333333333334
	if a.value() != want || b.value() != want {
		t.Errorf("fsum %v / %v, want %v", a.value(), b.value(), want)
	}
}

// Scores do not depend on the order of the types, nor on what the previous
// pairs were (the scorer reuses its buffers), on texts with and without
// newlines.
func TestROUGETypeOrderAndBufferReuse(t *testing.T) {
	var ref rougeRefFile
	loadRefs(t, "rouge.json", &ref)
	d := ref.Datasets["adversarial"]
	orders := [][]string{
		{"rouge1", "rouge2", "rougeL", "rougeLsum"},
		{"rougeLsum", "rouge1", "rougeL", "rouge2"},
		{"rougeLsum", "rougeL"},
	}
	want := map[string][]ROUGEScore{}
	for _, types := range orders {
		r, _ := NewROUGE(ROUGEOptions{Types: types, UseStemmer: true}, false)
		for k, p := range d.Preds {
			// Alternate with a multi-line pair so buffers are reused across shapes.
			if _, err := r.Add("x\ny z", []string{"y z w\nx"}); err != nil {
				t.Fatal(err)
			}
			got, err := r.Add(p, d.Targets[k])
			if err != nil {
				t.Fatal(err)
			}
			for i, typ := range types {
				key := fmt.Sprint(typ, k)
				if w, ok := want[key]; ok && w[0] != got[i] {
					t.Errorf("pair %d %s with types %v: %+v, before %+v", k, typ, types, got[i], w[0])
				}
				want[key] = []ROUGEScore{got[i]}
			}
		}
	}
}
