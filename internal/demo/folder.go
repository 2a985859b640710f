package demo

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// Files written by WriteFolder.
const (
	ForwardFile   = "model.onnx"
	EncoderFile   = "encoder_model.onnx"
	DecoderFile   = "decoder_model.onnx"
	TokenizerFile = "tokenizer.json"
	TrainFile     = "train.jsonl"
	DevFile       = "dev.jsonl"
	TestFile      = "test.jsonl"
	SourceLang    = "en"
	TargetLang    = "xx"
)

// Sizes of the demo data sets.
const (
	TrainPairs = 4000
	DevPairs   = 200
	TestPairs  = 200
)

// WriteFolder builds the demo task and model and writes them to dir as a
// model folder in Hugging Face's layout (ONNX graphs, config.json,
// generation_config.json, tokenizer.json) plus the data sets.
func WriteFolder(dir string, seed uint64) (*Model, *Task, error) {
	task := NewTask(seed, TrainPairs, DevPairs, TestPairs)
	cfg := DefaultConfig(len(task.Vocab))
	cfg.Seed = seed
	m, err := Build(cfg)
	if err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("creating the demo folder: %w", err)
	}
	for name, g := range map[string]any{ForwardFile: m.Forward, EncoderFile: m.Encoder, DecoderFile: m.Decoder} {
		if err := onnx.Save(g.(*onnxpb.ModelProto), filepath.Join(dir, name), onnx.SaveOptions{}); err != nil {
			return nil, nil, fmt.Errorf("writing %s: %w", name, err)
		}
	}
	tok, err := task.TokenizerJSON()
	if err != nil {
		return nil, nil, err
	}
	config := map[string]any{
		"model_type": "ortrain-demo", "architectures": []string{"OrtrainDemoSeq2Seq"}, "is_encoder_decoder": true,
		"vocab_size": cfg.Vocab, "d_model": cfg.DModel, "num_heads": cfg.Heads, "d_ff": cfg.FF,
		"encoder_layers": cfg.EncLayers, "decoder_layers": cfg.DecLayers, "max_position_embeddings": cfg.MaxLen,
		"pad_token_id": cfg.PadID, "eos_token_id": cfg.EOSID, "decoder_start_token_id": cfg.PadID,
		"tie_word_embeddings": true,
	}
	gen := map[string]any{"decoder_start_token_id": cfg.PadID, "eos_token_id": cfg.EOSID, "pad_token_id": cfg.PadID, "max_length": cfg.MaxLen}
	files := map[string]any{"config.json": config, "generation_config.json": gen}
	for name, v := range files {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return nil, nil, err
		}
		if err := writeAtomic(filepath.Join(dir, name), append(b, '\n')); err != nil {
			return nil, nil, err
		}
	}
	if err := writeAtomic(filepath.Join(dir, TokenizerFile), tok); err != nil {
		return nil, nil, err
	}
	for name, pairs := range map[string][]Pair{TrainFile: task.Train, DevFile: task.Dev, TestFile: task.Test} {
		b, err := JSONL(pairs, SourceLang, TargetLang)
		if err != nil {
			return nil, nil, err
		}
		if err := writeAtomic(filepath.Join(dir, name), b); err != nil {
			return nil, nil, err
		}
	}
	return m, task, nil
}

func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

func statFile(path string) error {
	_, err := os.Stat(path)
	return err
}
