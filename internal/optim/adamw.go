package optim

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// Param is one trainable parameter as the optimizer sees it.
type Param struct {
	Name  string  // graph input name of the parameter
	Shape []int64 // static shape
	Decay bool    // whether weight decay applies (see Decays)
	// Transposed: the graphs hold the transpose of the PyTorch tensor
	// (a 2-D Shape is [cols, rows] of torch's): Adafactor's factored
	// moments follow torch's layout.
	Transposed bool
}

// Opset is the default-domain opset of the optimizer graphs.
const Opset = 17

const float = onnxpb.TensorProto_FLOAT
const double = onnxpb.TensorProto_DOUBLE

// BuildAdamW returns an optimizer graph equal to HF's sync step:
// torch.nn.utils.clip_grad_norm_ (when max_grad_norm > 0) followed by one
// torch.optim.AdamW update (single-tensor implementation, amsgrad off,
// maximize off). Per parameter p it reads p, GradName(p), ExpAvgName(p),
// ExpAvgSqName(p) and writes UpdatedName of each of p and the two moments;
// hyperparameters and the step are inputs so one graph serves every
// schedule. Scalar arithmetic on hyperparameters is done in float64 as in
// Python and cast to float32 where torch hands the scalar to a kernel.
func BuildAdamW(params []Param) (*onnxpb.ModelProto, error) {
	return buildAdam("ortrain_adamw", "adamw/", params, func(b *builder, s adamScalars) adamUpdate {
		// step_size = lr / bias_correction1; bias_correction2_sqrt = sqrt(1 - beta2**step)
		stepSize := b.cast(b.op("Div", []string{LearningRate, s.bc1}), float)
		bc2Sqrt := b.cast(b.op("Sqrt", []string{s.bc2}), float)
		decayFactor := b.cast(b.op("Sub", []string{s.one, b.op("Mul", []string{LearningRate, WeightDecay})}), float)
		oneMinusB1 := b.cast(b.op("Sub", []string{s.one, Beta1}), float)
		beta2F := b.cast(Beta2, float)
		oneMinusB2 := b.cast(b.op("Sub", []string{s.one, Beta2}), float)
		epsF := b.cast(Epsilon, float)
		return func(p Param, grad, m, v string) {
			w := p.Name
			if p.Decay {
				w = b.op("Mul", []string{w, decayFactor}) // param.mul_(1 - lr*wd)
			}
			// exp_avg.lerp_(grad, 1-beta1) = m + (1-beta1)*(grad-m)
			b.opTo("Add", []string{m, b.op("Mul", []string{b.op("Sub", []string{grad, m}), oneMinusB1})}, UpdatedName(m))
			// exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1-beta2)
			b.opTo("Add", []string{b.op("Mul", []string{v, beta2F}), b.op("Mul", []string{b.op("Mul", []string{grad, oneMinusB2}), grad})}, UpdatedName(v))
			// denom = exp_avg_sq.sqrt() / bias_correction2_sqrt + eps
			denom := b.op("Add", []string{b.op("Div", []string{b.op("Sqrt", []string{UpdatedName(v)}), bc2Sqrt}), epsF})
			// param.addcdiv_(exp_avg, denom, value=-step_size)
			b.opTo("Sub", []string{w, b.op("Div", []string{b.op("Mul", []string{UpdatedName(m), stepSize}), denom})}, UpdatedName(p.Name))
		}
	})
}

// adamScalars are the step-dependent scalars both AdamW variants need
// (float64, as Python computes them).
type adamScalars struct {
	one, bc1, bc2 string // 1, 1 - beta1**step, 1 - beta2**step
}

// adamUpdate writes the updated parameter and moments of p from its
// clipped gradient and moments m, v.
type adamUpdate func(p Param, grad, m, v string)

// buildAdam lays out what the AdamW variants share: the inputs, clipping,
// the bias-correction terms, per-parameter moments and the outputs; the
// variant supplies its update.
func buildAdam(name, prefix string, params []Param, variant func(*builder, adamScalars) adamUpdate) (*onnxpb.ModelProto, error) {
	g := &onnxpb.GraphProto{Name: proto.String(name)}
	b := newBuilder(g, prefix)
	if err := declareCommon(g, params, []string{LearningRate, Beta1, Beta2, Epsilon, WeightDecay}); err != nil {
		return nil, err
	}
	g.Input = append(g.Input, valueInfo(Step, onnxpb.TensorProto_INT64, nil, nil))

	coef := clipCoefficient(b, g, params)

	one := b.scalarF64(1)
	stepD := b.cast(Step, double)
	s := adamScalars{one: one,
		bc1: b.op("Sub", []string{one, b.op("Pow", []string{Beta1, stepD})}),
		bc2: b.op("Sub", []string{one, b.op("Pow", []string{Beta2, stepD})})}
	update := variant(b, s)
	for _, p := range params {
		m, v := ExpAvgName(p.Name), ExpAvgSqName(p.Name)
		for _, n := range []string{m, v} {
			g.Input = append(g.Input, valueInfo(n, float, p.Shape, nil))
		}
		update(p, b.op("Mul", []string{GradName(p.Name), coef}), m, v)
		for _, n := range []string{p.Name, m, v} {
			g.Output = append(g.Output, valueInfo(UpdatedName(n), float, p.Shape, nil))
		}
	}
	g.Output = append(g.Output, valueInfo(GradNorm, float, nil, nil))
	return newModel(g, Opset), nil
}

