package onnx

import (
	"fmt"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// ifOp infers both branches and merges their outputs.
func (inf *inferer) ifOp(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	var branches [][]TypeInfo
	for _, name := range []string{"then_branch", "else_branch"} {
		a := FindAttr(n, name)
		if a == nil || a.G == nil {
			return nil, fmt.Errorf("If has no %s", name)
		}
		if err := inf.graph(a.G); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		var outs []TypeInfo
		for _, vi := range a.G.Output {
			outs = append(outs, inf.types[vi.GetName()])
		}
		branches = append(branches, outs)
	}
	if len(branches[0]) != len(branches[1]) {
		return nil, fmt.Errorf("If branches have %d and %d outputs", len(branches[0]), len(branches[1]))
	}
	out := make([]TypeInfo, len(branches[0]))
	for i := range out {
		out[i] = inf.mergeAlternatives(branches[0][i], branches[1][i])
	}
	return out, nil
}

// mergeAlternatives is the type of a value that is one of a or b.
func (inf *inferer) mergeAlternatives(a, b TypeInfo) TypeInfo {
	elem := a.Elem
	if elem == Undefined {
		elem = b.Elem
	}
	if !a.RankKnown || !b.RankKnown || len(a.Dims) != len(b.Dims) {
		return TypeInfo{Elem: elem}
	}
	dims := make([]Dim, len(a.Dims))
	for i := range dims {
		if a.Dims[i].Same(b.Dims[i]) {
			dims[i] = a.Dims[i]
		} else {
			dims[i] = unknownDim
		}
	}
	return Tensor(elem, dims...)
}

// loop infers the body once, with the loop-carried values typed from the
// initial values, and gives scan outputs a leading unknown dimension.
func (inf *inferer) loop(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	a := FindAttr(n, "body")
	if a == nil || a.G == nil {
		return nil, fmt.Errorf("Loop has no body")
	}
	body := a.G
	if len(n.Input) < 2 {
		return nil, fmt.Errorf("Loop needs the trip count and condition inputs (empty names for none)")
	}
	carried := len(n.Input) - 2
	if len(body.Input) != carried+2 {
		return nil, fmt.Errorf("Loop body has %d inputs for %d loop-carried values", len(body.Input), carried)
	}
	// Body inputs without a declared type take the loop's: graph keeps a
	// preset type when the declaration says nothing.
	for i, vi := range body.Input {
		var t TypeInfo
		switch i {
		case 0:
			t = Tensor(Int64)
		case 1:
			t = Tensor(Bool)
		default:
			t, _ = inf.in(n, i)
		}
		inf.types[vi.GetName()] = t
	}
	if len(body.Output) != 1+carried+max(0, len(n.Output)-carried) {
		return nil, fmt.Errorf("Loop body has %d outputs, the node %d loop-carried values and %d outputs", len(body.Output), carried, len(n.Output))
	}
	if err := inf.graph(body); err != nil {
		return nil, fmt.Errorf("body: %w", err)
	}
	var out []TypeInfo
	for i, vi := range body.Output[1:] {
		t := inf.types[vi.GetName()]
		if i < carried {
			init, _ := inf.in(n, i+2)
			out = append(out, inf.mergeAlternatives(init, t))
			continue
		}
		if t.RankKnown {
			t = Tensor(t.Elem, append([]Dim{unknownDim}, t.Dims...)...)
		}
		out = append(out, t)
	}
	return out, nil
}
