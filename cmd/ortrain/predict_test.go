package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/testenv"
	"github.com/ortrain/ortrain/metrics"
)

// testdata/generate/predict/hf.json comes from scripts/refs/generate_predict_refs.py:
// HF's tokenizer + generate + batch_decode on the tiny T5 fixture, scored
// with sacrebleu and rouge-score.
type predictRefs struct {
	Settings map[string]struct {
		Kwargs      map[string]json.RawMessage `json:"kwargs"`
		Truncate    int                        `json:"truncate"`
		BatchSize   int                        `json:"batch_size"`
		Predictions []string                   `json:"predictions"`
		BLEU        float64                    `json:"bleu"`
		ROUGE       map[string]float64         `json:"rouge"`
	} `json:"settings"`
}

func runPredictCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	all := append([]string{"ortrain", "--ort-lib", testenv.ORTLibrary(t), "predict", "--no-progress"}, args...)
	code := run(context.Background(), all, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func predictPaths(t *testing.T) (model, tok, input, refs string) {
	d := testenv.Testdata(t, "generate", "predict")
	return testenv.Testdata(t, "models", "t5-tiny"), filepath.Join(d, "tokenizer.json"), filepath.Join(d, "input.txt"), filepath.Join(d, "refs.txt")
}

func readLinesT(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func readReport(t *testing.T, path string) predictReport {
	t.Helper()
	var r predictReport
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestPredictMatchesHFPipeline(t *testing.T) {
	var refs predictRefs
	b, err := os.ReadFile(testenv.Testdata(t, "generate", "predict", "hf.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &refs); err != nil {
		t.Fatal(err)
	}
	model, tok, input, refPath := predictPaths(t)
	for name, s := range refs.Settings {
		for _, cache := range []bool{true, false} {
			out := filepath.Join(t.TempDir(), "pred.txt")
			args := []string{"--model", model, "--tokenizer", tok, "--input", input, "--output", out, "--refs", refPath, "--batch-size", "4"}
			if !cache {
				args = append(args, "--no-cache")
			}
			if s.Truncate > 0 {
				args = append(args, "--max-source-length", scoreItoa(s.Truncate), "--truncate")
			}
			gen := filepath.Join(t.TempDir(), "gen.json")
			kw, _ := json.Marshal(s.Kwargs)
			os.WriteFile(gen, kw, 0o644)
			args = append(args, "--generation-config", gen)
			code, stdout, stderr := runPredictCLI(t, args...)
			if code != 0 {
				t.Fatalf("%s: exit %d: %s", name, code, stderr)
			}
			if got := readLinesT(t, out); !reflect.DeepEqual(got, s.Predictions) {
				t.Errorf("%s (cache %v): predictions differ from HF:\n got %q\nwant %q", name, cache, got, s.Predictions)
			}
			rep := readReport(t, out+".metrics.json")
			if !scoreClose(rep.BLEU.Score, s.BLEU) {
				t.Errorf("%s: BLEU %v, sacrebleu %v", name, rep.BLEU.Score, s.BLEU)
			}
			for typ, want := range s.ROUGE {
				if !scoreClose(rep.ROUGE[typ].FMeasure, want) {
					t.Errorf("%s: %s F %v, rouge-score %v", name, typ, rep.ROUGE[typ].FMeasure, want)
				}
			}
			if s.Truncate > 0 && !strings.Contains(stderr, "truncated") {
				t.Errorf("%s: no truncation warning: %q", name, stderr)
			}
			if !strings.Contains(stdout, "BLEU|") {
				t.Errorf("%s: stdout %q", name, stdout)
			}
		}
	}
}

// Sharded predict + merge equals the unsharded run, predictions and scores.
func TestPredictShardsMergeToWholeRun(t *testing.T) {
	model, tok, input, refPath := predictPaths(t)
	dir := t.TempDir()
	common := []string{"--model", model, "--tokenizer", tok, "--input", input, "--refs", refPath, "--refs", input, "--num-beams", "3", "--batch-size", "5"}
	whole := filepath.Join(dir, "whole.txt")
	if code, _, stderr := runPredictCLI(t, append(common, "--output", whole)...); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var joined []string
	var bleuFiles, rougeFiles []metrics.StatsFile
	for i := range 3 {
		out := filepath.Join(dir, "shard"+scoreItoa(i)+".txt")
		if code, _, stderr := runPredictCLI(t, append(common, "--output", out, "--shard", scoreItoa(i)+"/3")...); code != 0 {
			t.Fatalf("shard %d: exit %d: %s", i, code, stderr)
		}
		joined = append(joined, readLinesT(t, out)...)
		for metric, dst := range map[string]*[]metrics.StatsFile{"bleu": &bleuFiles, "rouge": &rougeFiles} {
			f, err := os.Open(out + "." + metric + "-stats.json")
			if err != nil {
				t.Fatal(err)
			}
			sf, err := metrics.ReadStatsFile(f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			*dst = append(*dst, sf)
		}
	}
	if want := readLinesT(t, whole); !reflect.DeepEqual(joined, want) {
		t.Fatalf("shards joined:\n%q\nwhole run:\n%q", joined, want)
	}
	rep := readReport(t, whole+".metrics.json")
	mb, err := metrics.MergeStatsFiles(bleuFiles)
	if err != nil {
		t.Fatal(err)
	}
	acc, err := mb.BLEUAccumulator()
	if err != nil {
		t.Fatal(err)
	}
	if got := acc.Score().Score; got != rep.BLEU.Score {
		t.Errorf("merged BLEU %v, whole run %v", got, rep.BLEU.Score)
	}
	mr, err := metrics.MergeStatsFiles(rougeFiles)
	if err != nil {
		t.Fatal(err)
	}
	racc, err := mr.ROUGEAccumulator()
	if err != nil {
		t.Fatal(err)
	}
	for i, typ := range racc.Types() {
		if got, want := racc.Mean()[i].FMeasure, rep.ROUGE[typ].FMeasure; math.Abs(got-want) > 1e-12 {
			t.Errorf("merged %s %v, whole run %v", typ, got, want)
		}
	}
	// the score command merges the same files
	var paths []string
	for i := range 3 {
		paths = append(paths, filepath.Join(dir, "shard"+scoreItoa(i)+".txt.bleu-stats.json"))
	}
	code, stdout, stderr := runScoreCLI(t, append([]string{"score", "--merge", "--json"}, paths...)...)
	if code != 0 || !strings.Contains(stdout, "score") {
		t.Errorf("score --merge: exit %d, %s %s", code, stdout, stderr)
	}
}

func TestPredictBadInput(t *testing.T) {
	model, tok, input, refPath := predictPaths(t)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	out := filepath.Join(dir, "out.txt")
	empty := write("empty.txt", "w3 w4\n\nw5\n")
	long := write("long.txt", "w3 w4\nw5 w6 w7 w8 w9 w10 w11 w12 w13\n")
	// a tokenizer with more ids than the model has logits
	var tj map[string]any
	b, _ := os.ReadFile(tok)
	json.Unmarshal(b, &tj)
	vocab := tj["model"].(map[string]any)["vocab"].(map[string]any)
	for i := 512; i < 600; i++ {
		vocab["w"+scoreItoa(i)] = i
	}
	big, _ := json.Marshal(tj)
	bigTok := write("big-tokenizer.json", string(big))
	// a model folder whose decoder graph has no present.* outputs
	noPast := filepath.Join(dir, "nopast")
	os.Mkdir(noPast, 0o755)
	for _, f := range []string{"config.json", "generation_config.json", "encoder_model.onnx", "decoder_with_past_model.onnx"} {
		b, _ := os.ReadFile(filepath.Join(model, f))
		os.WriteFile(filepath.Join(noPast, f), b, 0o644)
	}
	b, _ = os.ReadFile(filepath.Join(model, "model.onnx"))
	os.WriteFile(filepath.Join(noPast, "decoder_model.onnx"), b, 0o644)

	for name, tc := range map[string]struct {
		args []string
		code int
		want []string
	}{
		"empty line":      {[]string{"--model", model, "--tokenizer", tok, "--input", empty, "--output", out}, exitData, []string{"empty.txt:2", "empty line"}},
		"too long":        {[]string{"--model", model, "--tokenizer", tok, "--input", long, "--output", out, "--max-source-length", "8"}, exitData, []string{"long.txt:2", "10 tokens", "at most 8", "--truncate"}},
		"vocab mismatch":  {[]string{"--model", model, "--tokenizer", bigTok, "--input", input, "--output", out}, exitUsage, []string{"600 ids", "512", "does not belong"}},
		"refs misaligned": {[]string{"--model", model, "--tokenizer", tok, "--input", input, "--output", out, "--refs", long}, exitData, []string{"long.txt has 2 lines", "24"}},
		"no past outputs": {[]string{"--model", noPast, "--tokenizer", tok, "--input", input, "--output", out}, exitError, []string{"present.*", "use_cache"}},
		"bad shard":       {[]string{"--model", model, "--tokenizer", tok, "--input", input, "--output", out, "--shard", "3/3"}, exitUsage, []string{"0 <= i < N"}},
		"both models":     {[]string{"--model", model, "--artifacts", model, "--input", input, "--output", out}, exitUsage, []string{"exactly one"}},
		"missing input":   {[]string{"--model", model, "--tokenizer", tok, "--input", filepath.Join(dir, "nope.txt"), "--output", out}, exitData, []string{"nope.txt"}},
		"zero new tokens": {[]string{"--model", model, "--tokenizer", tok, "--input", input, "--output", out, "--max-new-tokens", "0"}, exitUsage, []string{"--max-new-tokens"}},
		"bad beams":       {[]string{"--model", model, "--tokenizer", tok, "--input", input, "--output", out, "--num-beams", "0"}, exitUsage, []string{"num_beams"}},
	} {
		code, _, stderr := runPredictCLI(t, tc.args...)
		if code != tc.code {
			t.Errorf("%s: exit %d, want %d (%s)", name, code, tc.code, stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%s: error %q does not mention %q", name, stderr, w)
			}
		}
	}
	_ = refPath
}

// predict --artifacts decodes through an artifact folder's generation graphs.
func TestPredictArtifactsMatchesHF(t *testing.T) {
	var refs predictRefs
	b, err := os.ReadFile(testenv.Testdata(t, "generate", "predict", "hf.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &refs); err != nil {
		t.Fatal(err)
	}
	model, tok, input, _ := predictPaths(t)
	art := t.TempDir()
	if _, err := artifacts.Build(artifacts.Config{
		Model: filepath.Join(model, "model.onnx"), Out: art,
		Encoder: filepath.Join(model, "encoder_model.onnx"), Decoder: filepath.Join(model, "decoder_model.onnx"),
		DecoderWithPast: filepath.Join(model, "decoder_with_past_model.onnx"), Version: "test",
	}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "pred.txt")
	code, _, stderr := runPredictCLI(t, "--artifacts", art, "--tokenizer", tok, "--input", input, "--output", out, "--num-beams", "4", "--batch-size", "4")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if got, want := readLinesT(t, out), refs.Settings["beam4"].Predictions; !reflect.DeepEqual(got, want) {
		t.Errorf("artifacts beam 4:\n got %q\nwant %q", got, want)
	}
}
