package optim

import (
	"math"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// StateTensor is one optimizer state tensor of a parameter: its name and
// its shape (as torch keeps it, which is also its shape in the graphs).
type StateTensor struct {
	Name  string
	Shape []int64
}

// AdafactorState is the state transformers' Adafactor keeps for a
// parameter of PyTorch shape torchShape (beta1 None: no first moment):
// for two or more dimensions the factored second moment, exp_avg_sq_row
// (shape[:-1]) and exp_avg_sq_col (shape[:-2] + shape[-1:]); otherwise
// exp_avg_sq of the parameter's shape.
func AdafactorState(p string, torchShape []int64) []StateTensor {
	n := len(torchShape)
	if n < 2 {
		return []StateTensor{{ExpAvgSqName(p), append([]int64(nil), torchShape...)}}
	}
	row := append([]int64(nil), torchShape[:n-1]...)
	col := append(append([]int64(nil), torchShape[:n-2]...), torchShape[n-1])
	return []StateTensor{{ExpAvgSqRowName(p), row}, {ExpAvgSqColName(p), col}}
}

// Adafactor's constants as the Trainer builds it (optim "adafactor":
// transformers.optimization.Adafactor with scale_parameter=False,
// relative_step=False, warmup_init=False and the given lr; eps, clip
// threshold and decay rate at their defaults; beta1 None).
const (
	adafactorEps1          = 1e-30
	adafactorClipThreshold = 1.0
	adafactorDecayRate     = -0.8
)

// BuildAdafactor returns HF's sync step with optim "adafactor": clipping
// as BuildAdamW, then per parameter transformers' Adafactor.step:
//
//	beta2t = 1 - step^-0.8;  u = g² + 1e-30
//	factored (≥ 2 dims): row = beta2t·row + (1-beta2t)·mean_last(u),
//	    col = beta2t·col + (1-beta2t)·mean_second_last(u),
//	    u = rsqrt(row / mean(row)) ⊗ rsqrt(col) · g
//	otherwise: v = beta2t·v + (1-beta2t)·u, u = rsqrt(v)·g
//	u /= max(rms(u)/1.0, 1);  u *= lr
//	p += (-wd·lr)·p (decay parameters);  p -= u
//
// Factored means follow the PyTorch layout: for a parameter the graphs
// hold transposed, "last" is the graphs' first axis.
func BuildAdafactor(params []Param) (*onnxpb.ModelProto, error) {
	g := &onnxpb.GraphProto{Name: proto.String("ortrain_adafactor")}
	b := newBuilder(g, "adafactor/")
	if err := declareCommon(g, params, []string{LearningRate, WeightDecay}); err != nil {
		return nil, err
	}
	g.Input = append(g.Input, valueInfo(Step, onnxpb.TensorProto_INT64, nil, nil))
	coef := clipCoefficient(b, g, params)

	one := b.scalarF64(1)
	beta2t := b.op("Sub", []string{one, b.op("Pow", []string{b.cast(Step, double), b.scalarF64(adafactorDecayRate)})})
	beta2tF := b.cast(beta2t, float)
	oneMinusF := b.cast(b.op("Sub", []string{one, beta2t}), float)
	lrF := b.cast(LearningRate, float)
	decayAlpha := b.cast(b.op("Neg", []string{b.op("Mul", []string{WeightDecay, LearningRate})}), float)
	eps1 := b.scalarF32(adafactorEps1)
	rsqrt := func(x string) string { return b.op("Reciprocal", []string{b.op("Sqrt", []string{x})}) }
	mean := func(x string, axis, n int64, keep int64) string {
		s := b.op("ReduceSum", []string{x, b.vecI64(axis)}, attrInt("keepdims", keep))
		return b.op("Div", []string{s, b.scalarF32(float32(n))})
	}
	for _, p := range params {
		torchShape := p.Shape
		if p.Transposed && len(p.Shape) == 2 {
			torchShape = []int64{p.Shape[1], p.Shape[0]}
		}
		state := AdafactorState(p.Name, torchShape)
		for _, s := range state {
			g.Input = append(g.Input, valueInfo(s.Name, float, s.Shape, nil))
		}
		grad := b.op("Mul", []string{GradName(p.Name), coef})
		u0 := b.op("Add", []string{b.op("Mul", []string{grad, grad}), eps1})
		ema := func(old, x string) string {
			b.opTo("Add", []string{b.op("Mul", []string{old, beta2tF}), b.op("Mul", []string{x, oneMinusF})}, UpdatedName(old))
			return UpdatedName(old)
		}
		var u string
		if len(state) == 2 {
			nd := int64(len(p.Shape))
			rowAxis, colAxis := nd-1, nd-2 // graph axes of torch's dims -1 and -2
			if p.Transposed && nd == 2 {
				rowAxis, colAxis = 0, 1
			}
			row := ema(state[0].Name, mean(u0, rowAxis, p.Shape[rowAxis], 0))
			col := ema(state[1].Name, mean(u0, colAxis, p.Shape[colAxis], 0))
			rowShape := state[0].Shape
			rowMean := mean(row, int64(len(rowShape)-1), rowShape[len(rowShape)-1], 1)
			rFactor := b.op("Unsqueeze", []string{rsqrt(b.op("Div", []string{row, rowMean})), b.vecI64(rowAxis)})
			cFactor := b.op("Unsqueeze", []string{rsqrt(col), b.vecI64(colAxis)})
			u = b.op("Mul", []string{b.op("Mul", []string{rFactor, cFactor}), grad})
		} else {
			u = b.op("Mul", []string{rsqrt(ema(state[0].Name, u0)), grad})
		}
		numel := int64(1)
		for _, d := range p.Shape {
			numel *= d
		}
		rms := b.op("Div", []string{b.op("ReduceL2", []string{u}, attrInt("keepdims", 0)), b.scalarF32(float32(math.Sqrt(float64(numel))))})
		denom := b.op("Max", []string{b.op("Div", []string{rms, b.scalarF32(adafactorClipThreshold)}), b.scalarF32(1)})
		u = b.op("Mul", []string{b.op("Div", []string{u, denom}), lrF})
		w := p.Name
		if p.Decay {
			w = b.op("Add", []string{w, b.op("Mul", []string{w, decayAlpha})}) // p.add_(p, alpha=-wd*lr)
		}
		b.opTo("Sub", []string{w, u}, UpdatedName(p.Name))
		g.Output = append(g.Output, valueInfo(UpdatedName(p.Name), float, p.Shape, nil))
		for _, s := range state {
			g.Output = append(g.Output, valueInfo(UpdatedName(s.Name), float, s.Shape, nil))
		}
	}
	g.Output = append(g.Output, valueInfo(GradNorm, float, nil, nil))
	return newModel(g, Opset), nil
}
