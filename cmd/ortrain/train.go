package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ortrain/ortrain/internal/collective"
	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/modelfile"
	"github.com/ortrain/ortrain/internal/ortimport"
	"github.com/ortrain/ortrain/internal/progress"
	"github.com/ortrain/ortrain/ortrain"
	"github.com/ortrain/ortrain/ortrain/engine"
)

const trainDescription = `Fine-tunes a seq2seq model with the semantics of Hugging Face's
Seq2SeqTrainer (transformers ` + ortrain.HFVersion + `): the same TrainingArguments names,
defaults and validation errors, the same log_history, evaluation, checkpoint
rotation, best-model tracking and output files (checkpoint-<step>/,
trainer_state.json, all_results.json, generated_predictions.txt).

Every argument is a flag under its HF name, with underscores or hyphens
(--eval_steps or --eval-steps); --config FILE reads the same keys from a JSON
or YAML file, and flags override it. Step arguments below 1 are ratios of
the total steps (HF's rule).

  ortrain train --demo
      trains the embedded demo: a small transformer on a synthetic
      translation task (a few minutes on 2 cores), with evaluation, BLEU and
      ROUGE, checkpoints and a plot in ./ortrain-demo (or --output_dir).

  ortrain train --model DIR --train_file train.jsonl --validation_file dev.jsonl \
      --output_dir out --do_train --eval_strategy steps --eval_steps 200 \
      --predict_with_generate --source_lang en --target_lang ro

--model is an exported model folder: model.onnx (a forward graph, as
scripts/export_model.py writes it from a transformers checkpoint; see the
README's "Bring your model"), or the folder optimum-cli export onnx wrote
(encoder_model.onnx and
decoder_model.onnx, composed into the forward graph; with past, generation
uses a KV cache), with config.json and the tokenizer. Before training,
every float initializer is identified as a tensor of the model (by name,
as a tied copy, by the module path in node names, or by its values in
model.safetensors when the folder has it) and the outcome is printed:
checkpoints carry the model's own names and load with
AutoModelForSeq2SeqLM.from_pretrained. Data files are JSONL (HF
{"translation": {...}} records with --source_lang/--target_lang, or flat
source/target fields), CSV or TSV.

Multilingual models (mBART, mBART-50, M2M100, NLLB) need --source_lang and
--target_lang as run_translation does: their tokenizer's language codes
(en_XX ro_RO; M2M100 en ro; NLLB eng_Latn ron_Latn), whose part before "_"
also names the texts of translation records. Inputs get the source template,
labels the target template (HF's text_target), and generation starts the
target language: forced as the first token where the labels start with it
(mBART-50, M2M100, NLLB), as mBART's decoder start otherwise.

What differs between architectures (HF's gradient-accumulation rule, which
tensors train, how labels become decoder inputs) is taken from config.json's
model_type, by a table generated from transformers ` + ortrain.HFVersion + `'s source
(scripts/gen_arch_table.py). A model type outside it, or one ortrain refuses,
stops training with the nearest supported type; --assume_architecture TYPE
trains it as TYPE would train. Without --do_train, --do_eval or --do_predict
there is nothing to do, and train says so.

--fp16 / --bf16 train in mixed precision as HF's Trainer does on a GPU:
the graphs compute where torch.autocast would for --device (its CPU or CUDA
op lists), parameters, gradient sums and optimizer state stay float32, and
--fp16 scales the loss as torch.amp.GradScaler does (a step with inf/NaN
gradients is skipped, optimizer and learning-rate schedule alike, and logs a
non-finite grad_norm; the scaler state is saved in checkpoints).
--fp16_full_eval / --bf16_full_eval evaluate and predict after training with
the model in half precision; --tf32 enables TensorFloat-32 on CUDA. The CPU
has no bfloat16 kernels: --bf16 needs --device cuda.

--gradient_checkpointing (transformers 5 calls it --activation_checkpointing;
either name, also in --config) recomputes the activations of each transformer
layer in the backward pass instead of keeping them, as HF checkpoints its
layers (T5Block, BartEncoderLayer, ...): less memory for a second forward pass
of every layer. The layers are the module lists in the model's parameter
names (encoder.block.N, model.decoder.layers.N); dropout masks are functions
of the step's seed, so the recomputed layers drop what the forward pass
dropped and the gradients are those without checkpointing (bit for bit with
graph optimisations off; ONNX Runtime's fusions round each graph its own way).
The training graph never uses a KV cache (HF turns use_cache off under
checkpointing).
ortrain artifacts --gradient_checkpointing builds such artifacts.

LoRA (as HF PEFT's LoraConfig and get_peft_model): --lora_r R
--lora_alpha A --lora_target_modules q,v (or a lora: object in --config with
PEFT's keys r, lora_alpha, lora_dropout, target_modules, bias,
modules_to_save, use_rslora) freezes the model and trains B·A·x·(alpha/r)
beside each targeted linear layer (lora_A drawn Kaiming-uniform as PEFT does,
from ortrain's seeded generator; lora_B zero), plus the biases of
--lora_bias and the modules of --modules_to_save. Checkpoints and the final
output are PEFT adapter folders (adapter_config.json,
adapter_model.safetensors with PEFT's keys) that PeftModel.from_pretrained
loads on the base model; --merge_lora also writes the merged full model
(output_dir is then one merged model, its ONNX graphs without adapter
branches). --adapter DIR continues a PEFT adapter (PEFT's or ortrain's);
ortrain predict --model DIR --adapter ADAPTER [--merge_lora] generates
with one. LoRA
trains in float32 (not with --fp16/--bf16 yet).

report_to: none, jsonl (output_dir/log_history.jsonl), tensorboard
(output_dir/runs/...), mlflow, all (jsonl and tensorboard). mlflow reports
to the tracking server MLFLOW_TRACKING_URI names, as HF's MLflowCallback:
MLFLOW_EXPERIMENT_NAME, MLFLOW_RUN_ID (continue a run), MLFLOW_TAGS (JSON);
the arguments as parameters, every log as metrics at its step, and at the
end trainer_state.json and the plot as artifacts. A tracker that is down
warns once and training goes on. At the end output_dir/training_curves.png
plots the losses and evaluation metrics.

Several processes: started by an MPI launcher (mpirun -np N ortrain train
..., srun --mpi=pmix), the N processes train as HF's Trainer does under DDP
(torchrun --nproc_per_node N): per-device batches dealt to the processes as
accelerate deals them, gradients averaged before clipping, num_items_in_batch
and the logged and evaluation losses as HF computes them with N processes.
Process 0 writes output_dir, which every process must see; --device cuda
takes the local rank's GPU; resume needs the same N. MPI is loaded at run
time ($ORTRAIN_MPI_LIB, else libmpi.so.40/.12). A process that stops
answering for $ORTRAIN_COLLECTIVE_TIMEOUT (default 5m) is named and the job
stops. On CUDA the gradients are averaged in GPU memory over NCCL
($ORTRAIN_NCCL_LIB, else libnccl.so.2: pip install nvidia-nccl-cu13);
$ORTRAIN_NCCL_LIB=none averages them through host memory over MPI instead.

Differences from HF that cannot be avoided: the shuffled data order and the
dropout masks come from ortrain's own seeded generators, not torch's.`

