package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ortrain/ortrain/generate/predict"
	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/progress"
)

const predictDescription = `Generates one prediction per input line with greedy or beam search, with
the semantics of Hugging Face's generate() (defaults from the model's
generation_config.json, else config.json; flags override them). Predictions
are written in input order, one per line, as they are made: to
OUTPUT.partial, renamed to OUTPUT at the end. If the job is interrupted, the
same command run again continues after the lines already written.

--model DIR is an exported model folder: the folder optimum-cli export onnx
wrote (encoder_model.onnx with decoder_model.onnx; with past, also
decoder_with_past_model.onnx or decoder_model_merged.onnx: KV cache), or
model.onnx (the full graph, recomputed each step; also with --no-cache, which
for an Optimum folder recomputes the encoder and decoder graphs composed into one).
--artifacts DIR is an ortrain artifact folder (its generation graphs and
model.safetensors). --tokenizer defaults to the model folder.
--adapter DIR with --model generates with a LoRA adapter (PEFT's
adapter_config.json and adapter_model.safetensors, as ortrain train or PEFT
wrote it) on that base model: the adapter branches run beside the base
layers, unmerged (float32). With --merge_lora the adapter is merged into
the base weights first (W + (alpha/r)·B·A, as PEFT's merge_and_unload), and
the base model's graphs run with the merged weights, at the base model's
speed. --artifacts DIR takes --adapter when DIR is a LoRA artifact folder
built for the same LoRA config (ortrain artifacts --lora_* or --adapter, or
train's output_dir/artifacts). The output_dir of ortrain train --merge_lora
is a merged model folder itself: --model OUTPUT_DIR.

A multilingual tokenizer (mBART, mBART-50, M2M100, NLLB) needs
--source-lang and --target-lang, its language codes (en_XX / ro_RO for mBART,
en / ro for M2M100, eng_Latn / ron_Latn for NLLB): the inputs get the source
language's template, and generation starts the target language as the model
was trained to (the target code forced as the first token where the targets
start with it, as for mBART-50, M2M100 and NLLB; mBART's decoder starts with
it). --generation-config and the flags below override that.

With --refs (one reference per line; repeat for several references) the
predictions are also scored with BLEU (sacrebleu defaults) and ROUGE
(rouge-score, F-measure means), and a JSON report is written (--report, by
default OUTPUT.metrics.json) together with the metrics' sufficient statistics
(OUTPUT.bleu-stats.json, OUTPUT.rouge-stats.json).

--shard i/N (0 <= i < N) processes only lines [i*L/N, (i+1)*L/N) of the L
input lines: run the N shards anywhere (e.g. as an array job), concatenate
the prediction files in shard order, and combine the scores with
  ortrain score --merge OUT0.bleu-stats.json OUT1.bleu-stats.json ...
which gives exactly the unsharded corpus score.

Started by an MPI launcher (mpirun -np N ortrain predict ..., or srun
--mpi=pmix), the N processes split the input the same way (rank r takes
shard r/N, written to OUTPUT.rank<r>-of-<N> and resumable like OUTPUT);
rank 0 then writes OUTPUT, byte for byte what one process writes, and the
report over all lines. Every rank must get the same flags (checked at
start); --device cuda gives each rank the GPU of its local rank. MPI is
loaded at run time ($ORTRAIN_MPI_LIB, else libmpi.so.40/.12); a rank that
stops answering for $ORTRAIN_COLLECTIVE_TIMEOUT (default 5m) is named and
the job stops.

Inputs longer than the model takes (--max-source-length, by default the
model's tokenizer_config.json model_max_length or max_position_embeddings)
are an error naming the line, or with --truncate are cut (keeping the end of
sequence token) with a warning. Empty input lines are an error.`

