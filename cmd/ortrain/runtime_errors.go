package main

// isRuntimeError reports whether err means ONNX Runtime itself is unusable.
func isRuntimeError(err error) bool { return false }
