package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/testenv"
)

// badCase is one bad invocation: the exit code it must give and the words
// (file, flag or field) its one-line error must name.
type badCase struct {
	name string
	ort  bool // needs ONNX Runtime: --ort-lib is passed
	args []string
	code int
	want []string
}

// robustFixtures writes the bad inputs every command is fed.
type robustFixtures struct {
	dir, missing, empty, garbage, subdir string
	truncModel, truncTok, truncCkpt      string
	truncWeights                         string
	modelDir, truncModelDir              string // t5-tiny copies: whole, and with model.onnx cut in half
	tok, input                           string
	garbageArtifacts, truncORT           string
}

func writeFile(t *testing.T, path string, b []byte) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func readFixture(t *testing.T, elem ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(testenv.Testdata(t, elem...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func half(b []byte) []byte { return b[:len(b)/2] }

func newRobustFixtures(t *testing.T) robustFixtures {
	dir := t.TempDir()
	f := robustFixtures{dir: dir, missing: filepath.Join(dir, "missing.file"), subdir: filepath.Join(dir, "adir")}
	os.MkdirAll(f.subdir, 0o755)
	f.empty = writeFile(t, filepath.Join(dir, "empty.file"), nil)
	f.garbage = writeFile(t, filepath.Join(dir, "garbage.bin"), []byte("\x00\xff\xfe garbage \x13\x37{[\"\n\x80\x81 not a model\n"))
	model := readFixture(t, "models", "t5-tiny", "model.onnx")
	f.truncModel = writeFile(t, filepath.Join(dir, "half", "model.onnx"), half(model))
	tok := readFixture(t, "generate", "predict", "tokenizer.json")
	f.tok = testenv.Testdata(t, "generate", "predict", "tokenizer.json")
	f.input = testenv.Testdata(t, "generate", "predict", "input.txt")
	f.truncTok = writeFile(t, filepath.Join(dir, "halftok", "tokenizer.json"), half(tok))
	f.truncCkpt = writeFile(t, filepath.Join(dir, "halfckpt", "checkpoint"), half(readFixture(t, "ort-artifacts", "t5-tiny", "checkpoint")))
	f.truncWeights = writeFile(t, filepath.Join(dir, "halfweights", "model.safetensors"), half(readFixture(t, "models", "t5-tiny", "model.safetensors")))

	f.modelDir = filepath.Join(dir, "t5-tiny")
	f.truncModelDir = filepath.Join(dir, "t5-tiny-cut")
	for _, name := range []string{"config.json", "generation_config.json", "model.onnx", "model.safetensors",
		"encoder_model.onnx", "decoder_model.onnx", "decoder_with_past_model.onnx"} {
		b := readFixture(t, "models", "t5-tiny", name)
		writeFile(t, filepath.Join(f.modelDir, name), b)
		if strings.HasPrefix(name, "model.onnx") || strings.HasSuffix(name, "model.onnx") {
			b = half(b)
		}
		writeFile(t, filepath.Join(f.truncModelDir, name), b)
	}
	writeFile(t, filepath.Join(f.modelDir, "tokenizer.json"), tok)
	writeFile(t, filepath.Join(f.truncModelDir, "tokenizer.json"), tok)

	// an artifact folder of garbage, and an ORT artifact folder whose checkpoint is cut
	f.garbageArtifacts = filepath.Join(dir, "garbage-artifacts")
	for _, name := range []string{"manifest.json", "parameters.safetensors", "training_model.onnx", "eval_model.onnx"} {
		writeFile(t, filepath.Join(f.garbageArtifacts, name), []byte("\x00garbage\xff"))
	}
	f.truncORT = filepath.Join(dir, "ort-cut")
	for _, name := range []string{"eval_model.onnx", "optimizer_model.onnx", "training_model.onnx"} {
		writeFile(t, filepath.Join(f.truncORT, name), readFixture(t, "ort-artifacts", "t5-tiny", name))
	}
	writeFile(t, filepath.Join(f.truncORT, "checkpoint"), half(readFixture(t, "ort-artifacts", "t5-tiny", "checkpoint")))
	return f
}

// runGuarded runs the CLI and turns a panic into a test failure, so one
// bad case cannot take the other cases down with it.
func runGuarded(t *testing.T, args []string) (code int, stdout, stderr string, panicked any) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			panicked = r
		}
	}()
	code, stdout, stderr = runCLI(t, args...)
	return
}

