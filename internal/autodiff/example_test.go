package autodiff_test

import (
	"fmt"
	"log"

	"github.com/ortrain/ortrain/internal/autodiff"
	"github.com/ortrain/ortrain/internal/onnx"
)

// The gradient of loss = ReduceSum(Tanh(x·W)) with respect to the weight W,
// appended to the forward graph as standard ONNX nodes: the seed 1 expanded
// to Tanh's shape, Tanh's rule 1 - y² reading the forward output, and
// MatMul's rule xᵀ·dY as one Gemm (transA).
func ExampleBackward() {
	b := onnx.NewGraphBuilder(nil)
	x := b.AddInput("x", onnx.Float32, onnx.Sym("batch"), onnx.D(3))
	w := b.AddInput("W", onnx.Float32, onnx.D(3), onnx.D(2))
	h := b.Op("Tanh", []string{b.Op("MatMul", []string{x, w})})
	b.Node("ReduceSum", []string{h}, []string{"loss"}, onnx.AttrInt("keepdims", 0))
	g := b.Graph()
	forward := len(g.Node)

	grads, err := autodiff.Backward(g, map[string]int64{"": 17}, "loss", []string{"W"}, autodiff.Options{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("gradient of W:", grads["W"])
	for _, n := range g.Node[forward:] {
		fmt.Println(n.GetOpType(), n.GetInput(), "->", n.GetOutput())
	}
	// Output:
	// gradient of W: grad/Gemm_13
	// Constant [] -> [grad/Constant_1]
	// Shape [Tanh_out] -> [grad/Shape_3]
	// Expand [grad/Constant_1 grad/Shape_3] -> [grad/Expand_5]
	// Mul [Tanh_out Tanh_out] -> [grad/Mul_7]
	// Sub [grad/Constant_1 grad/Mul_7] -> [grad/Sub_9]
	// Mul [grad/Expand_5 grad/Sub_9] -> [grad/Mul_11]
	// Gemm [x grad/Mul_11] -> [grad/Gemm_13]
}
