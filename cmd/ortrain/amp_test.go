package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/testenv"
)

// TestPredictFloat16MatchesHF: predict --dtype float16 on t5-tiny gives
// the predictions of HF's generate() with the model cast by model.half()
// (scripts/refs/amp_refs.py), greedy and with 4 beams, on the KV-cache
// graphs and by recomputation.
func TestPredictFloat16MatchesHF(t *testing.T) {
	raw, err := os.ReadFile(testenv.Testdata(t, "amp", "autocast_ops.json"))
	if err != nil {
		t.Fatal(err)
	}
	var refs struct {
		Fixtures struct {
			Predict map[string]struct {
				Predictions []string `json:"predictions"`
			} `json:"predict"`
		} `json:"fixtures"`
	}
	if err := json.Unmarshal(raw, &refs); err != nil {
		t.Fatal(err)
	}
	model, tok, input, _ := predictPaths(t)
	for setting, beams := range map[string]string{"greedy": "1", "beam4": "4"} {
		for _, extra := range [][]string{nil, {"--no-cache"}} {
			out := filepath.Join(t.TempDir(), "pred.txt")
			args := append([]string{"--model", model, "--tokenizer", tok, "--input", input, "--output", out, "--batch-size", "4",
				"--num-beams", beams, "--dtype", "float16"}, extra...)
			code, stdout, stderr := runPredictCLI(t, args...)
			if code != 0 {
				t.Fatalf("%s %v: exit %d\n%s\n%s", setting, extra, code, stdout, stderr)
			}
			got := readLinesT(t, out)
			want := refs.Fixtures.Predict[setting].Predictions
			if len(got) != len(want) {
				t.Fatalf("%s %v: %d predictions, HF %d", setting, extra, len(got), len(want))
			}
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("%s %v line %d: %q, HF's float16 model %q", setting, extra, i+1, got[i], want[i])
				}
			}
		}
	}
	code, _, stderr := runPredictCLI(t, "--model", model, "--tokenizer", tok, "--input", input, "--output", filepath.Join(t.TempDir(), "p"), "--dtype", "float8")
	if code != exitUsage || !strings.Contains(stderr, "float32, float16 or bfloat16") {
		t.Errorf("--dtype float8: exit %d, %q", code, stderr)
	}
	code, _, stderr = runPredictCLI(t, "--model", model, "--tokenizer", tok, "--input", input, "--output", filepath.Join(t.TempDir(), "p"), "--dtype", "bfloat16")
	if code != exitUsage || !strings.Contains(stderr, "no bfloat16 kernels") {
		t.Errorf("--dtype bfloat16 on the CPU: exit %d, %q", code, stderr)
	}
}

// TestTrainMixedPrecisionArguments: HF's validation errors for impossible
// combinations, and ortrain's for what the CPU cannot run, as flags and in
// --config.
func TestTrainMixedPrecisionArguments(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "args.yaml")
	os.WriteFile(cfg, []byte("fp16: true\nbf16: true\n"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--fp16", "--bf16"}, "At most one of fp16 and bf16 can be True, but not both"},
		{[]string{"--config", cfg}, "At most one of fp16 and bf16 can be True, but not both"},
		{[]string{"--fp16_full_eval", "--bf16-full-eval"}, "At most one of fp16 and bf16 can be True for full eval, but not both"},
		{[]string{"--tf32"}, "--tf32 requires Ampere or a newer GPU arch, cuda>=11 and torch>=1.7"},
		{[]string{"--bf16"}, "--bf16 on the CPU: ONNX Runtime's CPU provider has no bfloat16 kernels"},
		{[]string{"--bf16_full_eval"}, "--bf16_full_eval on the CPU"},
	} {
		args := append([]string{"--demo", "--output_dir", filepath.Join(dir, "out")}, c.args...)
		code, stdout, stderr := runTrainCLI(t, args...)
		if code != exitUsage || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q (stdout %.200q); want exit %d and %q", c.args, code, stderr, stdout, exitUsage, c.want)
		}
	}
}

// TestTrainDemoFloat16 trains the demo in float16 mixed precision (CPU
// autocast lists, GradScaler) and in float32, both to the end: the BLEU of
// the float16 run is within 2 points of the float32 one's, checkpoints
// hold the scaler state, and fp16_full_eval evaluates after training.
func TestTrainDemoFloat16(t *testing.T) {
	bleu := func(args ...string) (float64, string) {
		out := filepath.Join(t.TempDir(), "demo")
		code, stdout, stderr := runTrainCLI(t, append([]string{"--demo", "--output_dir", out, "--threads", "1"}, args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s\n%s", args, code, stdout, stderr)
		}
		var res map[string]any
		b, err := os.ReadFile(filepath.Join(out, "all_results.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &res); err != nil {
			t.Fatal(err)
		}
		v, _ := res["predict_bleu"].(float64)
		return v, out
	}
	b32, _ := bleu()
	b16, out := bleu("--fp16", "--fp16_full_eval")
	t.Logf("demo predict BLEU: float32 %.2f, float16 %.2f", b32, b16)
	if b32 < 80 || math.Abs(b16-b32) > 2 {
		t.Errorf("predict BLEU float16 %.2f, float32 %.2f: want within 2 points", b16, b32)
	}
	cps, _ := filepath.Glob(filepath.Join(out, "checkpoint-*", "scaler.json"))
	if len(cps) == 0 {
		t.Error("no checkpoint holds scaler.json")
	}
	var sc map[string]any
	if len(cps) > 0 {
		b, _ := os.ReadFile(cps[0])
		if err := json.Unmarshal(b, &sc); err != nil || sc["scale"] == nil || sc["_growth_tracker"] == nil {
			t.Errorf("%s: %s", cps[0], b)
		}
	}
	man, err := os.ReadFile(filepath.Join(out, "artifacts", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"autocast-float16-cpu", "half-float16-autocast-cpu"} {
		if !strings.Contains(string(man), strconv.Quote(v)) {
			t.Errorf("artifacts have no %s variant", v)
		}
	}
}
