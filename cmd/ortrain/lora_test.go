package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/lora"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/safetensors"
	"github.com/ortrain/ortrain/internal/testenv"
)

// TestTrainLoRA trains q,v adapters of the T5 fixture from the CLI: the
// checkpoints and the output are PEFT adapter folders (no full weights), a
// run resumed from the first checkpoint ends with the same adapter as the
// uninterrupted one, --merge_lora writes W + (alpha/r)·B·A for exactly the
// adapted weights, the lora: section of --config is the same as the flags,
// and predict --adapter generates what the exported adapted model does.
func TestTrainLoRA(t *testing.T) {
	model, data := archModel(t, "t5")
	tmp := t.TempDir()
	out := filepath.Join(tmp, "out")
	common := []string{"--model", model, "--train_file", data, "--source_lang", "en", "--target_lang", "xx", "--do_train",
		"--max_steps", "6", "--save_steps", "3", "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "2",
		"--learning_rate", "1e-2", "--logging_steps", "1", "--seed", "7"}
	code, stdout, stderr := runTrainCLI(t, append(common, "--output_dir", out, "--lora_r", "4", "--lora_alpha", "16",
		"--lora_target_modules", "q,v", "--merge_lora")...)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "memory (float32): 768 trainable parameters") {
		t.Errorf("optimizer memory not for the adapters alone:\n%s", stdout)
	}
	if !strings.Contains(stdout, "trainable params: 768 || all params: 7568") {
		t.Errorf("no PEFT-style trainable count (r 4 on q,v of the T5 fixture: 768 of 6800+768):\n%s", stdout)
	}
	for _, dir := range []string{filepath.Join(out, "checkpoint-3"), filepath.Join(out, "checkpoint-6"), out} {
		for _, f := range []string{lora.ConfigFile, lora.WeightsFile} {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Errorf("%s: %v", dir, err)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(out, "checkpoint-3", "model.safetensors")); err == nil {
		t.Error("a LoRA checkpoint holds the full model.safetensors")
	}
	final := readAdapter(t, out)

	// --merge_lora: the adapted weights are W + (alpha/r)·B·A, the rest as in the base model.
	base, err := safetensors.ReadFile(filepath.Join(model, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	merged, err := safetensors.ReadFile(filepath.Join(out, "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	adapted := 0
	for _, name := range base.Names() {
		w, _ := base.Tensors[name].Float32s()
		got, err := merged.Tensors[name].Float32s()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want := w
		module := strings.TrimSuffix(name, ".weight")
		if a, ok := final["base_model.model."+module+".lora_A.weight"]; ok {
			adapted++
			b := final["base_model.model."+module+".lora_B.weight"]
			sh := base.Tensors[name].Shape
			want = mergeRef(w, a, b, 4, sh[1], sh[0], 16.0/4)
		}
		if d := maxAbsDiff(got, want); d > 1e-6 {
			t.Errorf("merged %s differs by %g", name, d)
		}
	}
	if adapted != 6 {
		t.Errorf("%d adapted weights merged, want 6 (q and v of three attention blocks)", adapted)
	}

	// Resumed from checkpoint-3: the same adapter at the end.
	resumed := filepath.Join(tmp, "resumed")
	if err := os.CopyFS(resumed, os.DirFS(out)); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(resumed, "checkpoint-6"))
	code, stdout, stderr = runTrainCLI(t, append(common, "--output_dir", resumed, "--overwrite_output_dir", "--lora_r", "4", "--lora_alpha", "16",
		"--lora_target_modules", "q,v", "--resume_from_checkpoint", filepath.Join(resumed, "checkpoint-3"))...)
	if code != 0 {
		t.Fatalf("resume: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for k, v := range readAdapter(t, resumed) {
		if d := maxAbsDiff(v, final[k]); d != 0 {
			t.Errorf("resumed run: %s differs by %g from the uninterrupted run", k, d)
		}
	}

	// Evaluation with generation during training runs the adapters as they are.
	code, stdout, stderr = runTrainCLI(t, append(common, "--output_dir", filepath.Join(tmp, "gen"), "--lora_target_modules", "q,v",
		"--validation_file", data, "--eval_strategy", "steps", "--eval_steps", "3", "--predict_with_generate", "--generation_max_length", "8")...)
	if code != 0 || !strings.Contains(stdout, "'eval_bleu'") {
		t.Fatalf("generate during training: exit %d\n%s\n%s", code, stdout, stderr)
	}

	// The same settings from a config file's lora: section.
	cfgFile := filepath.Join(tmp, "args.yaml")
	os.WriteFile(cfgFile, []byte("learning_rate: 1e-2\nlora:\n  r: 4\n  lora_alpha: 16\n  target_modules: [q, v]\n"), 0o644)
	fromCfg := filepath.Join(tmp, "cfg")
	code, stdout, stderr = runTrainCLI(t, append(common, "--output_dir", fromCfg, "--config", cfgFile)...)
	if code != 0 {
		t.Fatalf("config: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for k, v := range readAdapter(t, fromCfg) {
		if d := maxAbsDiff(v, final[k]); d != 0 {
			t.Errorf("lora: section: %s differs by %g from the flags' run", k, d)
		}
	}

	// The output folder of --merge_lora is the merged model: its graphs
	// have no adapter branch and hold the merged weights of
	// model.safetensors.
	checkMergedGraphs(t, out, merged)

	// predict --adapter (artifacts built with the adapter, unmerged), the
	// same merged by predict --merge_lora, the merged output folder as a
	// model, and a LoRA artifact folder with --adapter (unmerged and
	// merged): the same predictions.
	in := filepath.Join(tmp, "src.txt")
	os.WriteFile(in, []byte("w3 w4 w5\nw10 w11 w12 w13\nw20 w21\n"), 0o644)
	art := filepath.Join(tmp, "art")
	if code, stdout, stderr := runCLI(t, "artifacts", "--model", model, "--out", art, "--lora_r", "4", "--lora_alpha", "16", "--lora_target_modules", "q,v"); code != 0 {
		t.Fatalf("artifacts: exit %d\n%s\n%s", code, stdout, stderr)
	}
	var first []byte
	for i, args := range [][]string{
		{"--model", model, "--adapter", out},
		{"--model", model, "--adapter", out, "--merge_lora"},
		{"--model", out, "--tokenizer", model},
		{"--artifacts", art, "--tokenizer", model, "--adapter", out},
		{"--artifacts", art, "--tokenizer", model, "--adapter", out, "--merge_lora"},
	} {
		pred := filepath.Join(tmp, fmt.Sprintf("pred%d.txt", i))
		var o, e bytes.Buffer
		all := append([]string{"ortrain", "--ort-lib", testenv.ORTLibrary(t), "predict", "--no-progress", "--input", in, "--num-beams", "2", "--output", pred}, args...)
		if code := run(t.Context(), all, strings.NewReader(""), &o, &e); code != 0 {
			t.Fatalf("predict %v: exit %d\n%s\n%s", args, code, o.String(), e.String())
		}
		got, _ := os.ReadFile(pred)
		if i == 0 {
			first = got
		}
		if len(got) == 0 || !bytes.Equal(got, first) {
			t.Errorf("predict %v:\n%s\npredict --adapter (unmerged):\n%s", args, got, first)
		}
	}

	// Full fine-tuning continues from the merged folder: it starts from the
	// merged weights.
	again := filepath.Join(tmp, "again")
	code, stdout, stderr = runTrainCLI(t, "--model", out, "--tokenizer", model, "--train_file", data, "--source_lang", "en", "--target_lang", "xx",
		"--do_train", "--max_steps", "1", "--per_device_train_batch_size", "2", "--output_dir", again)
	if code != 0 {
		t.Fatalf("train --model on the merged folder: exit %d\n%s\n%s", code, stdout, stderr)
	}
	start, err := safetensors.ReadFile(filepath.Join(again, "artifacts", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range merged.Names() {
		w, _ := merged.Tensors[name].Float32s()
		got, err := start.Tensors[name].Float32s()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if d := maxAbsDiff(got, w); d != 0 {
			t.Errorf("training from the merged folder starts %s %g away from the merged weights", name, d)
		}
	}
}

// checkMergedGraphs: the ONNX graphs in dir have no LoRA node or input,
// and every initializer named as a tensor of the merged weights holds its
// value (as is or transposed).
func checkMergedGraphs(t *testing.T, dir string, merged *safetensors.File) {
	t.Helper()
	graphs, _ := filepath.Glob(filepath.Join(dir, "*.onnx"))
	if len(graphs) < 4 {
		t.Fatalf("%s holds %d ONNX graphs, want model.onnx and the three generation graphs", dir, len(graphs))
	}
	checked := 0
	for _, g := range graphs {
		m, err := onnx.Load(g)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range m.Graph.Node {
			if strings.HasPrefix(n.GetName(), "lora/") {
				t.Errorf("%s: adapter node %s in the merged model", g, n.GetName())
			}
		}
		for _, in := range m.Graph.Input {
			if strings.Contains(in.GetName(), "lora_") {
				t.Errorf("%s: adapter input %s in the merged model", g, in.GetName())
			}
		}
		for _, init := range m.Graph.Initializer {
			want, ok := merged.Tensors[init.GetName()]
			if !ok || !strings.Contains(init.GetName(), "SelfAttention.q.") {
				continue
			}
			got, err := onnx.Float32s(init)
			if err != nil {
				t.Fatal(err)
			}
			w, _ := want.Float32s()
			if d := maxAbsDiff(got, w); d != 0 {
				if sh := want.Shape; len(sh) == 2 && maxAbsDiff(got, transposeRef(w, sh[0], sh[1])) == 0 {
					d = 0
				}
				if d != 0 {
					t.Errorf("%s: %s differs from the merged model.safetensors by %g", g, init.GetName(), d)
				}
			}
			checked++
		}
	}
	if checked == 0 {
		t.Error("no adapted weight found among the graphs' initializers")
	}
}

func transposeRef(v []float32, rows, cols int64) []float32 {
	out := make([]float32, len(v))
	for r := int64(0); r < rows; r++ {
		for c := int64(0); c < cols; c++ {
			out[c*rows+r] = v[r*cols+c]
		}
	}
	return out
}

// TestTrainLoRABadSettings: settings errors name the flag and what to do.
func TestTrainLoRABadSettings(t *testing.T) {
	model, data := archModel(t, "t5")
	common := []string{"--model", model, "--train_file", data, "--source_lang", "en", "--target_lang", "xx", "--do_train", "--max_steps", "1"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--lora_r", "0", "--lora_target_modules", "q"}, "lora_r 0: the rank must be a positive integer"},
		{[]string{"--lora_r", "8"}, "lora_target_modules is empty"},
		{[]string{"--lora_target_modules", "q_proj"}, `"q_proj" matches no module of the model`},
		{[]string{"--lora_target_modules", "q", "--lora_bias", "some"}, "want none, all or lora_only"},
		{[]string{"--merge_lora"}, "--merge_lora merges LoRA adapters"},
		{[]string{"--lora_target_modules", "q", "--fp16"}, "LoRA with --fp16"},
	} {
		code, stdout, stderr := runTrainCLI(t, append(append(common, "--output_dir", filepath.Join(t.TempDir(), "o")), c.args...)...)
		if code != exitUsage || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, want %d with %q\n%s\n%s", c.args, code, exitUsage, c.want, stdout, stderr)
		}
	}
}

// TestPredictAdapterOfAnotherModel: an adapter made for T5 on BART is bad
// input (exit 3) naming the adapter.
func TestPredictAdapterOfAnotherModel(t *testing.T) {
	model, _ := archModel(t, "bart")
	in := filepath.Join(t.TempDir(), "src.txt")
	os.WriteFile(in, []byte("w3 w4\n"), 0o644)
	var o, e bytes.Buffer
	adapter := testenv.Testdata(t, "lora", "t5-qv", "initial")
	all := []string{"ortrain", "--ort-lib", testenv.ORTLibrary(t), "predict", "--no-progress", "--model", model, "--adapter", adapter,
		"--input", in, "--output", filepath.Join(t.TempDir(), "out.txt")}
	code := run(t.Context(), all, strings.NewReader(""), &o, &e)
	if code != exitData || !strings.Contains(e.String(), "another base model") || !strings.Contains(e.String(), "adapter_config.json") {
		t.Errorf("exit %d\n%s", code, e.String())
	}
	// Merged: the same refusal.
	e.Reset()
	if code := run(t.Context(), append(all, "--merge_lora"), strings.NewReader(""), &o, &e); code != exitData || !strings.Contains(e.String(), "another base model") {
		t.Errorf("--merge_lora: exit %d\n%s", code, e.String())
	}
}

// TestPredictMergeLoRABadInput: --merge_lora without --adapter, an adapter
// whose config ortrain refuses (DoRA), --adapter with artifacts built
// without LoRA or for another LoRA config: errors that name the problem
// and what to do.
func TestPredictMergeLoRABadInput(t *testing.T) {
	model, _ := archModel(t, "t5")
	tmp := t.TempDir()
	in := filepath.Join(tmp, "src.txt")
	os.WriteFile(in, []byte("w3 w4\n"), 0o644)
	dora := filepath.Join(tmp, "dora")
	if err := os.CopyFS(dora, os.DirFS(testenv.Testdata(t, "lora", "t5-qv", "trained"))); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dora, lora.ConfigFile)
	b, _ := os.ReadFile(cfgPath)
	os.WriteFile(cfgPath, bytes.Replace(b, []byte(`"use_dora": false`), []byte(`"use_dora": true`), 1), 0o644)
	plain, loraArt := filepath.Join(tmp, "plain"), filepath.Join(tmp, "lora-art")
	if code, stdout, stderr := runCLI(t, "artifacts", "--model", model, "--out", plain); code != 0 {
		t.Fatalf("artifacts: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if code, stdout, stderr := runCLI(t, "artifacts", "--model", model, "--out", loraArt, "--lora_r", "4", "--lora_target_modules", "q,v"); code != 0 {
		t.Fatalf("artifacts: exit %d\n%s\n%s", code, stdout, stderr)
	}
	trained := testenv.Testdata(t, "lora", "t5-qv", "trained")
	for _, c := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"--model", model, "--merge_lora"}, exitUsage, []string{"--merge_lora merges a LoRA adapter", "give --adapter"}},
		{[]string{"--model", model, "--adapter", dora, "--merge_lora"}, exitData, []string{"adapter_config.json", "use_dora", "DoRA"}},
		{[]string{"--artifacts", plain, "--tokenizer", model, "--adapter", trained, "--merge_lora"}, exitUsage, []string{"built without LoRA", "--model BASE --adapter"}},
		{[]string{"--artifacts", loraArt, "--tokenizer", model, "--adapter", trained}, exitUsage, []string{"r=8", "r=4", "rebuild the artifacts"}},
	} {
		var o, e bytes.Buffer
		all := append([]string{"ortrain", "--ort-lib", testenv.ORTLibrary(t), "predict", "--no-progress", "--input", in, "--output", filepath.Join(tmp, "out.txt")}, c.args...)
		code := run(t.Context(), all, strings.NewReader(""), &o, &e)
		ok := code == c.code
		for _, w := range c.want {
			ok = ok && strings.Contains(e.String(), w)
		}
		if !ok {
			t.Errorf("%v: exit %d, want %d with %q\n%s", c.args, code, c.code, c.want, e.String())
		}
	}
}

func readAdapter(t *testing.T, dir string) map[string][]float32 {
	t.Helper()
	f, err := safetensors.ReadFile(filepath.Join(dir, lora.WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]float32{}
	for _, n := range f.Names() {
		if out[n], err = f.Tensors[n].Float32s(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// mergeRef is W + scaling·B·A in float64, written out here rather than
// taken from the package under test.
func mergeRef(w, a, b []float32, r int, in, out int64, scaling float64) []float32 {
	res := make([]float32, len(w))
	for o := int64(0); o < out; o++ {
		for i := int64(0); i < in; i++ {
			s := 0.0
			for k := int64(0); k < int64(r); k++ {
				s += float64(b[o*int64(r)+k]) * float64(a[k*in+i])
			}
			res[o*in+i] = float32(float64(w[o*in+i]) + scaling*s)
		}
	}
	return res
}

func maxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return 1e30
	}
	m := 0.0
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		if d < 0 {
			d = -d
		}
		m = max(m, d)
	}
	return m
}

// TestTrainContinuesPEFTAdapter: --adapter continues an adapter PEFT
// trained (its config: r 8, alpha 16, q,v), and LoRA flags that disagree
// with it are refused.
func TestTrainContinuesPEFTAdapter(t *testing.T) {
	model, data := archModel(t, "t5")
	adapter := testenv.Testdata(t, "lora", "t5-qv", "trained")
	out := filepath.Join(t.TempDir(), "out")
	common := []string{"--model", model, "--train_file", data, "--source_lang", "en", "--target_lang", "xx", "--do_train", "--max_steps", "1",
		"--per_device_train_batch_size", "2", "--adapter", adapter}
	code, stdout, stderr := runTrainCLI(t, append(common, "--output_dir", out)...)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "LoRA r=8 lora_alpha=16") || !strings.Contains(stdout, "trainable params: 1536 || all params: 8336") {
		t.Errorf("adapter's config not used:\n%s", stdout)
	}
	before, after := readAdapter(t, adapter), readAdapter(t, out)
	if len(after) != len(before) {
		t.Fatalf("%d tensors, the adapter has %d", len(after), len(before))
	}
	changed := false
	for k, v := range before {
		if d := maxAbsDiff(after[k], v); d > 0 && d < 0.1 {
			changed = true
		}
	}
	if !changed {
		t.Error("one step from the adapter changed nothing, or everything far too much")
	}
	code, _, stderr = runTrainCLI(t, append(common, "--output_dir", filepath.Join(t.TempDir(), "o"), "--lora_r", "4", "--lora_target_modules", "q,v")...)
	if code != exitUsage || !strings.Contains(stderr, "drop the LoRA settings") {
		t.Errorf("disagreeing flags: exit %d\n%s", code, stderr)
	}
}

// TestTrainLoRAArtifacts: ortrain artifacts --lora_* builds a LoRA folder
// that train --artifacts trains as it is; LoRA flags that disagree with it
// are refused.
func TestTrainLoRAArtifacts(t *testing.T) {
	model, data := archModel(t, "t5")
	art := filepath.Join(t.TempDir(), "art")
	if code, stdout, stderr := runCLI(t, "artifacts", "--model", model, "--out", art, "--lora_r", "4", "--lora_target_modules", "q,v"); code != 0 {
		t.Fatalf("artifacts: exit %d\n%s\n%s", code, stdout, stderr)
	}
	common := []string{"--artifacts", art, "--tokenizer", model, "--train_file", data, "--source_lang", "en", "--target_lang", "xx",
		"--do_train", "--max_steps", "1", "--per_device_train_batch_size", "2"}
	out := filepath.Join(t.TempDir(), "out")
	code, stdout, stderr := runTrainCLI(t, append(common, "--output_dir", out)...)
	if code != 0 || !strings.Contains(stdout, "trainable params: 768 ||") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(out, lora.WeightsFile)); err != nil {
		t.Error(err)
	}
	code, _, stderr = runTrainCLI(t, append(common, "--output_dir", filepath.Join(t.TempDir(), "o"), "--lora_r", "8", "--lora_target_modules", "q,v")...)
	if code != exitUsage || !strings.Contains(stderr, "same LoRA settings") {
		t.Errorf("disagreeing flags: exit %d\n%s", code, stderr)
	}
}
