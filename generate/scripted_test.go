package generate

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"testing"

	"github.com/ortrain/ortrain/internal/testenv"
)

// The scripted model of scripts/refs/generate_search_refs.py, reimplemented:
// its logits are a deterministic function of (source ids, decoder prefix).
//
//	mix      = splitmix64 finalizer; G = 0x9E3779B97F4A7C15
//	src_key  = fold(seed, source), fold(h, ts): for t: h = mix((h ^ (t+1)) + G)
//	key      = fold(mix(src_key ^ 0xD1CE), prefix)
//	logit[v] = ((mix(key ^ ((v+1)·G)) >> 58)·64 + v) / 1024
//	         + slope_i·(len(prefix) − (2 + src_key mod 7)) for each bias token i
//
// All values are multiples of 1/1024 below 64, exact in float32.
type scriptedSpec struct {
	Vocab int    `json:"vocab"`
	Seed  uint64 `json:"seed"`
	Bias  []struct {
		Token int     `json:"token"`
		Slope float64 `json:"slope"`
	} `json:"bias"`
}

const golden = 0x9E3779B97F4A7C15

func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xBF58476D1CE4E5B9
	x ^= x >> 27
	x *= 0x94D049BB133111EB
	x ^= x >> 31
	return x
}

func fold(h uint64, tokens []int64) uint64 {
	for _, t := range tokens {
		h = mix((h ^ uint64(t+1)) + golden)
	}
	return h
}

func (s scriptedSpec) logits(source, prefix []int64, out []float32) {
	srcKey := fold(s.Seed, source)
	key := fold(mix(srcKey^0xD1CE), prefix)
	for v := range s.Vocab {
		k := mix(key^(uint64(v+1)*golden)) >> 58
		out[v] = float32(float64(k*64+uint64(v)) / 1024)
	}
	shift := float64(int64(len(prefix)) - int64(2+srcKey%7))
	for _, b := range s.Bias {
		out[b.Token] = float32(float64(out[b.Token]) + b.Slope*shift)
	}
}

// scriptedDecoder runs the scripted model and records how many rows each step computed.
type scriptedDecoder struct {
	spec      scriptedSpec
	steps     int
	rowsSteps []int
}

type scriptedState struct {
	d       *scriptedDecoder
	sources [][]int64
	buf     []float32
}

func (d *scriptedDecoder) Start(_ context.Context, sources [][]int64) (State, error) {
	return &scriptedState{d: d, sources: append([][]int64(nil), sources...)}, nil
}

func (s *scriptedState) Step(_ context.Context, prefixes [][]int64) (Logits, error) {
	if len(prefixes) != len(s.sources) {
		return Logits{}, fmt.Errorf("step over %d prefixes, state has %d rows", len(prefixes), len(s.sources))
	}
	s.d.steps++
	s.d.rowsSteps = append(s.d.rowsSteps, len(prefixes))
	v := s.d.spec.Vocab
	s.buf = make([]float32, len(prefixes)*v)
	for r, p := range prefixes {
		s.d.spec.logits(s.sources[r], p, s.buf[r*v:(r+1)*v])
	}
	return Logits{Rows: len(prefixes), Vocab: v, Data: s.buf}, nil
}

func (s *scriptedState) Reorder(rows []int) error {
	next := make([][]int64, len(rows))
	for i, r := range rows {
		if r < 0 || r >= len(s.sources) {
			return fmt.Errorf("reorder: row %d out of %d", r, len(s.sources))
		}
		next[i] = s.sources[r]
	}
	s.sources = next
	return nil
}

func (s *scriptedState) Close() error { return nil }

