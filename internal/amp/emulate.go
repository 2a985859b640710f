package amp

import (
	"fmt"
	"math"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// exactOps return values of their inputs (selected, moved, negated), so a
// low-precision output needs no rounding once its inputs are rounded.
var exactOps = map[string]bool{
	"Identity": true, "Reshape": true, "Transpose": true, "Squeeze": true, "Unsqueeze": true, "Flatten": true,
	"Gather": true, "GatherElements": true, "GatherND": true, "Slice": true, "Split": true, "Concat": true,
	"Expand": true, "Tile": true, "Where": true, "Neg": true, "Abs": true, "Relu": true, "Max": true, "Min": true,
	"Pad": true, "ReduceMax": true, "ReduceMin": true, "Trilu": true, "DepthToSpace": true, "SpaceToDepth": true,
}

// Emulate turns a graph that computes in dt (float16 or bfloat16, as
// Rewrite and the backward pass leave it) into a float32 graph that rounds
// through dt at every point where the original rounds: each Cast to dt
// becomes a Cast to dt and back, each node that produces a dt value other
// than by moving input values computes in float32 and has its outputs
// rounded, and dt constants are stored as float32. Kernels that compute a
// dt result in float32 and round once, as CUDA's do, give the same values;
// the CPU provider, which has no bfloat16 kernels, can so run a bfloat16
// graph's arithmetic. Element types come from shape inference with opsets.
func Emulate(g *onnxpb.GraphProto, opsets map[string]int64, dt onnx.DType) error {
	if dt != onnx.Float16 && dt != onnx.BFloat16 {
		return fmt.Errorf("amp: cannot emulate %s", onnx.DTypeName(dt))
	}
	info, err := onnx.InferShapes(g, opsets)
	if err != nil {
		return fmt.Errorf("amp: emulating %s: %w", dtypeName(dt), err)
	}
	isLow := func(v string) bool { return v != "" && info[v].Elem == dt }
	b := onnx.NewGraphBuilder(g)
	b.Prefix = "emulate/"
	round := func(in, out string) []*onnxpb.NodeProto {
		mid := b.Name(out + "/" + dtypeName(dt))
		return []*onnxpb.NodeProto{
			{Name: proto.String(b.Name("round")), OpType: proto.String("Cast"), Input: []string{in}, Output: []string{mid}, Attribute: []*onnxpb.AttributeProto{onnx.AttrInt("to", int64(dt))}},
			{Name: proto.String(b.Name("widen")), OpType: proto.String("Cast"), Input: []string{mid}, Output: []string{out}, Attribute: []*onnxpb.AttributeProto{onnx.AttrInt("to", int64(onnx.Float32))}},
		}
	}
	identity := func(n *onnxpb.NodeProto) {
		n.OpType, n.Domain = proto.String("Identity"), nil
		n.Input, n.Attribute = n.Input[:1], nil
	}
	var nodes []*onnxpb.NodeProto
	for _, n := range g.Node {
		if hasSubgraph(n) {
			return fmt.Errorf("amp: node %q (%s) has a subgraph; emulation does not rewrite control flow", n.GetName(), n.GetOpType())
		}
		op := opKey(n.GetDomain(), n.GetOpType())
		for _, a := range n.Attribute {
			if a.T != nil && onnx.DType(a.T.GetDataType()) == dt {
				if err := toFloat32(a.T); err != nil {
					return fmt.Errorf("amp: node %q: %w", n.GetName(), err)
				}
			}
		}
		switch op {
		case "Cast", "CastLike":
			in, out := n.Input[0], n.Output[0]
			switch {
			case !isLow(out) && !isLow(in):
				nodes = append(nodes, n)
			case isLow(out) && isLow(in), !isLow(out) && info[out].Elem == onnx.Float32:
				identity(n) // dt to dt, or dt widened to float32: the value as it is
				nodes = append(nodes, n)
			case isLow(out):
				nodes = append(nodes, round(in, out)...)
			default: // dt to another type (an integer): from the float32 copy
				nodes = append(nodes, n)
			}
			continue
		}
		if attr := attrNamed(n, "to"); attr != nil && onnx.DType(attr.GetI()) == dt {
			return fmt.Errorf("amp: node %q (%s) makes %s values; emulation cannot follow it", n.GetName(), op, dtypeName(dt))
		}
		nodes = append(nodes, n)
		if exactOps[op] {
			continue
		}
		for i, o := range n.Output {
			if isLow(o) {
				wide := b.Name(o + "/float32")
				n.Output[i] = wide
				nodes = append(nodes, round(wide, o)...)
			}
		}
	}
	g.Node = nodes
	for _, t := range g.Initializer {
		if onnx.DType(t.GetDataType()) == dt {
			if err := toFloat32(t); err != nil {
				return fmt.Errorf("amp: initializer %q: %w", t.GetName(), err)
			}
		}
	}
	for _, vis := range [][]*onnxpb.ValueInfoProto{g.Input, g.Output} {
		for _, vi := range vis {
			if tt := vi.GetType().GetTensorType(); tt != nil && onnx.DType(tt.GetElemType()) == dt {
				tt.ElemType = proto.Int32(int32(onnx.Float32))
			}
		}
	}
	kept := g.ValueInfo[:0]
	for _, vi := range g.ValueInfo {
		if elemOfValueInfo(vi) != dt {
			kept = append(kept, vi)
		}
	}
	g.ValueInfo = kept
	return nil
}

// toFloat32 widens a float16 or bfloat16 tensor in place (exactly).
func toFloat32(t *onnxpb.TensorProto) error {
	bits, err := onnx.HalfBits(t)
	if err != nil {
		return err
	}
	vals := make([]float32, len(bits))
	for i, h := range bits {
		if onnx.DType(t.GetDataType()) == onnx.BFloat16 {
			vals[i] = math.Float32frombits(uint32(h) << 16)
		} else {
			vals[i] = onnx.HalfToFloat32(h)
		}
	}
	nt := onnx.MustTensor(t.GetName(), t.GetDims(), vals)
	proto.Reset(t)
	proto.Merge(t, nt)
	return nil
}
