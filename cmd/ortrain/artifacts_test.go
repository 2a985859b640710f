package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/testenv"
)

func TestArtifactsCommand(t *testing.T) {
	src := testenv.Testdata(t, "models", "t5-tiny")
	out := filepath.Join(t.TempDir(), "art")
	code, stdout, stderr := runCLI(t, "artifacts", "--model", filepath.Join(src, "model.onnx"), "--out", out,
		"--decoder", filepath.Join(src, "decoder_model.onnx"), "--freeze", `^encoder\.block\.0\.`, "--label-smoothing", "0.1")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "trainable") || !strings.Contains(stdout, "architecture t5: gradient accumulation sum_of_means, decoder start decoder_start_token_id") {
		t.Errorf("stdout: %s", stdout)
	}
	// --assume_architecture overrides config.json and is recorded
	code, stdout, stderr = runCLI(t, "artifacts", "--model", filepath.Join(src, "model.onnx"), "--out", filepath.Join(t.TempDir(), "a2"),
		"--assume_architecture", "t5gemma")
	if code != 0 || !strings.Contains(stdout, "architecture t5gemma (assumed for model_type t5): gradient accumulation token_weighted") {
		t.Errorf("assumed: exit %d\n%s\n%s", code, stdout, stderr)
	}
	man, err := artifacts.ReadManifest(out)
	if err != nil {
		t.Fatal(err)
	}
	frozen := 0
	for _, p := range man.Parameters {
		if !p.Trainable {
			frozen++
			if !strings.HasPrefix(p.Name, "encoder.block.0.") {
				t.Errorf("%s frozen", p.Name)
			}
		}
	}
	if frozen == 0 || man.LabelSmoothing != 0.1 || man.Files.Decoder == "" || man.SpecialTokens["eos_token_id"] != 1 {
		t.Errorf("manifest: frozen %d, smoothing %v, decoder %q, special %v", frozen, man.LabelSmoothing, man.Files.Decoder, man.SpecialTokens)
	}
	for _, f := range []string{artifacts.TrainingFile, artifacts.EvalFile, artifacts.AdamWFile, artifacts.SGDFile, artifacts.DecoderFile, artifacts.ParametersFile} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
}

func TestArtifactsCommandErrors(t *testing.T) {
	src := filepath.Join(testenv.Testdata(t, "models", "t5-tiny"), "model.onnx")
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.onnx")
	os.WriteFile(junk, []byte("not a model"), 0o644)
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--model", src, "--out", dir + "/a", "--freeze", "nothing-matches-this"}, exitUsage, "matches no parameter"},
		{[]string{"--model", src, "--out", dir + "/b", "--label-smoothing", "1.5"}, exitUsage, "label-smoothing"},
		{[]string{"--model", junk, "--out", dir + "/c"}, exitData, "not an ONNX model"},
		{[]string{"--model", filepath.Join(dir, "missing.onnx"), "--out", dir + "/d"}, exitData, "missing.onnx"},
		{[]string{"--model", src, "--out", dir + "/e", "--opset", "7"}, exitUsage, "opset"},
	}
	for _, c := range cases {
		code, _, stderr := runCLI(t, append([]string{"artifacts"}, c.args...)...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d (want %d), stderr %q (want %q)", c.args, code, c.code, stderr, c.want)
		}
	}
}
