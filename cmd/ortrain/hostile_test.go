package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/testenv"
)

// A crash is never reported as a usage error: a panic in a command ends
// with exit 1 and a message asking for a bug report (Go's own status for a
// panic is 2, the README's code for usage errors).
func TestCrashIsNotAUsageError(t *testing.T) {
	for name, action := range map[string]cli.ActionFunc{
		"direct": func(*cli.Context) error { panic("index out of range [7] with length 3") },
		"worker": func(*cli.Context) error {
			done := make(chan any)
			go func() {
				defer func() { done <- recover() }()
				panic("in a goroutine")
			}()
			panic(<-done)
		},
	} {
		var stdout, stderr bytes.Buffer
		app := newApp(strings.NewReader(""), &stdout, &stderr)
		app.Commands = append(app.Commands, &cli.Command{Name: "boom", Action: action})
		code := runApp(context.Background(), app, []string{"ortrain", "boom"}, &stderr)
		if code != exitError || !strings.Contains(stderr.String(), "internal error") || !strings.Contains(stderr.String(), "bug") {
			t.Errorf("%s: exit %d, stderr %q", name, code, stderr.String())
		}
	}
}

// dirHash hashes every file of a folder (names and bytes).
func dirHash(t *testing.T, dir string) [32]byte {
	t.Helper()
	h := sha256.New()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			h.Write([]byte(p))
			h.Write(b)
		}
		return nil
	})
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// copyModel copies t5-tiny's files into a new folder.
func copyModel(t *testing.T, dir string) {
	t.Helper()
	for _, name := range []string{"config.json", "generation_config.json", "model.onnx", "model.safetensors",
		"encoder_model.onnx", "decoder_model.onnx", "decoder_with_past_model.onnx"} {
		writeFile(t, filepath.Join(dir, name), readFixture(t, "models", "t5-tiny", name))
	}
	writeFile(t, filepath.Join(dir, "tokenizer.json"), readFixture(t, "generate", "predict", "tokenizer.json"))
}

// artifacts --out pointed at the model folder (or a folder holding it)
// is refused before anything is written: it used to overwrite the export.
func TestArtifactsRefuseOutputHoldingInput(t *testing.T) {
	root := t.TempDir()
	model := filepath.Join(root, "t5")
	copyModel(t, model)
	before := dirHash(t, model)
	for _, out := range []string{model, root} {
		code, _, stderr := runCLI(t, "artifacts", "--model", filepath.Join(model, "model.onnx"), "--out", out)
		if code != exitUsage || !strings.Contains(stderr, "--out") {
			t.Errorf("--out %s: exit %d: %s", out, code, stderr)
		}
	}
	if dirHash(t, model) != before {
		t.Fatal("the model folder changed")
	}
	code, _, stderr := runCLI(t, "artifacts", "--from-ort", model, "--out", model)
	if code != exitUsage {
		t.Errorf("--from-ort into itself: exit %d: %s", code, stderr)
	}
	// train's final save into the model folder would replace its weights
	train := writeFile(t, filepath.Join(root, "train.jsonl"), []byte("{\"source\": \"a cat\", \"target\": \"a dog\"}\n"))
	code, _, stderr = runCLI(t, "--ort-lib", testenv.ORTLibrary(t), "train", "--no-progress", "--model", model, "--train_file", train,
		"--do_train", "--max_steps", "1", "--output_dir", model, "--overwrite_output_dir")
	if code != exitUsage || !strings.Contains(stderr, "--model folder") {
		t.Errorf("train --output_dir = --model: exit %d: %s", code, stderr)
	}
	if dirHash(t, model) != before {
		t.Fatal("the model folder changed")
	}
}

