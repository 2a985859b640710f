package main

import (
	"encoding/json"

	"github.com/urfave/cli/v2"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/onnx"
)

func newInspectCommand() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "describe an ONNX model: inputs and outputs with shapes, opsets, operator histogram, parameter count and bytes",
		ArgsUsage: "MODEL.onnx",
		Flags:     []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fault.Settingsf("inspect takes one model file, got %d arguments", c.NArg())
			}
			path := c.Args().First()
			// External tensors are not read: inspecting a 10 GB model stays cheap.
			m, err := onnx.LoadWith(path, onnx.LoadOptions{KeepExternal: true})
			if err != nil {
				return err
			}
			s := onnx.Summarize(m)
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(s)
			}
			return s.WriteText(c.App.Writer)
		},
	}
}
