package amp

import "fmt"

// Device names whose torch.autocast op lists a rewrite follows.
const (
	CPU  = "cpu"
	CUDA = "cuda"
)

// class is what autocast does with an operator.
type class int

const (
	// passthrough: the op runs in its inputs' type; several float inputs
	// of different types are promoted as torch's type promotion does.
	passthrough class = iota
	// lower: float inputs are cast to the low precision (autocast's
	// lower_precision_fp policy).
	lower
	// fp32: low-precision inputs are cast to float32 and the op computes
	// and returns float32 (autocast's fp32 and fp32_set_opt_dtype policies).
	fp32
	// normalization: the output follows the data input X while the
	// statistics and the affine transform compute in float32: a low X is
	// normalized in float32 and rounded once, as torch's mixed-type
	// layer_norm/group_norm/batch_norm kernels do when the weights are
	// float32 (the master parameters).
	normalization
)

// Which ONNX operators stand for which aten operators of torch's autocast
// lists. The lists are those of torch 2.15's aten/src/ATen/autocast_mode.h
// (AT_FORALL_LOWER_PRECISION_FP, AT_FORALL_FP32, AT_FORALL_FP32_SET_OPT_DTYPE:
// the CUDA lists) and aten/src/ATen/autocast_mode.cpp (KERNEL_CPU: the CPU
// lists); scripts/refs/amp_refs.py records the output dtype of each mapped
// aten op under torch.autocast("cpu") as run, and the CUDA lists as the
// installed torch's header states them. Only operators that exported
// seq2seq graphs (and ortrain's own loss) contain are mapped; an aten op
// that an export decomposes (gelu, rsqrt, silu) is seen as its parts.
var (
	// matmul, mm, bmm, baddbmm, addmm, linear, einsum, conv*, prelu: both devices.
	lowerOps = map[string]bool{
		"MatMul": true, "Gemm": true, "Einsum": true, "Conv": true, "ConvTranspose": true, "PRelu": true,
		"com.microsoft::FusedMatMul": true,
	}
	// CPU fp32 policy: the losses (cross_entropy_loss, nll_loss), prod.
	cpuFP32Ops = map[string]bool{
		"SoftmaxCrossEntropyLoss": true, "NegativeLogLikelihoodLoss": true, "ReduceProd": true,
	}
	// CUDA fp32 and fp32_set_opt_dtype policies: exp, log, log2/10/1p,
	// reciprocal, rsqrt, pow, softplus, acos, asin, cosh, sinh, tan,
	// layer_norm, rms_norm, group_norm, the losses, logsumexp, softmax,
	// log_softmax, cumsum, cumprod, sum, prod, linalg_vector_norm.
	cudaFP32Ops = map[string]bool{
		"Exp": true, "Log": true, "Reciprocal": true, "Pow": true, "Softplus": true,
		"Acos": true, "Asin": true, "Cosh": true, "Sinh": true, "Tan": true,
		"LayerNormalization": true, "RMSNormalization": true, "GroupNormalization": true,
		"SimplifiedLayerNormalization": true, "com.microsoft::SimplifiedLayerNormalization": true,
		"com.microsoft::SkipLayerNormalization": true, "com.microsoft::SkipSimplifiedLayerNormalization": true,
		"SoftmaxCrossEntropyLoss": true, "NegativeLogLikelihoodLoss": true, "ReduceLogSumExp": true,
		"Softmax": true, "LogSoftmax": true, "CumSum": true, "ReduceSum": true, "ReduceProd": true,
		"ReduceL1": true, "ReduceL2": true, "ReduceSumSquare": true,
	}
	// Normalizations with float32 master weights (CPU: not in the autocast
	// lists, so torch's mixed-type kernels decide).
	normOps = map[string]bool{
		"LayerNormalization": true, "RMSNormalization": true, "GroupNormalization": true, "InstanceNormalization": true,
		"BatchNormalization": true, "SimplifiedLayerNormalization": true, "com.microsoft::SimplifiedLayerNormalization": true,
	}
)

func opKey(domain, op string) string {
	switch domain {
	case "", "ai.onnx":
		return op
	}
	return domain + "::" + op
}

// policy classifies operators for one device (or none: a half-precision
// model without autocast runs every op in its inputs' type).
type policy struct {
	device string
}

func newPolicy(device string) (policy, error) {
	switch device {
	case CPU, CUDA, "":
		return policy{device: device}, nil
	}
	return policy{}, fmt.Errorf("amp: autocast device %q: want %s or %s", device, CPU, CUDA)
}

func (p policy) classOf(domain, op string) class {
	k := opKey(domain, op)
	switch p.device {
	case CPU:
		switch {
		case lowerOps[k]:
			return lower
		case cpuFP32Ops[k]:
			return fp32
		}
	case CUDA:
		switch {
		case lowerOps[k]:
			return lower
		case cudaFP32Ops[k]:
			return fp32
		}
	}
	if normOps[k] {
		return normalization
	}
	return passthrough
}
