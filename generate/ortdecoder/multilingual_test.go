package ortdecoder

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"testing"

	"github.com/ortrain/ortrain/generate"
	"github.com/ortrain/ortrain/internal/testenv"
)

type multilingualGenRefs struct {
	Versions map[string]string `json:"versions"`
	Models   map[string]struct {
		Sources map[string][][]int64 `json:"sources"`
		Cases   []struct {
			fixtureCase
			WithPadInside      int  `json:"with_pad_inside"`
			UseCacheFalseEqual bool `json:"use_cache_false_equal"`
		} `json:"cases"`
	} `json:"models"`
}

// TestMultilingualFixturesMatchHF generates with the tiny M2M100 and mBART
// models of testdata/multilingual (made by
// scripts/fixtures/make_multilingual_models.py, trained to emit pad ids
// inside their outputs) through the KV-cache and the recompute decoders and
// compares with HF's default generate() token for token
// (scripts/refs/multilingual_refs.py). M2M100 derives its position ids
// from the token ids, so these cases pin how pad ids inside an output count.
func TestMultilingualFixturesMatchHF(t *testing.T) {
	env := openEnv(t)
	data, err := os.ReadFile(testenv.Testdata(t, "multilingual", "generate.json"))
	if err != nil {
		t.Fatal(err)
	}
	var refs multilingualGenRefs
	if err := json.Unmarshal(data, &refs); err != nil {
		t.Fatal(err)
	}
	for _, model := range []string{"m2m100-tiny", "mbart-tiny"} {
		m, ok := refs.Models[model]
		if !ok {
			t.Fatalf("no references for %s", model)
		}
		dir := testenv.Testdata(t, "multilingual", model)
		base, err := generate.LoadConfig(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, nd := range openDecoders(t, env, dir, base.PadTokenID) {
			seqs, equal, withPad, cacheMatters := 0, 0, 0, 0
			for _, c := range m.Cases {
				t.Run(model+"/"+nd.name+"/"+c.Name, func(t *testing.T) {
					cfg := base
					if err := cfg.ApplyJSON(c.Kwargs); err != nil {
						t.Fatal(err)
					}
					out, err := generate.Generate(context.Background(), nd.dec, m.Sources[c.Batch], cfg)
					if err != nil {
						t.Fatal(err)
					}
					if len(out.Sequences) != len(c.Sequences) {
						t.Fatalf("%d sequences, HF %d", len(out.Sequences), len(c.Sequences))
					}
					for i := range c.Sequences {
						seqs++
						if fmt.Sprint(out.Sequences[i]) != fmt.Sprint(c.Sequences[i]) {
							t.Errorf("row %d:\n got %v\nwant %v", i, out.Sequences[i], c.Sequences[i])
						} else {
							equal++
						}
					}
					for i, want := range c.SequencesScores {
						if d := math.Abs(float64(out.Scores[i]) - want); d > 1e-4 {
							t.Errorf("row %d: score %v, HF %v", i, out.Scores[i], want)
						}
					}
				})
				withPad += c.WithPadInside
				if !c.UseCacheFalseEqual {
					cacheMatters++
				}
			}
			t.Logf("%s/%s: %d/%d sequences equal to HF generate() (%d of them with a pad id inside; %d of %d cases where HF without a cache would differ)",
				model, nd.name, equal, seqs, withPad, cacheMatters, len(m.Cases))
		}
	}
}
