package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/testenv"
)

func runTrainCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	all := append([]string{"ortrain", "--ort-lib", testenv.ORTLibrary(t), "train", "--no-progress"}, args...)
	code := run(context.Background(), all, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestTrainDemoShort runs the embedded demo for a few steps: evaluation
// with BLEU/ROUGE, checkpoints, rotation, best model, outputs and plot.
func TestTrainDemoShort(t *testing.T) {
	out := filepath.Join(t.TempDir(), "demo")
	code, stdout, stderr := runTrainCLI(t, "--demo", "--output_dir", out, "--max_steps", "12", "--eval-steps", "4",
		"--save_steps", "4", "--save_total_limit", "2", "--logging_steps", "2", "--report_to", "jsonl,tensorboard")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"{'loss': '", "'eval_bleu': '", "***** train metrics *****", "best checkpoint:"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	for _, f := range []string{"all_results.json", "train_results.json", "eval_results.json", "predict_results.json",
		"trainer_state.json", "generated_predictions.txt", "training_curves.png", "log_history.jsonl", "model.safetensors",
		"checkpoint-8/model.safetensors", "checkpoint-12/optimizer.safetensors", "checkpoint-12/trainer_state.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("missing %s", f)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "checkpoint-4")); err == nil {
		t.Error("checkpoint-4 survived save_total_limit 2")
	}
	var st map[string]any
	b, _ := os.ReadFile(filepath.Join(out, "trainer_state.json"))
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if st["global_step"].(float64) != 12 || st["best_model_checkpoint"] == nil {
		t.Errorf("trainer_state: step %v best %v", st["global_step"], st["best_model_checkpoint"])
	}
	ev, _ := filepath.Glob(filepath.Join(out, "runs", "*", "events.out.tfevents.*"))
	if len(ev) != 1 {
		t.Errorf("tensorboard files: %v", ev)
	}

	// resume from the last checkpoint with more steps
	code, stdout, stderr = runTrainCLI(t, "--demo", "--output_dir", out, "--max_steps", "16", "--eval-steps", "4",
		"--save_steps", "4", "--save_total_limit", "2", "--logging_steps", "2", "--resume_from_checkpoint", "true")
	if code != 0 {
		t.Fatalf("resume: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(out, "checkpoint-16")); err != nil {
		t.Errorf("resumed run did not reach step 16: %v", err)
	}
}

func TestTrainBadInput(t *testing.T) {
	dir := t.TempDir()
	full := filepath.Join(dir, "full")
	os.MkdirAll(full, 0o755)
	os.WriteFile(filepath.Join(full, "x"), []byte("x"), 0o644)
	cfg := filepath.Join(dir, "args.yaml")
	os.WriteFile(cfg, []byte("learning_rate: 1e-3\nnot_an_argument: 3\n"), 0o644)
	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, []byte(`{"save_steps": 10, "eval_steps": 3}`), 0o644)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--demo", "--load_best_model_at_end", "--eval_strategy", "epoch", "--save_strategy", "steps"}, exitUsage, "--load_best_model_at_end requires the save and eval strategy to match"},
		{[]string{"--demo", "--eval_steps", "3", "--save_steps", "10"}, exitUsage, "round multiple of the evaluation steps"},
		{[]string{"--demo", "--metric_for_best_model", "sacrebleu"}, exitUsage, "'eval_sacrebleu', which is not found in the evaluation metrics"},
		{[]string{"--model", dir, "--train_file", "x.jsonl", "--do_train", "--eval_strategy", "steps", "--output_dir", filepath.Join(dir, "o")}, exitUsage, "gave no --validation_file"},
		{[]string{"--demo", "--output_dir", full, "--overwrite_output_dir=false"}, exitUsage, "already exists and is not empty"},
		{[]string{"--demo", "--config", cfg}, exitData, "not_an_argument"},
		{[]string{"--demo", "--logging_steps", "2.5"}, exitUsage, "--logging_steps must be an integer if bigger than 1: 2.5"},
		// the config file is read, and flags override it
		{[]string{"--demo", "--config", good}, exitUsage, "found 10, which is not a round multiple of 3"},
		{[]string{"--demo", "--config", good, "--save-steps", "8"}, exitUsage, "found 8, which is not a round multiple of 3"},
		{[]string{"--demo", "--max_steps", "x"}, exitUsage, "--max_steps"},
	} {
		args := c.args
		if args[0] == "--demo" && !strings.Contains(strings.Join(args, " "), "--output_dir") {
			args = append(args, "--output_dir", filepath.Join(dir, "demo-out"))
		}
		code, stdout, stderr := runTrainCLI(t, args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q (stdout %.200q); want exit %d and %q", c.args, code, stderr, stdout, c.code, c.want)
		}
	}
}