// A model whose external data is a link to a file outside its folder is
// refused by artifacts and train (exit 3); before, the file was read and
// copied into the artifacts and the saved model.
func TestExternalDataLinkOutsideRefusedByCommands(t *testing.T) {
	root := t.TempDir()
	model := filepath.Join(root, "t5")
	copyModel(t, model)
	m, err := onnx.Load(filepath.Join(model, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if err := onnx.Save(m, filepath.Join(model, "model.onnx"), onnx.SaveOptions{ExternalData: true, ExternalDataFile: "model.onnx.data", SizeThreshold: -1}); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(root, "secret.bin")
	os.Rename(filepath.Join(model, "model.onnx.data"), secret)
	os.Symlink(secret, filepath.Join(model, "model.onnx.data"))
	out := filepath.Join(root, "art")
	code, _, stderr := runCLI(t, "artifacts", "--model", filepath.Join(model, "model.onnx"), "--out", out)
	if code != exitData || !strings.Contains(stderr, "outside the model folder") {
		t.Errorf("artifacts: exit %d: %s", code, stderr)
	}
	train := writeFile(t, filepath.Join(root, "train.jsonl"), []byte("{\"source\": \"a cat\", \"target\": \"a dog\"}\n"))
	code, _, stderr = runCLI(t, "--ort-lib", testenv.ORTLibrary(t), "train", "--no-progress", "--model", model,
		"--train_file", train, "--do_train", "--max_steps", "1", "--output_dir", filepath.Join(root, "out"))
	if code != exitData || !strings.Contains(stderr, "outside the model folder") {
		t.Errorf("train: exit %d: %s", code, stderr)
	}
}

// Single flags that used to hang or exhaust memory are refused at once:
// 100000 threads (minutes of thread creation no signal ends), 10^5 beams,
// n-gram orders of 10^9.
func TestAbsurdFlagsRefusedAtOnce(t *testing.T) {
	root := t.TempDir()
	model := filepath.Join(root, "t5")
	copyModel(t, model)
	input := testenv.Testdata(t, "generate", "predict", "input.txt")
	hyp := writeFile(t, filepath.Join(root, "hyp.txt"), []byte("a cat sat\n"))
	train := writeFile(t, filepath.Join(root, "train.jsonl"), []byte("{\"source\": \"a cat\", \"target\": \"a dog\"}\n"))
	lib := testenv.ORTLibrary(t)
	for name, args := range map[string][]string{
		"predict threads": {"--ort-lib", lib, "predict", "--no-progress", "--model", model, "--input", input, "--output", filepath.Join(root, "p1"), "--threads", "100000"},
		"predict beams":   {"--ort-lib", lib, "predict", "--no-progress", "--model", model, "--input", input, "--output", filepath.Join(root, "p2"), "--num-beams", "100000"},
		"train threads": {"--ort-lib", lib, "train", "--no-progress", "--model", model, "--train_file", train, "--do_train",
			"--max_steps", "1", "--output_dir", filepath.Join(root, "t1"), "--threads", "100000"},
		"bleu order":   {"score", "--metric", "bleu", "--max-ngram-order", "1000000000", "--hyp", hyp, "--ref", hyp},
		"chrf order":   {"score", "--metric", "chrf", "--char-order", "1000000000", "--hyp", hyp, "--ref", hyp},
		"chrf word":    {"score", "--metric", "chrf", "--word-order", "1000000000", "--hyp", hyp, "--ref", hyp},
		"ngram policy": {"score", "--metric", "bleu", "--max-ngram-order", "1001", "--hyp", hyp, "--ref", hyp},
	} {
		start := time.Now()
		code, _, stderr := runCLI(t, args...)
		if code != exitUsage {
			t.Errorf("%s: exit %d: %s", name, code, stderr)
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("%s: took %v to refuse", name, d)
		}
	}
}

// Bad values in a model's own files are bad input (exit 3), naming the
// file; they used to exit 1 or 2.
func TestBadModelFileValuesExit3(t *testing.T) {
	root := t.TempDir()
	input := testenv.Testdata(t, "generate", "predict", "input.txt")
	lib := testenv.ORTLibrary(t)
	for name, gen := range map[string]string{
		"num_beams":           `{"decoder_start_token_id": 0, "eos_token_id": 1, "pad_token_id": 0, "num_beams": 0}`,
		"eos_token_id":        `{"decoder_start_token_id": 0, "eos_token_id": 99999999, "pad_token_id": 0}`,
		"appears twice":       `{"decoder_start_token_id": 0, "eos_token_id": 1, "pad_token_id": 0, "max_length": 5, "max_length": 50}`,
		"repetition_penalty":  `{"decoder_start_token_id": 0, "eos_token_id": 1, "pad_token_id": 0, "repetition_penalty": -1}`,
		"forced_bos_token_id": `{"decoder_start_token_id": 0, "eos_token_id": 1, "pad_token_id": 0, "forced_bos_token_id": 40000}`,
	} {
		model := filepath.Join(root, strings.ReplaceAll(name, " ", "-"))
		copyModel(t, model)
		writeFile(t, filepath.Join(model, "generation_config.json"), []byte(gen))
		code, _, stderr := runCLI(t, "--ort-lib", lib, "predict", "--no-progress", "--model", model, "--input", input, "--output", filepath.Join(model, "p.txt"))
		if code != exitData || !strings.Contains(stderr, "generation_config.json") || !strings.Contains(stderr, name) {
			t.Errorf("%s: exit %d: %s", name, code, stderr)
		}
	}
	hyp := writeFile(t, filepath.Join(root, "hyp.txt"), []byte("a cat sat on the mat\n"))
	stats := filepath.Join(root, "s.json")
	if code, _, stderr := runCLI(t, "score", "--metric", "bleu", "--hyp", hyp, "--ref", hyp, "--stats-out", stats); code != 0 {
		t.Fatalf("score: %d %s", code, stderr)
	}
	b, _ := os.ReadFile(stats)
	bad := bytes.Replace(b, []byte(`"correct": [`), []byte(`"correct": [9000`), 1)
	badPath := writeFile(t, filepath.Join(root, "bad.json"), bad)
	code, stdout, stderr := runCLI(t, "score", "--merge", stats, badPath)
	if code != exitData || !strings.Contains(stderr, "bad.json") {
		t.Errorf("merge of impossible statistics: exit %d: %s%s", code, stdout, stderr)
	}
}
