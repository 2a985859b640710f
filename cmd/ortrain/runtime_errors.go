package main

import (
	"errors"

	"github.com/urfave/cli/v2"

	"github.com/ortrain/ortrain/internal/onnxrt"
)

// isRuntimeError reports whether err means ONNX Runtime itself is unusable.
func isRuntimeError(err error) bool { return onnxrt.IsRuntimeError(err) }

// isUnknownDevice reports whether err comes from a --device value that names
// no execution provider: a usage error.
func isUnknownDevice(err error) bool { return errors.Is(err, onnxrt.ErrUnknownProvider) }

// isUnloadableModel reports whether ONNX Runtime could not parse a model
// file (cut short, not ONNX): bad input data.
func isUnloadableModel(err error) bool { return errors.Is(err, onnxrt.ErrModelUnloadable) }

// openRuntime loads ONNX Runtime as the global --ort-lib flag says (else
// $ORTRAIN_ORT_LIB, else the user cache).
func openRuntime(c *cli.Context) (*onnxrt.Env, error) {
	return onnxrt.Open(c.String("ort-lib"))
}
