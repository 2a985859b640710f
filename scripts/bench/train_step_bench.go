//go:build ignore

// The ortrain side of the training-step benchmark: opens an artifact folder,
// runs warm-up and measured steps (one micro-batch + AdamW step each) on the
// batch written by train_step_bench.py, and prints JSON timings.
//
//	go run scripts/bench/train_step_bench.go -artifacts DIR -batch DIR/batch.json -threads 2
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/ortrain/ortrain/internal/amp"
	"github.com/ortrain/ortrain/internal/data"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/ortrain/engine"
)

func main() {
	dir := flag.String("artifacts", "", "artifact folder")
	batchPath := flag.String("batch", "", "batch.json from train_step_bench.py")
	threads := flag.Int("threads", 2, "intra-op threads")
	steps := flag.Int("steps", 5, "measured steps")
	warmup := flag.Int("warmup", 2, "warm-up steps")
	device := flag.String("device", "cpu", "cpu or cuda")
	variant := flag.String("variant", "", "the artifact folder's mixed-precision graphs to run (autocast-float16-cpu, ...); float16 ones with GradScaler's defaults")
	flag.Parse()
	if err := run(*dir, *batchPath, *threads, *steps, *warmup, *device, *variant); err != nil {
		fmt.Fprintln(os.Stderr, "train_step_bench:", err)
		os.Exit(1)
	}
}

func run(dir, batchPath string, threads, steps, warmup int, device, variant string) error {
	raw := map[string]struct {
		Shape []int `json:"shape"`
		Data  []int64
	}{}
	b, err := os.ReadFile(batchPath)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	batch := &data.Batch{Rows: raw["input_ids"].Shape[0], SourceLen: raw["input_ids"].Shape[1], TargetLen: raw["labels"].Shape[1],
		InputIDs: raw["input_ids"].Data, AttentionMask: raw["attention_mask"].Data, DecoderInputIDs: raw["decoder_input_ids"].Data,
		DecoderAttentionMask: raw["decoder_attention_mask"].Data, Labels: raw["labels"].Data}
	env, err := onnxrt.Open("")
	if err != nil {
		return err
	}
	defer env.Close()
	h := engine.DefaultHyper()
	h.WeightDecay = 0.01
	var scaler *amp.ScalerConfig
	if strings.Contains(variant, "float16") && !strings.Contains(variant, "bfloat16") {
		cfg := amp.DefaultScalerConfig()
		scaler = &cfg
	}
	tr, err := engine.Open(dir, env, engine.Options{Session: onnxrt.SessionOptions{Device: device, IntraOpThreads: threads, InterOpThreads: 1, NoCPUArena: os.Getenv("ORTRAIN_BENCH_NO_CPU_ARENA") == "1"}, Hyper: h,
		Variant: variant, Scaler: scaler})
	if err != nil {
		return err
	}
	defer tr.Close()
	rssOpen, _ := procStatusMiB("VmRSS")
	var times, fwdbwd, optim []float64
	var loss, first float64
	tokens := batch.NumLabelTokens()
	ctx := context.Background()
	for i := 0; i < warmup+steps; i++ {
		t0 := time.Now()
		loss, err = tr.TrainMicroBatch(ctx, batch, 1, uint64(i)<<1)
		if err != nil {
			return err
		}
		if i == 0 {
			first = loss
		}
		t1 := time.Now()
		if _, err := tr.OptimizerStep(ctx, 1e-4); err != nil {
			return err
		}
		if i >= warmup {
			times = append(times, time.Since(t0).Seconds())
			fwdbwd = append(fwdbwd, t1.Sub(t0).Seconds())
			optim = append(optim, time.Since(t1).Seconds())
		}
	}
	med := median(times)
	// Where the memory is: the process after Open (parameters, gradient
	// sums, optimizer state, sessions), the shared CPU arena (activations
	// and other intermediates of the runs), the peak.
	arena, _ := tr.ArenaStats()
	devArena := map[string]int64{}
	if device != "cpu" {
		devArena, _ = tr.DeviceArenaStats()
	}
	peak, _ := procStatusMiB("VmHWM")
	var trainable int64
	for _, p := range tr.Manifest().Parameters {
		if p.Trainable {
			trainable += onnx.NumElements(p.Shape)
		}
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"impl": "ortrain", "variant": variant, "onnxruntime": env.Version(), "threads": threads, "steps": steps,
		"step_s_median": med, "step_s": times, "target_tokens_per_step": tokens,
		"tokens_per_s": float64(tokens) / med, "first_loss": first, "final_loss": loss,
		"train_micro_batch_s_median": median(fwdbwd), "optimizer_step_s_median": median(optim),
		"trainable_params": trainable, "rss_after_open_mib": rssOpen, "peak_rss_mib": peak,
		"arena_reserved_mib": float64(arena["TotalAllocated"]) / (1 << 20), "arena_max_in_use_mib": float64(arena["MaxInUse"]) / (1 << 20),
		"device_arena_reserved_mib": float64(devArena["TotalAllocated"]) / (1 << 20), "device_arena_max_in_use_mib": float64(devArena["MaxInUse"]) / (1 << 20),
	})
}

// procStatusMiB reads a size field of /proc/self/status (VmRSS, VmHWM) in MiB.
func procStatusMiB(field string) (float64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			var kb float64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%g kB", &kb); err != nil {
				return 0, err
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("no %s in /proc/self/status", field)
}

func median(x []float64) float64 {
	s := append([]float64(nil), x...)
	sort.Float64s(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}
