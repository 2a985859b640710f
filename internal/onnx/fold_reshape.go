package onnx

import (
	"strconv"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// FoldReshapeShapes gives every Reshape of g whose target shape is computed
// at run time a constant target, where shape inference can write one with
// the same meaning: an entry equal to the reshaped tensor's own dimension
// at that position becomes 0 (keep it), a single entry left unknown -1
// (the rest of the elements), numbers stay. Exporters build each target
// from Shape, Gather, Unsqueeze and Concat nodes over another tensor (the
// attention's input rather than the projection being reshaped), which ONNX
// Runtime neither folds nor fuses: in a decoder step those small nodes are
// most of the graph's nodes, each run at every step. The nodes that only
// fed the folded targets are removed. It returns the number of Reshapes
// folded; with any inference error it changes nothing.
//
// The -1 stands for the one unknown entry, which is exact unless another
// entry is 0 at run time (an empty tensor, where -1 cannot be resolved).
func FoldReshapeShapes(g *onnxpb.GraphProto, opsets map[string]int64) int {
	inf := newInferer(opsets)
	inf.collectSymbols(g)
	if err := inf.graph(g); err != nil || len(inf.errs) > 0 {
		return 0
	}
	fixed := map[string]bool{}
	for _, t := range g.Initializer {
		fixed[t.GetName()] = true
	}
	for _, vi := range g.Input {
		fixed[vi.GetName()] = true // an input is fed, even when it has a default
	}
	for _, n := range g.Node {
		if n.GetOpType() == "Constant" {
			for _, o := range n.Output {
				fixed[o] = true
			}
		}
	}
	used := map[string]bool{}
	for _, n := range g.Node {
		for _, o := range n.Output {
			used[o] = true
		}
	}
	for name := range fixed {
		used[name] = true
	}
	folded := 0
	for _, n := range g.Node {
		if n.GetOpType() != "Reshape" || normDomain(n.GetDomain()) != "" || len(n.Input) != 2 ||
			AttrIntOr(n, "allowzero", 0) != 0 || fixed[n.Input[1]] {
			continue
		}
		target, ok := reshapeTarget(inf.vals[n.Input[1]], inf.types[n.Input[0]])
		if !ok {
			continue
		}
		name := n.Input[1] + "_folded"
		for i := 1; used[name]; i++ {
			name = n.Input[1] + "_folded_" + strconv.Itoa(i)
		}
		used[name] = true
		g.Initializer = append(g.Initializer, MustTensor(name, []int64{int64(len(target))}, target))
		n.Input[1] = name
		folded++
	}
	if folded > 0 {
		RemoveDeadNodes(g)
	}
	return folded
}

// reshapeTarget writes a Reshape target (vals, inferred element by
// element) as constants for a tensor of type data; ok false when some entry
// cannot be written or more than one would need -1.
func reshapeTarget(vals []sv, data TypeInfo) ([]int64, bool) {
	if len(vals) == 0 {
		return nil, false
	}
	out := make([]int64, len(vals))
	free := false
	rest := func(i int) bool {
		if free {
			return false
		}
		free, out[i] = true, -1
		return true
	}
	for i, e := range vals {
		switch {
		case e.ok && e.v >= 0:
			out[i] = e.v // a literal 0 keeps its meaning (allowzero is 0)
		case e.ok && e.v == -1:
			if !rest(i) {
				return nil, false
			}
		case e.ok:
			return nil, false // not a valid target: leave it to ONNX Runtime to report
		case e.sym != "" && data.RankKnown && i < len(data.Dims) && !data.Dims[i].Static() && data.Dims[i].Param == e.sym:
			out[i] = 0
		case e.sym != "":
			if !rest(i) {
				return nil, false
			}
		default:
			return nil, false
		}
	}
	return out, true
}
