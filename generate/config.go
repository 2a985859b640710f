package generate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/modelfile"
	"github.com/ortrain/ortrain/internal/strictjson"
)

// NoToken marks an unset token id.
const NoToken int64 = -1

// EarlyStopping is generate()'s early_stopping: true, false or "never".
type EarlyStopping int

const (
	// EarlyStopHeuristic is early_stopping=False (HF's default): stop an item
	// when its best running beam, normalised at the current length, cannot
	// beat its worst finished hypothesis.
	EarlyStopHeuristic EarlyStopping = iota
	// EarlyStopTrue is early_stopping=True: stop an item once num_beams
	// hypotheses are finished.
	EarlyStopTrue
	// EarlyStopNever is early_stopping="never": the canonical bound, using
	// max_length when length_penalty > 0.
	EarlyStopNever
)

func (e EarlyStopping) String() string {
	switch e {
	case EarlyStopTrue:
		return "true"
	case EarlyStopNever:
		return "never"
	default:
		return "false"
	}
}

// Config holds the generation parameters, named as in Hugging Face's
// GenerationConfig. Build it with DefaultConfig or LoadConfig and override
// fields; zero MaxLength/MaxNewTokens/MinNewTokens mean "unset".
type Config struct {
	// MaxLength bounds the decoder sequence including the decoder start
	// token. 0 means unset: 20 new tokens, capped at MaxPositionEmbeddings,
	// as HF does for its untouched default.
	MaxLength int
	// MaxNewTokens, when > 0, wins over MaxLength.
	MaxNewTokens int
	// MinLength counts the decoder start token; MinNewTokens, when > 0, wins.
	MinLength    int
	MinNewTokens int

	NumBeams          int
	EarlyStopping     EarlyStopping
	LengthPenalty     float64
	NoRepeatNGramSize int
	// EncoderNoRepeatNGramSize bans tokens that would repeat an n-gram of
	// the source (HF's EncoderNoRepeatNGramLogitsProcessor; Blenderbot's
	// configs set 3).
	EncoderNoRepeatNGramSize int
	RepetitionPenalty        float64
	NumReturnSequences       int

	// Sampling (num_beams must be 1).
	DoSample    bool
	Temperature float64
	TopK        int
	TopP        float64
	Seed        uint64

	BOSTokenID          int64
	PadTokenID          int64
	DecoderStartTokenID int64
	EOSTokenIDs         []int64
	ForcedBOSTokenID    int64
	ForcedEOSTokenIDs   []int64
	// BadWordsIDs are token sequences that may never be generated
	// (NoBadWordsLogitsProcessor; a lone EOS id is ignored, as in HF).
	BadWordsIDs [][]int64

	// MaxPositionEmbeddings (config.json) caps the default max length; 0 = none.
	MaxPositionEmbeddings int
	// VocabSize (config.json vocab_size, or the logits' width) bounds every
	// token id of the config; 0 = unknown.
	VocabSize int

	// Unsupported lists generation parameters that were set to a value that
	// changes HF's output but that this package does not implement
	// (Validate refuses them rather than silently decode differently).
	Unsupported []string
}

// unsupported maps generation parameters this package does not implement to
// a test of whether a JSON value leaves HF's behaviour unchanged.
var unsupported = map[string]func(v any) bool{
	"renormalize_logits":               isFalse,
	"remove_invalid_values":            isFalse,
	"suppress_tokens":                  isNullish,
	"begin_suppress_tokens":            isNullish,
	"sequence_bias":                    isNullish,
	"exponential_decay_length_penalty": isNullish,
	"constraints":                      isNullish,
	"force_words_ids":                  isNullish,
	"encoder_repetition_penalty":       func(v any) bool { return v == float64(1) },
	"guidance_scale":                   func(v any) bool { return v == float64(1) },
	"num_beam_groups":                  func(v any) bool { return v == float64(1) },
	"diversity_penalty":                func(v any) bool { return v == float64(0) },
	"penalty_alpha":                    isNullish,
	"typical_p":                        func(v any) bool { return v == float64(1) },
	"min_p":                            isNullish,
	"top_h":                            isNullish,
	"epsilon_cutoff":                   func(v any) bool { return v == float64(0) },
	"eta_cutoff":                       func(v any) bool { return v == float64(0) },
	"stop_strings":                     isNullish,
	"max_time":                         isNullish,
}

func isFalse(v any) bool { return v == false }

