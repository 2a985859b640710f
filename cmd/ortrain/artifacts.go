package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/modelfile"
	"github.com/ortrain/ortrain/ortrain"
	"github.com/ortrain/ortrain/ortrain/engine"
)

// memoryReportLength is the source and target length the memory reports
// of train and artifacts assume.
const memoryReportLength = 128

func newArtifactsCommand() *cli.Command {
	return &cli.Command{
		Name:  "artifacts",
		Usage: "build training artifacts (training, eval, optimizer and generation graphs, parameters, manifest) from an exported seq2seq model",
		Description: `Reads a forward graph (input_ids, attention_mask, decoder_input_ids[, decoder_attention_mask] -> logits)
and writes to --out: training_model.onnx (loss, token count and gradients, accumulated in-graph),
eval_model.onnx (loss sum, token count, logits), optimizer_model.onnx (torch AdamW after HF clipping),
optimizer_sgd_model.onnx, the generation graphs given with --encoder/--decoder/--decoder-with-past
rewritten to take the parameters as inputs, model.safetensors and manifest.json.
--model may also be an exported model folder: its model.onnx, or the folder optimum-cli export onnx
wrote (encoder_model.onnx and decoder_model.onnx, or decoder_model_merged.onnx, composed into the
forward graph; with a decoder with past, the KV-cache generation graphs too).

Every float initializer is identified as a tensor of the model, before anything is written: by its
own name, as a tied or folded copy of another (a transposed lm_head), by the module path in the
names of the nodes that read it (/model/encoder/layers.0/fc1/MatMul reads
model.encoder.layers.0.fc1.weight), or by its values in --weights (default: model.safetensors
beside the model), against which names are checked too. What stays unknown is listed, kept as a
constant; --param-name ONNX=NAME names it by hand.

With --from-ort DIR it imports a folder made by ONNX Runtime's generate_artifacts instead: the forward
graph comes from eval_model.onnx, the parameters, AdamW moments and step from the checkpoint, so that
training continues on any ONNX Runtime (see ort_import.json in --out for what was carried over).`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "model", Usage: "forward graph `MODEL.onnx`, or an exported model folder (model.onnx or Optimum's export); or use --from-ort"},
			&cli.StringSliceFlag{Name: "param-name", Aliases: []string{"param_name"}, Usage: "`ONNX=NAME`: the initializer ONNX is the model's tensor NAME (for initializers ortrain cannot identify); repeatable"},
			&cli.StringFlag{Name: "out", Usage: "artifact `DIR` (created)"},
			&cli.StringFlag{Name: "weights", Usage: "the model's safetensors `FILE` (default: model.safetensors beside --model)"},
			&cli.StringFlag{Name: "encoder", Usage: "encoder graph `FILE` to rewrite for generation"},
			&cli.StringFlag{Name: "decoder", Usage: "decoder graph `FILE` to rewrite for generation"},
			&cli.StringFlag{Name: "decoder-with-past", Usage: "decoder-with-past graph `FILE` to rewrite for generation"},
			&cli.StringSliceFlag{Name: "freeze", Usage: "freeze parameters whose name matches `REGEX` (repeatable; each must match)"},
			&cli.StringSliceFlag{Name: "input", Usage: "`NAME=ROLE`: the forward graph's input NAME is ROLE (input_ids, attention_mask, decoder_input_ids, decoder_attention_mask); repeatable"},
			&cli.StringFlag{Name: "logits", Usage: "forward graph output `NAME` holding the logits (default logits); with --from-ort: the forward output inside the eval model (default: logits, else traced from the loss)"},
			&cli.Float64Flag{Name: "label-smoothing", Usage: "HF label_smoothing_factor `F` in [0, 1)"},
			&cli.BoolFlag{Name: "no-dropout", Usage: "train with Dropout nodes in inference mode (default: seeded training-mode dropout where the graph has Dropout)"},
			&cli.BoolFlag{Name: "gradient_checkpointing", Aliases: []string{"gradient-checkpointing", "activation_checkpointing", "activation-checkpointing"}, Usage: "the training graph recomputes each transformer layer's activations in the backward pass instead of keeping them (less memory, same gradients)"},
			&cli.Int64Flag{Name: "opset", Usage: "standard opset `N` of the optimizer graphs (default 17)"},
			&cli.StringFlag{Name: "assume_architecture", Aliases: []string{"assume-architecture"}, Usage: "ASSUME that the model trains exactly like transformers model_type `TYPE` (e.g. bart), whatever config.json beside --model says"},
			&cli.StringFlag{Name: "from-ort", Usage: "import an ONNX Runtime training artifact `DIR` (checkpoint, eval_model.onnx, optimizer_model.onnx) instead of --model"},
			&cli.StringFlag{Name: "prefix", Usage: "with --from-ort: the `PREFIX` generate_artifacts put before the file names"},
			&cli.BoolFlag{Name: "fp16", Usage: "also write float16 mixed-precision graphs (torch.autocast's op lists for --device)"},
			&cli.BoolFlag{Name: "bf16", Usage: "also write bfloat16 mixed-precision graphs"},
			&cli.BoolFlag{Name: "fp16_full_eval", Aliases: []string{"fp16-full-eval"}, Usage: "also write eval and generation graphs of the model cast to float16"},
			&cli.BoolFlag{Name: "bf16_full_eval", Aliases: []string{"bf16-full-eval"}, Usage: "also write eval and generation graphs of the model cast to bfloat16"},
			&cli.StringFlag{Name: "device", Value: "cpu", Usage: "the device whose autocast op lists mixed-precision graphs follow: cpu, cuda"},
		}, loraFlagList(false)...),
		Before: requireFlags("out"),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fault.Settingsf("artifacts takes flags only, got arguments %v", c.Args().Slice())
			}
			if c.String("from-ort") != "" {
				return runImportORT(c)
			}
			if c.String("model") == "" {
				return fault.Settingsf("artifacts needs --model MODEL.onnx or a model folder (or --from-ort DIR)")
			}
			if f := c.Float64("label-smoothing"); f < 0 || f >= 1 {
				return fault.Settingsf("--label-smoothing %v must be in [0, 1)", f)
			}
			if n := c.Int64("opset"); n != 0 && (n < 13 || n > 23) {
				return fault.Settingsf("--opset %d: choose an opset between 13 and 23", n)
			}
			for _, flag := range []string{"model", "weights", "encoder", "decoder", "decoder-with-past"} {
				if p := c.String(flag); p != "" {
					if _, err := os.Stat(p); err != nil {
						return fault.Inputf("--%s: %w", flag, err)
					}
				}
			}
			inputs := map[string]string{"--model": c.String("model"), "--weights": c.String("weights"), "--encoder": c.String("encoder"),
				"--decoder": c.String("decoder"), "--decoder-with-past": c.String("decoder-with-past")}
			if err := modelfile.CheckOutput("--out", c.String("out"), inputs); err != nil {
				return err
			}
			roles := map[string]string{}
			for _, kv := range c.StringSlice("input") {
				name, role, ok := strings.Cut(kv, "=")
				switch {
				case !ok || name == "":
					return fault.Settingsf("--input %q: want NAME=ROLE", kv)
				case role != "input_ids" && role != "attention_mask" && role != "decoder_input_ids" && role != "decoder_attention_mask":
					return fault.Settingsf("--input %q: ROLE must be input_ids, attention_mask, decoder_input_ids or decoder_attention_mask", kv)
				}
				roles[name] = role
			}
			names, err := paramNames(c.StringSlice("param-name"))
			if err != nil {
				return err
			}
			cfg := artifacts.Config{
				Model: c.String("model"), Encoder: c.String("encoder"), Decoder: c.String("decoder"), DecoderWithPast: c.String("decoder-with-past"),
			}
			if st, err := os.Stat(cfg.Model); err == nil && st.IsDir() {
				if cfg.Encoder != "" || cfg.Decoder != "" || cfg.DecoderWithPast != "" {
					return fault.Settingsf("--model %s is a folder: its graphs are found there; drop --encoder/--decoder/--decoder-with-past or give --model MODEL.onnx", cfg.Model)
				}
				if cfg, err = artifacts.FolderConfig(cfg.Model); err != nil {
					return err
				}
			}
			cfg.Roles, cfg.LogitsOutput, cfg.ParamNames = roles, c.String("logits"), names
			cfg.Out, cfg.Weights, cfg.Freeze, cfg.LabelSmoothing = c.String("out"), c.String("weights"), c.StringSlice("freeze"), c.Float64("label-smoothing")
			cfg.OptimizerOpset, cfg.Version, cfg.DisableDropout = c.Int64("opset"), Version, c.Bool("no-dropout")
			cfg.AssumeArchitecture = c.String("assume_architecture")
			cfg.GradientCheckpointing = c.Bool("gradient_checkpointing")
			a := ortrain.DefaultArguments()
			a.FP16, a.BF16, a.FP16FullEval, a.BF16FullEval, a.Device = c.Bool("fp16"), c.Bool("bf16"), c.Bool("fp16_full_eval"), c.Bool("bf16_full_eval"), c.String("device")
			if err := a.Finalize(); err != nil {
				return err
			}
			if cfg.Precisions, err = engine.Precisions(a); err != nil {
				return err
			}
			if cfg.LoRA, err = loraConfig(c); err != nil {
				return err
			}
			if cfg.LoRA != nil {
				cfg.LoRA.Seed = uint64(a.Seed)
			}
			cfg.Adapter = c.String("adapter")
			man, err := artifacts.Build(cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "wrote %s: %d graphs for generation\n", c.String("out"), len(man.Generation))
			if a := man.Architecture; a != nil {
				assumed := ""
				if a.AssumedFor != "" {
					assumed = fmt.Sprintf(" (assumed for model_type %s)", a.AssumedFor)
				}
				fmt.Fprintf(c.App.Writer, "architecture %s%s: gradient accumulation %s, decoder start %s\n", a.ModelType, assumed, a.GradientAccumulation, a.DecoderStart)
				for _, d := range a.Differences {
					fmt.Fprintf(c.App.ErrWriter, "warning: %s\n", d)
				}
			}
			for _, line := range man.ParameterReport("--param-name") {
				fmt.Fprintln(c.App.Writer, line)
			}
			for _, n := range man.Notes {
				fmt.Fprintf(c.App.Writer, "note: %s\n", n)
			}
			variants := []string{""}
			for _, v := range man.Variants {
				if v.Files.Training != "" {
					variants = append(variants, v.Name)
				}
			}
			for _, v := range variants {
				mem, err := man.Memory(cfg.Out, v, memoryReportLength)
				if err != nil {
					return err
				}
				for _, line := range mem.Lines() {
					fmt.Fprintln(c.App.Writer, line)
				}
			}
			return nil
		},
	}
}

// paramNames parses repeated ONNX=NAME flags.
func paramNames(flags []string) (map[string]string, error) {
	if len(flags) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range flags {
		from, to, ok := strings.Cut(kv, "=")
		if !ok || from == "" || to == "" {
			return nil, fault.Settingsf("--param-name %q: want ONNX=NAME (an initializer of the graph = the model's tensor name)", kv)
		}
		out[from] = to
	}
	return out, nil
}
