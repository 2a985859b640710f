package amp

import (
	"errors"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// Names of the unscale graph's inputs and outputs besides the gradients
// (grad.<p> in, new.grad.<p> out, as the optimizer graphs name them).
const (
	InvScale = "inv_scale" // FLOAT scalar: 1/scale
	FoundInf = "found_inf" // BOOL scalar: some gradient holds an inf or NaN
	GradNorm = "grad_norm" // FLOAT scalar: total L2 norm of the unscaled gradients
)

// Tensor names a gradient and its shape.
type Tensor struct {
	Name  string
	Shape []int64
}

// BuildUnscale makes GradScaler.unscale_'s graph: every gradient
// multiplied by inv_scale (new.grad.<p>; the engine binds it to the
// gradient's own buffer), found_inf when any of them is inf or NaN, and
// the total L2 norm of the unscaled gradients computed as the optimizer
// graphs compute it (per-tensor norms, their squares summed, the square
// root), which is what HF logs as grad_norm on a step the scaler skips
// (inf or NaN). gradName and updatedName give the optimizer graphs' names.
// Only the multiplication reads a gradient, so the update may be written
// in place.
func BuildUnscale(grads []Tensor, gradName, updatedName func(string) string) (*onnxpb.ModelProto, error) {
	if len(grads) == 0 {
		return nil, errors.New("amp: no gradients to unscale")
	}
	g := &onnxpb.GraphProto{Name: proto.String("ortrain_unscale")}
	b := onnx.NewGraphBuilder(g)
	b.Prefix = "unscale/"
	b.AddInput(InvScale, onnx.Float32)
	zero := b.ConstFloat32(0)
	var checks, squares []string
	for _, t := range grads {
		in, out := gradName(t.Name), updatedName(gradName(t.Name))
		b.AddInput(in, onnx.Float32, onnx.Dims(t.Shape...)...)
		b.Node("Mul", []string{in, InvScale}, []string{out})
		b.AddOutput(out, onnx.Float32, onnx.Dims(t.Shape...)...)
		// inf*0 and NaN*0 are NaN, finite*0 is 0: the sum is NaN iff one is not finite.
		checks = append(checks, b.Op("ReduceSum", []string{b.Op("Mul", []string{out, zero})}, onnx.AttrInt("keepdims", 0)))
		norm := b.Op("ReduceL2", []string{out}, onnx.AttrInt("keepdims", 0))
		squares = append(squares, b.Op("Mul", []string{norm, norm}))
	}
	sum := func(vs []string) string {
		if len(vs) == 1 {
			return vs[0]
		}
		return b.Op("Sum", vs)
	}
	b.Node("IsNaN", []string{sum(checks)}, []string{FoundInf})
	b.Node("Sqrt", []string{sum(squares)}, []string{GradNorm})
	b.AddOutput(FoundInf, onnx.Bool)
	b.AddOutput(GradNorm, onnx.Float32)
	return onnx.NewModel(g, 17), nil
}