// archModel copies testdata/arch/<name> (exported by scripts/export_model.py)
// with a word-level tokenizer whose ids fit its 96-id vocabulary, and
// writes a small translation file.
func archModel(t *testing.T, name string) (model, data string) {
	t.Helper()
	src := testenv.Testdata(t, "arch", name)
	dir := t.TempDir()
	model = filepath.Join(dir, "model")
	os.MkdirAll(model, 0o755)
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(model, e.Name()), b, 0o644)
	}
	vocab := map[string]int{"<pad>": 0, "</s>": 1, "<unk>": 2}
	var words []string
	for i := 3; i < 48; i++ {
		w := "w" + strconv.Itoa(i)
		vocab[w] = i
		words = append(words, w)
	}
	tok := map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil, "normalizer": nil, "decoder": nil,
		"added_tokens": []any{
			map[string]any{"id": 0, "content": "<pad>", "special": true, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false},
			map[string]any{"id": 1, "content": "</s>", "special": true, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false},
			map[string]any{"id": 2, "content": "<unk>", "special": true, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false}},
		"pre_tokenizer": map[string]any{"type": "WhitespaceSplit"},
		"post_processor": map[string]any{"type": "TemplateProcessing",
			"single":         []any{map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}, map[string]any{"SpecialToken": map[string]any{"id": "</s>", "type_id": 0}}},
			"pair":           []any{map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}, map[string]any{"SpecialToken": map[string]any{"id": "</s>", "type_id": 0}}},
			"special_tokens": map[string]any{"</s>": map[string]any{"id": "</s>", "ids": []int{1}, "tokens": []string{"</s>"}}}},
		"model": map[string]any{"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"},
	}
	b, _ := json.Marshal(tok)
	os.WriteFile(filepath.Join(model, "tokenizer.json"), b, 0o644)
	var lines []string
	for i := 0; i < 10; i++ {
		s := strings.Join(words[i:i+3+i%4], " ")
		line, _ := json.Marshal(map[string]any{"translation": map[string]string{"en": s, "xx": s}})
		lines = append(lines, string(line))
	}
	data = filepath.Join(dir, "train.jsonl")
	os.WriteFile(data, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	return model, data
}

// TestTrainActionsAndBanner: without --do_train/--do_eval/--do_predict train
// stops with a message instead of doing nothing and exiting 0; the banner
// counts epochs as HF does (--max_steps 1 begins one epoch); only files that
// exist are announced.
func TestTrainActionsAndBanner(t *testing.T) {
	model, data := archModel(t, "t5")
	out := filepath.Join(t.TempDir(), "out")
	common := []string{"--model", model, "--train_file", data, "--source_lang", "en", "--target_lang", "xx", "--output_dir", out}
	code, stdout, stderr := runTrainCLI(t, common...)
	if code != exitUsage || !strings.Contains(stderr, "nothing to do") || !strings.Contains(stderr, "--do_train") {
		t.Fatalf("no action: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("output_dir made although nothing was done")
	}
	code, stdout, stderr = runTrainCLI(t, append(common, "--do_train", "--max_steps", "1", "--per_device_train_batch_size", "4")...)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"Num examples = 10\n", "Num Epochs = 1\n", "Num update steps per epoch = 3\n", "Total optimization steps = 1\n"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("banner lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "generated_predictions.txt") {
		t.Errorf("announces a file it did not write:\n%s", stdout)
	}
	code, stdout, _ = runTrainCLI(t, append(common, "--do_train", "--num_train_epochs", "2.5", "--per_device_train_batch_size", "4", "--overwrite_output_dir", "--save_strategy", "no")...)
	if code != 0 || !strings.Contains(stdout, "Num Epochs = 3\n") || !strings.Contains(stdout, "Total optimization steps = 8\n") {
		t.Errorf("2.5 epochs of 3 steps: exit %d\n%s", code, stdout)
	}
}

// TestTrainUnknownArchitecture: a model_type ortrain does not know is
// refused with the nearest supported one; --assume_architecture trains it
// as that one, and says so.
func TestTrainUnknownArchitecture(t *testing.T) {
	model, data := archModel(t, "t5")
	var cfg map[string]any
	b, _ := os.ReadFile(filepath.Join(model, "config.json"))
	json.Unmarshal(b, &cfg)
	cfg["model_type"] = "my_t5"
	b, _ = json.Marshal(cfg)
	os.WriteFile(filepath.Join(model, "config.json"), b, 0o644)
	args := []string{"--model", model, "--train_file", data, "--source_lang", "en", "--target_lang", "xx", "--do_train", "--max_steps", "1",
		"--output_dir", filepath.Join(t.TempDir(), "out")}
	code, stdout, stderr := runTrainCLI(t, args...)
	if code != exitData || !strings.Contains(stderr, `model_type "my_t5"`) || !strings.Contains(stderr, "--assume_architecture t5") {
		t.Fatalf("unknown model type: exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, stderr = runTrainCLI(t, append(args, "--assume_architecture", "t5")...)
	if code != 0 || !strings.Contains(stderr, "training model_type my_t5 as t5 (--assume_architecture)") {
		t.Errorf("assumed: exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, _, stderr = runTrainCLI(t, append(args, "--assume_architecture", "gpt2", "--overwrite_output_dir")...)
	if code != exitUsage || !strings.Contains(stderr, `"gpt2"`) {
		t.Errorf("bad assumption: exit %d %s", code, stderr)
	}
}
