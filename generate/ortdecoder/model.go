package ortdecoder

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ortrain/ortrain/generate"
	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/modelfile"
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
	Kind  string
	close func() error
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
// default, the full graph with NoCache (or when the folder has no
// decoder-with-past graph).
func OpenModel(env *onnxrt.Env, dir string, opts OpenOptions) (*Model, error) {
	cfg, err := generate.LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	m := &Model{Config: cfg, MaxSourceLength: maxSourceLength(dir)}
	pad := cfg.PadTokenID
	if pad == generate.NoToken {
		pad = 0
	}
	_, statErr := os.Stat(filepath.Join(dir, DecoderWithPastFile))
	if !opts.NoCache && statErr == nil {
		kv, err := OpenKV(env, dir, pad, opts.Options)
		if err != nil {
			return nil, err
		}
		m.Decoder, m.Kind, m.close, m.VocabSize = kv, "kv", kv.Close, vocabOf(kv.dec)
		return m, nil
	}
	full := filepath.Join(dir, FullModelFile)
	if _, err := os.Stat(full); err != nil {
		return nil, fmt.Errorf("%s has neither %s (KV-cache decoding) nor %s (full graph): export the model with Optimum or torch.onnx first", dir, DecoderWithPastFile, FullModelFile)
	}
	rc, err := NewRecompute(env, full, pad, opts.Options)
	if err != nil {
		return nil, err
	}
	m.Decoder, m.Kind, m.close, m.VocabSize = rc, "recompute", rc.Close, vocabOf(rc.sess)
	return m, nil
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
	return &Model{Decoder: a, Config: cfg, Kind: "artifacts", close: a.Close, VocabSize: vocabOf(a.dec), MaxSourceLength: maxSourceLength(dir)}, nil
}

func vocabOf(s *onnxrt.Session) int {
	for _, o := range s.Outputs() {
		if o.Name == "logits" && len(o.Shape) == 3 && o.Shape[2] > 0 {
			return int(o.Shape[2])
		}
	}
	return 0
}

// maxSourceLength reads the encoder input limit from the folder's configs.
func maxSourceLength(dir string) int {
	folder, err := modelfile.NewFolder(dir)
	if err != nil {
		return 0
	}
	read := func(name string) map[string]json.RawMessage {
		b, err := folder.ReadFile(name, 16<<20)
		if err != nil {
			return nil // absent or unreadable: no limit from this file
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(b, &m) != nil {
			return nil
		}
		return m
	}
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
