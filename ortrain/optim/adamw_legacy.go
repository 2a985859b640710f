package optim

import (
	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/ortrain/onnx/onnxpb"
)

// BuildAdamWLegacy returns the sync step with transformers' legacy AdamW
// (HF's optim="adamw_hf", removed in transformers 5), which is what ONNX
// Runtime's training AdamWOptimizer computes with adam_mode=1 — the default
// of onnxruntime.training's artifact generator. After clipping, per
// parameter: m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
// w -= lr*sqrt(1-b2^t)/(1-b1^t) * m/(sqrt(v)+eps) (epsilon added before the
// bias correction); then w -= lr*wd*w (decay after the update, for decay
// parameters). Inputs and outputs are those of BuildAdamW, so the two graphs
// are interchangeable for a trainer and share the moments' meaning.
func BuildAdamWLegacy(params []Param) (*onnxpb.ModelProto, error) {
	g := &onnxpb.GraphProto{Name: proto.String("ortrain_adamw_legacy")}
	b := newBuilder(g, "adamw_legacy/")
	if err := declareCommon(g, params, []string{LearningRate, Beta1, Beta2, Epsilon, WeightDecay}); err != nil {
		return nil, err
	}
	g.Input = append(g.Input, valueInfo(Step, onnxpb.TensorProto_INT64, nil, nil))

	coef := clipCoefficient(b, g, params)

	one := b.scalarF64(1)
	stepD := b.cast(Step, double)
	bc1 := b.op("Sub", []string{one, b.op("Pow", []string{Beta1, stepD})})
	bc2 := b.op("Sub", []string{one, b.op("Pow", []string{Beta2, stepD})})
	// lr_c = lr * sqrt(bias_correction2) / bias_correction1
	lrC := b.cast(b.op("Div", []string{b.op("Mul", []string{LearningRate, b.op("Sqrt", []string{bc2})}), bc1}), float)
	lrWD := b.cast(b.op("Mul", []string{LearningRate, WeightDecay}), float)
	oneMinusB1 := b.cast(b.op("Sub", []string{one, Beta1}), float)
	beta1F := b.cast(Beta1, float)
	beta2F := b.cast(Beta2, float)
	oneMinusB2 := b.cast(b.op("Sub", []string{one, Beta2}), float)
	epsF := b.cast(Epsilon, float)

	for _, p := range params {
		m, v := ExpAvgName(p.Name), ExpAvgSqName(p.Name)
		for _, n := range []string{m, v} {
			g.Input = append(g.Input, valueInfo(n, float, p.Shape, nil))
		}
		grad := b.op("Mul", []string{GradName(p.Name), coef})
		b.opTo("Add", []string{b.op("Mul", []string{m, beta1F}), b.op("Mul", []string{grad, oneMinusB1})}, UpdatedName(m))
		b.opTo("Add", []string{b.op("Mul", []string{v, beta2F}), b.op("Mul", []string{b.op("Mul", []string{grad, oneMinusB2}), grad})}, UpdatedName(v))
		denom := b.op("Add", []string{b.op("Sqrt", []string{UpdatedName(v)}), epsF})
		w := b.op("Sub", []string{p.Name, b.op("Div", []string{b.op("Mul", []string{UpdatedName(m), lrC}), denom})})
		if p.Decay {
			b.opTo("Sub", []string{w, b.op("Mul", []string{w, lrWD})}, UpdatedName(p.Name))
		} else {
			b.opTo("Identity", []string{w}, UpdatedName(p.Name))
		}
		for _, n := range []string{p.Name, m, v} {
			g.Output = append(g.Output, valueInfo(UpdatedName(n), float, p.Shape, nil))
		}
	}
	g.Output = append(g.Output, valueInfo(GradNorm, float, nil, nil))
	return newModel(g, Opset), nil
}
