// Package runtime runs ONNX models on ONNX Runtime. It is the only package of
// ortrain that uses cgo.
//
// It builds on github.com/yalue/onnxruntime_go (environment, session
// creation, execution providers, Go-backed tensors) and adds a small C shim
// (shim.c) for what that wrapper lacks or gets wrong:
//
//   - every Run goes through an IoBinding owned by this package, so outputs
//     allocated by ONNX Runtime stay as they are: rank-0 outputs work (the
//     wrapper cannot auto-allocate them) and values may live in a device's
//     memory (the wrapper copies every output to Go memory as if it were on
//     the host);
//   - bound output names are tracked here, because the wrapper's
//     IoBinding.GetBoundOutputNames garbles every name after the first;
//   - values can be allocated on a device and bound as inputs and outputs,
//     so parameters and optimizer state stay on the GPU between runs.
//
// The ONNX Runtime environment is process-wide: Open loads the library once,
// later Opens of the same library share it, and the environment is destroyed
// when the last Env is closed.
package onnxrt