func isNullish(v any) bool {
	switch x := v.(type) {
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return v == nil
}

// StartTarget makes generation start as a model's training targets do
// (see data.TargetStart): forced, when not NoToken, becomes
// forced_bos_token_id (the target language code a multilingual target
// starts with) and start, when not NoToken, decoder_start_token_id.
func (c *Config) StartTarget(forced, start int64) {
	if forced != NoToken {
		c.ForcedBOSTokenID = forced
	}
	if start != NoToken {
		c.DecoderStartTokenID = start
	}
}

// DefaultConfig returns HF's global defaults (GenerationConfig._get_default_generation_params).
func DefaultConfig() Config {
	return Config{
		NumBeams:            1,
		LengthPenalty:       1.0,
		RepetitionPenalty:   1.0,
		NumReturnSequences:  1,
		Temperature:         1.0,
		TopK:                50,
		TopP:                1.0,
		BOSTokenID:          NoToken,
		PadTokenID:          NoToken,
		DecoderStartTokenID: NoToken,
		ForcedBOSTokenID:    NoToken,
	}
}

// LoadConfig reads a model folder's generation defaults the way
// transformers' from_pretrained does: generation_config.json when present,
// else the generation fields of config.json (and of its "decoder" /
// "generator" / "text_config" section for fields the top level leaves
// unset). max_position_embeddings and vocab_size always come from
// config.json. The files are read by modelfile's rule; a malformed file or
// a value no generation can use (a token id beyond the vocabulary, a
// negative length, a key given twice) is bad input (fault.Input) naming
// the file and field.
func LoadConfig(dir string) (Config, error) {
	cfg, err := loadConfig(dir)
	return cfg, fault.Mark(fault.Input, err)
}

func loadConfig(dir string) (Config, error) {
	cfg := DefaultConfig()
	folder, err := modelfile.NewFolder(dir)
	if err != nil {
		return cfg, err
	}
	modelPath := filepath.Join(dir, "config.json")
	modelCfg, err := readJSONObject(folder, "config.json")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return cfg, err
	}
	for key, dst := range map[string]*int{"max_position_embeddings": &cfg.MaxPositionEmbeddings, "vocab_size": &cfg.VocabSize} {
		if v, ok := modelCfg[key]; ok && !isNull(v) {
			if err := json.Unmarshal(v, dst); err != nil || *dst < 0 {
				return cfg, fmt.Errorf("%s: %s: want a non-negative integer, got %s", modelPath, key, v)
			}
		}
	}
	genPath := filepath.Join(dir, "generation_config.json")
	gen, err := readJSONObject(folder, "generation_config.json")
	switch {
	case err == nil:
		if err := cfg.ApplyJSON(gen); err != nil {
			return cfg, fmt.Errorf("%s: %w", genPath, err)
		}
		if err := cfg.CheckValues(); err != nil {
			return cfg, fmt.Errorf("%s: %w", genPath, err)
		}
	case errors.Is(err, fs.ErrNotExist):
		if modelCfg == nil {
			return cfg, fmt.Errorf("%s: neither generation_config.json nor config.json found", dir)
		}
		if err := cfg.ApplyModelConfigJSON(modelCfg); err != nil {
			return cfg, fmt.Errorf("%s: %w", modelPath, err)
		}
		if err := cfg.CheckValues(); err != nil {
			return cfg, fmt.Errorf("%s: %w", modelPath, err)
		}
	default:
		return cfg, err
	}
	return cfg, nil
}

// ApplyModelConfigJSON applies the generation fields of a config.json object
// (GenerationConfig.from_model_config): top-level fields first, then fields
// of the decoder section that the top level leaves unset.
func (c *Config) ApplyModelConfigJSON(m map[string]json.RawMessage) error {
	if err := c.ApplyJSON(m); err != nil {
		return err
	}
	for _, name := range []string{"decoder", "generator", "text_config"} {
		raw, ok := m[name]
		if !ok || isNull(raw) {
			continue
		}
		var sub map[string]json.RawMessage
		if err := json.Unmarshal(raw, &sub); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		unset := map[string]json.RawMessage{}
		for k, v := range sub {
			if _, top := m[k]; !top || isNull(m[k]) {
				unset[k] = v
			}
		}
		return c.ApplyJSON(unset)
	}
	return nil
}