func TestBadInputNeverPanics(t *testing.T) {
	f := newRobustFixtures(t)
	out := func(name string) string { return filepath.Join(f.dir, "out", name) }
	hyp := writeFile(t, filepath.Join(f.dir, "hyp.txt"), []byte("a cat sat\n"))
	badJSONL := writeFile(t, filepath.Join(f.dir, "bad.jsonl"), []byte("{\"source\": \"a\", \"target\": \"b\"}\n{not json\n"))
	badCSV := writeFile(t, filepath.Join(f.dir, "bad.csv"), []byte("source,target\n\"unterminated,quote\n"))
	noFieldJSONL := writeFile(t, filepath.Join(f.dir, "nofield.jsonl"), []byte("{\"src\": \"a\", \"tgt\": \"b\"}\n"))
	badYAML := writeFile(t, filepath.Join(f.dir, "args.yaml"), []byte("learning_rate: [1, 2\n"))
	badGenCfg := writeFile(t, filepath.Join(f.dir, "gen.json"), []byte("{\"num_beams\": \"many\""))
	runs := 0
	trainBase := func(extra ...string) []string {
		runs++
		return append([]string{"train", "--no-progress", "--model", f.modelDir, "--tokenizer", f.tok, "--do_train",
			"--max_steps", "1", "--output_dir", out(fmt.Sprint("train-", runs))}, extra...)
	}
	missingJSONL := filepath.Join(f.dir, "missing.jsonl")
	goodJSONL := writeFile(t, filepath.Join(f.dir, "good.jsonl"), []byte("{\"source\": \"a cat\", \"target\": \"a dog\"}\n"))
	predictBase := func(extra ...string) []string {
		return append([]string{"predict", "--no-progress", "--model", f.modelDir, "--tokenizer", f.tok, "--input", f.input,
			"--output", out("pred.txt")}, extra...)
	}

	cases := []badCase{
		// inspect
		{"inspect/missing", false, []string{"inspect", f.missing}, exitData, []string{"missing.file"}},
		{"inspect/empty", false, []string{"inspect", f.empty}, exitData, []string{"empty.file"}},
		{"inspect/dir", false, []string{"inspect", f.subdir}, exitData, []string{"adir"}},
		{"inspect/garbage", false, []string{"inspect", f.garbage}, exitData, []string{"garbage.bin"}},
		{"inspect/truncated", false, []string{"inspect", f.truncModel}, exitData, []string{"model.onnx"}},
		{"inspect/two-args", false, []string{"inspect", f.truncModel, f.garbage}, exitUsage, []string{"one model file"}},

		// tokenize
		{"tokenize/no-tokenizer", false, []string{"tokenize", f.input}, exitUsage, []string{"--tokenizer"}},
		{"tokenize/tokenizer-missing", false, []string{"tokenize", "--tokenizer", f.missing, f.input}, exitData, []string{"missing.file"}},
		{"tokenize/tokenizer-empty", false, []string{"tokenize", "--tokenizer", f.empty, f.input}, exitData, []string{"empty.file"}},
		{"tokenize/tokenizer-dir", false, []string{"tokenize", "--tokenizer", f.subdir, f.input}, exitData, []string{"adir"}},
		{"tokenize/tokenizer-garbage", false, []string{"tokenize", "--tokenizer", f.garbage, f.input}, exitData, []string{"garbage.bin"}},
		{"tokenize/tokenizer-truncated", false, []string{"tokenize", "--tokenizer", f.truncTok, f.input}, exitData, []string{"tokenizer.json"}},
		{"tokenize/input-missing", false, []string{"tokenize", "--tokenizer", f.tok, f.missing}, exitData, []string{"missing.file"}},
		{"tokenize/input-dir", false, []string{"tokenize", "--tokenizer", f.tok, f.subdir}, exitData, []string{"adir"}},
		{"tokenize/input-garbage", false, []string{"tokenize", "--tokenizer", f.tok, f.garbage}, exitData, []string{"garbage.bin:1"}},
		{"tokenize/decode-garbage", false, []string{"tokenize", "--decode", "--tokenizer", f.tok, f.garbage}, exitData, []string{"garbage.bin:1"}},
		{"tokenize/decode-out-of-range", false, []string{"tokenize", "--decode", "--tokenizer", f.tok, writeFile(t, filepath.Join(f.dir, "ids.txt"), []byte("1 2\n99999999 -5\n"))}, exitData, []string{"ids.txt:2"}},
		{"tokenize/decode-json-garbage", false, []string{"tokenize", "--decode", "--json", "--tokenizer", f.tok, writeFile(t, filepath.Join(f.dir, "ids.jsonl"), []byte("{\"ids\": [1, \"x\"]}\n"))}, exitData, []string{"ids.jsonl:1"}},
		{"tokenize/negative-max-length", false, []string{"tokenize", "--tokenizer", f.tok, "--max-length", "-3", f.input}, exitUsage, []string{"--max-length"}},
		{"tokenize/non-numeric-max-length", false, []string{"tokenize", "--tokenizer", f.tok, "--max-length", "ten", f.input}, exitUsage, []string{"max-length"}},
		{"tokenize/two-files", false, []string{"tokenize", "--tokenizer", f.tok, f.input, f.input}, exitUsage, []string{"at most one input file"}},

		// score
		{"score/hyp-missing", false, []string{"score", "--metric", "bleu", "--hyp", f.missing, "--ref", hyp}, exitData, []string{"missing.file"}},
		{"score/hyp-dir", false, []string{"score", "--metric", "bleu", "--hyp", f.subdir, "--ref", hyp}, exitData, []string{"adir"}},
		{"score/ref-empty", false, []string{"score", "--metric", "bleu", "--hyp", hyp, "--ref", f.empty}, exitData, []string{"empty.file"}},
		{"score/ref-garbage", false, []string{"score", "--metric", "chrf", "--hyp", hyp, "--ref", f.garbage}, exitData, []string{"garbage.bin"}},
		{"score/jsonl-garbage", false, []string{"score", "--metric", "rouge", "--jsonl", "--hyp", f.garbage, "--ref", hyp}, exitData, []string{"garbage.bin"}},
		{"score/line-count-mismatch", false, []string{"score", "--metric", "bleu", "--hyp", hyp, "--ref", f.input}, exitData, []string{"input.txt"}},
		{"score/merge-truncated", false, []string{"score", "--merge", writeFile(t, filepath.Join(f.dir, "stats.json"), []byte("{\"metric\": \"bleu\", \"counts\": [1,"))}, exitData, []string{"stats.json"}},
		{"score/unknown-metric", false, []string{"score", "--metric", "meteor", "--hyp", hyp, "--ref", hyp}, exitUsage, []string{"meteor"}},
		{"score/unknown-tokenizer", false, []string{"score", "--metric", "bleu", "--tokenize", "moses", "--hyp", hyp, "--ref", hyp}, exitUsage, []string{"moses"}},
		{"score/unknown-rouge-type", false, []string{"score", "--metric", "rouge", "--rouge-types", "rouge1,rougeZ", "--hyp", hyp, "--ref", hyp}, exitUsage, []string{"rougeZ"}},
		{"score/negative-bootstrap", false, []string{"score", "--metric", "bleu", "--bootstrap", "-5", "--hyp", hyp, "--ref", hyp}, exitUsage, []string{"--bootstrap"}},
		{"score/negative-workers", false, []string{"score", "--metric", "bleu", "--workers", "-2", "--hyp", hyp, "--ref", hyp}, exitUsage, []string{"--workers"}},
		{"score/non-numeric-beta", false, []string{"score", "--metric", "chrf", "--beta", "two", "--hyp", hyp, "--ref", hyp}, exitUsage, []string{"beta"}},
		{"score/zero-ngram-order", false, []string{"score", "--metric", "bleu", "--max-ngram-order", "0", "--hyp", hyp, "--ref", hyp}, exitUsage, []string{"--max-ngram-order"}},
		{"score/merge-garbage", false, []string{"score", "--merge", f.garbage}, exitData, []string{"garbage.bin"}},
		{"score/merge-missing", false, []string{"score", "--merge", f.missing}, exitData, []string{"missing.file"}},
		{"score/merge-and-hyp", false, []string{"score", "--merge", "--hyp", hyp, f.garbage}, exitUsage, []string{"--merge"}},

		// env (a garbage --ort-lib or a folder is in TestBadORTLibraryFreshProcess:
		// by now this process may hold ONNX Runtime, and one process loads one)
		{"env/ort-lib-missing", false, []string{"--ort-lib", f.missing, "env"}, exitRuntime, []string{"missing.file"}},

		// artifacts
		{"artifacts/model-missing", false, []string{"artifacts", "--model", f.missing, "--out", out("a1")}, exitData, []string{"--model", "missing.file"}},
		{"artifacts/model-empty", false, []string{"artifacts", "--model", f.empty, "--out", out("a2")}, exitData, []string{"empty.file"}},
		{"artifacts/model-dir", false, []string{"artifacts", "--model", f.subdir, "--out", out("a3")}, exitData, []string{"adir"}},
		{"artifacts/model-garbage", false, []string{"artifacts", "--model", f.garbage, "--out", out("a4")}, exitData, []string{"garbage.bin"}},
		{"artifacts/model-truncated", false, []string{"artifacts", "--model", f.truncModel, "--out", out("a5")}, exitData, []string{"model.onnx"}},
		{"artifacts/weights-garbage", false, []string{"artifacts", "--model", filepath.Join(f.modelDir, "model.onnx"), "--weights", f.garbage, "--out", out("a6")}, exitData, []string{"garbage.bin"}},
		{"artifacts/weights-truncated", false, []string{"artifacts", "--model", filepath.Join(f.modelDir, "model.onnx"), "--weights", f.truncWeights, "--out", out("a7")}, exitData, []string{"model.safetensors"}},
		{"artifacts/decoder-garbage", false, []string{"artifacts", "--model", filepath.Join(f.modelDir, "model.onnx"), "--decoder", f.garbage, "--out", out("a8")}, exitData, []string{"garbage.bin"}},
		{"artifacts/label-smoothing", false, []string{"artifacts", "--model", f.truncModel, "--label-smoothing", "1.5", "--out", out("a9")}, exitUsage, []string{"--label-smoothing"}},
		{"artifacts/opset", false, []string{"artifacts", "--model", f.truncModel, "--opset", "7", "--out", out("a10")}, exitUsage, []string{"--opset"}},
		{"artifacts/opset-non-numeric", false, []string{"artifacts", "--model", f.truncModel, "--opset", "seventeen", "--out", out("a11")}, exitUsage, []string{"opset"}},
		{"artifacts/input-role", false, []string{"artifacts", "--model", filepath.Join(f.modelDir, "model.onnx"), "--input", "x=labels", "--out", out("a12")}, exitUsage, []string{"--input", "x=labels"}},
		{"artifacts/freeze-regex", false, []string{"artifacts", "--model", filepath.Join(f.modelDir, "model.onnx"), "--freeze", "(unclosed", "--out", out("a13")}, exitUsage, []string{"(unclosed"}},
		{"artifacts/freeze-no-match", false, []string{"artifacts", "--model", filepath.Join(f.modelDir, "model.onnx"), "--freeze", "^nothing_matches$", "--out", out("a14")}, exitUsage, []string{"nothing_matches"}},
		{"artifacts/no-out", false, []string{"artifacts", "--model", filepath.Join(f.modelDir, "model.onnx")}, exitUsage, []string{"out"}},
		{"artifacts/from-ort-and-model", false, []string{"artifacts", "--from-ort", f.truncORT, "--model", f.truncModel, "--out", out("a15")}, exitUsage, []string{"not both"}},
		{"artifacts/from-ort-missing", false, []string{"artifacts", "--from-ort", f.missing, "--out", out("a16")}, exitData, []string{"missing.file"}},
		{"artifacts/from-ort-file", false, []string{"artifacts", "--from-ort", f.garbage, "--out", out("a17")}, exitData, []string{"garbage.bin"}},
		{"artifacts/from-ort-truncated-checkpoint", false, []string{"artifacts", "--from-ort", f.truncORT, "--out", out("a18")}, exitData, []string{"checkpoint"}},
		{"artifacts/from-ort-truncated-only-checkpoint", false, []string{"artifacts", "--from-ort", filepath.Dir(f.truncCkpt), "--out", out("a19")}, exitData, []string{"halfckpt"}},

		// export-ort
		{"export-ort/artifacts-missing", false, []string{"export-ort", "--artifacts", f.missing, "--out", out("c1")}, exitData, []string{"missing.file"}},
		{"export-ort/artifacts-empty-dir", false, []string{"export-ort", "--artifacts", f.subdir, "--out", out("c2")}, exitData, []string{"adir"}},
		{"export-ort/artifacts-garbage", false, []string{"export-ort", "--artifacts", f.garbageArtifacts, "--out", out("c3")}, exitData, []string{"garbage-artifacts"}},
		{"export-ort/artifacts-is-file", false, []string{"export-ort", "--artifacts", f.garbage, "--out", out("c4")}, exitData, []string{"garbage.bin"}},
		{"export-ort/no-out", false, []string{"export-ort", "--artifacts", f.subdir}, exitUsage, []string{"out"}},
		{"export-ort/lr-non-numeric", false, []string{"export-ort", "--artifacts", f.subdir, "--initial-lr", "fast", "--out", out("c5")}, exitUsage, []string{"initial-lr"}},

		// predict
		{"predict/no-model", true, []string{"predict", "--input", f.input, "--output", out("p0")}, exitUsage, []string{"--model"}},
		{"predict/model-and-artifacts", true, predictBase("--artifacts", f.subdir), exitUsage, []string{"--artifacts"}},
		{"predict/input-missing", true, []string{"predict", "--no-progress", "--model", f.modelDir, "--input", f.missing, "--output", out("p1")}, exitData, []string{"missing.file"}},
		{"predict/input-dir", true, []string{"predict", "--no-progress", "--model", f.modelDir, "--input", f.subdir, "--output", out("p2")}, exitData, []string{"adir"}},
		{"predict/input-garbage", true, []string{"predict", "--no-progress", "--model", f.modelDir, "--input", f.garbage, "--output", out("p3")}, exitData, []string{"garbage.bin"}},
		{"predict/model-missing", true, []string{"predict", "--no-progress", "--model", f.missing, "--input", f.input, "--output", out("p4")}, exitData, []string{"missing.file"}},
		{"predict/model-empty-dir", true, []string{"predict", "--no-progress", "--model", f.subdir, "--input", f.input, "--output", out("p5")}, exitData, []string{"adir"}},
		{"predict/model-truncated", true, []string{"predict", "--no-progress", "--model", f.truncModelDir, "--input", f.input, "--output", out("p6")}, exitData, []string{"model.onnx"}},
		{"predict/model-truncated-no-cache", true, []string{"predict", "--no-progress", "--no-cache", "--model", f.truncModelDir, "--input", f.input, "--output", out("p7")}, exitData, []string{"model.onnx"}},
		{"predict/tokenizer-truncated", true, []string{"predict", "--no-progress", "--model", f.modelDir, "--tokenizer", f.truncTok, "--input", f.input, "--output", out("p8")}, exitData, []string{"tokenizer.json"}},
		{"predict/tokenizer-garbage", true, []string{"predict", "--no-progress", "--model", f.modelDir, "--tokenizer", f.garbage, "--input", f.input, "--output", out("p9")}, exitData, []string{"garbage.bin"}},
		{"predict/generation-config-garbage", true, predictBase("--generation-config", badGenCfg), exitData, []string{"gen.json"}},
		{"predict/generation-config-missing", true, predictBase("--generation-config", f.missing), exitData, []string{"missing.file"}},
		{"predict/refs-missing", true, predictBase("--refs", f.missing), exitData, []string{"missing.file"}},
		{"predict/negative-batch", true, predictBase("--batch-size", "-4"), exitUsage, []string{"--batch-size"}},
		{"predict/zero-batch", true, predictBase("--batch-size", "0"), exitUsage, []string{"--batch-size"}},
		{"predict/non-numeric-batch", true, predictBase("--batch-size", "many"), exitUsage, []string{"batch-size"}},
		{"predict/zero-beams", true, predictBase("--num-beams", "0"), exitUsage, []string{"num_beams"}},
		{"predict/negative-new-tokens", true, predictBase("--max-new-tokens", "-1"), exitUsage, []string{"--max-new-tokens"}},
		{"predict/negative-threads", true, predictBase("--threads", "-2"), exitUsage, []string{"--threads"}},
		{"predict/unknown-device", true, predictBase("--device", "tpu"), exitUsage, []string{"tpu"}},
		{"predict/shard-out-of-range", true, predictBase("--shard", "3/2"), exitUsage, []string{"3/2"}},
		{"predict/shard-garbage", true, predictBase("--shard", "half"), exitUsage, []string{"half"}},
		{"predict/negative-source-length", true, predictBase("--max-source-length", "-1"), exitUsage, []string{"max-source-length"}},
		{"predict/artifacts-garbage", true, []string{"predict", "--no-progress", "--artifacts", f.garbageArtifacts, "--tokenizer", f.tok, "--input", f.input, "--output", out("p10")}, exitData, []string{"garbage-artifacts"}},
		{"predict/stray-argument", true, predictBase("extra"), exitUsage, []string{"extra"}},

		// train
		{"train/no-model", true, []string{"train", "--train_file", badJSONL, "--do_train", "--output_dir", out("t0")}, exitUsage, []string{"--model"}},
		{"train/demo-and-model", true, []string{"train", "--demo", "--model", f.modelDir, "--output_dir", out("t1")}, exitUsage, []string{"--demo"}},
		{"train/no-train-file", true, []string{"train", "--model", f.modelDir, "--do_train", "--output_dir", out("t2")}, exitUsage, []string{"--train_file"}},
		{"train/negative-batch", true, trainBase("--train_file", badJSONL, "--per_device_train_batch_size", "-8"), exitUsage, []string{"per_device_train_batch_size"}},
		{"train/zero-batch", true, trainBase("--train_file", badJSONL, "--per_device_train_batch_size", "0"), exitUsage, []string{"per_device_train_batch_size"}},
		{"train/non-numeric-lr", true, trainBase("--train_file", badJSONL, "--learning_rate", "fast"), exitUsage, []string{"--learning_rate"}},
		{"train/unknown-scheduler", true, trainBase("--train_file", badJSONL, "--lr_scheduler_type", "zigzag"), exitUsage, []string{"zigzag"}},
		{"train/unknown-optim", true, trainBase("--train_file", badJSONL, "--optim", "sgd_magic"), exitUsage, []string{"sgd_magic"}},
		{"train/unknown-eval-strategy", true, trainBase("--train_file", badJSONL, "--eval_strategy", "sometimes"), exitUsage, []string{"sometimes"}},
		{"train/negative-accumulation", true, trainBase("--train_file", badJSONL, "--gradient_accumulation_steps", "-1"), exitUsage, []string{"gradient_accumulation_steps"}},
		{"train/config-garbage", true, trainBase("--train_file", badJSONL, "--config", f.garbage), exitData, []string{"garbage.bin"}},
		{"train/config-yaml-broken", true, trainBase("--train_file", badJSONL, "--config", badYAML), exitData, []string{"args.yaml"}},
		{"train/config-dir", true, trainBase("--train_file", badJSONL, "--config", f.subdir), exitData, []string{"adir"}},
		{"train/config-missing", true, trainBase("--train_file", badJSONL, "--config", f.missing), exitUsage, []string{"missing.file"}},
		{"train/train-file-missing", true, trainBase("--train_file", missingJSONL), exitData, []string{"missing.jsonl"}},
		{"train/train-file-no-extension", true, trainBase("--train_file", f.missing), exitData, []string{"missing.file"}},
		{"train/train-file-empty", true, trainBase("--train_file", writeFile(t, filepath.Join(f.dir, "empty.jsonl"), nil)), exitData, []string{"empty.jsonl"}},
		{"train/train-file-dir", true, trainBase("--train_file", f.subdir), exitData, []string{"adir"}},
		{"train/train-file-garbage-jsonl", true, trainBase("--train_file", badJSONL), exitData, []string{"bad.jsonl:2"}},
		{"train/train-file-garbage-csv", true, trainBase("--train_file", badCSV), exitData, []string{"bad.csv"}},
		{"train/train-file-missing-field", true, trainBase("--train_file", noFieldJSONL), exitData, []string{"nofield.jsonl:1"}},
		{"train/resume-garbage", true, trainBase("--train_file", goodJSONL, "--resume_from_checkpoint", f.garbage), exitUsage, []string{"garbage.bin"}},
		{"train/resume-missing", true, trainBase("--train_file", goodJSONL, "--resume_from_checkpoint", f.missing), exitUsage, []string{"missing.file"}},
		{"train/negative-max-source-length", true, trainBase("--train_file", goodJSONL, "--max_source_length", "-2"), exitUsage, []string{"max_source_length"}},
		{"train/model-missing", true, []string{"train", "--model", f.missing, "--tokenizer", f.tok, "--train_file", badJSONL, "--do_train", "--output_dir", out("t3")}, exitData, []string{"missing.file"}},
		{"train/model-empty-dir", true, []string{"train", "--model", f.subdir, "--tokenizer", f.tok, "--train_file", badJSONL, "--do_train", "--output_dir", out("t4")}, exitData, []string{"adir"}},
		{"train/model-truncated", true, []string{"train", "--model", f.truncModelDir, "--train_file", noFieldJSONL, "--do_train", "--output_dir", out("t5")}, exitData, []string{"model.onnx"}},
		{"train/tokenizer-truncated", true, []string{"train", "--model", f.modelDir, "--tokenizer", f.truncTok, "--train_file", badJSONL, "--do_train", "--output_dir", out("t6")}, exitData, []string{"tokenizer.json"}},
		{"train/artifacts-garbage", true, []string{"train", "--artifacts", f.garbageArtifacts, "--tokenizer", f.tok, "--train_file", badJSONL, "--do_train", "--output_dir", out("t7")}, exitData, []string{"garbage-artifacts"}},
	}

	lib := ""
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := c.args
			if c.ort {
				if lib == "" {
					lib = testenv.ORTLibrary(t)
				}
				args = append([]string{"--ort-lib", lib}, args...)
			}
			code, stdout, stderr, p := runGuarded(t, args)
			if p != nil {
				t.Fatalf("%v: panic: %v", c.args, p)
			}
			msg := strings.TrimSpace(stderr)
			t.Logf("exit %d: %s", code, msg)
			if code != c.code {
				t.Errorf("exit %d, want %d\nstderr: %s\nstdout: %.300s", code, c.code, stderr, stdout)
			}
			if strings.Count(msg, "\n") > 0 || !strings.HasPrefix(msg, "ortrain: ") {
				t.Errorf("stderr is not one ortrain: line:\n%s", stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("stderr does not mention %q:\n%s", w, stderr)
				}
			}
		})
	}
}

