package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/modelfile"
	"github.com/ortrain/ortrain/internal/ortimport"
)

// runImportORT is `ortrain artifacts --from-ort DIR --out DIR`.
func runImportORT(c *cli.Context) error {
	if c.String("model") != "" {
		return fault.Settingsf("give --model or --from-ort, not both")
	}
	from := c.String("from-ort")
	if _, err := os.Stat(from); err != nil {
		return fault.Inputf("--from-ort: %w", err)
	}
	if err := modelfile.CheckOutput("--out", c.String("out"), map[string]string{"--from-ort": from}); err != nil {
		return err
	}
	rep, err := ortimport.Import(ortimport.Options{From: from, Out: c.String("out"), Prefix: c.String("prefix"), Logits: c.String("logits"), Version: Version})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "imported %s into %s: %d trainable and %d frozen parameters", from, c.String("out"), rep.Trainable, rep.Frozen)
	if rep.MomentsImported {
		fmt.Fprintf(c.App.Writer, ", AdamW moments at step %d", rep.Step)
	}
	fmt.Fprintf(c.App.Writer, "\nsemantics: %s\n", rep.Semantics)
	return nil
}

func newExportORTCommand() *cli.Command {
	return &cli.Command{
		Name:  "export-ort",
		Usage: "write ortrain parameters (and AdamW state) as an ONNX Runtime training checkpoint",
		Description: `Writes a checkpoint flatbuffer that onnxruntime-training (1.15-1.19) loads with
CheckpointState.load_checkpoint, with the parameter names and layout of the artifact folder's graphs.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "artifacts", Usage: "ortrain artifact `DIR`"},
			&cli.StringFlag{Name: "params", Usage: "parameters `FILE` (safetensors; default: the folder's initial parameters, e.g. a checkpoint's model.safetensors)"},
			&cli.StringFlag{Name: "optimizer-state", Usage: "ortrain AdamW state `FILE` to include as the checkpoint's optimizer group"},
			&cli.Float64Flag{Name: "initial-lr", Usage: "initial learning rate `LR` recorded in the optimizer group", Value: 1e-3},
			&cli.StringFlag{Name: "out", Usage: "checkpoint `FILE` to write"},
		},
		Before: requireFlags("artifacts", "out"),
		Action: func(c *cli.Context) error {
			err := ortimport.Export(ortimport.ExportOptions{Artifacts: c.String("artifacts"), Parameters: c.String("params"),
				OptimizerState: c.String("optimizer-state"), InitialLR: float32(c.Float64("initial-lr")), Out: c.String("out")})
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "wrote %s\n", c.String("out"))
			return nil
		},
	}
}
