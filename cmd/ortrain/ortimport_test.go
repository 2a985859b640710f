package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/ortckpt"
	"github.com/ortrain/ortrain/internal/safetensors"
	"github.com/ortrain/ortrain/internal/testenv"
)

func TestArtifactsFromORTAndBack(t *testing.T) {
	testenv.ORTLibrary(t)
	src := testenv.Testdata(t, "ort-artifacts", "t5-tiny")
	out := t.TempDir()
	code, stdout, stderr := runCLI(t, "artifacts", "--from-ort", src, "--out", out)
	if code != 0 || !strings.Contains(stdout, "47 trainable") || !strings.Contains(stdout, "adam_mode 1") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	ck := filepath.Join(t.TempDir(), "checkpoint")
	if code, _, stderr := runCLI(t, "export-ort", "--artifacts", out, "--out", ck); code != 0 {
		t.Fatalf("export-ort: exit %d: %s", code, stderr)
	}
	back, err := ortckpt.ReadFile(ck)
	if err != nil || len(back.Trainable) != 47 {
		t.Fatalf("exported checkpoint: %v", err)
	}
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"artifacts", "--from-ort", t.TempDir(), "--out", t.TempDir()}, exitData, "has no checkpoint"},
		{[]string{"artifacts", "--from-ort", src, "--model", "x.onnx", "--out", t.TempDir()}, exitUsage, "not both"},
		{[]string{"artifacts", "--out", t.TempDir()}, exitUsage, "--from-ort"},
	} {
		code, _, stderr := runCLI(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.msg) {
			t.Errorf("%v: exit %d, %q; want %d mentioning %q", c.args, code, stderr, c.code, c.msg)
		}
	}
}

// wordTokenizer writes a word-level tokenizer.json for a model of the given
// vocabulary: <pad>=0, </s>=1, <unk>=2, then w3..w{n-1}; "</s>" appended.
func wordTokenizer(t *testing.T, path string, n int) {
	t.Helper()
	vocab := map[string]int{"<pad>": 0, "</s>": 1, "<unk>": 2}
	for i := 3; i < n; i++ {
		vocab["w"+strconv.Itoa(i)] = i
	}
	special := func(id int, s string) map[string]any {
		return map[string]any{"id": id, "content": s, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}
	}
	doc := map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil, "normalizer": nil, "decoder": nil,
		"added_tokens":  []any{special(0, "<pad>"), special(1, "</s>"), special(2, "<unk>")},
		"pre_tokenizer": map[string]any{"type": "WhitespaceSplit"},
		"post_processor": map[string]any{"type": "TemplateProcessing",
			"single":         []any{map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}, map[string]any{"SpecialToken": map[string]any{"id": "</s>", "type_id": 0}}},
			"pair":           []any{map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}, map[string]any{"SpecialToken": map[string]any{"id": "</s>", "type_id": 0}}},
			"special_tokens": map[string]any{"</s>": map[string]any{"id": "</s>", "ids": []int{1}, "tokens": []string{"</s>"}}}},
		"model": map[string]any{"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"},
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Artifacts imported from ONNX Runtime (after one ONNX Runtime AdamW step)
// train with `ortrain train --artifacts`: the optimizer continues from the
// imported moments and step, and the training loss falls.
func TestTrainImportedORTArtifacts(t *testing.T) {
	testenv.ORTLibrary(t)
	src := testenv.Testdata(t, "ort-artifacts", "t5-tiny")
	from := t.TempDir()
	for _, f := range []string{"eval_model.onnx", "optimizer_model.onnx", "training_model.onnx"} {
		b, _ := os.ReadFile(filepath.Join(src, f))
		os.WriteFile(filepath.Join(from, f), b, 0o644)
	}
	b, _ := os.ReadFile(filepath.Join(src, "checkpoint_step1"))
	os.WriteFile(filepath.Join(from, "checkpoint"), b, 0o644)
	art := t.TempDir()
	if code, out, errOut := runCLI(t, "artifacts", "--from-ort", from, "--out", art); code != 0 {
		t.Fatalf("import: exit %d\n%s%s", code, out, errOut)
	}
	tok := filepath.Join(art, "tokenizer.json")
	wordTokenizer(t, tok, 512)
	// A copy task over the vocabulary.
	var lines []string
	for i := 0; i < 64; i++ {
		var words []string
		for k := 0; k < 3+i%5; k++ {
			words = append(words, "w"+strconv.Itoa(3+(i*7+k*13)%500))
		}
		s := strings.Join(words, " ")
		line, _ := json.Marshal(map[string]string{"source": s, "target": s})
		lines = append(lines, string(line))
	}
	train := filepath.Join(t.TempDir(), "train.jsonl")
	os.WriteFile(train, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	out := filepath.Join(t.TempDir(), "run")
	code, stdout, stderr := runCLI(t, "train", "--artifacts", art, "--tokenizer", tok, "--train_file", train,
		"--output_dir", out, "--do_train", "--max_steps", "12", "--learning_rate", "3e-3", "--logging_steps", "4",
		"--per_device_train_batch_size", "8", "--save_strategy", "steps", "--save_steps", "12", "--no-progress")
	if code != 0 {
		t.Fatalf("train: exit %d\n%s\n%s", code, stdout, stderr)
	}
	var state struct {
		LogHistory []map[string]float64 `json:"log_history"`
	}
	sb, err := os.ReadFile(filepath.Join(out, "trainer_state.json"))
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(sb, &state)
	var losses []float64
	for _, e := range state.LogHistory {
		if l, ok := e["loss"]; ok {
			losses = append(losses, l)
		}
	}
	t.Logf("logged losses %v", losses)
	if len(losses) != 3 || !(losses[2] < losses[0]) {
		t.Fatalf("logged losses %v: expected three that fall", losses)
	}
	// By default the run continues ONNX Runtime's optimizer as it was:
	// legacy AdamW (adam_mode 1), its epsilon, no clipping.
	var args map[string]any
	ab, err := os.ReadFile(filepath.Join(out, "training_args.json"))
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(ab, &args)
	if args["optim"] != "adamw_hf" || args["adam_epsilon"] != 1e-06 || args["max_grad_norm"] != 0.0 {
		t.Fatalf("training args optim %v, adam_epsilon %v, max_grad_norm %v; want adamw_hf, 1e-06, 0", args["optim"], args["adam_epsilon"], args["max_grad_norm"])
	}
	// The optimizer continued from ONNX Runtime's step 1: 12 more steps make 13.
	st, err := safetensors.ReadFile(filepath.Join(out, "checkpoint-12", "optimizer.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Metadata["step"] != "13" {
		t.Fatalf("optimizer step after training %q, want 13 (1 imported + 12)", st.Metadata["step"])
	}
}
