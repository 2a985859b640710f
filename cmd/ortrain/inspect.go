package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ortrain/ortrain/internal/cudakernels"
	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/onnx"
)

func newInspectCommand() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "describe an ONNX model: inputs and outputs with shapes, opsets, operator histogram, parameter count and bytes",
		ArgsUsage: "MODEL.onnx",
		Description: "With --provider cuda it also lists every node (subgraphs included) that ONNX Runtime 1.29.0's\n" +
			"CUDA execution provider has no kernel for, given the node's opset and element types: nodes ONNX Runtime\n" +
			"would run on the CPU, copying their inputs and outputs at every run. No GPU is needed.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
			&cli.StringFlag{Name: "provider", Usage: "also check the nodes against an execution provider's kernels (cuda)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fault.Settingsf("inspect takes one model file, got %d arguments", c.NArg())
			}
			provider := strings.ToLower(strings.TrimSpace(c.String("provider")))
			if provider != "" && provider != "cuda" {
				return fault.Settingsf("inspect --provider %q: only cuda has a kernel table (ONNX Runtime 1.29.0's CUDA provider)", c.String("provider"))
			}
			path := c.Args().First()
			// External tensors are not read: inspecting a 10 GB model stays cheap.
			m, err := onnx.LoadWith(path, onnx.LoadOptions{KeepExternal: true})
			if err != nil {
				return err
			}
			s := onnx.Summarize(m)
			var cov *coverage
			if provider == "cuda" {
				table, err := cudakernels.CUDA()
				if err != nil {
					return err
				}
				rep, err := table.Check(m)
				if err != nil {
					return fault.Inputf("%s: checking CUDA kernels: %w", path, err)
				}
				cov = &coverage{Provider: "CUDAExecutionProvider", Runtime: table.Runtime, Nodes: rep.Nodes, Uncovered: []uncoveredNode{}}
				for _, u := range rep.Uncovered {
					cov.Uncovered = append(cov.Uncovered, uncoveredNode{Graph: u.Graph, Node: u.Node, Op: u.Op, Types: u.Types, Reason: u.Reason})
				}
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(struct {
					onnx.Summary
					Kernels *coverage `json:",omitempty"`
				}{s, cov})
			}
			if err := s.WriteText(c.App.Writer); err != nil {
				return err
			}
			if cov != nil {
				return cov.writeText(c.App.Writer)
			}
			return nil
		},
	}
}

// coverage is inspect --provider's report.
type coverage struct {
	Provider, Runtime string
	Nodes             int // nodes checked (Constant nodes are not: ONNX Runtime folds them)
	Uncovered         []uncoveredNode
}

type uncoveredNode struct {
	Graph  string `json:",omitempty"` // "" for the main graph
	Node   string
	Op     string
	Types  map[string]string
	Reason string
}

func (c *coverage) writeText(w io.Writer) error {
	_, err := fmt.Fprintf(w, "\n%s kernels (ONNX Runtime %s): %d nodes checked, %d without a kernel\n",
		c.Provider, c.Runtime, c.Nodes, len(c.Uncovered))
	for _, u := range c.Uncovered {
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "  %s\n", cudakernels.Uncovered{Graph: u.Graph, Node: u.Node, Op: u.Op, Types: u.Types, Reason: u.Reason})
	}
	return err
}
