package main

import (
	"github.com/urfave/cli/v2"

	"github.com/ortrain/ortrain/ortrain/runtime"
)

// isRuntimeError reports whether err means ONNX Runtime itself is unusable.
func isRuntimeError(err error) bool { return runtime.IsRuntimeError(err) }

// openRuntime loads ONNX Runtime as the global --ort-lib flag says (else
// $ORTRAIN_ORT_LIB, else the user cache).
func openRuntime(c *cli.Context) (*runtime.Env, error) {
	return runtime.Open(c.String("ort-lib"))
}
