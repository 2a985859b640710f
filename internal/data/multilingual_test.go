package data

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"github.com/ortrain/ortrain/internal/arch"
	"github.com/ortrain/ortrain/internal/testenv"
	"github.com/ortrain/ortrain/tokenize"
)

// hfBatches is testdata/multilingual/batches.json
// (scripts/refs/multilingual_refs.py): Tatoeba pairs tokenized and collated
// as run_translation does for mBART and M2M100.
type hfBatches struct {
	MaxSourceLength int `json:"max_source_length"`
	MaxTargetLength int `json:"max_target_length"`
	Models          map[string]hfBatch
}

type hfBatch struct {
	Tokenizer            string    `json:"tokenizer"`
	SourceLang           string    `json:"source_lang"`
	TargetLang           string    `json:"target_lang"`
	InputIDs             [][]int64 `json:"input_ids"`
	AttentionMask        [][]int64 `json:"attention_mask"`
	Labels               [][]int64 `json:"labels"`
	DecoderInputIDs      [][]int64 `json:"decoder_input_ids"`
	SourceTemplateLabels [][]int64 `json:"source_template_labels"`
	Loss                 float32   `json:"loss"`
}

func readHFBatches(t *testing.T) hfBatches {
	t.Helper()
	b, err := os.ReadFile(testenv.Testdata(t, "multilingual", "batches.json"))
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	var out hfBatches
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	out.Models = map[string]hfBatch{}
	for _, name := range []string{"mbart-tiny", "m2m100-tiny"} {
		var hb hfBatch
		if err := json.Unmarshal(raw[name], &hb); err != nil {
			t.Fatal(err)
		}
		out.Models[name] = hb
	}
	return out
}

func rows(flat []int64, n, width int) [][]int64 {
	out := make([][]int64, n)
	for i := range out {
		out[i] = flat[i*width : (i+1)*width]
	}
	return out
}

// TestMultilingualBatchMatchesHF: translation records read with language
// codes (en_XX reads "en"), inputs encoded with the source template, labels
// with the target template (HF's text_target), truncated, and collated with
// the model's shift rule (mBART: the decoder starts with the last label,
// the target language code) give HF's batch exactly.
func TestMultilingualBatchMatchesHF(t *testing.T) {
	refs := readHFBatches(t)
	for _, tc := range []struct {
		model     string
		modelType string
		start     int
	}{{"mbart-tiny", "mbart", 2}, {"m2m100-tiny", "m2m_100", 2}} {
		t.Run(tc.model, func(t *testing.T) {
			ref := refs.Models[tc.model]
			p, err := tokenize.Load(testenv.Testdata(t, "tokenizers", "multilingual", ref.Tokenizer))
			if err != nil {
				t.Fatal(err)
			}
			tok, err := p.WithLanguages(ref.SourceLang, ref.TargetLang)
			if err != nil {
				t.Fatal(err)
			}
			d, err := Load(context.Background(), testenv.Testdata(t, "multilingual", "train.jsonl"),
				Format{SourceLang: ref.SourceLang, TargetLang: ref.TargetLang}, tok,
				Options{MaxSourceLength: refs.MaxSourceLength, MaxTargetLength: refs.MaxTargetLength})
			if err != nil {
				t.Fatal(err)
			}
			a, ok := arch.Lookup(tc.modelType)
			if !ok {
				t.Fatalf("model type %q not in the architecture table", tc.modelType)
			}
			col := Collator{PadID: tok.Target.Special().Pad, DecoderStartID: tc.start, StartFromLastLabel: a.DecoderStart == arch.LastLabelToken}
			idx := make([]int, d.Len())
			for i := range idx {
				idx[i] = i
			}
			b := col.Collate(d, idx)
			for _, f := range []struct {
				name      string
				got, want [][]int64
			}{
				{"input_ids", rows(b.InputIDs, b.Rows, b.SourceLen), ref.InputIDs},
				{"attention_mask", rows(b.AttentionMask, b.Rows, b.SourceLen), ref.AttentionMask},
				{"labels", rows(b.Labels, b.Rows, b.TargetLen), ref.Labels},
				{"decoder_input_ids", rows(b.DecoderInputIDs, b.Rows, b.TargetLen), ref.DecoderInputIDs},
			} {
				if fmt.Sprint(f.got) != fmt.Sprint(f.want) {
					t.Errorf("%s:\n  Go %v\n  HF %v", f.name, f.got, f.want)
				}
			}
			if ref.SourceTemplateLabels != nil {
				// What ortrain built before: labels with the source template.
				old := Collator{PadID: col.PadID, DecoderStartID: tc.start}.Collate(
					&Dataset{Source: d.Source, Labels: mustEncode(t, p.Source, d), Examples: d.Examples}, idx)
				if fmt.Sprint(rows(old.Labels, old.Rows, old.TargetLen)) != fmt.Sprint(ref.SourceTemplateLabels) {
					t.Errorf("source-template labels differ from the reference's")
				}
				if fmt.Sprint(ref.SourceTemplateLabels) == fmt.Sprint(ref.Labels) {
					t.Error("the source and target templates give the same labels; the test shows nothing")
				}
			}
		})
	}
}

func mustEncode(t *testing.T, tok *tokenize.Tokenizer, d *Dataset) [][]int32 {
	t.Helper()
	out := make([][]int32, d.Len())
	for i, ex := range d.Examples {
		ids, err := tok.EncodeWith(ex.Targets[0], tokenize.EncodeOptions{MaxLength: 9})
		if err != nil {
			t.Fatal(err)
		}
		out[i] = to32(ids)
	}
	return out
}

// The mBART shift takes the label at (count of non-pad labels) - 1, as
// HF's shift_tokens_right does, also when a pad id sits among the labels.
func TestStartFromLastLabelCountsPads(t *testing.T) {
	for _, tc := range []struct {
		labels []int64
		want   int64
	}{
		{[]int64{5, 6, 2, 9}, 9},
		{[]int64{5, 6, 2, 9, LabelPad, LabelPad}, 9},
		{[]int64{5, 1, 6, 2, 9, LabelPad}, 2}, // a pad id among the labels: 4 non-pad -> index 3
		{[]int64{LabelPad, LabelPad}, 1},
	} {
		if got := lastLabelToken(tc.labels, 1); got != tc.want {
			t.Errorf("lastLabelToken(%v) = %d, want %d", tc.labels, got, tc.want)
		}
	}
}