// TestBadORTLibraryFreshProcess runs the CLI in a child process of this
// test binary, where ONNX Runtime is not yet loaded, so a garbage or missing
// --ort-lib is what the process sees first, as with the real command.
func TestBadORTLibraryFreshProcess(t *testing.T) {
	if args := os.Getenv("ORTRAIN_ROBUSTNESS_ARGS"); args != "" {
		os.Exit(run(context.Background(), append([]string{"ortrain"}, strings.Split(args, "\n")...), strings.NewReader(""), os.Stdout, os.Stderr))
	}
	dir := t.TempDir()
	garbage := writeFile(t, filepath.Join(dir, "libonnxruntime.so"), []byte("\x7fELF but not really\n"))
	text := writeFile(t, filepath.Join(dir, "notes.txt"), []byte("not a library\n"))
	for _, c := range []badCase{
		{"env/garbage-lib", false, []string{"--ort-lib", garbage, "env"}, exitRuntime, []string{"libonnxruntime.so"}},
		{"env/dir-lib", false, []string{"--ort-lib", dir, "env"}, exitRuntime, []string{filepath.Base(dir)}},
		{"env/text-lib", false, []string{"--ort-lib", text, "env", "--json"}, exitRuntime, []string{"notes.txt"}},
		{"predict/garbage-lib", false, []string{"--ort-lib", garbage, "predict", "--model", testenv.Testdata(t, "models", "t5-tiny"), "--tokenizer", testenv.Testdata(t, "generate", "predict", "tokenizer.json"), "--input", text, "--output", filepath.Join(dir, "p.txt")}, exitRuntime, []string{"libonnxruntime.so"}},
		{"train/garbage-lib", false, []string{"--ort-lib", garbage, "train", "--demo", "--output_dir", filepath.Join(dir, "demo")}, exitRuntime, []string{"libonnxruntime.so"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestBadORTLibraryFreshProcess$")
			cmd.Env = append(os.Environ(), "ORTRAIN_ROBUSTNESS_ARGS="+strings.Join(c.args, "\n"))
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			msg := strings.TrimSpace(stderr.String())
			t.Logf("exit %d: %s", code, msg)
			if code != c.code || strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "ortrain: ") {
				t.Errorf("exit %d, want %d, and one ortrain: line; stderr:\n%s", code, c.code, msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("stderr does not mention %q:\n%s", w, msg)
				}
			}
		})
	}
}

