package autodiff

import (
	"math"
	"math/rand"
	"testing"

	"github.com/ortrain/ortrain/internal/amp"
	"github.com/ortrain/ortrain/internal/onnx"
)

// TestLowPrecisionMatMulGradients differentiates MatMul and Gemm (alpha,
// both transposes) on float16 and bfloat16 operands, as an autocast graph
// holds them: Cast to the low type, the product, Cast back. The weight
// gradients come out as Transpose and MatMul (no Gemm: ONNX Runtime's CPU
// Gemm for float16 accumulates in float16), and every gradient, run
// through ONNX Runtime, is the float32 graph's gradient (itself checked by
// finite differences in TestFiniteDifferences) within the low type's
// rounding (bfloat16 emulated in float32: the CPU has no bfloat16 kernels).
func TestLowPrecisionMatMulGradients(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	feeds := map[string]fdTensor{}
	for name, shape := range map[string][]int64{"x": {3, 5, 16}, "w": {16, 8}, "a": {16, 6}, "b": {8, 16}, "c": {6, 8}} {
		n := onnx.NumElements(shape)
		d := make([]float64, n)
		for i := range d {
			d[i] = float64(float32(rng.NormFloat64()))
		}
		feeds[name] = fdTensor{shape: shape, data: d}
	}
	want := map[string][]float64{}
	for _, low := range []onnx.DType{onnx.Undefined, onnx.Float16, onnx.BFloat16} {
		build := func() (*onnx.GraphBuilder, string) {
			b := onnx.NewGraphBuilder(nil)
			in := func(name string, dims ...int64) string {
				v := b.AddInput(name, onnx.Float32, onnx.Dims(dims...)...)
				if low != onnx.Undefined {
					v = b.Op("Cast", []string{v}, onnx.AttrInt("to", int64(low)))
				}
				return v
			}
			back := func(v string) string {
				if low != onnx.Undefined {
					v = b.Op("Cast", []string{v}, onnx.AttrInt("to", int64(onnx.Float32)))
				}
				return v
			}
			mm := back(b.Op("MatMul", []string{in("x", 3, 5, 16), in("w", 16, 8)}))
			gemm := back(b.Op("Gemm", []string{in("a", 16, 6), in("b", 8, 16), in("c", 6, 8)},
				onnx.AttrInt("transA", 1), onnx.AttrInt("transB", 1), onnx.AttrFloat("alpha", 0.5)))
			// weighted sums, so that every gradient element differs
			l1 := b.Op("ReduceSum", []string{b.Op("Mul", []string{mm, mm})}, onnx.AttrInt("keepdims", 0))
			l2 := b.Op("ReduceSum", []string{b.Op("Mul", []string{gemm, gemm})}, onnx.AttrInt("keepdims", 0))
			return b, b.Op("Add", []string{l1, l2})
		}
		b, loss := build()
		g := b.Graph()
		n0 := len(g.Node)
		wrt := []string{"x", "w", "a", "b", "c"}
		grads, err := Backward(g, opset17, loss, wrt, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if low != onnx.Undefined {
			if ops := countOps(g.Node[n0:]); ops["Gemm"] != 0 {
				t.Errorf("%s: backward uses Gemm %d times", onnx.DTypeName(low), ops["Gemm"])
			}
		}
		var names []string
		for _, w := range wrt {
			g.Output = append(g.Output, onnx.ValueInfoOf(grads[w], onnx.TypeInfo{Elem: onnx.Float32}))
			names = append(names, grads[w])
		}
		if low == onnx.BFloat16 {
			// no bfloat16 kernels on the CPU: the same graph computed in
			// float32, rounded through bfloat16 where it would round
			if err := amp.Emulate(g, opset17, low); err != nil {
				t.Fatal(err)
			}
		}
		s, err := newSession(t, g, opset17)
		if err != nil {
			t.Fatalf("%s: %v", onnx.DTypeName(low), err)
		}
		got := s.run(t, onnx.Float32, feeds, names)
		if low == onnx.Undefined {
			for i, w := range wrt {
				want[w] = got[names[i]].data
			}
			continue
		}
		tol := 2e-2 // float16 operands: relative error ~1e-3; bfloat16 ~1e-2 on the norm
		for i, w := range wrt {
			var num, den float64
			for j, v := range got[names[i]].data {
				d := v - want[w][j]
				num += d * d
				den += want[w][j] * want[w][j]
			}
			if e := math.Sqrt(num / den); e > tol {
				t.Errorf("%s: gradient of %s off the float32 one by %.2g", onnx.DTypeName(low), w, e)
			}
		}
	}
}
