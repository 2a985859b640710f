package onnx

import (
	"fmt"
	"math"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

func (inf *inferer) shape(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	if !x.RankKnown {
		return same(Tensor(Int64, unknownDim)), nil
	}
	r := int64(len(x.Dims))
	start, end := AttrIntOr(n, "start", 0), AttrIntOr(n, "end", r)
	if start < 0 {
		start += r
	}
	if end < 0 {
		end += r
	}
	start, end = max(0, min(start, r)), max(0, min(end, r))
	if end < start {
		end = start
	}
	vals := make([]sv, 0, end-start)
	for _, d := range x.Dims[start:end] {
		vals = append(vals, svOfDim(d))
	}
	inf.vals[n.Output[0]] = vals
	return same(Tensor(Int64, D(end-start))), nil
}

func (inf *inferer) size(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	if x := inf.in0(n); x.RankKnown {
		if p := dimProduct(x.Dims); p.Static() || p.Param != "" {
			inf.vals[n.Output[0]] = []sv{svOfDim(p)}
		}
	}
	return same(Tensor(Int64)), nil
}

func (inf *inferer) constantOfShape(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	elem := Float32
	var fill *onnxpb.TensorProto
	if a := FindAttr(n, "value"); a != nil && a.T != nil {
		fill = a.T
		elem = DType(a.T.GetDataType())
	}
	st, _ := inf.in(n, 0)
	vals, ok := inf.valsOf(n, 0)
	if !ok {
		if st.RankKnown && len(st.Dims) == 1 && st.Dims[0].Static() {
			return same(Tensor(elem, unknownDims(st.Dims[0].Value)...)), nil
		}
		return same(TypeInfo{Elem: elem}), nil
	}
	dims := make([]Dim, len(vals))
	for i, v := range vals {
		dims[i] = svDim(v)
	}
	if p := dimProduct(dims); p.Static() && p.Value <= maxKnownElems {
		var v int64
		good := true
		if fill != nil {
			iv, err := ToInt64s(fill)
			good = err == nil && len(iv) == 1
			if good {
				v = iv[0]
			}
		} else {
			good = false
		}
		if good {
			out := make([]sv, p.Value)
			for i := range out {
				out[i] = num(v)
			}
			inf.vals[n.Output[0]] = out
		}
	}
	return same(Tensor(elem, dims...)), nil
}

func (inf *inferer) constant(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	out := n.Output[0]
	for _, a := range n.Attribute {
		switch a.GetName() {
		case "value":
			if a.T == nil {
				return nil, fmt.Errorf("attribute value holds no tensor")
			}
			inf.recordConst(out, a.T)
			return same(TypeInfoOfTensor(a.T)), nil
		case "value_float":
			inf.fvals[out] = []float64{float64(a.GetF())}
			return same(Tensor(Float32)), nil
		case "value_floats":
			return same(Tensor(Float32, D(int64(len(a.Floats))))), nil
		case "value_int":
			inf.vals[out] = []sv{num(a.GetI())}
			return same(Tensor(Int64)), nil
		case "value_ints":
			inf.vals[out] = nums(a.Ints)
			return same(Tensor(Int64, D(int64(len(a.Ints))))), nil
		case "value_string":
			return same(Tensor(String)), nil
		case "value_strings":
			return same(Tensor(String, D(int64(len(a.Strings))))), nil
		case "sparse_value":
			if a.SparseTensor != nil {
				return same(Tensor(DType(a.SparseTensor.GetValues().GetDataType()), Dims(a.SparseTensor.GetDims()...)...)), nil
			}
		}
	}
	return nil, fmt.Errorf("Constant has no value attribute")
}

func (inf *inferer) rangeOp(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	start, ok1 := inf.valsOf(n, 0)
	limit, ok2 := inf.valsOf(n, 1)
	delta, ok3 := inf.valsOf(n, 2)
	if ok1 && ok2 && ok3 && len(start) == 1 && len(limit) == 1 && len(delta) == 1 {
		s, l, d := start[0], limit[0], delta[0]
		if s.ok && l.ok && d.ok && d.v != 0 {
			cnt := max(0, (l.v-s.v+d.v-1)/d.v)
			if d.v < 0 {
				cnt = max(0, (s.v-l.v-d.v-1)/(-d.v))
			}
			if cnt <= maxKnownElems {
				vals := make([]sv, cnt)
				for i := range vals {
					vals[i] = num(s.v + int64(i)*d.v)
				}
				inf.vals[n.Output[0]] = vals
			}
			return same(Tensor(x.Elem, D(cnt))), nil
		}
		if d.ok && d.v == 1 && (s.sym != "" || l.sym != "") {
			// Range(start, limit, 1) has limit - start elements.
			return same(Tensor(x.Elem, dimArith(svDim(l), '-', svDim(s)))), nil
		}
	}
	// Float ranges with constant bounds.
	fs, f1 := inf.fvals[inName(n, 0)]
	fl, f2 := inf.fvals[inName(n, 1)]
	fd, f3 := inf.fvals[inName(n, 2)]
	if f1 && f2 && f3 && len(fs) == 1 && len(fl) == 1 && len(fd) == 1 && fd[0] != 0 {
		return same(Tensor(x.Elem, D(int64(max(0, math.Ceil((fl[0]-fs[0])/fd[0])))))), nil
	}
	return same(Tensor(x.Elem, unknownDim)), nil
}
