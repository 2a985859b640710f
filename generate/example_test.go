package generate_test

import (
	"context"
	"fmt"
	"log"
	"math"

	"github.com/ortrain/ortrain/generate"
)

// copier is a toy model: it repeats the source token by token, then ends
// with EOS (id 1). Token 5 is its second choice everywhere.
type copier struct{}

type copyState struct {
	sources [][]int64
	logits  []float32
}

const vocab = 6

func (copier) Start(_ context.Context, sources [][]int64) (generate.State, error) {
	return &copyState{sources: sources}, nil
}

func (s *copyState) Step(_ context.Context, prefixes [][]int64) (generate.Logits, error) {
	s.logits = s.logits[:0]
	for r, p := range prefixes {
		row := make([]float32, vocab)
		for v := range row {
			row[v] = float32(math.Inf(-1))
		}
		next := int64(1) // EOS once the source is copied
		if n := len(p) - 1; n < len(s.sources[r]) {
			next = s.sources[r][n]
		}
		row[next], row[5] = 0, -1
		s.logits = append(s.logits, row...)
	}
	return generate.Logits{Rows: len(prefixes), Vocab: vocab, Data: s.logits}, nil
}

func (s *copyState) Reorder(rows []int) error {
	src := make([][]int64, len(rows))
	for i, r := range rows {
		src[i] = s.sources[r]
	}
	s.sources = src
	return nil
}

func (s *copyState) Close() error { return nil }

// Greedy and beam search over any generate.Decoder (here a toy model; the
// ONNX Runtime decoders of generate/ortdecoder in practice), with HF
// generate()'s configuration fields.
func ExampleGenerate() {
	cfg := generate.DefaultConfig()
	cfg.DecoderStartTokenID, cfg.PadTokenID, cfg.EOSTokenIDs = 0, 0, []int64{1}
	cfg.MaxLength = 8
	sources := [][]int64{{2, 3, 4}, {4, 2}}
	out, err := generate.Generate(context.Background(), copier{}, sources, cfg)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("greedy:", out.Sequences)
	cfg.NumBeams, cfg.NumReturnSequences = 2, 2
	out, err = generate.Generate(context.Background(), copier{}, sources, cfg)
	if err != nil {
		log.Fatal(err)
	}
	for i := range out.Sequences {
		fmt.Printf("beam: %v %.3f\n", out.Trimmed(i), out.Scores[i])
	}
	// Output:
	// greedy: [[0 2 3 4 1] [0 4 2 1 0]]
	// beam: [0 2 3 4 1] -0.313
	// beam: [0 2 3 4 5 1] -0.513
	// beam: [0 4 2 1] -0.313
	// beam: [0 4 2 5 1] -0.563
}
