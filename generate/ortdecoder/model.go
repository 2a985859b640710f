package ortdecoder

import (
	"encoding/json"
	"os"
	"path/filepath"

	"github.com/ortrain/ortrain/generate"
	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/modelfile"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnxrt"
)

// Model is a decoder with the generation defaults and limits of its folder.
type Model struct {
	generate.Decoder
	// Config holds the folder's generation defaults (generation_config.json,
	// else config.json, else the artifact manifest's special tokens).
	Config generate.Config
	// VocabSize is the width of the logits (0 when the graph does not fix it).
	VocabSize int
	// MaxSourceLength is the longest encoder input the model takes
	// (tokenizer_config.json's model_max_length, else config.json's
	// max_position_embeddings / n_positions); 0 when unbounded.
	MaxSourceLength int
	// Kind says which decoder runs: "kv", "recompute" or "artifacts".
	Kind string
	// ModelType is config.json's model_type (or the artifact manifest's).
	ModelType string
	close     func() error
}

// Close releases the sessions.
func (m *Model) Close() error { return m.close() }

// OpenOptions choose how a model folder is decoded.
type OpenOptions struct {
	Options
	// NoCache decodes with the full graph (model.onnx) instead of the KV cache.
	NoCache bool
}

// OpenModel opens an exported model folder: Optimum's KV-cache layout by
// default (encoder_model.onnx, decoder_model.onnx and
// decoder_with_past_model.onnx, or the two decoders of
// decoder_model_merged.onnx), the full graph with NoCache or when the folder
// has no decoder with past: model.onnx, or the forward graph composed from
// Optimum's encoder and decoder graphs.
func OpenModel(env *onnxrt.Env, dir string, opts OpenOptions) (*Model, error) {
	cfg, err := generate.LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	m := &Model{Config: cfg, MaxSourceLength: maxSourceLength(dir), ModelType: modelType(dir)}
	pad := cfg.PadTokenID
	if pad == generate.NoToken {
		pad = 0
	}
	has := func(f string) bool {
		_, err := os.Stat(filepath.Join(dir, f))
		return err == nil
	}
	if !opts.NoCache && has(EncoderFile) {
		var kv *KV
		switch {
		case has(DecoderWithPastFile) && has(DecoderFile):
			kv, err = OpenKV(env, dir, pad, opts.Options)
		case has(artifacts.OptimumDecoderMerged):
			kv, err = openMergedKV(env, dir, pad, opts.Options)
		}
		if err != nil {
			return nil, err
		}
		if kv != nil {
			m.Decoder, m.Kind, m.close, m.VocabSize = kv, "kv", kv.Close, vocabOf(kv.dec)
			return m, nil
		}
	}
	full := filepath.Join(dir, FullModelFile)
	var rc *Recompute
	switch {
	case has(FullModelFile):
		rc, err = NewRecompute(env, full, pad, opts.Options)
	case has(EncoderFile) && (has(DecoderFile) || has(artifacts.OptimumDecoderMerged)):
		rc, err = openComposedRecompute(env, dir, pad, opts.Options)
	default:
		return nil, fault.Inputf("%s has no model to decode with: want Optimum's export (%s with %s, plus %s or %s for KV-cache decoding; optimum-cli export onnx --task text2text-generation-with-past) or a full graph %s (input_ids, attention_mask, decoder_input_ids -> logits)",
			dir, EncoderFile, DecoderFile, DecoderWithPastFile, artifacts.OptimumDecoderMerged, FullModelFile)
	}
	if err != nil {
		return nil, err
	}
	m.Decoder, m.Kind, m.close, m.VocabSize = rc, "recompute", rc.Close, vocabOf(rc.sess)
	return m, nil
}

// openMergedKV decodes with a KV cache over Optimum's encoder and the two
// decoders held by decoder_model_merged.onnx, split into separate graphs
// in a temporary folder (ONNX Runtime reads them when the sessions open).
func openMergedKV(env *onnxrt.Env, dir string, pad int64, opts Options) (*KV, error) {
	merged := filepath.Join(dir, artifacts.OptimumDecoderMerged)
	tmp, err := os.MkdirTemp("", "ortrain-decoders-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	for _, d := range []struct {
		file     string
		withPast bool
	}{{DecoderFile, false}, {DecoderWithPastFile, true}} {
		m, err := onnx.Load(merged)
		if err != nil {
			return nil, err
		}
		ok, err := artifacts.InlineDecoderBranch(m, d.withPast, merged)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fault.Inputf("%s has no If on use_cache_branch: it is not Optimum's merged decoder", merged)
		}
		if err := onnx.Save(m, filepath.Join(tmp, d.file), onnx.SaveOptions{}); err != nil {
			return nil, err
		}
	}
	return NewKV(env, filepath.Join(dir, EncoderFile), filepath.Join(tmp, DecoderFile), filepath.Join(tmp, DecoderWithPastFile), pad, opts)
}

