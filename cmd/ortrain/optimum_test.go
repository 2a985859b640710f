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

// TestArtifactsReportsUnmatched: an Optimum export without model.safetensors
// whose folded final_logits_bias no name or module path identifies is
// reported by name, shape and size, with what to pass; --param-name then
// makes it the buffer it is (kept frozen).
func TestArtifactsReportsUnmatched(t *testing.T) {
	src := testenv.Testdata(t, "optimum", "bart-tiny")
	out := filepath.Join(t.TempDir(), "art")
	code, stdout, stderr := runCLI(t, "artifacts", "--model", src, "--out", out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var unmatched string
	for _, l := range strings.Split(stdout, "\n") {
		if strings.HasPrefix(l, "unmatched: ") {
			unmatched = l
		}
	}
	for _, want := range []string{"initializer onnx::Add_", "[1 512]", "2.0 KiB", "read by /Add", "model.safetensors", "--param-name onnx::Add_"} {
		if !strings.Contains(unmatched, want) {
			t.Errorf("report lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stdout, "parameters: 91 trainable, 0 frozen; identified ") {
		t.Errorf("summary:\n%s", stdout)
	}
	name := strings.Fields(strings.TrimPrefix(unmatched, "unmatched: initializer "))[0]
	code, stdout, stderr = runCLI(t, "artifacts", "--model", src, "--out", filepath.Join(t.TempDir(), "art2"), "--param-name", name+"=final_logits_bias")
	if code != 0 || strings.Contains(stdout, "unmatched:") || !strings.Contains(stdout, "frozen: final_logits_bias [1 512] (not trained by HF: buffer") {
		t.Errorf("with --param-name: exit %d\n%s%s", code, stdout, stderr)
	}
	// A name that is no initializer is a usage error.
	if code, _, stderr = runCLI(t, "artifacts", "--model", src, "--out", filepath.Join(t.TempDir(), "art3"), "--param-name", "nope=x.weight"); code != 2 || !strings.Contains(stderr, `no float initializer "nope"`) {
		t.Errorf("unknown --param-name: exit %d, %q", code, stderr)
	}
}

// TestWeightsOfAnotherModel: an export next to the weights of another model
// of the same shapes (the Marian fixture's for the BART export) is refused,
// naming the tensor and what to do.
func TestWeightsOfAnotherModel(t *testing.T) {
	dir := copyFolder(t, testenv.Testdata(t, "optimum", "bart-tiny"))
	b, err := os.ReadFile(testenv.Testdata(t, "models", "marian-tiny", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "model.safetensors"), b, 0o644)
	code, _, stderr := runCLI(t, "artifacts", "--model", dir, "--out", filepath.Join(t.TempDir(), "art"))
	if code != 3 || !strings.Contains(stderr, "holds other values than") || !strings.Contains(stderr, "another model") || !strings.Contains(stderr, "model.safetensors") {
		t.Errorf("exit %d: %s", code, stderr)
	}
	// train stops the same way, before any step.
	data := filepath.Join(t.TempDir(), "train.jsonl")
	os.WriteFile(data, []byte(`{"source": "w25 w37", "target": "w25 w37"}`+"\n"), 0o644)
	_, tok, _, _ := predictPaths(t)
	code, _, stderr = runTrainCLI(t, "--model", dir, "--tokenizer", tok, "--train_file", data, "--do_train", "--max_steps", "1", "--output_dir", filepath.Join(t.TempDir(), "out"))
	if code != 3 || !strings.Contains(stderr, "another model") {
		t.Errorf("train: exit %d: %s", code, stderr)
	}
}

// TestTrainOptimumFolder: `ortrain train --model DIR` on the folder
// optimum-cli wrote trains, prints how the parameters were identified
// before training, and leaves a checkpoint with HF's names.
func TestTrainOptimumFolder(t *testing.T) {
	_, tok, input, refs := predictPaths(t)
	src, _ := os.ReadFile(input)
	tgt, _ := os.ReadFile(refs)
	var rows []string
	srcLines, tgtLines := strings.Split(strings.TrimSpace(string(src)), "\n"), strings.Split(strings.TrimSpace(string(tgt)), "\n")
	for i := range srcLines {
		b, _ := json.Marshal(map[string]string{"source": srcLines[i], "target": tgtLines[i]})
		rows = append(rows, string(b))
	}
	data := filepath.Join(t.TempDir(), "train.jsonl")
	os.WriteFile(data, []byte(strings.Join(rows, "\n")+"\n"), 0o644)
	out := filepath.Join(t.TempDir(), "out")
	code, stdout, stderr := runTrainCLI(t, "--model", testenv.Testdata(t, "optimum", "t5-tiny-with-past"), "--tokenizer", tok, "--train_file", data,
		"--do_train", "--max_steps", "2", "--save_steps", "2", "--per_device_train_batch_size", "4", "--output_dir", out)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	report := strings.Index(stdout, "parameters: 47 trainable, 0 frozen; identified ")
	if report < 0 || report > strings.Index(stdout, "***** Running training *****") || strings.Contains(stdout, "unmatched:") {
		t.Errorf("no parameter report before training:\n%s", stdout)
	}
	if _, err := os.Stat(filepath.Join(out, "checkpoint-2", "model.safetensors")); err != nil {
		t.Error(err)
	}
}