// argFlags makes one flag per TrainingArguments field, named as HF names
// it, with the hyphenated spelling as an alias.
func argFlags() []cli.Flag {
	t := reflect.TypeOf(ortrain.TrainingArguments{})
	def := ortrain.DefaultArguments()
	dv := reflect.ValueOf(def)
	var flags []cli.Flag
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		var aliases []string
		if h := strings.ReplaceAll(name, "_", "-"); h != name {
			aliases = []string{h}
		}
		usage := fmt.Sprintf("HF TrainingArguments.%s", name)
		if ortrain.ArgumentIsBool(name) {
			flags = append(flags, &cli.BoolFlag{Name: name, Aliases: aliases, Usage: usage, Category: "TrainingArguments"})
			continue
		}
		d := ""
		v := dv.Field(i)
		if v.Kind() != reflect.Pointer && v.Kind() != reflect.Slice && v.Kind() != reflect.Map && !v.IsZero() {
			d = fmt.Sprint(v.Interface())
		}
		if d != "" {
			usage += " (default " + d + ")"
		}
		flags = append(flags, &cli.StringFlag{Name: name, Aliases: aliases, Usage: usage, Category: "TrainingArguments"})
	}
	return flags
}

func newTrainCommand() *cli.Command {
	own := []cli.Flag{
		&cli.BoolFlag{Name: "demo", Usage: "train the embedded demo model and task"},
		&cli.StringFlag{Name: "config", Usage: "JSON or YAML file of TrainingArguments (flags override it)"},
		&cli.StringFlag{Name: "model", Usage: "exported model folder (model.onnx or optimum-cli export onnx output; model.safetensors where there is one; config.json, tokenizer)"},
		&cli.StringSliceFlag{Name: "param_name", Aliases: []string{"param-name"}, Usage: "`ONNX=NAME`: the model's initializer ONNX is its tensor NAME (for initializers ortrain reports as unmatched); repeatable"},
		&cli.StringFlag{Name: "artifacts", Usage: "prebuilt ortrain artifact folder (instead of building from --model)"},
		&cli.StringFlag{Name: "assume_architecture", Aliases: []string{"assume-architecture"}, Usage: "ASSUME that the model trains exactly like this transformers model_type (e.g. bart): its gradient-accumulation rule, trained tensors and decoder inputs, whatever --model's config.json says (for model types ortrain does not know or support)"},
		&cli.StringFlag{Name: "tokenizer", Usage: "tokenizer folder or tokenizer.json (default: the model folder)"},
		&cli.StringFlag{Name: "train_file", Aliases: []string{"train-file"}, Usage: "training data: .jsonl, .csv, .tsv, .parquet, .arrow, a datasets.save_to_disk folder, or parallel text PREFIX (PREFIX.SRC + PREFIX.TGT, one sentence a line, named by --source_lang/--target_lang)"},
		&cli.StringFlag{Name: "validation_file", Aliases: []string{"validation-file"}, Usage: "evaluation data"},
		&cli.StringFlag{Name: "test_file", Aliases: []string{"test-file"}, Usage: "prediction data (do_predict)"},
		&cli.StringFlag{Name: "source_lang", Aliases: []string{"source-lang"}, Usage: "source language: the key of {\"translation\": {...}} records (the part before \"_\": en_XX reads \"en\") and a multilingual tokenizer's source language code"},
		&cli.StringFlag{Name: "target_lang", Aliases: []string{"target-lang"}, Usage: "target language: record key and a multilingual tokenizer's target language code"},
		&cli.StringFlag{Name: "source_field", Aliases: []string{"source-field", "text_column", "text-column"}, Usage: "source field/column of flat records (default source; text_column of run_summarization)"},
		&cli.StringFlag{Name: "target_field", Aliases: []string{"target-field", "summary_column", "summary-column"}, Usage: "target field/column (default target; summary_column of run_summarization)"},
		&cli.StringFlag{Name: "source_prefix", Aliases: []string{"source-prefix"}, Usage: "text prepended to every source (T5 task prefix)"},
		&cli.IntFlag{Name: "max_source_length", Aliases: []string{"max-source-length"}, Usage: "truncate sources to this many tokens (0: no limit)"},
		&cli.IntFlag{Name: "max_target_length", Aliases: []string{"max-target-length"}, Usage: "truncate targets to this many tokens (0: no limit)"},
		&cli.IntFlag{Name: "val_max_target_length", Aliases: []string{"val-max-target-length"}, Usage: "truncate the targets of validation and test data to this many tokens, and generate at most this many (unless --generation_max_length) (0: max_target_length)"},
		&cli.IntFlag{Name: "max_train_samples", Aliases: []string{"max-train-samples"}, Usage: "train on the first N examples of --train_file (0: all)"},
		&cli.IntFlag{Name: "max_eval_samples", Aliases: []string{"max-eval-samples"}, Usage: "evaluate on the first N examples of --validation_file (0: all)"},
		&cli.IntFlag{Name: "max_predict_samples", Aliases: []string{"max-predict-samples"}, Usage: "predict the first N examples of --test_file (0: all)"},
		&cli.IntFlag{Name: "num_beams", Aliases: []string{"num-beams"}, Usage: "beams of evaluation and prediction generation (sets generation_num_beams)"},
		&cli.BoolFlag{Name: "pad_to_max_length", Aliases: []string{"pad-to-max-length"}, Usage: "pad every batch to max_source_length / max_target_length (val_max_target_length for evaluation) instead of its longest row"},
		&cli.BoolFlag{Name: "ignore_pad_token_for_loss", Aliases: []string{"ignore-pad-token-for-loss"}, Value: true, Usage: "padded label positions are -100, ignored by the loss; false: they hold the pad token and count"},
		&cli.BoolFlag{Name: "group_by_length", Aliases: []string{"group-by-length"}, Usage: "HF's group_by_length sampler"},
		&cli.BoolFlag{Name: "rouge_use_stemmer", Aliases: []string{"rouge-use-stemmer"}, Usage: "ROUGE with the Porter stemmer (run_summarization's setting)"},
		&cli.BoolFlag{Name: "no-progress", Usage: "no progress bar even on a terminal"},
		&cli.BoolFlag{Name: "no-cpu-arena", Usage: "allocate CPU tensors from the C allocator instead of the arena all CPU sessions share (to debug allocations): on the t5-small-sized step, more peak memory (+8-13%) and slower steps (+25%)"},
	}
	return &cli.Command{
		Name:        "train",
		Usage:       "fine-tune a seq2seq model with Hugging Face Seq2SeqTrainer semantics (try --demo)",
		UsageText:   "ortrain train --demo | ortrain train --model DIR --train_file F [--validation_file F] [TrainingArguments flags]",
		Description: trainDescription,
		Flags:       append(append(own, loraFlagList(true)...), argFlags()...),
		Action:      runTrain,
	}
}

