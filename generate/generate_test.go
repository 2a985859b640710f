package generate

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/testenv"
)

func t5likeSpec(t *testing.T) scriptedSpec {
	t.Helper()
	return loadRefs(t).Specs["t5like"]
}

func t5likeConfig() Config {
	cfg := DefaultConfig()
	cfg.DecoderStartTokenID, cfg.PadTokenID, cfg.EOSTokenIDs = 0, 0, []int64{1}
	return cfg
}

func someSources(n int) [][]int64 {
	out := make([][]int64, n)
	for i := range out {
		for j := 0; j < 3+i%5; j++ {
			out[i] = append(out[i], int64(3+(i*7+j*13)%37))
		}
	}
	return out
}

// Finished rows (greedy) and finished items (beam) leave the decoder's batch.
func TestFinishedRowsAreDropped(t *testing.T) {
	for _, beams := range []int{1, 4} {
		dec := &scriptedDecoder{spec: t5likeSpec(t)}
		cfg := t5likeConfig()
		cfg.NumBeams = beams
		cfg.MaxNewTokens = 40
		out, err := Generate(context.Background(), dec, someSources(8), cfg)
		if err != nil {
			t.Fatal(err)
		}
		rows := dec.rowsSteps
		if rows[0] != 8*beams {
			t.Fatalf("beams %d: first step ran %d rows, want %d", beams, rows[0], 8*beams)
		}
		for i := 1; i < len(rows); i++ {
			if rows[i] > rows[i-1] || rows[i]%beams != 0 {
				t.Fatalf("beams %d: rows per step %v: must shrink by whole items", beams, rows)
			}
		}
		if rows[len(rows)-1] >= rows[0] {
			t.Errorf("beams %d: rows per step %v: no row was dropped", beams, rows)
		}
		// the longest output took exactly as many steps as it has generated tokens
		longest := 0
		for _, l := range out.Lengths {
			longest = max(longest, l-1)
		}
		if beams == 1 && len(rows) != longest {
			t.Errorf("greedy ran %d steps for a longest output of %d tokens", len(rows), longest)
		}
	}
}

func TestLoadConfigPrefersGenerationConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("config.json", `{"max_position_embeddings": 64, "num_beams": 6, "pad_token_id": 5, "eos_token_id": 2,
		"decoder_start_token_id": 2, "decoder": {"length_penalty": 0.5, "num_beams": 3}}`)
	cfg, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	// config.json fallback: top-level first, decoder section for the rest
	if cfg.NumBeams != 6 || cfg.LengthPenalty != 0.5 || cfg.PadTokenID != 5 || cfg.MaxPositionEmbeddings != 64 ||
		!reflect.DeepEqual(cfg.EOSTokenIDs, []int64{2}) {
		t.Errorf("from config.json: %+v", cfg)
	}
	write("generation_config.json", `{"num_beams": 2, "early_stopping": "never", "eos_token_id": [2, 7],
		"forced_eos_token_id": 2, "pad_token_id": null, "decoder_start_token_id": 2, "max_length": 33}`)
	cfg, err = LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NumBeams != 2 || cfg.EarlyStopping != EarlyStopNever || cfg.LengthPenalty != 1 || cfg.PadTokenID != NoToken ||
		!reflect.DeepEqual(cfg.EOSTokenIDs, []int64{2, 7}) || !reflect.DeepEqual(cfg.ForcedEOSTokenIDs, []int64{2}) ||
		cfg.MaxLength != 33 || cfg.MaxPositionEmbeddings != 64 {
		t.Errorf("from generation_config.json: %+v", cfg)
	}
	if cfg.pad() != 2 || cfg.beamFill() != 2 {
		t.Errorf("unset pad: pad %d fill %d, want eos[0] = 2", cfg.pad(), cfg.beamFill())
	}
	write("generation_config.json", `{"early_stopping": "sometimes"}`)
	if _, err := LoadConfig(dir); err == nil || !strings.Contains(err.Error(), "generation_config.json") || !strings.Contains(err.Error(), "early_stopping") {
		t.Errorf("bad early_stopping: %v", err)
	}
	if _, err := LoadConfig(t.TempDir()); err == nil {
		t.Error("empty folder: no error")
	}
}

