package generate

import (
	"context"
	"fmt"
	"math"
	"sort"
	"testing"
)

// selectingDecoder is the scripted model behind a Selector that does in Go
// what ortdecoder's decoding head does in ONNX Runtime: log-softmax (beam
// search), the edits, then each row's k best in descending order, ties by
// lower id (ONNX TopK).
type selectingDecoder struct{ scriptedDecoder }

type selectingState struct{ *scriptedState }

func (d *selectingDecoder) Start(ctx context.Context, sources [][]int64) (State, error) {
	s, err := d.scriptedDecoder.Start(ctx, sources)
	if err != nil {
		return nil, err
	}
	return selectingState{s.(*scriptedState)}, nil
}

func (s selectingState) Selects() (bool, int) { return true, s.d.spec.Vocab }

func (s selectingState) SelectStep(ctx context.Context, prefixes [][]int64, e Edits, k int) (TopK, error) {
	l, err := s.Step(ctx, prefixes)
	if err != nil {
		return TopK{}, err
	}
	if len(e.Rows) != l.Rows {
		return TopK{}, fmt.Errorf("%d rows of edits for %d rows", len(e.Rows), l.Rows)
	}
	out := TopK{Rows: l.Rows, K: k, Vocab: l.Vocab}
	for r := range l.Rows {
		row := append([]float32(nil), l.Row(r)...)
		if e.LogSoftmax {
			logSoftmax(row)
		}
		for _, t := range e.Rows[r].Penalized {
			if row[t] < 0 {
				row[t] *= e.Penalty
			} else {
				row[t] /= e.Penalty
			}
		}
		for _, t := range e.Rows[r].Banned {
			row[t] = float32(math.Inf(-1))
		}
		if e.Rows[r].Force {
			forceOnly(row, e.Rows[r].Forced...)
		}
		idx := make([]int, len(row))
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return row[idx[a]] > row[idx[b]] })
		for _, i := range idx[:k] {
			out.Values = append(out.Values, row[i])
			out.IDs = append(out.IDs, int64(i))
		}
	}
	return out, nil
}

// TestSelectorMatchesHF runs the scripted references (whose logits are
// multiples of 1/1024, full of exact ties) through the Selector path of
// greedy and beam search: the same tokens as HF, the same scores and
// forward passes, although beam search now ranks each item's candidates
// among its rows' k best instead of over num_beams × vocab.
func TestSelectorMatchesHF(t *testing.T) {
	refs := loadRefs(t)
	checked, mismatched := 0, 0
	for _, c := range refs.Cases {
		cfg, err := caseConfig(c)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.DoSample {
			continue // sampling draws on the host from the full distribution
		}
		checked++
		ok := t.Run(c.Name, func(t *testing.T) {
			dec := &selectingDecoder{scriptedDecoder{spec: refs.Specs[c.Spec]}}
			out, err := Generate(context.Background(), dec, c.Sources, cfg)
			if err != nil {
				t.Fatal(err)
			}
			for i := range c.Sequences {
				if fmt.Sprint(out.Sequences[i]) != fmt.Sprint(c.Sequences[i]) {
					t.Errorf("row %d:\n got %v\nwant %v", i, out.Sequences[i], c.Sequences[i])
				}
			}
			for i, w := range c.SequencesScores {
				if w != nil && math.Abs(float64(out.Scores[i])-*w) > 1e-5*max(1, math.Abs(*w)) {
					t.Errorf("row %d: sequence score %v, HF %v", i, out.Scores[i], *w)
				}
			}
			if dec.steps != c.ForwardCalls {
				t.Errorf("%d decoder steps, HF ran %d forward passes", dec.steps, c.ForwardCalls)
			}
		})
		if !ok {
			mismatched++
		}
	}
	t.Logf("%d greedy and beam cases through the Selector, %d mismatched", checked, mismatched)
}
