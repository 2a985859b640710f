package predict

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/generate"
	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/safetensors"
	"github.com/ortrain/ortrain/internal/testenv"
)

// mergedRefs is testdata/lora/<case>/merged.json (scripts/refs/lora_refs.py
// --merged): HF generate() with PEFT's merge_and_unload() model and with the
// unmerged PeftModel.
type mergedRefs struct {
	ModelType          string   `json:"model_type"`
	MergedModules      []string `json:"merged_modules"`
	GenerationMerged   genRefs  `json:"generation_merged"`
	GenerationUnmerged genRefs  `json:"generation_unmerged"`
}

type genRefs struct {
	Sources map[string][][]int64 `json:"sources"`
	Cases   []struct {
		Name      string                     `json:"name"`
		Batch     string                     `json:"batch"`
		Kwargs    map[string]json.RawMessage `json:"kwargs"`
		Sequences [][]int64                  `json:"sequences"`
	} `json:"cases"`
}

type intRef struct {
	Shape []int   `json:"shape"`
	Data  []int64 `json:"data"`
}

func readJSONFile(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func readLogits(t *testing.T, path string) []float32 {
	t.Helper()
	f, err := safetensors.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := f.Tensors["logits"].Float32s()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// teacherForced runs the decoder over the batch's decoder_input_ids a token
// at a time and returns the logits of every position ([rows, len, vocab]).
func teacherForced(t *testing.T, dec generate.Decoder, batch map[string]intRef) []float32 {
	t.Helper()
	in, mask, din := batch["input_ids"], batch["attention_mask"], batch["decoder_input_ids"]
	rows, w, dw := in.Shape[0], in.Shape[1], din.Shape[1]
	var sources [][]int64
	for r := range rows {
		var s []int64
		for i := range w {
			if mask.Data[r*w+i] != 0 {
				s = append(s, in.Data[r*w+i])
			}
		}
		sources = append(sources, s)
	}
	ctx := context.Background()
	st, err := dec.Start(ctx, sources)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var per [][]float32 // per position, [rows, vocab]
	for n := 1; n <= dw; n++ {
		prefixes := make([][]int64, rows)
		for r := range rows {
			prefixes[r] = din.Data[r*dw : r*dw+n]
		}
		l, err := st.Step(ctx, prefixes)
		if err != nil {
			t.Fatal(err)
		}
		per = append(per, append([]float32(nil), l.Data...))
	}
	vocab := len(per[0]) / rows
	out := make([]float32, 0, rows*dw*vocab)
	for r := range rows {
		for n := range dw {
			out = append(out, per[n][r*vocab:(r+1)*vocab]...)
		}
	}
	return out
}

func maxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	m := 0.0
	for i := range a {
		m = max(m, math.Abs(float64(a[i])-float64(b[i])))
	}
	return m
}

// TestAdapterMergedMatchesPEFT generates with each PEFT-trained adapter of
// the T5, BART and Marian fixtures, unmerged (the branches beside the base
// layers) and with --merge_lora (the base graphs with the merged weights):
// teacher-forced logits within 1e-5 of PEFT's (merge_and_unload() for the
// merged model, the PeftModel for the unmerged one), and greedy and beam
// sequences equal to HF generate()'s and to each other.
func TestAdapterMergedMatchesPEFT(t *testing.T) {
	env, err := onnxrt.Open(testenv.ORTLibrary(t))
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	var rows []string
	for _, name := range []string{"t5-qv", "t5-ffn", "bart-qv", "bart-ffn", "marian-qv", "marian-ffn"} {
		t.Run(name, func(t *testing.T) {
			dir := testenv.Testdata(t, "lora", name)
			var ref mergedRefs
			readJSONFile(t, filepath.Join(dir, "merged.json"), &ref)
			var batchRef struct {
				LogitsBatch map[string]intRef `json:"logits_batch"`
			}
			readJSONFile(t, filepath.Join(dir, "refs.json"), &batchRef)
			seqs := map[bool][][][]int64{}
			diffs := map[bool]float64{}
			for _, merge := range []bool{false, true} {
				opts := Options{Model: testenv.Testdata(t, "arch", ref.ModelType), Adapter: filepath.Join(dir, "trained"), MergeLoRA: merge, Threads: 1}
				m, cleanup, err := openModel(env, opts)
				if err != nil {
					t.Fatal(err)
				}
				if m.Kind != "kv" {
					t.Errorf("merge %v: decoded by %q, want the KV decoder over an exported folder", merge, m.Kind)
				}
				wantLogits, gen := readLogits(t, filepath.Join(dir, "logits.safetensors")), ref.GenerationUnmerged
				if merge {
					wantLogits, gen = readLogits(t, filepath.Join(dir, "merged.safetensors")), ref.GenerationMerged
				}
				got := teacherForced(t, m, batchRef.LogitsBatch)
				diffs[merge] = maxAbsDiff(got, wantLogits)
				if diffs[merge] > 1e-5 {
					t.Errorf("merge %v: logits differ from PEFT's by %.3g > 1e-5", merge, diffs[merge])
				}
				for _, c := range gen.Cases {
					cfg := m.Config
					if err := cfg.ApplyJSON(c.Kwargs); err != nil {
						t.Fatal(err)
					}
					out, err := generate.Generate(context.Background(), m, gen.Sources[c.Batch], cfg)
					if err != nil {
						t.Fatalf("%s/%s: %v", c.Name, c.Batch, err)
					}
					if fmt.Sprint(out.Sequences) != fmt.Sprint(c.Sequences) {
						t.Errorf("merge %v %s/%s:\n got %v\nwant %v (HF generate)", merge, c.Name, c.Batch, out.Sequences, c.Sequences)
					}
					seqs[merge] = append(seqs[merge], out.Sequences)
				}
				m.Close()
				cleanup()
			}
			if fmt.Sprint(seqs[true]) != fmt.Sprint(seqs[false]) {
				t.Errorf("merged and unmerged sequences differ:\n%v\n%v", seqs[true], seqs[false])
			}
			rows = append(rows, fmt.Sprintf("| %s | %d | %.2g | %.2g | %d cases equal |", name, len(ref.MergedModules), diffs[false], diffs[true], len(seqs[true])))
		})
	}
	t.Logf("\n| case | merged modules | logits vs PeftModel (unmerged) | logits vs merge_and_unload() (merged) | generate() sequences (HF, merged = unmerged) |\n|---|---|---|---|---|\n%s", strings.Join(rows, "\n"))
}

// TestMergeLoRAOptions: --merge_lora without an adapter, and an adapter
// with --artifacts built without LoRA, are settings errors that say what
// to do; an adapter of another base model is bad input.
func TestMergeLoRAOptions(t *testing.T) {
	base := Options{Model: "m", Input: "in", Output: "out", BatchSize: 1, MergeLoRA: true}
	if err := base.Validate(); !errors.Is(err, fault.Settings) || !strings.Contains(err.Error(), "give --adapter") {
		t.Errorf("--merge_lora without --adapter: %v", err)
	}
	env, err := onnxrt.Open(testenv.ORTLibrary(t))
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	_, _, err = openModel(env, Options{Model: testenv.Testdata(t, "arch", "bart"), Adapter: testenv.Testdata(t, "lora", "t5-qv", "trained"), MergeLoRA: true})
	if !errors.Is(err, fault.Input) || !strings.Contains(err.Error(), "another base model") {
		t.Errorf("T5 adapter merged into BART: %v", err)
	}
}
