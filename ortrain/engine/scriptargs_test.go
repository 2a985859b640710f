package engine

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"testing"

	"github.com/ortrain/ortrain/internal/data"
	"github.com/ortrain/ortrain/internal/testenv"
	"github.com/ortrain/ortrain/ortrain"
)

// scriptArgsCase is one case of testdata/trainer/script_args/refs.json
// (scripts/refs/script_args_refs.py): the batches HF's run_translation.py
// builds from its data arguments.
type scriptArgsCase struct {
	Args struct {
		MaxTrainSamples       int  `json:"max_train_samples"`
		MaxEvalSamples        int  `json:"max_eval_samples"`
		MaxSourceLength       int  `json:"max_source_length"`
		MaxTargetLength       int  `json:"max_target_length"`
		ValMaxTargetLength    *int `json:"val_max_target_length"`
		PadToMaxLength        bool `json:"pad_to_max_length"`
		IgnorePadTokenForLoss bool `json:"ignore_pad_token_for_loss"`
	} `json:"args"`
	Train, Eval []scriptArgsBatch
}

type scriptArgsBatch struct {
	InputIDs        [][]int64 `json:"input_ids"`
	AttentionMask   [][]int64 `json:"attention_mask"`
	Labels          [][]int64 `json:"labels"`
	DecoderInputIDs [][]int64 `json:"decoder_input_ids"`
}

// TestScriptDataArguments: max_train_samples, max_eval_samples,
// val_max_target_length, pad_to_max_length and ignore_pad_token_for_loss
// give the batches HF's run_translation.py gives, token for token (in
// dataset order: training shuffles with another generator).
func TestScriptDataArguments(t *testing.T) {
	b, err := os.ReadFile(testenv.Testdata(t, "trainer", "script_args", "refs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		BatchSize    int                       `json:"batch_size"`
		SourcePrefix string                    `json:"source_prefix"`
		Cases        map[string]scriptArgsCase `json:"cases"`
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	env := openEnv(t)
	for name, c := range ref.Cases {
		t.Run(name, func(t *testing.T) {
			a := ortrain.DefaultArguments()
			a.OutputDir = t.TempDir()
			a.DoTrain, a.DoEval = true, true
			a.PerDeviceTrainBatchSize, a.PerDeviceEvalBatchSize = ref.BatchSize, ref.BatchSize
			a.Threads = 1
			if err := a.Finalize(); err != nil {
				t.Fatal(err)
			}
			cfg := Config{Args: a, Model: testenv.Testdata(t, "models", "t5-tiny"),
				Tokenizer: testenv.RealData(t, "tokenizers", "flan-t5-small"),
				TrainFile: testenv.Testdata(t, "dataformats", "tatoeba-dev.jsonl"), ValidationFile: testenv.Testdata(t, "dataformats", "tatoeba-dev.jsonl"),
				Format: DataFormat{SourceLang: "en", TargetLang: "ro"}, SourcePrefix: ref.SourcePrefix,
				MaxSourceLength: c.Args.MaxSourceLength, MaxTargetLength: c.Args.MaxTargetLength,
				MaxTrainSamples: c.Args.MaxTrainSamples, MaxEvalSamples: c.Args.MaxEvalSamples,
				PadToMaxLength: c.Args.PadToMaxLength, CountPadInLoss: !c.Args.IgnorePadTokenForLoss}
			if c.Args.ValMaxTargetLength != nil {
				cfg.ValMaxTargetLength = *c.Args.ValMaxTargetLength
			}
			s, err := Prepare(context.Background(), env, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			check := func(split string, d *Data, want []scriptArgsBatch) {
				r := d.Dataset.Epoch(data.Order{BatchSize: ref.BatchSize}, d.Collate, 0, 0)
				i := 0
				for ; r.Next(t.Context()); i++ {
					if i >= len(want) {
						t.Fatalf("%s: more than HF's %d batches", split, len(want))
					}
					got := r.Batch()
					for _, f := range []struct {
						name      string
						got       []int64
						want      [][]int64
						rowLength int
					}{{"input_ids", got.InputIDs, want[i].InputIDs, got.SourceLen}, {"attention_mask", got.AttentionMask, want[i].AttentionMask, got.SourceLen},
						{"labels", got.Labels, want[i].Labels, got.TargetLen}, {"decoder_input_ids", got.DecoderInputIDs, want[i].DecoderInputIDs, got.TargetLen}} {
						if !slices.Equal(f.got, slices.Concat(f.want...)) || len(f.want) != got.Rows || f.rowLength != len(f.want[0]) {
							t.Errorf("%s batch %d %s: %d×%d %v, HF %d×%d %v", split, i, f.name, got.Rows, f.rowLength, f.got, len(f.want), len(f.want[0]), f.want)
						}
					}
				}
				if i != len(want) {
					t.Errorf("%s: %d batches, HF %d", split, i, len(want))
				}
			}
			train, eval := s.Trainer.TrainData.(*Data), s.Trainer.EvalData.(*Data)
			check("train", train, c.Train)
			check("eval", eval, c.Eval)
		})
	}
}
