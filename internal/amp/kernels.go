package amp

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/cudakernels"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// FitKernels makes every node of g that no kernel of the table runs with
// its float16 or bfloat16 types compute in float32: its low-precision
// inputs are cast to float32 and its low-precision outputs cast back, as a
// kernel that accumulates in float32 and rounds once would compute (and as
// ONNX Runtime's CPU provider does for the float16 nodes it has no kernel
// for). CUDA's 1.29.0 kernels have no bfloat16 ReduceMean, Log, Equal or
// Greater, for example. It returns the number of nodes changed.
func FitKernels(g *onnxpb.GraphProto, opsets map[string]int64, t *cudakernels.Table) (int, error) {
	info, err := onnx.InferShapes(g, opsets)
	if err != nil {
		return 0, fmt.Errorf("amp: shape inference: %w", err)
	}
	elem := func(v string) onnx.DType { return info[v].Elem }
	isLow := func(v string) bool { return v != "" && (elem(v) == onnx.Float16 || elem(v) == onnx.BFloat16) }
	b := onnx.NewGraphBuilder(g)
	b.Prefix = "fit/"
	cast := func(in, out string, to onnx.DType) *onnxpb.NodeProto {
		return &onnxpb.NodeProto{Name: proto.String(b.Name("cast")), OpType: proto.String("Cast"), Input: []string{in}, Output: []string{out},
			Attribute: []*onnxpb.AttributeProto{onnx.AttrInt("to", int64(to))}}
	}
	var nodes []*onnxpb.NodeProto
	changed := 0
	for _, n := range g.Node {
		if n.GetOpType() == "Constant" || hasSubgraph(n) {
			nodes = append(nodes, n)
			continue
		}
		u, bad := t.Node(n, opsets, elem)
		low := false
		for _, v := range append(append([]string{}, n.Input...), n.Output...) {
			low = low || isLow(v)
		}
		if !bad || !low {
			nodes = append(nodes, n)
			continue
		}
		wideType := map[string]onnx.DType{}
		for i, in := range n.Input {
			if isLow(in) {
				w := b.Name(in + "/float32")
				nodes = append(nodes, cast(in, w, onnx.Float32))
				n.Input[i] = w
				wideType[w] = onnx.Float32
			}
		}
		var after []*onnxpb.NodeProto
		for i, o := range n.Output {
			if isLow(o) {
				w := b.Name(o + "/float32")
				after = append(after, cast(w, o, elem(o)))
				n.Output[i] = w
				wideType[w] = onnx.Float32
			}
		}
		typeOf := func(v string) onnx.DType {
			if dt, ok := wideType[v]; ok {
				return dt
			}
			return elem(v)
		}
		if _, still := t.Node(n, opsets, typeOf); still {
			return 0, fmt.Errorf("amp: %s, and in float32 neither", u)
		}
		nodes = append(append(nodes, n), after...)
		changed++
	}
	g.Node = nodes
	return changed, nil
}