// trainArguments assembles the arguments: defaults (or the demo's), then
// --config, then flags.
func trainArguments(c *cli.Context) (ortrain.TrainingArguments, error) {
	a := ortrain.DefaultArguments()
	if c.Bool("demo") {
		a = engine.DemoArguments("ortrain-demo")
	}
	// Artifacts imported from ONNX Runtime continue their optimizer as it
	// was unless the config or flags say otherwise.
	if dir := c.String("artifacts"); dir != "" {
		defs, err := ortimport.TrainingDefaults(dir)
		if err != nil {
			return a, err
		}
		for _, name := range ortrain.ArgumentNames() {
			if v, ok := defs[name]; ok {
				if err := a.Set(name, v); err != nil {
					return a, fault.Inputf("%s: %s: %w", dir, name, err)
				}
			}
		}
	}
	if p := c.String("config"); p != "" {
		if err := a.LoadConfigFile(p); err != nil {
			if errors.Is(err, fault.Settings) { // no such file: name the flag
				return a, fmt.Errorf("--config: %w", err)
			}
			return a, err
		}
	}
	for _, name := range ortrain.ArgumentNames() {
		if !c.IsSet(name) {
			continue
		}
		var v any = c.String(name)
		if ortrain.ArgumentIsBool(name) {
			v = c.Bool(name)
		}
		if err := a.Set(name, v); err != nil {
			return a, fmt.Errorf("--%s: %w", name, err)
		}
	}
	return a, a.Finalize()
}