func TestValidateRejectsWhatHFRejects(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func(*Config)
		want string
	}{
		"greedy nrs":       {func(c *Config) { c.NumReturnSequences = 2 }, "num_return_sequences"},
		"nrs > beams":      {func(c *Config) { c.NumBeams, c.NumReturnSequences = 2, 3 }, "smaller or equal"},
		"no start":         {func(c *Config) { c.DecoderStartTokenID = NoToken }, "decoder_start_token_id"},
		"penalty 0":        {func(c *Config) { c.RepetitionPenalty = 0 }, "repetition_penalty"},
		"beam sample":      {func(c *Config) { c.NumBeams, c.DoSample = 2, true }, "beam sampling"},
		"max_new_tokens<0": {func(c *Config) { c.MaxNewTokens = -1 }, "max_new_tokens"},
	} {
		cfg := t5likeConfig()
		tc.edit(&cfg)
		_, err := Generate(context.Background(), &scriptedDecoder{spec: t5likeSpec(t)}, someSources(1), cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", name, err, tc.want)
		}
	}
	cfg := t5likeConfig()
	cfg.MaxLength = 1
	if _, err := Generate(context.Background(), &scriptedDecoder{spec: t5likeSpec(t)}, someSources(1), cfg); err == nil || !strings.Contains(err.Error(), "max_length") {
		t.Errorf("max_length 1: %v", err)
	}
	if _, err := Generate(context.Background(), &scriptedDecoder{spec: t5likeSpec(t)}, [][]int64{{4}, {}}, t5likeConfig()); err == nil || !strings.Contains(err.Error(), "source 1 is empty") {
		t.Errorf("empty source: %v", err)
	}
}

