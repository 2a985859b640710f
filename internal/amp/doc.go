// Package amp gives ortrain's graphs PyTorch's mixed precision: the
// rewrite that places casts where torch.autocast does (Rewrite, with the
// CPU and CUDA op lists of torch 2.15), half-precision models as
// model.to(dtype) makes them, the float32 emulation of a low-precision
// graph for CPUs without its kernels (Emulate), torch.amp.GradScaler's
// dynamic loss scale (GradScaler) and its unscale graph (BuildUnscale),
// and the fitting of a low-precision graph to ONNX Runtime 1.29.0's CUDA
// kernels (FitKernels, with internal/cudakernels' table).
//
// Parameters stay float32 masters everywhere: graphs read them as float32
// inputs and cast them, so gradients, their sums and the optimizer state
// are float32 and the optimizer graphs are unchanged.
//
// What the graphs cannot know: an export from a float32 model has dropped
// the casts that were no-ops in float32 (.float(), .to(dtype)), so a
// half-precision model (HalfModel) cannot tell an explicit upcast from a
// cast to the model's dtype; it keeps float32 only for arithmetic that
// computes integers (position buckets). Operators an exporter decomposes
// (gelu, silu, rsqrt) are seen as their parts.
package amp
