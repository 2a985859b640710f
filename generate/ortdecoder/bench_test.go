package ortdecoder

import (
	"context"
	"os"
	"testing"

	"github.com/ortrain/ortrain/generate"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/testenv"
)

// BenchmarkGenerate decodes 16 sources with greedy and beam search on
// $ORTRAIN_BENCH_MODEL (an Optimum-layout folder, e.g. the t5-small-sized
// model scripts/bench/generate_bench.sh builds), or on the tiny T5 fixture,
// picking tokens in Go from the logits ("host") and with the decoding head
// inside ONNX Runtime ("head").
func BenchmarkGenerate(b *testing.B) {
	dir := os.Getenv("ORTRAIN_BENCH_MODEL")
	if dir == "" {
		dir = testenv.Testdata(b, "models", "t5-tiny")
	}
	env, err := onnxrt.Open(testenv.ORTLibrary(b))
	if err != nil {
		b.Fatal(err)
	}
	defer env.Close()
	sources := randomSources(16, 3, 500, 1, 9)
	for _, head := range []bool{false, true} {
		m, err := OpenModel(env, dir, OpenOptions{Options: Options{IntraOpThreads: 1, HostSelect: !head}})
		if err != nil {
			b.Fatal(err)
		}
		for _, beams := range []int{1, 4} {
			name := "greedy"
			if beams > 1 {
				name = "beam4"
			}
			if head {
				name += "/head"
			} else {
				name += "/host"
			}
			b.Run(name, func(b *testing.B) {
				cfg := m.Config
				cfg.NumBeams, cfg.MinNewTokens, cfg.MaxNewTokens = beams, 16, 16
				for b.Loop() {
					if _, err := generate.Generate(context.Background(), m, sources, cfg); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(sources)*b.N)/b.Elapsed().Seconds(), "sentences/s")
			})
		}
		m.Close()
	}
}