// TestORTLogLevel runs predict in a fresh process with ONNX Runtime's log
// level raised: its verbose log names where each session's nodes were placed
// (what a GPU host's check reads), and a bad level is refused by name.
func TestORTLogLevel(t *testing.T) {
	dir := t.TempDir()
	input := writeFile(t, filepath.Join(dir, "in.txt"), []byte("translate English to German: a house\n"))
	args := []string{"predict", "--model", testenv.Testdata(t, "models", "t5-tiny"), "--tokenizer", testenv.Testdata(t, "generate", "predict", "tokenizer.json"),
		"--input", input, "--output", filepath.Join(dir, "p.txt"), "--no-progress", "--max-new-tokens", "2"}
	child := func(level string) (int, string) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestBadORTLibraryFreshProcess$")
		cmd.Env = append(os.Environ(), "ORTRAIN_ROBUSTNESS_ARGS="+strings.Join(args, "\n"), onnxrt.LogLevelEnvVar+"="+level)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), stderr.String()
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, stderr.String()
	}
	code, log := child("verbose")
	placed := regexp.MustCompile(`All nodes placed on \[CPUExecutionProvider\]\. Number of nodes: (\d+)`).FindAllStringSubmatch(log, -1)
	t.Logf("exit %d; %d sessions report their placement: %v", code, len(placed), placed)
	// Five sessions (encoder, decoder, decoder with past, and the two small
	// graphs predict builds), each model loaded once: reading a session's
	// inputs must not load the model again into a default CPU session (that
	// doubled load time and failed for bfloat16 graphs on CUDA).
	if code != 0 || len(placed) != 5 {
		t.Fatalf("exit %d, %d placement lines; stderr tail:\n%s", code, len(placed), log[max(0, len(log)-2000):])
	}
	// decoding runs several sessions in turn: all but the decoder with past,
	// which does most of a step's work, with intra-op spinning off
	// (onnxrt.SessionOptions.NoSpinning)
	if n := strings.Count(log, "session.intra_op.allow_spinning: 0"); n != len(placed)-1 {
		t.Errorf("%d of %d sessions created with intra-op spinning off, want all but one", n, len(placed))
	}
	code, log = child("chatty")
	t.Logf("exit %d: %s", code, strings.TrimSpace(log))
	if code != exitUsage || !strings.Contains(log, onnxrt.LogLevelEnvVar) || !strings.Contains(log, `"chatty"`) {
		t.Errorf("a bad level: exit %d, stderr %q; want a refusal naming $%s and the value", code, log, onnxrt.LogLevelEnvVar)
	}
}

func TestInterruptedMessage(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{context.Canceled, "interrupted"},
		{fmt.Errorf("evaluating at step 40: %w", context.Canceled), "interrupted (evaluating at step 40)"},
		{errors.New("interrupted after 3 of 9 lines; they are kept in p.txt.partial"), "interrupted after 3 of 9 lines; they are kept in p.txt.partial"},
	} {
		if got := interruptedMessage(c.err); got != c.want {
			t.Errorf("interruptedMessage(%q) = %q, want %q", c.err, got, c.want)
		}
	}
}

// train --help tells where a model.onnx comes from.
func TestTrainHelpNamesTheExportScript(t *testing.T) {
	code, stdout, stderr := runCLI(t, "train", "--help")
	if code != 0 || !strings.Contains(stdout+stderr, "scripts/export_model.py") {
		t.Errorf("train --help: exit %d, no mention of scripts/export_model.py:\n%s%s", code, stdout, stderr)
	}
}