func newPredictCommand() *cli.Command {
	return &cli.Command{
		Name:        "predict",
		Usage:       "generate predictions for a file of inputs (greedy or beam search, HF generate semantics), optionally scored",
		UsageText:   "ortrain predict (--model DIR | --artifacts DIR) [--tokenizer PATH] --input FILE --output FILE [options]",
		Description: predictDescription,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Usage: "exported model folder (optimum-cli export onnx output, or model.onnx)"},
			&cli.StringFlag{Name: "artifacts", Usage: "ortrain artifact folder"},
			&cli.StringFlag{Name: "adapter", Usage: "PEFT LoRA adapter folder (adapter_config.json, adapter_model.safetensors; ortrain's or PEFT's) to generate with on --model, its base model (or in a LoRA --artifacts folder of the same config)"},
			&cli.BoolFlag{Name: "merge_lora", Aliases: []string{"merge-lora"}, Usage: "merge the --adapter into the base weights before generating (PEFT's merge_and_unload): the base model's graphs run, without adapter branches"},
			&cli.StringFlag{Name: "tokenizer", Usage: "tokenizer folder or tokenizer.json (default: the model folder)"},
			&cli.StringFlag{Name: "source-lang", Aliases: []string{"source_lang"}, Usage: "source language code of a multilingual tokenizer (mBART en_XX, M2M100 en, NLLB eng_Latn)"},
			&cli.StringFlag{Name: "target-lang", Aliases: []string{"target_lang"}, Usage: "target language code of a multilingual tokenizer"},
			&cli.StringFlag{Name: "input", Usage: "source texts, one per line"},
			&cli.StringFlag{Name: "output", Usage: "predictions file to write"},
			&cli.IntFlag{Name: "num-beams", Usage: "beam width (default: the model's generation config; 1 is greedy)"},
			&cli.IntFlag{Name: "max-new-tokens", Usage: "maximum generated tokens (default: the model's generation config)"},
			&cli.StringFlag{Name: "generation-config", Usage: "JSON file of generate() arguments (length_penalty, no_repeat_ngram_size, ...) applied over the model's defaults"},
			&cli.IntFlag{Name: "batch-size", Value: 16, Usage: "sources per batch"},
			&cli.StringFlag{Name: "device", Value: "cpu", Usage: "cpu, cuda or cuda:N"},
			&cli.StringFlag{Name: "dtype", Value: "float32", Usage: "float32, float16 or bfloat16: generate with the model cast to that type (model.to(dtype)); bfloat16 needs --device cuda"},
			&cli.IntFlag{Name: "threads", Usage: "ONNX Runtime intra-op threads (0: its default)"},
			&cli.BoolFlag{Name: "no-cache", Usage: "decode with the full graph (model.onnx, or Optimum's encoder and decoder composed), recomputing every step"},
			&cli.StringSliceFlag{Name: "refs", Usage: "reference file, one per line; repeat for several references"},
			&cli.StringFlag{Name: "report", Usage: "JSON report path (default OUTPUT.metrics.json when --refs is given)"},
			&cli.StringFlag{Name: "shard", Usage: "process shard i of N (0-based), as i/N"},
			&cli.IntFlag{Name: "max-source-length", Usage: "longest source in tokens (default: the model's limit; 0 there means none)"},
			&cli.BoolFlag{Name: "truncate", Usage: "cut sources longer than the limit (with a warning) instead of failing"},
			&cli.BoolFlag{Name: "no-progress", Usage: "no progress bar even on a terminal"},
		},
		Action: runPredict,
	}
}

func runPredict(c *cli.Context) error {
	if c.NArg() > 0 {
		return fault.Settingsf("unexpected arguments %q", c.Args().Slice())
	}
	opts := predict.Options{
		Model: c.String("model"), Artifacts: c.String("artifacts"), Adapter: c.String("adapter"), MergeLoRA: c.Bool("merge_lora"), Tokenizer: c.String("tokenizer"),
		SourceLang: c.String("source-lang"), TargetLang: c.String("target-lang"),
		Input: c.String("input"), Output: c.String("output"), Refs: c.StringSlice("refs"), Report: c.String("report"),
		GenerationConfig: c.String("generation-config"), NumBeams: optional(c, "num-beams", c.Int), MaxNewTokens: optional(c, "max-new-tokens", c.Int),
		MaxSourceLength: optional(c, "max-source-length", c.Int), Truncate: c.Bool("truncate"), BatchSize: c.Int("batch-size"),
		ORTLibrary: c.String("ort-lib"), Device: c.String("device"), Threads: c.Int("threads"), NoCache: c.Bool("no-cache"),
		DType: c.String("dtype"),
		Warn:  func(msg string) { fmt.Fprintf(c.App.ErrWriter, "ortrain: warning: %s\n", msg) },
	}
	if err := opts.Validate(); err != nil {
		return err
	}
	var err error
	if opts.Shard, opts.Shards, err = predict.ParseShard(c.String("shard")); err != nil {
		return err
	}
	world, err := openWorld()
	if err != nil {
		return err
	}
	opts.Device = localDevice(opts.Device, world)
	if world.Size() > 1 {
		warn := opts.Warn
		opts.Warn = func(msg string) { warn(fmt.Sprintf("rank %d: %s", world.Rank(), msg)) }
	}
	var onProgress func(done, total int)
	if !c.Bool("no-progress") && world.Rank() == 0 && progress.IsTerminal(c.App.ErrWriter) {
		bar := &progress.Bar{Out: c.App.ErrWriter, Unit: "sentences", Every: 100 * time.Millisecond}
		onProgress = func(done, total int) {
			if done == 0 {
				bar.Total = total
				bar.Start()
			} else {
				bar.Draw(done)
			}
			if done == total {
				bar.Finish()
			}
		}
	}
	res, err := predict.RunWorld(c.Context, opts, world, onProgress)
	if err != nil {
		return inWorld(world, err)
	}
	if err := world.Close(); err != nil {
		return inWorld(world, err)
	}
	if res.Report != nil {
		res.Report.WriteSummary(c.App.Writer)
		fmt.Fprintf(c.App.Writer, "report: %s\n", res.ReportPath)
	}
	return nil
}
