package generate

import (
	"context"
	"reflect"
	"runtime"
	"testing"
)

// constDecoder returns fixed pseudo-random logits over a t5-sized vocabulary
// and never ends a sequence early: it measures the search's own cost
// (log-softmax, processors, top-k, bookkeeping) without a model.
type constDecoder struct{ logits []float32 }

type constState struct {
	d    *constDecoder
	rows int
	buf  []float32
}

func (d *constDecoder) Start(_ context.Context, sources [][]int64) (State, error) {
	return &constState{d: d, rows: len(sources)}, nil
}

func (s *constState) Step(_ context.Context, prefixes [][]int64) (Logits, error) {
	v := len(s.d.logits)
	if cap(s.buf) < len(prefixes)*v {
		s.buf = make([]float32, len(prefixes)*v)
	}
	s.buf = s.buf[:len(prefixes)*v]
	for r, p := range prefixes {
		// rotate the row by its last token so that beams differ
		shift := int(p[len(p)-1]) % v
		copy(s.buf[r*v:], s.d.logits[shift:])
		copy(s.buf[r*v+v-shift:], s.d.logits[:shift])
	}
	return Logits{Rows: len(prefixes), Vocab: v, Data: s.buf}, nil
}

func (s *constState) Reorder(rows []int) error { s.rows = len(rows); return nil }
func (s *constState) Close() error             { return nil }

func BenchmarkSearchOverhead(b *testing.B) {
	const vocab = 32128
	d := &constDecoder{logits: make([]float32, vocab)}
	x := uint64(1)
	for i := range d.logits {
		x = x*6364136223846793005 + 1442695040888963407
		d.logits[i] = float32(x>>40) / float32(1<<24) * 8
	}
	d.logits[1] = -100 // EOS unlikely: every row runs to max_new_tokens
	sources := someSources(16)
	for _, tc := range []struct {
		name  string
		beams int
	}{{"greedy", 1}, {"beam4", 4}} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := t5likeConfig()
			cfg.NumBeams, cfg.MaxNewTokens = tc.beams, 32
			steps := 0
			for b.Loop() {
				if _, err := Generate(context.Background(), d, sources, cfg); err != nil {
					b.Fatal(err)
				}
				steps += 32
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(steps), "µs/step")
		})
	}
}

// The parallel row processing of beam search gives the same result as one goroutine.
func TestBeamParallelRowsMatchSequential(t *testing.T) {
	const vocab = 20000
	d := &constDecoder{logits: make([]float32, vocab)}
	x := uint64(7)
	for i := range d.logits {
		x = x*6364136223846793005 + 1442695040888963407
		d.logits[i] = float32(x>>40) / float32(1<<24) * 8
	}
	cfg := t5likeConfig()
	cfg.NumBeams, cfg.MaxNewTokens, cfg.NoRepeatNGramSize, cfg.RepetitionPenalty = 4, 6, 2, 1.2
	run := func(procs int) *Output {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		out, err := Generate(context.Background(), d, someSources(5), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	one, many := run(1), run(4)
	if !reflect.DeepEqual(one.Sequences, many.Sequences) || !reflect.DeepEqual(one.Scores, many.Scores) {
		t.Errorf("GOMAXPROCS 1: %v %v\nGOMAXPROCS 4: %v %v", one.Sequences, one.Scores, many.Sequences, many.Scores)
	}
}