// openComposedRecompute decodes by recomputation over the forward graph
// composed from Optimum's encoder and decoder graphs (the no-past branch
// of the merged decoder where there is no decoder_model.onnx).
func openComposedRecompute(env *onnxrt.Env, dir string, pad int64, opts Options) (*Recompute, error) {
	dec := filepath.Join(dir, DecoderFile)
	if _, err := os.Stat(dec); err != nil {
		dec = filepath.Join(dir, artifacts.OptimumDecoderMerged)
	}
	m, _, err := artifacts.ComposeForward(filepath.Join(dir, EncoderFile), dec)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "ortrain-forward-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	path := filepath.Join(tmp, FullModelFile)
	if err := onnx.Save(m, path, onnx.SaveOptions{}); err != nil {
		return nil, err
	}
	return NewRecompute(env, path, pad, opts)
}

// OpenArtifactModel opens an ortrain artifact folder's generation graphs
// with its initial parameters.
func OpenArtifactModel(env *onnxrt.Env, dir string, opts Options) (*Model, error) {
	man, err := artifacts.ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	cfg := generate.DefaultConfig()
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err == nil {
		if cfg, err = generate.LoadConfig(dir); err != nil {
			return nil, err
		}
	} else {
		st := man.SpecialTokens
		for key, dst := range map[string]*int64{"pad_token_id": &cfg.PadTokenID, "decoder_start_token_id": &cfg.DecoderStartTokenID,
			"bos_token_id": &cfg.BOSTokenID, "forced_bos_token_id": &cfg.ForcedBOSTokenID} {
			if v, ok := st[key]; ok {
				*dst = v
			}
		}
		if v, ok := st["eos_token_id"]; ok {
			cfg.EOSTokenIDs = []int64{v}
		}
		if v, ok := st["forced_eos_token_id"]; ok {
			cfg.ForcedEOSTokenIDs = []int64{v}
		}
	}
	a, err := OpenArtifacts(env, dir, nil, opts)
	if err != nil {
		return nil, err
	}
	return &Model{Decoder: a, Config: cfg, Kind: "artifacts", close: a.Close, VocabSize: vocabOf(a.dec), MaxSourceLength: maxSourceLength(dir),
		ModelType: man.ModelType}, nil
}

func vocabOf(s *onnxrt.Session) int {
	for _, o := range s.Outputs() {
		if o.Name == "logits" && len(o.Shape) == 3 && o.Shape[2] > 0 {
			return int(o.Shape[2])
		}
	}
	return 0
}

// readConfigFile reads a JSON object of the folder (by the model-folder
// rule: resolved inside it, a regular file, bounded); nil when absent or
// unreadable (the callers then fall back to defaults).
func readConfigFile(dir, name string) map[string]json.RawMessage {
	folder, err := modelfile.NewFolder(dir)
	if err != nil {
		return nil
	}
	b, err := folder.ReadFile(name, 16<<20)
	if err != nil {
		return nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	return m
}

// modelType is config.json's model_type; "" when it has none.
func modelType(dir string) string {
	var t string
	if raw, ok := readConfigFile(dir, "config.json")["model_type"]; ok && json.Unmarshal(raw, &t) == nil {
		return t
	}
	return ""
}

// maxSourceLength reads the encoder input limit from the folder's configs.
func maxSourceLength(dir string) int {
	read := func(name string) map[string]json.RawMessage { return readConfigFile(dir, name) }
	intField := func(m map[string]json.RawMessage, key string) int {
		var v float64
		if raw, ok := m[key]; ok && json.Unmarshal(raw, &v) == nil && v > 0 && v < 1e9 {
			return int(v)
		}
		return 0
	}
	if n := intField(read("tokenizer_config.json"), "model_max_length"); n > 0 {
		return n
	}
	cfg := read("config.json")
	if n := intField(cfg, "max_position_embeddings"); n > 0 {
		return n
	}
	return intField(cfg, "n_positions")
}
