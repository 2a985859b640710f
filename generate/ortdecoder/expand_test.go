package ortdecoder

import (
	"context"
	"reflect"
	"testing"

	"github.com/ortrain/ortrain/generate"
	"github.com/ortrain/ortrain/internal/testenv"
)

// TestFirstStepBeforeExpansion: beam search's first step runs on the
// sources and gathers its outputs to the expanded rows; the next steps
// must see exactly what they see when the rows are expanded first.
func TestFirstStepBeforeExpansion(t *testing.T) {
	env := openEnv(t)
	for _, model := range []string{"t5-tiny", "bart-tiny", "marian-tiny"} {
		dir := testenv.Testdata(t, "models", model)
		cfg, err := generate.LoadConfig(dir)
		if err != nil {
			t.Fatal(err)
		}
		kv, err := OpenKV(env, dir, cfg.PadTokenID, Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer kv.Close()
		sources := randomSources(3, 4, 48, cfg.EOSTokenIDs[0], 7)
		expand := []int{0, 0, 0, 1, 1, 1, 2, 2, 2}
		start := cfg.DecoderStartTokenID
		var runs [2][]generate.TopK
		for i, eager := range []bool{false, true} {
			st, err := kv.Start(context.Background(), sources)
			if err != nil {
				t.Fatal(err)
			}
			s := st.(*kvState)
			if err := s.Reorder(expand); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(s.expand, expand) {
				t.Fatalf("%s: pending expansion %v, want %v", model, s.expand, expand)
			}
			if eager {
				if err := s.materialize(); err != nil {
					t.Fatal(err)
				}
			}
			prefixes := make([][]int64, len(expand))
			for r := range prefixes {
				prefixes[r] = []int64{start}
			}
			edits := generate.Edits{LogSoftmax: true, Penalty: 1, Rows: make([]generate.RowEdits, len(expand))}
			for step := 0; step < 4; step++ {
				top, err := s.SelectStep(context.Background(), prefixes, edits, 2)
				if err != nil {
					t.Fatalf("%s step %d: %v", model, step, err)
				}
				if s.expand != nil || s.rows != len(expand) {
					t.Fatalf("%s step %d: expansion still pending (%v), %d rows", model, step, s.expand, s.rows)
				}
				runs[i] = append(runs[i], top)
				// continue every row with its second best token, then swap beams within each source
				for r := range prefixes {
					prefixes[r] = append(append([]int64(nil), prefixes[r]...), top.IDs[r*2+1])
				}
				if err := s.Reorder([]int{2, 0, 1, 5, 5, 3, 6, 7, 8}); err != nil {
					t.Fatal(err)
				}
				prefixes = [][]int64{prefixes[2], prefixes[0], prefixes[1], prefixes[5], prefixes[5], prefixes[3], prefixes[6], prefixes[7], prefixes[8]}
			}
			s.Close()
		}
		if !reflect.DeepEqual(runs[0], runs[1]) {
			t.Errorf("%s: first step before expansion differs from expanding first:\n%v\n%v", model, runs[0], runs[1])
		}
	}
}
