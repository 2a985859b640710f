// Package optim builds the loss and optimizer graphs of ortrain's training
// artifacts in standard ONNX operators: HF's cross entropy (ignore index
// -100, optional label smoothing as LabelSmoother computes it) appended to a
// forward graph, and torch-exact AdamW, transformers' legacy AdamW and SGD
// with HF's global-norm clipping, grad_norm output and no-decay set
// (Decays). Every per-parameter value comes back under UpdatedName of its
// input, so the runner swaps buffers by name.
package optim
