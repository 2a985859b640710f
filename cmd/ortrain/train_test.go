package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
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
