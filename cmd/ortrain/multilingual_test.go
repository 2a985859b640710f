package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/testenv"
)

// testdata/multilingual/predict.json comes from scripts/refs/multilingual_refs.py:
// HF's tokenizer (with src_lang) + generate with the target language +
// batch_decode on the tiny mBART and M2M100 models.
type multilingualPredictRef struct {
	Tokenizer  string   `json:"tokenizer"`
	SourceLang string   `json:"source_lang"`
	TargetLang string   `json:"target_lang"`
	Sources    []string `json:"sources"`
	Greedy     []string `json:"num_beams=1"`
	Beam3      []string `json:"num_beams=3"`
}

// TestPredictMultilingualMatchesHF: `ortrain predict --source-lang
// --target-lang` on mBART and M2M100 writes HF's predictions, with the KV
// cache and with --no-cache.
func TestPredictMultilingualMatchesHF(t *testing.T) {
	b, err := os.ReadFile(testenv.Testdata(t, "multilingual", "predict.json"))
	if err != nil {
		t.Fatal(err)
	}
	var refs map[string]json.RawMessage
	if err := json.Unmarshal(b, &refs); err != nil {
		t.Fatal(err)
	}
	for _, model := range []string{"mbart-tiny", "m2m100-tiny"} {
		var ref multilingualPredictRef
		if err := json.Unmarshal(refs[model], &ref); err != nil {
			t.Fatal(err)
		}
		input := filepath.Join(t.TempDir(), "in.txt")
		if err := os.WriteFile(input, []byte(strings.Join(ref.Sources, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, beams := range []string{"1", "3"} {
			want := ref.Greedy
			if beams == "3" {
				want = ref.Beam3
			}
			for _, noCache := range []bool{false, true} {
				out := filepath.Join(t.TempDir(), "pred.txt")
				args := []string{"--model", testenv.Testdata(t, "multilingual", model),
					"--tokenizer", testenv.Testdata(t, "tokenizers", "multilingual", ref.Tokenizer),
					"--source-lang", ref.SourceLang, "--target-lang", ref.TargetLang,
					"--input", input, "--output", out, "--num-beams", beams, "--batch-size", "4"}
				if noCache {
					args = append(args, "--no-cache")
				}
				code, _, stderr := runPredictCLI(t, args...)
				if code != 0 {
					t.Fatalf("%s: exit %d: %s", model, code, stderr)
				}
				if got := readLinesT(t, out); !reflect.DeepEqual(got, want) {
					t.Errorf("%s beams %s no-cache %v: predictions differ from HF:\n got %q\nwant %q", model, beams, noCache, got, want)
				}
			}
		}
	}
}

// TestMultilingualWithoutLanguageCodes: predict and train refuse a
// multilingual tokenizer without both language codes (exit 2, settings),
// naming the flags and the class.
func TestMultilingualWithoutLanguageCodes(t *testing.T) {
	input := filepath.Join(t.TempDir(), "in.txt")
	os.WriteFile(input, []byte("hello\n"), 0o644)
	code, _, stderr := runPredictCLI(t, "--model", testenv.Testdata(t, "multilingual", "m2m100-tiny"),
		"--tokenizer", testenv.Testdata(t, "tokenizers", "multilingual", "m2m100"), "--source-lang", "en",
		"--input", input, "--output", filepath.Join(t.TempDir(), "out.txt"))
	if code != 2 || !strings.Contains(stderr, "give --source-lang and --target-lang: M2M100Tokenizer is a multilingual tokenizer") {
		t.Errorf("predict without --target-lang: exit %d, %q", code, stderr)
	}
	train := filepath.Join(t.TempDir(), "train.jsonl")
	os.WriteFile(train, []byte(`{"source": "a", "target": "b"}`+"\n"), 0o644)
	code, _, stderr = runTrainCLI(t, "--model", testenv.Testdata(t, "multilingual", "mbart-tiny"),
		"--tokenizer", testenv.Testdata(t, "tokenizers", "multilingual", "mbart"), "--train_file", train,
		"--output_dir", filepath.Join(t.TempDir(), "out"), "--do_train")
	if code != 2 || !strings.Contains(stderr, "give --source_lang and --target_lang: MBartTokenizer is a multilingual tokenizer") {
		t.Errorf("train without languages: exit %d, %q", code, stderr)
	}
}