// ApplyJSON sets the fields named in a generation_config.json-style object
// (or generate() keyword arguments in JSON form). Unknown keys are ignored,
// as HF keeps them as custom attributes; null leaves a field unchanged.
func (c *Config) ApplyJSON(m map[string]json.RawMessage) error {
	for key, raw := range m {
		if isNull(raw) {
			continue
		}
		if isDefault, ok := unsupported[key]; ok {
			var v any
			if err := json.Unmarshal(raw, &v); err != nil {
				return fmt.Errorf("field %q: %w", key, err)
			}
			if !isDefault(v) && !slices.Contains(c.Unsupported, key) {
				c.Unsupported = append(c.Unsupported, key)
				slices.Sort(c.Unsupported)
			}
			continue
		}
		var err error
		switch key {
		case "max_length":
			err = json.Unmarshal(raw, &c.MaxLength)
		case "max_new_tokens":
			err = json.Unmarshal(raw, &c.MaxNewTokens)
		case "min_length":
			err = json.Unmarshal(raw, &c.MinLength)
		case "min_new_tokens":
			err = json.Unmarshal(raw, &c.MinNewTokens)
		case "num_beams":
			err = json.Unmarshal(raw, &c.NumBeams)
		case "early_stopping":
			c.EarlyStopping, err = parseEarlyStopping(raw)
		case "length_penalty":
			err = json.Unmarshal(raw, &c.LengthPenalty)
		case "no_repeat_ngram_size":
			err = json.Unmarshal(raw, &c.NoRepeatNGramSize)
		case "encoder_no_repeat_ngram_size":
			err = json.Unmarshal(raw, &c.EncoderNoRepeatNGramSize)
		case "repetition_penalty":
			err = json.Unmarshal(raw, &c.RepetitionPenalty)
		case "num_return_sequences":
			err = json.Unmarshal(raw, &c.NumReturnSequences)
		case "do_sample":
			err = json.Unmarshal(raw, &c.DoSample)
		case "temperature":
			err = json.Unmarshal(raw, &c.Temperature)
		case "top_k":
			err = json.Unmarshal(raw, &c.TopK)
		case "top_p":
			err = json.Unmarshal(raw, &c.TopP)
		case "bos_token_id":
			err = json.Unmarshal(raw, &c.BOSTokenID)
		case "pad_token_id":
			err = json.Unmarshal(raw, &c.PadTokenID)
		case "decoder_start_token_id":
			err = json.Unmarshal(raw, &c.DecoderStartTokenID)
		case "eos_token_id":
			c.EOSTokenIDs, err = parseIDs(raw)
		case "forced_bos_token_id":
			err = json.Unmarshal(raw, &c.ForcedBOSTokenID)
		case "forced_eos_token_id":
			c.ForcedEOSTokenIDs, err = parseIDs(raw)
		case "bad_words_ids":
			err = json.Unmarshal(raw, &c.BadWordsIDs)
		}
		if err != nil {
			return fmt.Errorf("field %q: %w", key, err)
		}
	}
	return nil
}

// MaxBeams bounds num_beams: every beam is a decoder row holding a whole
// vocabulary of scores per step, and HF's own beam search keeps
// 2·num_beams candidates; beyond a few thousand rows per source no
// search is meaningful and memory runs out first.
const MaxBeams = 4096

// CheckValues reports a value that no generation can use, each field on
// its own: negative or absurd lengths and counts, token ids outside the
// vocabulary (when VocabSize is known). LoadConfig runs it on what a file
// says; Validate runs it again with the combinations.
func (c Config) CheckValues() error {
	switch {
	case c.NumBeams < 1:
		return fmt.Errorf("num_beams must be at least 1, got %d", c.NumBeams)
	case c.NumBeams > MaxBeams:
		return fmt.Errorf("num_beams %d is more than the %d beams ortrain searches", c.NumBeams, MaxBeams)
	case c.MaxNewTokens < 0:
		return fmt.Errorf("max_new_tokens must be greater than 0, got %d", c.MaxNewTokens)
	case c.MaxLength < 0 || c.MinLength < 0 || c.MinNewTokens < 0:
		return fmt.Errorf("max_length, min_length and min_new_tokens must not be negative")
	case c.NoRepeatNGramSize < 0:
		return fmt.Errorf("no_repeat_ngram_size must not be negative, got %d", c.NoRepeatNGramSize)
	case c.EncoderNoRepeatNGramSize < 0:
		return fmt.Errorf("encoder_no_repeat_ngram_size must not be negative, got %d", c.EncoderNoRepeatNGramSize)
	case !(c.RepetitionPenalty > 0) || math.IsInf(c.RepetitionPenalty, 0):
		return fmt.Errorf("repetition_penalty has to be a strictly positive float, got %v", c.RepetitionPenalty)
	case math.IsNaN(c.LengthPenalty) || math.IsInf(c.LengthPenalty, 0):
		return fmt.Errorf("length_penalty has to be a finite float, got %v", c.LengthPenalty)
	case c.NumReturnSequences < 1:
		return fmt.Errorf("num_return_sequences must be at least 1, got %d", c.NumReturnSequences)
	case c.MaxPositionEmbeddings < 0 || c.VocabSize < 0:
		return fmt.Errorf("max_position_embeddings and vocab_size must not be negative")
	}
	return c.checkIDs()
}

