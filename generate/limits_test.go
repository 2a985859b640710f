package generate

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/fault"
)

// max_new_tokens and max_length bound a sequence; they are not allocated
// up front (10^9 took 8 GB per row before the first token).
func TestHugeMaxLengthIsABoundNotASize(t *testing.T) {
	for _, set := range []func(*Config){
		func(c *Config) { c.MaxNewTokens = 1_000_000_000 },
		func(c *Config) { c.MaxLength = 1_000_000_000 },
		func(c *Config) { c.MaxNewTokens = 1<<63 - 1 },
	} {
		cfg := t5likeConfig()
		set(&cfg)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		out, err := Generate(context.Background(), &scriptedDecoder{spec: t5likeSpec(t)}, someSources(4), cfg)
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatal(err)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
			t.Errorf("generation allocated %d MB for 4 short rows", grew>>20)
		}
		for i := range out.Sequences {
			if l := out.Lengths[i]; l > 200 {
				t.Errorf("row %d ran to %d tokens", i, l)
			}
		}
	}
}

// A row stops at the model's position limit (an exported decoder has no
// positions beyond max_position_embeddings).
func TestLengthBoundedByPositions(t *testing.T) {
	cfg := t5likeConfig()
	cfg.MaxNewTokens = 1000
	cfg.MaxPositionEmbeddings = 6
	cfg.EOSTokenIDs = nil // rows end only at a length bound
	out, err := Generate(context.Background(), &scriptedDecoder{spec: t5likeSpec(t)}, someSources(2), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range out.Lengths {
		if l != 6 {
			t.Errorf("row %d: length %d, want the 6 positions", i, l)
		}
	}
}

// 10^5 beams are refused before any row is made.
func TestAbsurdBeamsRefused(t *testing.T) {
	cfg := t5likeConfig()
	cfg.NumBeams = 100_000
	_, err := Generate(context.Background(), &scriptedDecoder{spec: t5likeSpec(t)}, someSources(2), cfg)
	if err == nil || !strings.Contains(err.Error(), "num_beams 100000") {
		t.Fatalf("10^5 beams: %v", err)
	}
}

// Token ids beyond the vocabulary in generation_config.json are bad input
// naming the file and field: before, an EOS id beyond the vocabulary was
// accepted and every row ran to max_length, a forced BOS forced nothing.
func TestGenerationConfigIDsBeyondVocabRefused(t *testing.T) {
	for field, value := range map[string]string{
		"eos_token_id": "32200", "forced_bos_token_id": "99999", "decoder_start_token_id": "-7",
		"pad_token_id": "40000", "forced_eos_token_id": "[1, 32128]", "bad_words_ids": "[[5, 70000]]",
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"vocab_size": 32128, "max_position_embeddings": 512}`), 0o644)
		os.WriteFile(filepath.Join(dir, "generation_config.json"), []byte(`{"decoder_start_token_id": 0, "eos_token_id": 1, "`+field+`": `+value+`}`), 0o644)
		_, err := LoadConfig(dir)
		if !errors.Is(err, fault.Input) || !strings.Contains(err.Error(), field) || !strings.Contains(err.Error(), "generation_config.json") {
			t.Errorf("%s %s: %v", field, value, err)
		}
	}
}

// Bad values and duplicate keys in the model's files are bad input (exit
// 3), named with the file.
func TestGenerationConfigBadValuesAreInput(t *testing.T) {
	for name, doc := range map[string]string{
		"num_beams":         `{"decoder_start_token_id": 0, "num_beams": -2}`,
		"max_length":        `{"decoder_start_token_id": 0, "max_length": -1}`,
		"appears twice":     `{"decoder_start_token_id": 0, "num_beams": 4, "num_beams": 1}`,
		"repetition":        `{"decoder_start_token_id": 0, "repetition_penalty": 0}`,
		"not a JSON object": `[1, 2]`,
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "generation_config.json"), []byte(doc), 0o644)
		_, err := LoadConfig(dir)
		if !errors.Is(err, fault.Input) || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "generation_config.json") {
			t.Errorf("%s: %v", name, err)
		}
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"vocab_size": 10, "vocab_size": 32128}`), 0o644)
	if _, err := LoadConfig(dir); !errors.Is(err, fault.Input) || !strings.Contains(err.Error(), `"vocab_size" appears twice`) {
		t.Errorf("duplicate key in config.json: %v", err)
	}
}
