package onnx

import (
	"fmt"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

var reduceOps = map[string]bool{
	"ReduceMean": true, "ReduceSum": true, "ReduceMax": true, "ReduceMin": true, "ReduceProd": true,
	"ReduceL1": true, "ReduceL2": true, "ReduceLogSum": true, "ReduceLogSumExp": true, "ReduceSumSquare": true,
}

func (inf *inferer) reduce(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	keep := AttrIntOr(n, "keepdims", 1) == 1
	axes, _, known := inf.axesOf(n, 1)
	noop := AttrIntOr(n, "noop_with_empty_axes", 0) == 1
	if !x.RankKnown {
		if known && len(axes) == 0 && !noop && !keep {
			return same(Tensor(x.Elem)), nil // every axis reduced: a scalar whatever the rank
		}
		return same(TypeInfo{Elem: x.Elem}), nil
	}
	r := len(x.Dims)
	if !known {
		if keep {
			return same(Tensor(x.Elem, unknownDims(r)...)), nil // each dim kept or 1: unknown
		}
		return same(TypeInfo{Elem: x.Elem}), nil
	}
	if len(axes) == 0 {
		if noop {
			return same(x), nil
		}
		axes = make([]int64, r)
		for i := range axes {
			axes[i] = int64(i)
		}
	}
	red := map[int]bool{}
	for _, a := range axes {
		ax, err := normAxis(a, r)
		if err != nil {
			return nil, err
		}
		red[ax] = true
	}
	var dims []Dim
	for i, d := range x.Dims {
		switch {
		case !red[i]:
			dims = append(dims, d)
		case keep:
			dims = append(dims, D(1))
		}
	}
	return same(Tensor(x.Elem, dims...)), nil
}

func (inf *inferer) argReduce(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	if !x.RankKnown {
		return same(TypeInfo{Elem: Int64}), nil
	}
	ax, err := normAxis(AttrIntOr(n, "axis", 0), len(x.Dims))
	if err != nil {
		return nil, err
	}
	dims := append([]Dim{}, x.Dims...)
	if AttrIntOr(n, "keepdims", 1) == 1 {
		dims[ax] = D(1)
	} else {
		dims = append(dims[:ax], dims[ax+1:]...)
	}
	return same(Tensor(Int64, dims...)), nil
}

func (inf *inferer) topK(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	if !x.RankKnown {
		return []TypeInfo{{Elem: x.Elem}, {Elem: Int64}}, nil
	}
	ax, err := normAxis(AttrIntOr(n, "axis", -1), len(x.Dims))
	if err != nil {
		return nil, err
	}
	dims := append([]Dim{}, x.Dims...)
	if k, ok := inf.valsOf(n, 1); ok && len(k) == 1 {
		dims[ax] = svDim(k[0])
	} else if k := AttrIntOr(n, "k", -1); k >= 0 && len(n.Input) == 1 {
		dims[ax] = D(k)
	} else {
		dims[ax] = unknownDim
	}
	return []TypeInfo{Tensor(x.Elem, dims...), Tensor(Int64, dims...)}, nil
}

func (inf *inferer) layerNorm(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	stash := Float32
	if s := AttrIntOr(n, "stash_type", 1); s != 1 {
		stash = DType(s)
	}
	if !x.RankKnown {
		return []TypeInfo{x, {Elem: stash}, {Elem: stash}, x}, nil
	}
	op := n.GetOpType()
	if op == "SkipLayerNormalization" || op == "SkipSimplifiedLayerNormalization" {
		// Outputs: output, mean (unused by the simplified form),
		// inv_std_var, input_skip_bias_sum; stats over the last axis.
		if len(x.Dims) == 0 {
			return nil, fmt.Errorf("%s needs an input of rank >= 1", op)
		}
		stat := append(append([]Dim{}, x.Dims[:len(x.Dims)-1]...), D(1))
		return []TypeInfo{x, Tensor(stash, stat...), Tensor(stash, stat...), x}, nil
	}
	ax, err := normAxis(AttrIntOr(n, "axis", -1), len(x.Dims))
	if err != nil {
		return nil, err
	}
	stat := append([]Dim{}, x.Dims...)
	for i := ax; i < len(stat); i++ {
		stat[i] = D(1)
	}
	if op == "SimplifiedLayerNormalization" || op == "RMSNormalization" {
		return []TypeInfo{x, Tensor(stash, stat...)}, nil
	}
	return []TypeInfo{x, Tensor(stash, stat...), Tensor(stash, stat...)}, nil
}

func (inf *inferer) lossOp(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	labels, _ := inf.in(n, 1)
	loss := Tensor(x.Elem)
	if AttrStringOr(n, "reduction", "mean") == "none" {
		loss = TypeInfo{Elem: x.Elem, Dims: labels.Dims, RankKnown: labels.RankKnown}
	}
	return []TypeInfo{loss, x}, nil
}
