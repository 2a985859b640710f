package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/data"
	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/testenv"
	"github.com/ortrain/ortrain/ortrain"
)

// multilingualModel copies a model of testdata/multilingual into a
// temporary folder; withoutCache leaves out the decoder-with-past graph, so
// that the trainer generates with the full graph.
func multilingualModel(t *testing.T, name string, withoutCache bool) string {
	t.Helper()
	src := testenv.Testdata(t, "multilingual", name)
	dst := t.TempDir()
	for _, f := range []string{"model.onnx", "model.safetensors", "config.json", "generation_config.json",
		"encoder_model.onnx", "decoder_model.onnx", "decoder_with_past_model.onnx"} {
		if withoutCache && f == "decoder_with_past_model.onnx" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

type multilingualBatchRef struct {
	Tokenizer          string  `json:"tokenizer"`
	SourceLang         string  `json:"source_lang"`
	TargetLang         string  `json:"target_lang"`
	Loss               float64 `json:"loss"`
	SourceTemplateLoss float64 `json:"source_template_loss"`
}

func prepareMultilingual(t *testing.T, env *Runtime, model string, ref multilingualBatchRef, withoutCache, generate bool) *Session {
	t.Helper()
	a := ortrain.DefaultArguments()
	a.OutputDir = t.TempDir()
	a.DoEval = true
	a.PerDeviceEvalBatchSize = 6
	a.PredictWithGenerate = generate
	a.Threads = 1
	if err := a.Finalize(); err != nil {
		t.Fatal(err)
	}
	s, err := Prepare(context.Background(), env, Config{
		Args: a, Model: multilingualModel(t, model, withoutCache),
		Tokenizer:       testenv.Testdata(t, "tokenizers", "multilingual", ref.Tokenizer),
		ValidationFile:  testenv.Testdata(t, "multilingual", "train.jsonl"),
		Format:          DataFormat{SourceLang: ref.SourceLang, TargetLang: ref.TargetLang},
		MaxSourceLength: 12, MaxTargetLength: 9,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func readMultilingualBatches(t *testing.T) map[string]multilingualBatchRef {
	t.Helper()
	b, err := os.ReadFile(testenv.Testdata(t, "multilingual", "batches.json"))
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	out := map[string]multilingualBatchRef{}
	for _, m := range []string{"mbart-tiny", "m2m100-tiny"} {
		var r multilingualBatchRef
		if err := json.Unmarshal(raw[m], &r); err != nil {
			t.Fatal(err)
		}
		out[m] = r
	}
	return out
}

// TestMultilingualLossMatchesHF: a trainer prepared from an mBART or M2M100
// model folder with --source_lang/--target_lang evaluates HF's loss on the
// run_translation batch (labels with the target template; mBART's decoder
// inputs start with the target code): eval_loss equals HF's within 1e-5.
func TestMultilingualLossMatchesHF(t *testing.T) {
	env := openEnv(t)
	for name, ref := range readMultilingualBatches(t) {
		t.Run(name, func(t *testing.T) {
			s := prepareMultilingual(t, env, name, ref, false, false)
			logs, err := s.Trainer.Evaluate(context.Background(), s.Trainer.EvalData, "eval")
			if err != nil {
				t.Fatal(err)
			}
			got, _ := logs.Get("eval_loss")
			rel := math.Abs(got-ref.Loss) / ref.Loss
			if rel > 1e-5 {
				t.Errorf("eval_loss %.7f, HF %.7f (relative difference %.2g)", got, ref.Loss, rel)
			}
			msg := fmt.Sprintf("%s (%s→%s): eval_loss %.6f, HF %.6f, relative difference %.2g", name, ref.SourceLang, ref.TargetLang, got, ref.Loss, rel)
			if ref.SourceTemplateLoss != 0 {
				msg += fmt.Sprintf("; with source-template labels HF's loss would be %.6f", ref.SourceTemplateLoss)
			}
			t.Log(msg)
		})
	}
}

// TestMultilingualNeedsLanguageCodes: a multilingual tokenizer without
// --source_lang/--target_lang is refused with a settings error that names
// the flags, the class and example codes; an unknown code lists the codes.
func TestMultilingualNeedsLanguageCodes(t *testing.T) {
	for _, tc := range []struct {
		tokenizer, src, tgt string
		want                []string
	}{
		{"mbart", "", "", []string{"give --source_lang and --target_lang: MBartTokenizer is a multilingual tokenizer", "for example ar_AR and cs_CZ; its 25 codes: ar_AR cs_CZ de_DE"}},
		{"m2m100", "en", "", []string{"give --source_lang and --target_lang: M2M100Tokenizer is a multilingual tokenizer", "its 100 codes: af am ar"}},
		{"nllb", "eng_Latn", "ron", []string{`"ron" is not a language code of this NllbTokenizer (did you mean ron_Latn?)`}},
	} {
		a := ortrain.DefaultArguments()
		a.OutputDir = t.TempDir()
		_, err := Prepare(context.Background(), nil, Config{Args: a, Model: t.TempDir(),
			Tokenizer: testenv.Testdata(t, "tokenizers", "multilingual", tc.tokenizer),
			Format:    DataFormat{SourceLang: tc.src, TargetLang: tc.tgt}})
		if !errors.Is(err, fault.Settings) {
			t.Errorf("%s: %v is not a settings error", tc.tokenizer, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %q", tc.tokenizer, err, w)
			}
		}
	}
}

// TestMultilingualTrainerGeneratesLikeHF: the trainer's generator, with the
// generation settings Prepare derives from the languages (M2M100: the
// target code forced first; mBART: the decoder starts with it), generates
// HF's sequences for the target language, with the KV-cache graphs and
// with the recomputed full graph.
func TestMultilingualTrainerGeneratesLikeHF(t *testing.T) {
	env := openEnv(t)
	b, err := os.ReadFile(testenv.Testdata(t, "multilingual", "generate.json"))
	if err != nil {
		t.Fatal(err)
	}
	var refs struct {
		Models map[string]struct {
			Sources map[string][][]int64 `json:"sources"`
			Cases   []struct {
				Name      string    `json:"name"`
				Sequences [][]int64 `json:"sequences"`
			} `json:"cases"`
		} `json:"models"`
	}
	if err := json.Unmarshal(b, &refs); err != nil {
		t.Fatal(err)
	}
	batches := readMultilingualBatches(t)
	for _, name := range []string{"m2m100-tiny", "mbart-tiny"} {
		for _, withoutCache := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/recompute=%v", name, withoutCache), func(t *testing.T) {
				s := prepareMultilingual(t, env, name, batches[name], withoutCache, true)
				if (s.gen.RecomputeGraph != "") != withoutCache {
					t.Fatalf("recompute graph %q", s.gen.RecomputeGraph)
				}
				m := refs.Models[name]
				equal, total := 0, 0
				for _, c := range m.Cases {
					if c.Name != "target_lang/greedy/b6" && c.Name != "target_lang/beam4/b6" && c.Name != "target_lang/greedy/b1" {
						continue
					}
					beams := 1
					if strings.Contains(c.Name, "beam4") {
						beams = 4
					}
					src := m.Sources[c.Name[strings.LastIndex(c.Name, "/")+1:]]
					width := 0
					for _, r := range src {
						width = max(width, len(r))
					}
					bt := &data.Batch{Rows: len(src), SourceLen: width}
					for _, r := range src {
						for k := range width {
							if k < len(r) {
								bt.InputIDs, bt.AttentionMask = append(bt.InputIDs, r[k]), append(bt.AttentionMask, 1)
							} else {
								bt.InputIDs, bt.AttentionMask = append(bt.InputIDs, 1), append(bt.AttentionMask, 0)
							}
						}
					}
					got, err := s.gen.Generate(context.Background(), bt, 0, beams)
					if err != nil {
						t.Fatal(err)
					}
					for i, want := range c.Sequences {
						total++
						if fmt.Sprint(got[i]) == fmt.Sprint(want) {
							equal++
						} else {
							t.Errorf("%s row %d:\n got %v\nwant %v", c.Name, i, got[i], want)
						}
					}
				}
				t.Logf("%s (recompute %v): %d/%d sequences equal to HF generate() with the target language", name, withoutCache, equal, total)
			})
		}
	}
}