// BuildSGD returns HF's sync step with torch.optim.SGD (dampening 0,
// nesterov off): clipping, then grad += wd*p for decay parameters,
// buf = momentum*buf + grad, p -= lr*buf. With momentum 0 the buffer is
// the gradient itself, as torch's update without a buffer. A zero buffer
// on the first step gives torch's buf = grad.clone().
func BuildSGD(params []Param) (*onnxpb.ModelProto, error) {
	g := &onnxpb.GraphProto{Name: proto.String("ortrain_sgd")}
	b := newBuilder(g, "sgd/")
	if err := declareCommon(g, params, []string{LearningRate, Momentum, WeightDecay}); err != nil {
		return nil, err
	}
	coef := clipCoefficient(b, g, params)
	negLR := b.cast(b.op("Neg", []string{LearningRate}), float)
	wd := b.cast(WeightDecay, float)
	mom := b.cast(Momentum, float)
	for _, p := range params {
		buf := MomentumBufferName(p.Name)
		g.Input = append(g.Input, valueInfo(buf, float, p.Shape, nil))
		grad := b.op("Mul", []string{GradName(p.Name), coef})
		if p.Decay {
			grad = b.op("Add", []string{grad, b.op("Mul", []string{p.Name, wd})})
		}
		b.opTo("Add", []string{b.op("Mul", []string{buf, mom}), grad}, UpdatedName(buf))
		b.opTo("Add", []string{p.Name, b.op("Mul", []string{UpdatedName(buf), negLR})}, UpdatedName(p.Name))
		for _, n := range []string{p.Name, buf} {
			g.Output = append(g.Output, valueInfo(UpdatedName(n), float, p.Shape, nil))
		}
	}
	g.Output = append(g.Output, valueInfo(GradNorm, float, nil, nil))
	return newModel(g, Opset), nil
}

// declareCommon adds the scalar hyperparameter inputs, max_grad_norm and
// each parameter with its gradient, after checking the names are usable.
func declareCommon(g *onnxpb.GraphProto, params []Param, doubles []string) error {
	if len(params) == 0 {
		return fmt.Errorf("optimizer graph: no trainable parameters")
	}
	reserved := map[string]bool{}
	for _, n := range append(doubles, Step, MaxGradNorm, GradNorm) {
		reserved[n] = true
	}
	seen := map[string]bool{}
	for _, p := range params {
		if p.Name == "" || reserved[p.Name] || seen[p.Name] {
			return fmt.Errorf("optimizer graph: parameter name %q is empty, repeated or reserved", p.Name)
		}
		seen[p.Name] = true
	}
	for _, p := range params {
		for _, derived := range []string{GradName(p.Name), ExpAvgName(p.Name), ExpAvgSqName(p.Name), MomentumBufferName(p.Name), ExpAvgSqRowName(p.Name), ExpAvgSqColName(p.Name)} {
			if seen[derived] {
				return fmt.Errorf("optimizer graph: parameter %q collides with the state name of another parameter", derived)
			}
		}
	}
	for _, n := range doubles {
		g.Input = append(g.Input, valueInfo(n, double, nil, nil))
	}
	g.Input = append(g.Input, valueInfo(MaxGradNorm, float, nil, nil))
	for _, p := range params {
		g.Input = append(g.Input, valueInfo(p.Name, float, p.Shape, nil), valueInfo(GradName(p.Name), float, p.Shape, nil))
	}
	return nil
}

// clipCoefficient computes torch.nn.utils.clip_grad_norm_'s total norm
// (the L2 norm of the per-tensor L2 norms, as torch stacks them) into
// GradNorm and returns the factor every gradient is multiplied by:
// min(max_norm/(norm+1e-6), 1), or 1 when max_grad_norm is 0 (HF skips
// clipping then).
func clipCoefficient(b *builder, g *onnxpb.GraphProto, params []Param) string {
	var squares []string
	for _, p := range params {
		norm := b.op("ReduceL2", []string{GradName(p.Name)}, attrInt("keepdims", 0))
		squares = append(squares, b.op("Mul", []string{norm, norm}))
	}
	total := squares[0]
	if len(squares) > 1 {
		total = b.op("Sum", squares)
	}
	b.opTo("Sqrt", []string{total}, GradNorm)
	coef := b.op("Div", []string{MaxGradNorm, b.op("Add", []string{GradNorm, b.scalarF32(1e-6)})})
	coef = b.op("Min", []string{coef, b.scalarF32(1)})
	enabled := b.op("Greater", []string{MaxGradNorm, b.scalarF32(0)})
	return b.op("Where", []string{enabled, coef, b.scalarF32(1)})
}
