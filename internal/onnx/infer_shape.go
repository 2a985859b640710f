package onnx

import (
	"fmt"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

func (inf *inferer) reshape(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	st, _ := inf.in(n, 1)
	target, ok := inf.valsOf(n, 1)
	if !ok {
		if st.RankKnown && len(st.Dims) == 1 && st.Dims[0].Static() {
			return same(Tensor(x.Elem, unknownDims(st.Dims[0].Value)...)), nil
		}
		return same(TypeInfo{Elem: x.Elem}), nil
	}
	allowZero := AttrIntOr(n, "allowzero", 0) == 1
	out := make([]Dim, len(target))
	infer := -1
	for i, e := range target {
		switch {
		case e.ok && e.v == -1:
			if infer >= 0 {
				return nil, fmt.Errorf("shape %v has more than one -1", target)
			}
			infer = i
		case e.ok && e.v == 0 && !allowZero:
			if !x.RankKnown {
				out[i] = unknownDim
			} else if i >= len(x.Dims) {
				return nil, fmt.Errorf("shape has 0 at position %d but the input has rank %d", i, len(x.Dims))
			} else {
				out[i] = x.Dims[i]
			}
		case e.ok && e.v < -1:
			return nil, fmt.Errorf("invalid shape value %d", e.v)
		default:
			out[i] = svDim(e)
		}
	}
	if x.RankKnown {
		in := dimProduct(x.Dims)
		if infer >= 0 {
			rest := append(append([]Dim{}, out[:infer]...), out[infer+1:]...)
			known := dimProduct(rest)
			out[infer] = unknownDim
			if known.Value != 0 {
				out[infer] = dimArith(in, '/', known)
			}
			if in.Static() && known.Static() && known.Value != 0 && in.Value%known.Value != 0 {
				return nil, fmt.Errorf("cannot reshape %v (%d elements) to %v", DimsString(x.Dims), in.Value, target)
			}
		} else if in.Static() {
			if p := dimProduct(out); p.Static() && p.Value != in.Value {
				return nil, fmt.Errorf("cannot reshape %v (%d elements) to %v (%d elements)", DimsString(x.Dims), in.Value, DimsString(out), p.Value)
			}
		}
	} else if infer >= 0 {
		out[infer] = unknownDim
	}
	if vals, ok := inf.valsOf(n, 0); ok {
		if p := dimProduct(out); p.Static() && p.Value == int64(len(vals)) {
			inf.vals[n.Output[0]] = vals
		}
	}
	return same(Tensor(x.Elem, out...)), nil
}

func (inf *inferer) flatten(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	if !x.RankKnown {
		return same(Tensor(x.Elem, unknownDim, unknownDim)), nil
	}
	ax := AttrIntOr(n, "axis", 1)
	if ax < 0 {
		ax += int64(len(x.Dims))
	}
	if ax < 0 || ax > int64(len(x.Dims)) {
		return nil, fmt.Errorf("axis %d out of range for rank %d", ax, len(x.Dims))
	}
	return same(Tensor(x.Elem, dimProduct(x.Dims[:ax]), dimProduct(x.Dims[ax:]))), nil
}

func (inf *inferer) transpose(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	if !x.RankKnown {
		return same(TypeInfo{Elem: x.Elem}), nil
	}
	r := len(x.Dims)
	perm, ok := AttrIntsOf(n, "perm")
	if !ok {
		perm = make([]int64, r)
		for i := range perm {
			perm[i] = int64(r - 1 - i)
		}
	}
	if len(perm) != r {
		return nil, fmt.Errorf("perm %v does not match rank %d", perm, r)
	}
	out := make([]Dim, r)
	seen := make([]bool, r)
	for i, p := range perm {
		ax, err := normAxis(p, r)
		if err != nil || seen[ax] {
			return nil, fmt.Errorf("perm %v is not a permutation of 0..%d", perm, r-1)
		}
		seen[ax] = true
		out[i] = x.Dims[ax]
	}
	return same(Tensor(x.Elem, out...)), nil
}

func (inf *inferer) unsqueeze(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	axes, _, known := inf.axesOf(n, 1)
	if !x.RankKnown {
		return same(TypeInfo{Elem: x.Elem}), nil
	}
	if !known {
		if st, ok := inf.in(n, 1); ok && st.RankKnown && len(st.Dims) == 1 && st.Dims[0].Static() {
			return same(Tensor(x.Elem, unknownDims(len(x.Dims)+int(st.Dims[0].Value))...)), nil
		}
		return same(TypeInfo{Elem: x.Elem}), nil
	}
	r := len(x.Dims) + len(axes)
	ins := map[int]bool{}
	for _, a := range axes {
		ax, err := normAxis(a, r)
		if err != nil {
			return nil, err
		}
		if ins[ax] {
			return nil, fmt.Errorf("axis %d repeated in %v", a, axes)
		}
		ins[ax] = true
	}
	out := make([]Dim, 0, r)
	j := 0
	for i := 0; i < r; i++ {
		if ins[i] {
			out = append(out, D(1))
		} else {
			out = append(out, x.Dims[j])
			j++
		}
	}
	if vals, ok := inf.valsOf(n, 0); ok {
		inf.vals[n.Output[0]] = vals
	}
	return same(Tensor(x.Elem, out...)), nil
}

func (inf *inferer) squeeze(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	axes, given, known := inf.axesOf(n, 1)
	if !x.RankKnown || !known {
		return same(TypeInfo{Elem: x.Elem}), nil
	}
	drop := map[int]bool{}
	if !given || len(axes) == 0 {
		for i, d := range x.Dims {
			if !d.Static() {
				return same(TypeInfo{Elem: x.Elem}), nil // might or might not be 1
			}
			if d.Value == 1 {
				drop[i] = true
			}
		}
	}
	for _, a := range axes {
		ax, err := normAxis(a, len(x.Dims))
		if err != nil {
			return nil, err
		}
		if d := x.Dims[ax]; d.Static() && d.Value != 1 {
			return nil, fmt.Errorf("cannot squeeze axis %d of size %d", a, d.Value)
		}
		drop[ax] = true
	}
	var out []Dim
	for i, d := range x.Dims {
		if !drop[i] {
			out = append(out, d)
		}
	}
	if vals, ok := inf.valsOf(n, 0); ok {
		inf.vals[n.Output[0]] = vals
	}
	return same(Tensor(x.Elem, out...)), nil
}

func (inf *inferer) concat(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	var elem DType
	var ts []TypeInfo
	partial := false
	for i := range n.Input {
		t, ok := inf.in(n, i)
		if !ok {
			continue
		}
		if elem == Undefined {
			elem = t.Elem
		}
		if !t.RankKnown {
			partial = true // the inputs share one rank: the others give it
			continue
		}
		ts = append(ts, t)
	}
	if len(ts) == 0 {
		return same(TypeInfo{Elem: elem}), nil
	}
	r := len(ts[0].Dims)
	ax, err := normAxis(AttrIntOr(n, "axis", 0), r)
	if err != nil {
		return nil, err
	}
	out := append([]Dim{}, ts[0].Dims...)
	for _, t := range ts[1:] {
		if len(t.Dims) != r {
			return nil, fmt.Errorf("inputs have ranks %d and %d", r, len(t.Dims))
		}
		for i, d := range t.Dims {
			if i == ax {
				continue
			}
			switch {
			case out[i].Static() && d.Static() && out[i].Value != d.Value:
				return nil, fmt.Errorf("dimension %d differs: %d and %d", i, out[i].Value, d.Value)
			case !out[i].Static() && d.Static():
				out[i] = d
			case !out[i].Static() && out[i].Param == "":
				out[i] = d
			}
		}
	}
	if partial {
		out[ax] = unknownDim
		return same(Tensor(elem, out...)), nil
	}
	// The concatenated axis: the sum of the sizes.
	sum := D(0)
	for _, t := range ts {
		sum = dimArith(sum, '+', t.Dims[ax])
	}
	out[ax] = sum
	// Fold concatenation of 1-D shape vectors.
	if r == 1 {
		var vals []sv
		all := true
		for i := range n.Input {
			v, ok := inf.valsOf(n, i)
			if n.Input[i] == "" {
				continue
			}
			if !ok {
				all = false
				break
			}
			vals = append(vals, v...)
		}
		if all {
			inf.vals[n.Output[0]] = vals
		}
	}
	return same(Tensor(elem, out...)), nil
}

func (inf *inferer) split(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	nout := len(n.Output)
	if !x.RankKnown {
		return repeat(TypeInfo{Elem: x.Elem}, nout), nil
	}
	ax, err := normAxis(AttrIntOr(n, "axis", 0), len(x.Dims))
	if err != nil {
		return nil, err
	}
	var sizes []int64
	known := true
	if len(n.Input) > 1 && n.Input[1] != "" {
		sizes, known = inf.intsOf(n, 1)
	} else if s, ok := AttrIntsOf(n, "split"); ok {
		sizes = s
	}
	outs := make([]TypeInfo, nout)
	for i := range outs {
		dims := append([]Dim{}, x.Dims...)
		switch {
		case !known:
			dims[ax] = unknownDim
		case sizes != nil:
			if len(sizes) != nout {
				return nil, fmt.Errorf("split has %d sizes for %d outputs", len(sizes), nout)
			}
			dims[ax] = D(sizes[i])
		case x.Dims[ax].Static():
			total := x.Dims[ax].Value
			chunk := (total + int64(nout) - 1) / int64(nout)
			if AttrIntOr(n, "num_outputs", 0) == 0 && total%int64(nout) != 0 {
				return nil, fmt.Errorf("cannot split size %d evenly into %d outputs", total, nout)
			}
			dims[ax] = D(min(chunk, max(0, total-int64(i)*chunk)))
		default:
			dims[ax] = unknownDim
		}
		outs[i] = Tensor(x.Elem, dims...)
	}
	if sizes != nil && x.Dims[ax].Static() {
		var sum int64
		for _, s := range sizes {
			sum += s
		}
		if sum != x.Dims[ax].Value {
			return nil, fmt.Errorf("split sizes %v do not add up to %d", sizes, x.Dims[ax].Value)
		}
	}
	return outs, nil
}

func repeat(t TypeInfo, n int) []TypeInfo {
	out := make([]TypeInfo, n)
	for i := range out {
		out[i] = t
	}
	return out
}

func (inf *inferer) expand(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	st, _ := inf.in(n, 1)
	target, ok := inf.valsOf(n, 1)
	if !x.RankKnown {
		return same(TypeInfo{Elem: x.Elem}), nil
	}
	if !ok {
		if st.RankKnown && len(st.Dims) == 1 && st.Dims[0].Static() {
			k := int(st.Dims[0].Value)
			r := max(k, len(x.Dims))
			out := unknownDims(r)
			off := r - len(x.Dims)
			for i, d := range x.Dims {
				if d.Value != 1 {
					out[off+i] = d // the target is d or 1 here
				}
			}
			return same(Tensor(x.Elem, out...)), nil
		}
		return same(TypeInfo{Elem: x.Elem}), nil
	}
	tdims := make([]Dim, len(target))
	for i, e := range target {
		tdims[i] = svDim(e)
	}
	// Broadcasting where the target's unknown entries may be 1.
	r := max(len(tdims), len(x.Dims))
	out := make([]Dim, r)
	for i := 0; i < r; i++ {
		var a, b Dim = D(1), D(1)
		if j := i - (r - len(x.Dims)); j >= 0 {
			a = x.Dims[j]
		}
		if j := i - (r - len(tdims)); j >= 0 {
			b = tdims[j]
		}
		if !b.Static() && b.Param == "" {
			if a.Value == 1 {
				out[i] = unknownDim
			} else {
				out[i] = a
			}
			continue
		}
		d, err := inf.broadcastDim(a, b)
		if err != nil {
			return nil, fmt.Errorf("cannot expand %v to %v: %w", DimsString(x.Dims), DimsString(tdims), err)
		}
		out[i] = d
	}
	return same(Tensor(x.Elem, out...)), nil
}

func (inf *inferer) tile(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	if !x.RankKnown {
		return same(TypeInfo{Elem: x.Elem}), nil
	}
	reps, ok := inf.intsOf(n, 1)
	out := make([]Dim, len(x.Dims))
	if ok && len(reps) != len(x.Dims) {
		return nil, fmt.Errorf("repeats has %d values for rank %d", len(reps), len(x.Dims))
	}
	for i, d := range x.Dims {
		switch {
		case !ok:
			out[i] = unknownDim
		case reps[i] == 1:
			out[i] = d
		default:
			out[i] = dimArith(d, '*', D(reps[i]))
		}
	}
	return same(Tensor(x.Elem, out...)), nil
}