// checkIDs refuses token ids that are negative or, with VocabSize known,
// beyond the vocabulary: such an id can never be generated, so an EOS
// would never end a sequence and a forced token would force nothing.
func (c Config) checkIDs() error {
	check := func(field string, id int64, unset bool) error {
		if unset && id == NoToken {
			return nil
		}
		if id < 0 {
			return fmt.Errorf("%s must be a non-negative token id, got %d", field, id)
		}
		if c.VocabSize > 0 && id >= int64(c.VocabSize) {
			return fmt.Errorf("%s %d is beyond the model's vocabulary of %d ids", field, id, c.VocabSize)
		}
		return nil
	}
	for _, f := range []struct {
		name string
		id   int64
	}{{"bos_token_id", c.BOSTokenID}, {"pad_token_id", c.PadTokenID}, {"decoder_start_token_id", c.DecoderStartTokenID}, {"forced_bos_token_id", c.ForcedBOSTokenID}} {
		if err := check(f.name, f.id, true); err != nil {
			return err
		}
	}
	for _, id := range c.EOSTokenIDs {
		if err := check("eos_token_id", id, false); err != nil {
			return err
		}
	}
	for _, id := range c.ForcedEOSTokenIDs {
		if err := check("forced_eos_token_id", id, false); err != nil {
			return err
		}
	}
	for _, seq := range c.BadWordsIDs {
		if len(seq) == 0 {
			return errors.New("bad_words_ids has to be a list of non-empty lists of token ids")
		}
		for _, id := range seq {
			if err := check("bad_words_ids", id, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// Validate reports values and parameter combinations that HF rejects
// (GenerationConfig.validate and generate()'s own checks).
func (c Config) Validate() error {
	if err := c.CheckValues(); err != nil {
		return err
	}
	switch {
	case len(c.Unsupported) > 0:
		return fmt.Errorf("the generation settings use %s, which ortrain's generate does not implement; remove them from generation_config.json / config.json (or the arguments) to decode without them", strings.Join(c.Unsupported, ", "))
	case c.NumReturnSequences > 1 && c.NumBeams == 1 && !c.DoSample:
		return fmt.Errorf("greedy search (num_beams=1, do_sample=false) does not support num_return_sequences=%d; use beam search or sampling", c.NumReturnSequences)
	case c.NumBeams > 1 && c.NumReturnSequences > c.NumBeams:
		return fmt.Errorf("num_return_sequences (%d) has to be smaller or equal to num_beams (%d)", c.NumReturnSequences, c.NumBeams)
	case c.DoSample && c.NumBeams > 1:
		return errors.New("beam sampling (do_sample with num_beams > 1) is not supported; use num_beams=1 or do_sample=false")
	case c.DoSample && !(c.Temperature > 0):
		return fmt.Errorf("temperature has to be a strictly positive float, got %v", c.Temperature)
	case c.DoSample && (c.TopP < 0 || c.TopP > 1):
		return fmt.Errorf("top_p has to be in [0, 1], got %v", c.TopP)
	case c.DoSample && c.TopK < 0:
		return fmt.Errorf("top_k must not be negative, got %d", c.TopK)
	case c.decoderStart() == NoToken:
		return errors.New("decoder_start_token_id or bos_token_id has to be defined for encoder-decoder generation")
	}
	return nil
}

// decoderStart is decoder_start_token_id, falling back to bos_token_id (_prepare_special_tokens).
func (c Config) decoderStart() int64 {
	if c.DecoderStartTokenID != NoToken {
		return c.DecoderStartTokenID
	}
	return c.BOSTokenID
}

// pad is pad_token_id, falling back to eos_token_id[0] (_prepare_special_tokens).
func (c Config) pad() int64 {
	if c.PadTokenID == NoToken && len(c.EOSTokenIDs) > 0 {
		return c.EOSTokenIDs[0]
	}
	return c.PadTokenID
}

// beamFill is the beam search output fill value:
// `pad_token_id or eos_token_id[0] if eos_token_id is not None else -1`.
func (c Config) beamFill() int64 {
	if len(c.EOSTokenIDs) == 0 {
		return -1
	}
	if p := c.pad(); p != 0 && p != NoToken {
		return p
	}
	return c.EOSTokenIDs[0]
}

// lengths resolves max_length and min_length for a decoder prompt of
// promptLen tokens (_prepare_generated_length, _validate_generated_length).
func (c Config) lengths(promptLen int) (maxLen, minLen int, err error) {
	switch {
	case c.MaxNewTokens > math.MaxInt32-promptLen:
		maxLen = math.MaxInt32 // no sequence gets near: this is "no limit"
	case c.MaxNewTokens > 0:
		maxLen = c.MaxNewTokens + promptLen
	case c.MaxLength == 0:
		maxLen = 20 + promptLen
		if c.MaxPositionEmbeddings > 0 && maxLen > c.MaxPositionEmbeddings {
			maxLen = c.MaxPositionEmbeddings
		}
	default:
		maxLen = c.MaxLength
	}
	// An exported decoder's position table ends at max_position_embeddings
	// (HF's generate fails with an index error there): a row stops at that
	// length instead.
	if c.MaxPositionEmbeddings > 0 && maxLen > c.MaxPositionEmbeddings {
		maxLen = c.MaxPositionEmbeddings
	}
	minLen = c.MinLength
	if c.MinNewTokens > 0 {
		if c.MinNewTokens > math.MaxInt32-promptLen {
			return 0, 0, fmt.Errorf("min_new_tokens %d is beyond any length", c.MinNewTokens)
		}
		minLen = c.MinNewTokens + promptLen
	}
	if promptLen >= maxLen {
		return 0, 0, fmt.Errorf("input length of decoder_input_ids is %d, but max_length is set to %d; increase max_length or set max_new_tokens", promptLen, maxLen)
	}
	return maxLen, minLen, nil
}

func (c Config) isEOS(tok int64) bool {
	for _, e := range c.EOSTokenIDs {
		if e == tok {
			return true
		}
	}
	return false
}

func parseEarlyStopping(raw json.RawMessage) (EarlyStopping, error) {
	var b bool
	if err := json.Unmarshal(raw, &b); err == nil {
		if b {
			return EarlyStopTrue, nil
		}
		return EarlyStopHeuristic, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil && s == "never" {
		return EarlyStopNever, nil
	}
	return 0, fmt.Errorf("early_stopping must be true, false or \"never\", got %s", raw)
}

func parseIDs(raw json.RawMessage) ([]int64, error) {
	var one int64
	if err := json.Unmarshal(raw, &one); err == nil {
		return []int64{one}, nil
	}
	var many []int64
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, fmt.Errorf("want a token id or a list of token ids, got %s", raw)
	}
	return many, nil
}

// maxConfigFile bounds a configuration file: the largest real ones are a
// few kilobytes.
const maxConfigFile = 16 << 20

func readJSONObject(folder *modelfile.Folder, name string) (map[string]json.RawMessage, error) {
	data, err := folder.ReadFile(name, maxConfigFile)
	if err != nil {
		return nil, err
	}
	return ParseJSONObject(filepath.Join(folder.Dir(), name), data)
}

// ParseJSONObject parses a configuration file's JSON object, refusing a key
// given twice and absurd nesting; path names the file in errors.
func ParseJSONObject(path string, data []byte) (map[string]json.RawMessage, error) {
	if err := strictjson.Check(data); err != nil {
		return nil, fault.Inputf("%s: %w", path, err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fault.Inputf("%s: not a JSON object: %w", path, err)
	}
	return m, nil
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

// lengthDivisor is (length ** length_penalty) as PyTorch uses it to divide a
// float32 tensor: computed in double, applied as float32.
func lengthDivisor(length int, penalty float64) float32 {
	return float32(math.Pow(float64(length), penalty))
}