func TestSampling(t *testing.T) {
	spec := t5likeSpec(t)
	run := func(cfg Config) *Output {
		t.Helper()
		out, err := Generate(context.Background(), &scriptedDecoder{spec: spec}, someSources(6), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	greedy := run(t5likeConfig())
	cfg := t5likeConfig()
	cfg.DoSample, cfg.Seed = true, 42
	a, b := run(cfg), run(cfg)
	if !reflect.DeepEqual(a.Sequences, b.Sequences) {
		t.Error("same seed, different samples")
	}
	cfg.Seed = 43
	if c := run(cfg); reflect.DeepEqual(a.Sequences, c.Sequences) {
		t.Error("different seeds gave identical samples for 6 sources")
	}
	if reflect.DeepEqual(a.Sequences, greedy.Sequences) {
		t.Error("sampling reproduced greedy search exactly")
	}
	// top_k=1 and a tiny top_p keep only the best token: greedy again
	for _, edit := range []func(*Config){func(c *Config) { c.TopK = 1 }, func(c *Config) { c.TopK, c.TopP = 0, 1e-6 }} {
		c := cfg
		edit(&c)
		if got := run(c); !reflect.DeepEqual(got.Sequences, greedy.Sequences) {
			t.Errorf("top_k %d top_p %v: not greedy", c.TopK, c.TopP)
		}
	}
	// num_return_sequences with sampling: source-major rows
	cfg.NumReturnSequences = 3
	if got := run(cfg); len(got.Sequences) != 18 {
		t.Errorf("%d rows for 6 sources × 3", len(got.Sequences))
	}
}

func TestUnsupportedParametersAreRefused(t *testing.T) {
	cfg := t5likeConfig()
	var m map[string]json.RawMessage
	_ = json.Unmarshal([]byte(`{"renormalize_logits": false, "suppress_tokens": null, "encoder_no_repeat_ngram_size": 0,
		"typical_p": 1.0, "num_beam_groups": 1}`), &m)
	if err := cfg.ApplyJSON(m); err != nil || cfg.Validate() != nil {
		t.Fatalf("default values of unimplemented parameters: %v / %v", err, cfg.Validate())
	}
	_ = json.Unmarshal([]byte(`{"renormalize_logits": true, "suppress_tokens": [5, 6], "encoder_repetition_penalty": 1.5}`), &m)
	if err := cfg.ApplyJSON(m); err != nil {
		t.Fatal(err)
	}
	err := cfg.Validate()
	for _, want := range []string{"encoder_repetition_penalty", "renormalize_logits", "suppress_tokens", "does not implement"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}
}

func TestApplyJSONKwargs(t *testing.T) {
	cfg := DefaultConfig()
	var m map[string]json.RawMessage
	_ = json.Unmarshal([]byte(`{"num_beams": 4, "early_stopping": true, "length_penalty": 0.6, "custom": 1}`), &m)
	if err := cfg.ApplyJSON(m); err != nil {
		t.Fatal(err)
	}
	if cfg.NumBeams != 4 || cfg.EarlyStopping != EarlyStopTrue || cfg.LengthPenalty != 0.6 {
		t.Errorf("%+v", cfg)
	}
}

// The generation defaults of real checkpoints (testdata/realdata) load as HF reads them.
func TestLoadRealModelConfigs(t *testing.T) {
	bart, err := LoadConfig(testenv.RealData(t, "tokenizers", "distilbart-cnn-6-6"))
	if err != nil {
		t.Fatal(err)
	}
	if bart.NumBeams != 4 || bart.LengthPenalty != 2 || bart.EarlyStopping != EarlyStopTrue || bart.MinLength != 56 ||
		bart.MaxLength != 142 || bart.NoRepeatNGramSize != 3 || bart.ForcedBOSTokenID != 0 ||
		!reflect.DeepEqual(bart.ForcedEOSTokenIDs, []int64{2}) || bart.DecoderStartTokenID != 2 || bart.PadTokenID != 1 {
		t.Errorf("distilbart-cnn-6-6: %+v", bart)
	}
	if err := bart.Validate(); err != nil {
		t.Error(err)
	}
	// no generation_config.json: config.json's generation fields (bad_words_ids bans the pad token)
	marian, err := LoadConfig(testenv.RealData(t, "tokenizers", "opus-mt-en-mg"))
	if err != nil {
		t.Fatal(err)
	}
	if marian.NumBeams != 4 || marian.MaxLength != 512 || marian.DecoderStartTokenID != 54687 || marian.PadTokenID != 54687 ||
		!reflect.DeepEqual(marian.BadWordsIDs, [][]int64{{54687}}) || !reflect.DeepEqual(marian.EOSTokenIDs, []int64{0}) ||
		marian.MaxPositionEmbeddings != 512 {
		t.Errorf("opus-mt-en-mg: %+v", marian)
	}
	if err := marian.Validate(); err != nil {
		t.Error(err)
	}
}

func TestGenerateStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cfg := t5likeConfig()
	cfg.NumBeams = 4
	_, err := Generate(ctx, &scriptedDecoder{spec: t5likeSpec(t)}, someSources(3), cfg)
	if err != context.Canceled {
		t.Errorf("cancelled context: %v", err)
	}
}

// TestEncoderNoRepeatNGram follows HF's EncoderNoRepeatNGramLogitsProcessor:
// n-grams come from the padded encoder input_ids, and a token is banned when
// the last n-1 decoder tokens followed by it form one of them. (Checked
// against HF generate() end to end on Blenderbot, whose config sets 3:
// ortrain/engine's TestArchitecturesMatchHF.)
func TestEncoderNoRepeatNGram(t *testing.T) {
	cfg := DefaultConfig()
	cfg.EncoderNoRepeatNGramSize = 3
	cfg.PadTokenID = 0
	p := newProcessor(cfg, 20, 0, [][]int64{{5, 6, 7, 2}, {8, 9}})
	scores := func(tokens []int64, src int) []float32 {
		s := make([]float32, 12)
		p.apply(tokens, src, s)
		return s
	}
	if s := scores([]int64{1, 5, 6}, 0); !math.IsInf(float64(s[7]), -1) || math.IsInf(float64(s[2]), -1) {
		t.Errorf("after 5 6, 7 must be banned and 2 not: %v", s)
	}
	if s := scores([]int64{1, 6, 7}, 0); !math.IsInf(float64(s[2]), -1) {
		t.Errorf("after 6 7, 2 must be banned: %v", s)
	}
	// the second source is padded to the first's length: 8 9 0 0
	if s := scores([]int64{1, 9, 0}, 1); !math.IsInf(float64(s[0]), -1) {
		t.Errorf("the padding belongs to the n-grams (9 0 0): %v", s)
	}
	if s := scores([]int64{1, 5, 6}, 1); math.IsInf(float64(s[7]), -1) {
		t.Errorf("n-grams of another source banned: %v", s)
	}
	if s := scores([]int64{5}, 0); slicesHasInf(s) {
		t.Errorf("fewer than n-1 tokens: nothing banned: %v", s)
	}
}

func slicesHasInf(s []float32) bool {
	for _, v := range s {
		if math.IsInf(float64(v), -1) {
			return true
		}
	}
	return false
}
