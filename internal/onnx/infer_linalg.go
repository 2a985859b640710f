package onnx

import (
	"fmt"
	"sort"
	"strings"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

func (inf *inferer) matmul(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	a := inf.in0(n)
	b, _ := inf.in(n, 1)
	elem := a.Elem
	if n.GetOpType() == "MatMulInteger" {
		elem = Int32
	}
	if !a.RankKnown || !b.RankKnown {
		return same(TypeInfo{Elem: elem}), nil
	}
	ad, bd := append([]Dim{}, a.Dims...), append([]Dim{}, b.Dims...)
	if len(ad) == 0 || len(bd) == 0 {
		return nil, fmt.Errorf("MatMul operands must have rank >= 1, got %v and %v", DimsString(ad), DimsString(bd))
	}
	if n.GetOpType() == "FusedMatMul" {
		if AttrIntOr(n, "transA", 0) == 1 && len(ad) >= 2 {
			ad[len(ad)-1], ad[len(ad)-2] = ad[len(ad)-2], ad[len(ad)-1]
		}
		if AttrIntOr(n, "transB", 0) == 1 && len(bd) >= 2 {
			bd[len(bd)-1], bd[len(bd)-2] = bd[len(bd)-2], bd[len(bd)-1]
		}
	}
	aVec, bVec := len(ad) == 1, len(bd) == 1
	if aVec {
		ad = []Dim{D(1), ad[0]}
	}
	if bVec {
		bd = []Dim{bd[0], D(1)}
	}
	k1, k2 := ad[len(ad)-1], bd[len(bd)-2]
	if k1.Static() && k2.Static() && k1.Value != k2.Value {
		return nil, fmt.Errorf("inner dimensions differ: %v times %v", DimsString(a.Dims), DimsString(b.Dims))
	}
	batch, err := inf.broadcastDims(ad[:len(ad)-2], bd[:len(bd)-2])
	if err != nil {
		return nil, err
	}
	out := batch
	if !aVec {
		out = append(out, ad[len(ad)-2])
	}
	if !bVec {
		out = append(out, bd[len(bd)-1])
	}
	return same(Tensor(elem, out...)), nil
}

func (inf *inferer) gemm(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	a := inf.in0(n)
	b, _ := inf.in(n, 1)
	if !a.RankKnown || !b.RankKnown || len(a.Dims) != 2 || len(b.Dims) != 2 {
		return same(Tensor(a.Elem, unknownDim, unknownDim)), nil
	}
	m, k1 := a.Dims[0], a.Dims[1]
	if AttrIntOr(n, "transA", 0) == 1 {
		m, k1 = k1, m
	}
	k2, nn := b.Dims[0], b.Dims[1]
	if AttrIntOr(n, "transB", 0) == 1 {
		k2, nn = nn, k2
	}
	if k1.Static() && k2.Static() && k1.Value != k2.Value {
		return nil, fmt.Errorf("inner dimensions differ: %d and %d", k1.Value, k2.Value)
	}
	return same(Tensor(a.Elem, m, nn)), nil
}

func (inf *inferer) einsum(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	eq := strings.ReplaceAll(AttrStringOr(n, "equation", ""), " ", "")
	x := inf.in0(n)
	lhs, rhs, explicit := strings.Cut(eq, "->")
	terms := strings.Split(lhs, ",")
	if len(terms) != len(n.Input) {
		return nil, fmt.Errorf("equation %q has %d operands, node has %d inputs", eq, len(terms), len(n.Input))
	}
	labels := map[byte]Dim{}
	count := map[byte]int{}
	var ell []Dim
	for i, term := range terms {
		t, _ := inf.in(n, i)
		hasEll := strings.Contains(term, "...")
		if !t.RankKnown {
			if hasEll {
				return same(TypeInfo{Elem: x.Elem}), nil
			}
			t = Tensor(t.Elem, unknownDims(len(term))...) // the term gives the rank
		}
		plain := strings.ReplaceAll(term, "...", "")
		nell := len(t.Dims) - len(plain)
		if (!hasEll && nell != 0) || nell < 0 {
			return nil, fmt.Errorf("equation term %q does not match operand %d of rank %d", term, i, len(t.Dims))
		}
		j := 0
		for k := 0; k < len(term); k++ {
			if strings.HasPrefix(term[k:], "...") {
				var err error
				if ell, err = inf.broadcastDims(ell, t.Dims[j:j+nell]); err != nil {
					return nil, err
				}
				j += nell
				k += 2
				continue
			}
			c := term[k]
			d := t.Dims[j]
			j++
			count[c]++
			if prev, ok := labels[c]; !ok || prev.unknown() {
				labels[c] = d
			} else if !d.unknown() {
				m, err := inf.broadcastDim(prev, d)
				if err != nil {
					return nil, fmt.Errorf("label %q: %w", c, err)
				}
				labels[c] = m
			}
		}
	}
	var out []Dim
	if explicit {
		for k := 0; k < len(rhs); k++ {
			if strings.HasPrefix(rhs[k:], "...") {
				out = append(out, ell...)
				k += 2
				continue
			}
			d, ok := labels[rhs[k]]
			if !ok {
				return nil, fmt.Errorf("output label %q does not appear in the inputs of %q", rhs[k], eq)
			}
			out = append(out, d)
		}
	} else {
		out = append(out, ell...)
		var once []byte
		for c, k := range count {
			if k == 1 {
				once = append(once, c)
			}
		}
		sort.Slice(once, func(i, j int) bool { return once[i] < once[j] })
		for _, c := range once {
			out = append(out, labels[c])
		}
	}
	return same(Tensor(x.Elem, out...)), nil
}

func (inf *inferer) attention(n *onnxpb.NodeProto) ([]TypeInfo, error) {
	x := inf.in0(n)
	if !x.RankKnown || len(x.Dims) != 3 {
		return same(TypeInfo{Elem: x.Elem}), nil
	}
	if n.GetOpType() == "MultiHeadAttention" {
		v, ok := inf.in(n, 2)
		hidden := x.Dims[2]
		if ok && v.RankKnown && len(v.Dims) == 3 {
			hidden = v.Dims[2]
		} else if ok && v.RankKnown && len(v.Dims) == 4 {
			hidden = dimProduct([]Dim{v.Dims[1], v.Dims[3]})
		}
		return same(Tensor(x.Elem, x.Dims[0], x.Dims[1], hidden)), nil
	}
	hidden := unknownDim
	if sizes, ok := AttrIntsOf(n, "qkv_hidden_sizes"); ok && len(sizes) == 3 {
		hidden = D(sizes[2])
	} else if w, ok := inf.in(n, 1); ok && w.RankKnown && len(w.Dims) == 2 && w.Dims[1].Static() {
		hidden = D(w.Dims[1].Value / 3)
	}
	return same(Tensor(x.Elem, x.Dims[0], x.Dims[1], hidden)), nil
}
