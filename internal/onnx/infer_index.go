package onnx

import (
	"fmt"
	"math"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

func (inf *inferer) slice(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	if !x.RankKnown {
		return same(TypeInfo{Elem: x.Elem}), nil
	}
	r := len(x.Dims)
	var starts, ends, axes, steps []sv
	var ok1, ok2 bool
	if len(n.Input) > 1 {
		starts, ok1 = inf.valsOf(n, 1)
		ends, ok2 = inf.valsOf(n, 2)
		if a, ok := inf.valsOf(n, 3); ok {
			axes = a
		} else if len(n.Input) > 3 && n.Input[3] != "" {
			ok1 = false
		}
		if s, ok := inf.valsOf(n, 4); ok {
			steps = s
		} else if len(n.Input) > 4 && n.Input[4] != "" {
			ok1 = false
		}
	} else {
		s, _ := AttrIntsOf(n, "starts")
		e, _ := AttrIntsOf(n, "ends")
		a, _ := AttrIntsOf(n, "axes")
		starts, ends, axes = nums(s), nums(e), nums(a)
		ok1, ok2 = true, true
	}
	if !ok1 || !ok2 {
		// Which axes change is unknown unless axes are given.
		out := append([]Dim{}, x.Dims...)
		if a, ok := inf.intsOf(n, 3); ok {
			for _, ax := range a {
				if i, err := normAxis(ax, r); err == nil {
					out[i] = unknownDim
				}
			}
			return same(Tensor(x.Elem, out...)), nil
		}
		return same(Tensor(x.Elem, unknownDims(r)...)), nil
	}
	if len(starts) != len(ends) {
		return nil, fmt.Errorf("starts has %d values, ends %d", len(starts), len(ends))
	}
	out := append([]Dim{}, x.Dims...)
	for i := range starts {
		ax := int64(i)
		if axes != nil {
			if i >= len(axes) || !axes[i].ok {
				return same(Tensor(x.Elem, unknownDims(r)...)), nil
			}
			ax = axes[i].v
		}
		a, err := normAxis(ax, r)
		if err != nil {
			return nil, err
		}
		step := int64(1)
		if steps != nil {
			if i >= len(steps) || !steps[i].ok {
				out[a] = unknownDim
				continue
			}
			step = steps[i].v
		}
		if step == 0 {
			return nil, fmt.Errorf("slice step is 0")
		}
		out[a] = sliceDim(x.Dims[a], starts[i], ends[i], step)
	}
	// Fold slices of shape vectors.
	if vals, ok := inf.valsOf(n, 0); ok && r == 1 && len(starts) == 1 && starts[0].ok && ends[0].ok {
		step := int64(1)
		if steps != nil && steps[0].ok {
			step = steps[0].v
		}
		size := int64(len(vals))
		s, e := clampIndex(starts[0].v, size, step), clampIndex(ends[0].v, size, step)
		var sub []sv
		for j := s; (step > 0 && j < e) || (step < 0 && j > e); j += step {
			sub = append(sub, vals[j])
		}
		inf.vals[n.Output[0]] = sub
	}
	return same(Tensor(x.Elem, out...)), nil
}

// clampIndex normalises a Slice start or end against a static size.
func clampIndex(v, size int64, step int64) int64 {
	if v < 0 {
		v += size
	}
	if step > 0 {
		return max(0, min(v, size))
	}
	return max(-1, min(v, size-1))
}

// sliceDim is the size of one sliced dimension. With symbolic sizes, in
// steps of 1, starts and ends are assumed to lie within the dimension, as
// they do in valid exports (x[:, :-1], x[:, -1:], x[:, past:past+seq]).
func sliceDim(d Dim, start, end sv, step int64) Dim {
	const big = math.MaxInt32 // exporters write INT64_MAX or INT32_MAX for "to the end"
	if d.Static() && start.ok && end.ok {
		s := clampIndex(start.v, d.Value, step)
		e := clampIndex(end.v, d.Value, step)
		if step > 0 {
			if e <= s {
				return D(0)
			}
			return D((e - s + step - 1) / step)
		}
		if s <= e {
			return D(0)
		}
		return D((s - e - step - 1) / -step)
	}
	if step != 1 {
		return unknownDim
	}
	bound := func(v sv, isEnd bool) (Dim, bool) {
		switch {
		case v.sym != "":
			return Sym(v.sym), true
		case !v.ok:
			return Dim{}, false
		case v.v >= big:
			return d, isEnd
		case v.v <= -big:
			return D(0), !isEnd
		case v.v >= 0:
			if d.Static() {
				return D(min(v.v, d.Value)), true
			}
			return D(v.v), !isEnd // x[:5] of a symbolic size is min(5, S)
		}
		return dimArith(d, '+', D(v.v)), true // negative: counted from the end
	}
	s, ok1 := bound(start, false)
	e, ok2 := bound(end, true)
	if !ok1 || !ok2 {
		return unknownDim
	}
	return dimArith(e, '-', s)
}

func (inf *inferer) pad(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	if !x.RankKnown {
		return same(TypeInfo{Elem: x.Elem}), nil
	}
	r := len(x.Dims)
	var pads []int64
	ok := true
	if len(n.Input) > 1 && n.Input[1] != "" {
		pads, ok = inf.intsOf(n, 1)
	} else {
		pads, _ = AttrIntsOf(n, "pads")
	}
	axes := make([]int, r)
	for i := range axes {
		axes[i] = i
	}
	if a, given, known := inf.axesOf(n, 3); given {
		if !known {
			ok = false
		} else {
			axes = axes[:0]
			for _, v := range a {
				ax, err := normAxis(v, r)
				if err != nil {
					return nil, err
				}
				axes = append(axes, ax)
			}
		}
	}
	out := append([]Dim{}, x.Dims...)
	if !ok || len(pads) != 2*len(axes) {
		return same(Tensor(x.Elem, unknownDims(r)...)), nil
	}
	for i, ax := range axes {
		add := pads[i] + pads[i+len(axes)]
		switch {
		case add == 0:
		default:
			out[ax] = dimArith(out[ax], '+', D(add))
		}
	}
	return same(Tensor(x.Elem, out...)), nil
}

func (inf *inferer) gather(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	idx, _ := inf.in(n, 1)
	if !x.RankKnown || !idx.RankKnown {
		return same(TypeInfo{Elem: x.Elem}), nil
	}
	ax, err := normAxis(AttrIntOr(n, "axis", 0), len(x.Dims))
	if err != nil {
		return nil, err
	}
	dims := append(append(append([]Dim{}, x.Dims[:ax]...), idx.Dims...), x.Dims[ax+1:]...)
	// Fold Gather on a 1-D shape vector with constant indices.
	if vals, ok := inf.valsOf(n, 0); ok && len(x.Dims) == 1 {
		if is, ok := inf.intsOf(n, 1); ok {
			out := make([]sv, len(is))
			good := true
			for i, j := range is {
				if j < 0 {
					j += int64(len(vals))
				}
				if j < 0 || j >= int64(len(vals)) {
					good = false
					break
				}
				out[i] = vals[j]
			}
			if good {
				inf.vals[n.Output[0]] = out
			}
		}
	}
	return same(Tensor(x.Elem, dims...)), nil
}

func (inf *inferer) gatherElements(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	idx, _ := inf.in(n, 1)
	return same(TypeInfo{Elem: inf.in0(n).Elem, Dims: idx.Dims, RankKnown: idx.RankKnown}), nil
}

func (inf *inferer) nonZero(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	rank := unknownDim // the output is [rank of x, number of non-zeros] in any case
	if x.RankKnown {
		rank = D(int64(len(x.Dims)))
	}
	return same(Tensor(Int64, rank, unknownDim)), nil
}

func (inf *inferer) gatherND(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	idx, _ := inf.in(n, 1)
	if !x.RankKnown || !idx.RankKnown || len(idx.Dims) == 0 || !idx.Dims[len(idx.Dims)-1].Static() {
		return same(TypeInfo{Elem: x.Elem}), nil
	}
	b := int(AttrIntOr(n, "batch_dims", 0))
	last := int(idx.Dims[len(idx.Dims)-1].Value)
	if b < 0 || b+last > len(x.Dims) || b > len(idx.Dims)-1 {
		return nil, fmt.Errorf("indices last dimension %d plus batch_dims %d exceeds data rank %d", last, b, len(x.Dims))
	}
	dims := append(append([]Dim{}, idx.Dims[:len(idx.Dims)-1]...), x.Dims[b+last:]...)
	return same(Tensor(x.Elem, dims...)), nil
}

func (inf *inferer) oneHot(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	idx := inf.in0(n)
	vt, _ := inf.in(n, 2)
	if !idx.RankKnown {
		return same(TypeInfo{Elem: vt.Elem}), nil
	}
	r := len(idx.Dims) + 1
	ax, err := normAxis(AttrIntOr(n, "axis", -1), r)
	if err != nil {
		return nil, err
	}
	depth := unknownDim
	if v, ok := inf.valsOf(n, 1); ok && len(v) == 1 {
		depth = svDim(v[0])
	} else if f, ok := inf.fvals[inName(n, 1)]; ok && len(f) == 1 {
		depth = D(int64(f[0]))
	}
	dims := append(append(append([]Dim{}, idx.Dims[:ax]...), depth), idx.Dims[ax:]...)
	return same(Tensor(vt.Elem, dims...)), nil
}
