package optim

import "github.com/ortrain/ortrain/internal/onnx/onnxpb"

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
	return buildAdam("ortrain_adamw_legacy", "adamw_legacy/", params, func(b *builder, s adamScalars) adamUpdate {
		// lr_c = lr * sqrt(bias_correction2) / bias_correction1
		lrC := b.cast(b.op("Div", []string{b.op("Mul", []string{LearningRate, b.op("Sqrt", []string{s.bc2})}), s.bc1}), float)
		lrWD := b.cast(b.op("Mul", []string{LearningRate, WeightDecay}), float)
		oneMinusB1 := b.cast(b.op("Sub", []string{s.one, Beta1}), float)
		beta1F := b.cast(Beta1, float)
		beta2F := b.cast(Beta2, float)
		oneMinusB2 := b.cast(b.op("Sub", []string{s.one, Beta2}), float)
		epsF := b.cast(Epsilon, float)
		return func(p Param, grad, m, v string) {
			b.opTo("Add", []string{b.op("Mul", []string{m, beta1F}), b.op("Mul", []string{grad, oneMinusB1})}, UpdatedName(m))
			b.opTo("Add", []string{b.op("Mul", []string{v, beta2F}), b.op("Mul", []string{b.op("Mul", []string{grad, oneMinusB2}), grad})}, UpdatedName(v))
			denom := b.op("Add", []string{b.op("Sqrt", []string{UpdatedName(v)}), epsF})
			w := b.op("Sub", []string{p.Name, b.op("Div", []string{b.op("Mul", []string{UpdatedName(m), lrC}), denom})})
			if p.Decay {
				b.opTo("Sub", []string{w, b.op("Mul", []string{w, lrWD})}, UpdatedName(p.Name))
			} else {
				b.opTo("Identity", []string{w}, UpdatedName(p.Name))
			}
		}
	})
}
