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

// copyFolder copies the files of src into a temporary folder, leaving out drop.
func copyFolder(t *testing.T, src string, drop ...string) string {
	t.Helper()
	dir := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		skip := false
		for _, d := range drop {
			skip = skip || e.Name() == d
		}
		if skip {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestPredictOptimumExports: the folders optimum-cli export onnx wrote for
// t5-tiny (default task: encoder and decoder only; with past; the merged
// decoder alone) predict what HF's generate() predicts, with and without
// the KV cache.
func TestPredictOptimumExports(t *testing.T) {
	var refs predictRefs
	b, err := os.ReadFile(testenv.Testdata(t, "generate", "predict", "hf.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &refs); err != nil {
		t.Fatal(err)
	}
	_, tok, input, _ := predictPaths(t)
	folders := map[string]string{
		"default":     testenv.Testdata(t, "optimum", "t5-tiny"),
		"with-past":   testenv.Testdata(t, "optimum", "t5-tiny-with-past"),
		"merged-only": copyFolder(t, testenv.Testdata(t, "optimum", "t5-tiny-with-past"), "decoder_model.onnx", "decoder_with_past_model.onnx"),
	}
	for setting, s := range refs.Settings {
		gen := filepath.Join(t.TempDir(), "gen.json")
		kw, _ := json.Marshal(s.Kwargs)
		os.WriteFile(gen, kw, 0o644)
		for name, dir := range folders {
			for _, cache := range []bool{true, false} {
				out := filepath.Join(t.TempDir(), "pred.txt")
				args := []string{"--model", dir, "--tokenizer", tok, "--input", input, "--output", out, "--batch-size", "4", "--generation-config", gen}
				if s.Truncate > 0 {
					args = append(args, "--max-source-length", scoreItoa(s.Truncate), "--truncate")
				}
				if !cache {
					args = append(args, "--no-cache")
				}
				code, _, stderr := runPredictCLI(t, args...)
				if code != 0 {
					t.Fatalf("%s %s (cache %v): exit %d: %s", setting, name, cache, code, stderr)
				}
				if got := readLinesT(t, out); !reflect.DeepEqual(got, s.Predictions) {
					t.Errorf("%s %s (cache %v): predictions differ from HF:\n got %q\nwant %q", setting, name, cache, got, s.Predictions)
				}
			}
		}
	}
	// A folder with neither an Optimum export nor model.onnx is bad input,
	// and the message names both layouts.
	empty := t.TempDir()
	os.WriteFile(filepath.Join(empty, "config.json"), []byte(`{"model_type": "t5"}`), 0o644)
	code, _, stderr := runPredictCLI(t, "--model", empty, "--tokenizer", tok, "--input", input, "--output", filepath.Join(empty, "p.txt"))
	if code != 3 || !strings.Contains(stderr, "encoder_model.onnx") || !strings.Contains(stderr, "model.onnx") {
		t.Errorf("empty folder: exit %d, %q", code, stderr)
	}
}