func runTrain(c *cli.Context) error {
	if c.NArg() > 0 {
		return fault.Settingsf("unexpected arguments %q", c.Args().Slice())
	}
	a, err := trainArguments(c)
	if err != nil {
		return err
	}
	world, err := openWorld()
	if err != nil {
		return err
	}
	if err := trainIn(c, a, world); err != nil {
		return inWorld(world, err)
	}
	return inWorld(world, world.Close())
}

// flagValues lists the flags given and their values, sorted.
func flagValues(c *cli.Context) []byte {
	names := c.FlagNames()
	slices.Sort(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s=%v\n", n, c.Value(n))
	}
	return []byte(b.String())
}

// trainIn runs the train command as one process of world (process 0
// checks, locks and writes output_dir and prints; the others wait for it).
func trainIn(c *cli.Context, a ortrain.TrainingArguments, world collective.Comm) error {
	main := world.Rank() == 0
	var err error
	if world.Size() > 1 && c.Bool("demo") {
		return fault.Settingsf("--demo runs in one process; with mpirun, train its folder instead: ortrain train --demo --output_dir d writes the model and data to d/model (see --help)")
	}
	if world.Size() > 1 {
		if err := collective.CheckSame(world, "command-line flags", flagValues(c)); err != nil {
			return err
		}
	}
	a.Device = localDevice(a.Device, world)
	if main {
		if err := ortrain.CheckOutputDir(&a); err != nil {
			return fault.Settingsf("%v", err)
		}
	}
	// The final save writes model.safetensors, model.onnx and the configs
	// into output_dir: never into the model or artifact folder read.
	for _, flag := range []string{"model", "artifacts"} {
		if p := c.String(flag); p != "" && modelfile.SamePath(p, a.OutputDir) {
			return fault.Settingsf("--output_dir %s is the --%s folder, whose files the run would overwrite; choose another output_dir", a.OutputDir, flag)
		}
	}
	stdout, stderr := c.App.Writer, c.App.ErrWriter
	if !main {
		stdout = io.Discard // process 0 reports for all
	}
	var cfg engine.Config
	if c.Bool("demo") {
		if c.IsSet("model") || c.IsSet("train_file") {
			return fault.Settingsf("--demo brings its own model and data; drop --model/--train_file")
		}
	} else {
		cfg = engine.Config{
			Args: a, Model: c.String("model"), Artifacts: c.String("artifacts"), Tokenizer: c.String("tokenizer"),
			TrainFile: c.String("train_file"), ValidationFile: c.String("validation_file"), TestFile: c.String("test_file"),
			Format: engine.DataFormat{SourceLang: c.String("source_lang"), TargetLang: c.String("target_lang"),
				SourceField: c.String("source_field"), TargetField: c.String("target_field")},
			SourcePrefix: c.String("source_prefix"), MaxSourceLength: c.Int("max_source_length"), MaxTargetLength: c.Int("max_target_length"),
			GroupByLength: c.Bool("group_by_length"), RougeUseStemmer: c.Bool("rouge_use_stemmer"), NoCPUArena: c.Bool("no-cpu-arena"),
			AssumeArchitecture: c.String("assume_architecture"),
			MaxTrainSamples:    c.Int("max_train_samples"), MaxEvalSamples: c.Int("max_eval_samples"), MaxPredictSamples: c.Int("max_predict_samples"),
			ValMaxTargetLength: c.Int("val_max_target_length"), PadToMaxLength: c.Bool("pad_to_max_length"),
			CountPadInLoss: !c.Bool("ignore_pad_token_for_loss"),
		}
		if c.IsSet("num_beams") {
			n := c.Int("num_beams")
			if n < 1 {
				return fault.Settingsf("--num_beams %d: must be at least 1", n)
			}
			cfg.Args.GenerationNumBeams = &n
		}
		if n := c.Int("val_max_target_length"); n > 0 && cfg.Args.GenerationMaxLength == nil {
			cfg.Args.GenerationMaxLength = &n // run_translation: generation_max_length or val_max_target_length
		}
		if cfg.ParamNames, err = paramNames(c.StringSlice("param_name")); err != nil {
			return err
		}
		if cfg.LoRA, err = loraConfig(c); err != nil {
			return err
		}
		cfg.Adapter = c.String("adapter")
		if c.Bool("merge_lora") && cfg.LoRA == nil && cfg.Adapter == "" && cfg.Artifacts == "" {
			return fault.Settingsf("--merge_lora merges LoRA adapters: give the LoRA settings (--lora_r, --lora_target_modules, ...) or --adapter")
		}
		for _, name := range []string{"max_source_length", "max_target_length", "val_max_target_length", "max_train_samples", "max_eval_samples", "max_predict_samples"} {
			if n := c.Int(name); n < 0 {
				return fault.Settingsf("--%s %d: must be 0 (no limit) or positive", name, n)
			}
		}
		if cfg.Model == "" && cfg.Artifacts == "" {
			return fault.Settingsf("give --model DIR (or --artifacts DIR), or try --demo")
		}
		if !a.DoTrain && !a.DoEval && !a.DoPredict {
			// HF's run_translation loads everything and then does nothing.
			return fault.Settingsf("nothing to do: pass --do_train (with --train_file), --do_eval (with --validation_file) or --do_predict (with --test_file)")
		}
		if a.DoTrain && cfg.TrainFile == "" {
			return fault.Settingsf("--do_train needs --train_file")
		}
		if (a.DoEval || a.EvalStrategy != ortrain.StrategyNo) && cfg.ValidationFile == "" {
			return fault.Settingsf("You have set `args.eval_strategy` to %s (or do_eval) but gave no --validation_file. Either set --eval_strategy no or pass --validation_file.", a.EvalStrategy)
		}
		if a.DoPredict && cfg.TestFile == "" {
			return fault.Settingsf("--do_predict needs --test_file")
		}
	}
	// One run per output_dir, from before anything is written there (and
	// only once the call is known to be valid: a refused call leaves no
	// output_dir behind).
	var lock *ortrain.OutputLock
	if main {
		l, err := ortrain.LockOutputDir(a.OutputDir)
		if err != nil {
			return err
		}
		defer l.Release()
		lock = l
	}
	if world.Size() > 1 {
		// The others start once output_dir is checked and locked.
		if err := world.Barrier(); err != nil {
			return err
		}
	}
	if c.Bool("demo") {
		if err := os.MkdirAll(a.OutputDir, 0o755); err != nil {
			return err
		}
		if cfg, err = engine.DemoConfig(a.OutputDir, a); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "ortrain demo: model, tokenizer and data in %s\n", filepath.Join(a.OutputDir, "model"))
	}
	cfg.Version = Version
	cfg.Warn = stderr
	cfg.Comm = world

	env, err := openRuntime(c)
	if err != nil {
		return err
	}
	defer env.Close()
	sess, err := engine.Prepare(c.Context, env, cfg)
	if err != nil {
		return err
	}
	defer sess.Close()
	tr := sess.Trainer
	if lock != nil {
		tr.OutputLock = lock
	}
	if err := tr.CheckSetup(); err != nil {
		return err
	}
	for _, line := range sess.Manifest.ParameterReport("--param_name") {
		fmt.Fprintln(stdout, line)
	}
	if tr.TrainData != nil {
		mem, err := sess.MemoryReport(memoryReportLength)
		if err != nil {
			return err
		}
		for _, line := range mem {
			fmt.Fprintln(stdout, line)
		}
	}
	bar := !c.Bool("no-progress") && main && progress.IsTerminal(stdout)
	tr.Callbacks = append(tr.Callbacks, &ortrain.ConsoleCallback{Out: stdout, Progress: bar})
	defer tr.Close() // report_to files
	if tr.TrainData != nil && a.DoTrain {
		tv, err := tr.TrainingValues()
		if err != nil {
			return err
		}
		// HF's banner (Trainer._inner_training_loop), with its numbers.
		fmt.Fprintf(stdout, "***** Running training *****\n  Num examples = %d\n  Num Epochs = %d\n  Num update steps per epoch = %d\n  Instantaneous batch size per device = %d\n  Total train batch size (w. parallel, distributed & accumulation) = %d\n  Gradient Accumulation steps = %d\n  Total optimization steps = %d\n",
			tv.NumExamples, tv.NumEpochs, tv.UpdateStepsPerEpoch, a.PerDeviceTrainBatchSize, tv.TotalBatchSize, a.GradientAccumulationSteps, tv.MaxSteps)
	}
	res, err := tr.Run(c.Context, ortrain.RunOptions{TestData: sess.Test, Decode: sess.Decode, Out: stdout})
	if err != nil {
		return err
	}
	if c.Bool("merge_lora") && a.DoTrain {
		if err := sess.SaveMerged(a.OutputDir); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "merged model (adapters merged into the weights): %s\n", filepath.Join(a.OutputDir, "model.safetensors"))
	}
	if st := tr.State(); st != nil && st.BestModelCheckpoint != nil {
		fmt.Fprintf(stdout, "best checkpoint: %s (%s = %v)\n", *st.BestModelCheckpoint, a.MetricToCheck(), *st.BestMetric)
	}
	_ = res
	var wrote []string
	for _, f := range []string{"training_curves.png", "all_results.json", "trainer_state.json", ortrain.PredictionsName} {
		if _, err := os.Stat(filepath.Join(a.OutputDir, f)); err == nil {
			wrote = append(wrote, f)
		}
	}
	if len(wrote) > 0 {
		fmt.Fprintf(stdout, "outputs in %s (%s)\n", a.OutputDir, strings.Join(wrote, ", "))
	}
	return nil
}
