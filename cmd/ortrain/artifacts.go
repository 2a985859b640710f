package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/modelfile"
)

func newArtifactsCommand() *cli.Command {
	return &cli.Command{
		Name:  "artifacts",
		Usage: "build training artifacts (training, eval, optimizer and generation graphs, parameters, manifest) from an exported seq2seq model",
		Description: `Reads a forward graph (input_ids, attention_mask, decoder_input_ids[, decoder_attention_mask] -> logits)
and writes to --out: training_model.onnx (loss, token count and gradients, accumulated in-graph),
eval_model.onnx (loss sum, token count, logits), optimizer_model.onnx (torch AdamW after HF clipping),
optimizer_sgd_model.onnx, the generation graphs given with --encoder/--decoder/--decoder-with-past
rewritten to take the parameters as inputs, model.safetensors and manifest.json.
Parameters are named after the PyTorch model using --weights (default: model.safetensors beside the model).

With --from-ort DIR it imports a folder made by ONNX Runtime's generate_artifacts instead: the forward
graph comes from eval_model.onnx, the parameters, AdamW moments and step from the checkpoint, so that
training continues on any ONNX Runtime (see ort_import.json in --out for what was carried over).`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Usage: "forward graph `MODEL.onnx` (or use --from-ort)"},
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
			&cli.Int64Flag{Name: "opset", Usage: "standard opset `N` of the optimizer graphs (default 17)"},
			&cli.StringFlag{Name: "from-ort", Usage: "import an ONNX Runtime training artifact `DIR` (checkpoint, eval_model.onnx, optimizer_model.onnx) instead of --model"},
			&cli.StringFlag{Name: "prefix", Usage: "with --from-ort: the `PREFIX` generate_artifacts put before the file names"},
		},
		Before: requireFlags("out"),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fault.Settingsf("artifacts takes flags only, got arguments %v", c.Args().Slice())
			}
			if c.String("from-ort") != "" {
				return runImportORT(c)
			}
			if c.String("model") == "" {
				return fault.Settingsf("artifacts needs --model MODEL.onnx (or --from-ort DIR)")
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
			man, err := artifacts.Build(artifacts.Config{
				Roles: roles, LogitsOutput: c.String("logits"),
				Model: c.String("model"), Out: c.String("out"), Weights: c.String("weights"),
				Encoder: c.String("encoder"), Decoder: c.String("decoder"), DecoderWithPast: c.String("decoder-with-past"),
				Freeze: c.StringSlice("freeze"), LabelSmoothing: c.Float64("label-smoothing"),
				OptimizerOpset: c.Int64("opset"), Version: Version, DisableDropout: c.Bool("no-dropout"),
			})
			if err != nil {
				return err
			}
			trainable, frozen := 0, 0
			for _, p := range man.Parameters {
				if p.Trainable {
					trainable++
				} else {
					frozen++
				}
			}
			fmt.Fprintf(c.App.Writer, "wrote %s: %d trainable and %d frozen parameters, %d graphs for generation\n", c.String("out"), trainable, frozen, len(man.Generation))
			for _, n := range man.Notes {
				fmt.Fprintf(c.App.Writer, "note: %s\n", n)
			}
			return nil
		},
	}
}
