// Package autodiff builds backward graphs for ONNX graphs, in standard ONNX
// operators only, so that any inference build of ONNX Runtime can train.
//
// The API is two functions:
//
//	grads, err := autodiff.Backward(g, opsets, "loss", params, autodiff.Options{})
//	n, err := autodiff.EnableTrainingDropout(g, "dropout_seed")
//
// Backward appends to g the nodes computing d(loss)/d(x) for every x in
// params and returns x -> gradient value name; the caller makes those
// values graph outputs. The loss must be a float scalar of g. With
// Options.SeedGradient the gradient of the loss is read from a graph input
// (for example 1/accumulation steps); Options.ZeroGradients gives an
// explicit zero gradient to parameters the loss does not depend on (they
// are left out of the map otherwise).
//
// How it works: element types and shapes come from internal/onnx's
// InferShapes (with small integer constants folded, as exporters compute
// axes and shapes). A forward pass marks the values that
// depend differentiably on a parameter; a backward pass marks the values
// the loss depends on; only nodes with an output in both sets are
// differentiated, in reverse topological order, one vector-Jacobian rule
// per operator. Integer, boolean and shape computations never carry a
// gradient. Contributions to a value used several times (tied embeddings
// and lm_head) are summed with one Sum node; Gather's row gradients are
// scatter-added into the other contributions instead of being expanded to
// table-sized zeros first.
//
// Leanness: rules read forward values instead of recomputing them (Exp,
// Sigmoid, Tanh, Sqrt, Softmax use their outputs; LayerNormalization and
// SimplifiedLayerNormalization gain their optional Mean / InvStdDev
// outputs; training-mode Dropout its mask output), broadcasting is reduced
// only where shapes may differ, and constants are Constant nodes shared by
// all rules (never initializers, so callers that turn initializers into
// parameters do not pick them up). The backward nodes are appended to the
// forward graph, so ONNX Runtime plans memory over the joint graph.
//
// Broadcasting: the rank of every value on a differentiable path must be
// known statically (it always is in torch exports). Where a dimension is
// statically known to be broadcast, the gradient is summed over constant
// axes; where a symbolic dimension of an operand might be 1 while the
// result's is not, the axes are computed at run time from Shape(operand)
// (ReduceSum with noop_with_empty_axes), so symbolic dimensions are always
// reduced correctly.
//
// Operators with rules (standard domain unless noted): Abs, Add, Cast,
// CastLike, Clip, Concat, Cos, CumSum, Div, Dropout, Einsum, Elu, Erf, Exp,
// Expand, Flatten, Gather, GatherElements, GatherND, Gelu (and com.microsoft
// Gelu, FastGelu), Gemm, Identity, LayerNormalization, LeakyRelu, Log,
// LogSoftmax, MatMul, Max, Mean, Min, Mul, Neg, NegativeLogLikelihoodLoss,
// Pad, Pow, Reciprocal, ReduceL2, ReduceLogSumExp, ReduceMax, ReduceMean,
// ReduceMin, ReduceSum, ReduceSumSquare, Relu, Reshape, Sigmoid,
// SimplifiedLayerNormalization (standard and com.microsoft domains, as ONNX
// Runtime registers it), Sin, Slice, Softmax, SoftmaxCrossEntropyLoss,
// Softplus, Split, Sqrt, Squeeze, Sub, Sum, Tanh, Tile, Transpose, Trilu,
// Unsqueeze, Where; Ops() lists them. Shape, Size, comparisons,
// Floor/Ceil/Round/Sign, random sources and other integer or boolean
// computations carry no gradient. A node on a path from a parameter to the
// loss whose operator has no rule is an error (errors.Is ErrNoRule) naming
// the node, the operator and the parameter whose gradient it blocks.
//
// Dropout: torch exports Dropout in inference mode, or with a training_mode
// input and a random mask that changes on every run. EnableTrainingDropout
// rewrites each Dropout into x * mask / (1 - ratio) where the mask is a
// function of (seed input, node number, element index): a counter-based
// generator (Widynski's Squares) gives one uint32 per row and per column,
// and element (i, j) keeps when (row_i + col_j)^2 mod 2^32 is below
// (1 - ratio) * 2^32. Only unsigned Mul, Add and Div by 2^32 are used, whose
// wrapping arithmetic is the same on every execution provider, so a seed
// gives the same masks on CPU and CUDA; the trainer feeds
// seed = f(run seed, step). On t5-small's attention probabilities
// ([8,8,128,128]) this costs about a tenth of ONNX Runtime's own Dropout
// (BenchmarkDropout). Backward then reuses the mask through the Mul rule.
//
// Gradient checkpointing: with Options.Checkpoint, Backward then rewrites
// the joint graph so that the forward values each segment's backward nodes
// read (a segment is a run of forward nodes, one transformer layer) are
// computed again by copies of the segment's nodes, fed from the segment's
// inputs through Where(c, x, x), where c derives from the gradient of the
// segment's last output: the copies cannot run before the backward pass
// reaches the segment, whatever order ONNX Runtime chooses, and the
// originals die with the forward pass. Values computed from weights alone
// are recomputed from gated weights; dropout masks, functions of the seed,
// come out the same, so the gradients are bit for bit those without
// checkpointing when ONNX Runtime runs the graphs unoptimised.
//
// Opsets: graphs must import the standard opset 13 or newer (torch exports
// 14-18). Gather's and GatherElements' rules scatter with reduction "add",
// which needs opset 16: Backward raises opsets[""] to 16 in the map it is
// given, and the caller writes that back into the model.
//
// Limits: Einsum operands with repeated subscripts (diagonals) or with
// ellipsis dimensions broadcast against each other have no rule; Slice
// with non-unit steps is differentiated along one axis at a time only.
package autodiff
