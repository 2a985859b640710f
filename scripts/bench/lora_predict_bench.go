//go:build ignore

// Generation with a LoRA adapter, unmerged and merged, against the base
// model, in one process: the three models are opened as ortrain predict
// opens them (the adapter's model written by artifacts.WriteInference, its
// weights constants), then the same batch is generated greedily with each
// in turn, ROUNDS times, so that a busy machine slows all three alike.
// For context, "unmerged, inputs" is the adapter's artifact folder opened
// as an artifact folder (ortdecoder.OpenArtifactModel: the weights are
// graph inputs bound at every run, as during training), which predict
// --adapter used before. Sources are random token ids; no end-of-sequence
// token, so every run makes exactly -new tokens per source.
//
//	go run scripts/bench/lora_predict_bench.go -model DIR -adapter ADAPTER [-threads 1] [-rounds 7]
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/ortrain/ortrain/generate"
	"github.com/ortrain/ortrain/generate/ortdecoder"
	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/onnxrt"
)

func main() {
	model := flag.String("model", "", "exported base model folder (Optimum layout)")
	adapter := flag.String("adapter", "", "PEFT adapter folder for it")
	threads := flag.Int("threads", 1, "intra-op threads")
	rounds := flag.Int("rounds", 7, "rounds (each generates with the three models in turn)")
	batch := flag.Int("batch", 16, "sources per batch")
	srcLen := flag.Int("src", 24, "source length in tokens")
	newTokens := flag.Int("new", 24, "generated tokens per source")
	flag.Parse()
	if err := run(*model, *adapter, *threads, *rounds, *batch, *srcLen, *newTokens); err != nil {
		fmt.Fprintln(os.Stderr, "lora_predict_bench:", err)
		os.Exit(1)
	}
}

func run(model, adapter string, threads, rounds, batch, srcLen, newTokens int) error {
	env, err := onnxrt.Open("")
	if err != nil {
		return err
	}
	defer env.Close()
	tmp, err := os.MkdirTemp("", "lora-predict-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bc, err := artifacts.FolderConfig(model)
	if err != nil {
		return err
	}
	art := filepath.Join(tmp, "artifacts")
	bc.Out, bc.Adapter = art, adapter
	if _, err := artifacts.Build(bc); err != nil {
		return err
	}
	dirs := map[string]string{"base": model}
	for _, kind := range []string{"unmerged", "merged"} {
		d := filepath.Join(tmp, kind)
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
		if err := artifacts.WriteInference(art, d, artifacts.InferenceOptions{MergeLoRA: kind == "merged"}); err != nil {
			return err
		}
		for _, f := range []string{"config.json", "generation_config.json"} {
			if b, err := os.ReadFile(filepath.Join(model, f)); err == nil {
				os.WriteFile(filepath.Join(d, f), b, 0o644)
			}
		}
		dirs[kind] = d
	}
	kinds := []string{"base", "unmerged", "merged", "unmerged, inputs"}
	models := map[string]*ortdecoder.Model{}
	for _, k := range kinds {
		opts := ortdecoder.Options{IntraOpThreads: threads}
		var m *ortdecoder.Model
		if k == "unmerged, inputs" {
			m, err = ortdecoder.OpenArtifactModel(env, art, opts)
		} else {
			m, err = ortdecoder.OpenModel(env, dirs[k], ortdecoder.OpenOptions{Options: opts})
		}
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		defer m.Close()
		models[k] = m
	}
	rng := rand.New(rand.NewPCG(1, 2))
	sources := make([][]int64, batch)
	for i := range sources {
		for range srcLen - 1 {
			sources[i] = append(sources[i], 3+rng.Int64N(1000))
		}
		sources[i] = append(sources[i], 1)
	}
	cfg := models["base"].Config
	cfg.NumBeams, cfg.MaxNewTokens, cfg.EOSTokenIDs = 1, newTokens, nil
	times := map[string][]float64{}
	outs := map[string]string{}
	for r := 0; r <= rounds; r++ { // round 0 warms up
		for _, k := range kinds {
			start := time.Now()
			out, err := generate.Generate(context.Background(), models[k], sources, cfg)
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			if r > 0 {
				times[k] = append(times[k], time.Since(start).Seconds())
			}
			outs[k] = fmt.Sprint(out.Sequences)
		}
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("t5-small-sized model, %d sources x %d tokens, greedy %d new tokens, %d thread(s), %d interleaved rounds; load average %s", batch, srcLen, newTokens, threads, rounds, load)
	fmt.Println("| model | median (s) | fastest (s) | median / base | fastest / base |\n|---|---|---|---|---|")
	med := func(v []float64) float64 { s := slices.Clone(v); slices.Sort(s); return s[len(s)/2] }
	for _, k := range kinds {
		fmt.Printf("| %s | %.3f | %.3f | %.2f | %.2f |\n", k, med(times[k]), slices.Min(times[k]), med(times[k])/med(times["base"]), slices.Min(times[k])/slices.Min(times["base"]))
	}
	fmt.Printf("merged = unmerged sequences: %v\n", outs["merged"] == outs["unmerged"])
	return nil
}