type refCase struct {
	Name             string                     `json:"name"`
	Spec             string                     `json:"spec"`
	GenerationConfig map[string]json.RawMessage `json:"generation_config"`
	ModelConfig      map[string]json.RawMessage `json:"config"`
	Kwargs           map[string]json.RawMessage `json:"kwargs"`
	Sources          [][]int64                  `json:"sources"`
	Sequences        [][]int64                  `json:"sequences"`
	SequencesScores  []*float64                 `json:"sequences_scores"`
	TokenScores      [][]*float64               `json:"token_scores"`
	ForwardCalls     int                        `json:"forward_calls"`
}

type refFile struct {
	Versions map[string]string       `json:"versions"`
	Specs    map[string]scriptedSpec `json:"specs"`
	Cases    []refCase               `json:"cases"`
}

func loadJSON(t *testing.T, v any) {
	t.Helper()
	data, err := os.ReadFile(testenv.Testdata(t, "generate", "search", "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatal(err)
	}
}

func loadRefs(t *testing.T) refFile {
	t.Helper()
	var f refFile
	loadJSON(t, &f)
	return f
}

// caseConfig builds the Config as HF does for the case: model generation
// config (generation_config.json, else config.json) overridden by generate() kwargs.
func caseConfig(c refCase) (Config, error) {
	cfg := DefaultConfig()
	if len(c.GenerationConfig) > 0 {
		if err := cfg.ApplyJSON(c.GenerationConfig); err != nil {
			return cfg, err
		}
	} else if err := cfg.ApplyModelConfigJSON(c.ModelConfig); err != nil {
		return cfg, err
	}
	if raw, ok := c.ModelConfig["max_position_embeddings"]; ok {
		if err := json.Unmarshal(raw, &cfg.MaxPositionEmbeddings); err != nil {
			return cfg, err
		}
	}
	return cfg, cfg.ApplyJSON(c.Kwargs)
}

func TestScriptedSearchMatchesHF(t *testing.T) {
	refs := loadRefs(t)
	t.Logf("references from transformers %s, torch %s", refs.Versions["transformers"], refs.Versions["torch"])
	var mismatched, sequences int
	for _, c := range refs.Cases {
		sequences += len(c.Sequences)
		ok := t.Run(c.Name, func(t *testing.T) {
			cfg, err := caseConfig(c)
			if err != nil {
				t.Fatal(err)
			}
			dec := &scriptedDecoder{spec: refs.Specs[c.Spec]}
			out, err := Generate(context.Background(), dec, c.Sources, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Sequences) != len(c.Sequences) {
				t.Fatalf("%d sequences, HF %d", len(out.Sequences), len(c.Sequences))
			}
			for i := range c.Sequences {
				if fmt.Sprint(out.Sequences[i]) != fmt.Sprint(c.Sequences[i]) {
					t.Errorf("row %d:\n got %v\nwant %v", i, out.Sequences[i], c.Sequences[i])
				}
			}
			for i, w := range c.SequencesScores {
				if w == nil {
					continue
				}
				want := *w
				if math.Abs(float64(out.Scores[i])-want) > 1e-5*max(1, math.Abs(want)) {
					t.Errorf("row %d: sequence score %v, HF %v", i, out.Scores[i], want)
				}
			}
			for step, want := range c.TokenScores {
				for r, w := range want {
					if step >= len(out.TokenScores[r]) {
						continue // row had finished (HF scores its pad token)
					}
					g := float64(out.TokenScores[r][step])
					if w == nil {
						if !math.IsInf(g, -1) {
							t.Errorf("row %d step %d: token score %v, HF -inf", r, step, g)
						}
						continue
					}
					if math.Abs(g-*w) > 1e-5*max(1, math.Abs(*w)) {
						t.Errorf("row %d step %d: token score %v, HF %v", r, step, g, *w)
					}
				}
			}
			if dec.steps != c.ForwardCalls {
				t.Errorf("%d decoder steps, HF ran %d forward passes", dec.steps, c.ForwardCalls)
			}
		})
		if !ok {
			mismatched++
		}
	}
	t.Logf("%d cases (%d sequences), %d mismatched", len(refs.Cases), sequences, mismatched)
}
