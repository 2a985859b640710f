package generate

import (
	"testing"
)

// FuzzGenerationConfig parses arbitrary bytes as generation_config.json
// (and as config.json's generation fields), checks the values and resolves
// the lengths: errors, never panics. Run by scripts/fuzz.sh.
func FuzzGenerationConfig(f *testing.F) {
	f.Add([]byte(`{"decoder_start_token_id": 0, "eos_token_id": 1, "pad_token_id": 0, "num_beams": 4, "max_length": 142, "min_length": 56, "no_repeat_ngram_size": 3, "length_penalty": 2.0, "early_stopping": true, "forced_bos_token_id": 0, "forced_eos_token_id": 2}`))
	f.Add([]byte(`{"bad_words_ids": [[58100]], "max_new_tokens": 1000000000, "early_stopping": "never", "do_sample": true, "top_k": 0, "top_p": 0.5, "temperature": 0.7, "suppress_tokens": [1, 2]}`))
	f.Add([]byte(`{"decoder": {"eos_token_id": [1, 2], "max_length": 5}, "vocab_size": 10}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseJSONObject("generation_config.json", data)
		if err != nil {
			return
		}
		for _, apply := range []func(*Config) error{
			func(c *Config) error { return c.ApplyJSON(m) },
			func(c *Config) error { return c.ApplyModelConfigJSON(m) },
		} {
			c := DefaultConfig()
			c.VocabSize = 32
			if apply(&c) != nil || c.CheckValues() != nil {
				continue
			}
			if c.Validate() == nil {
				maxLen, minLen, err := c.lengths(1)
				if err == nil {
					newProcessor(c, maxLen, minLen, [][]int64{{3, 4, 5}}).apply([]int64{0, 1, 2}, 0, make([]float32, c.VocabSize))
				}
			}
		}
	})
}
