package autodiff

import (
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// info is what onnx.InferShapes found about a value (unknown type and
// rank when it found nothing).
func (c *ctx) info(name string) onnx.TypeInfo {
	return c.infos[name]
}

// normAxis maps a possibly negative axis into [0, r).
func normAxis(a int64, r int) int {
	if a < 0 {
		a += int64(r)
	}
	return int(a)
}

// reduceAxes returns the axes a Reduce* node reduces (from its attribute or
// constant second input) and whether they are known; all=true when every
// axis is reduced.
func (c *ctx) reduceAxes(n *onnxpb.NodeProto, r int) (axes []int, known bool) {
	var raw []int64
	if a, ok := attrInts(n, "axes"); ok {
		raw = a
	} else if len(n.Input) > 1 && n.Input[1] != "" {
		v, ok := c.constInts(n.Input[1])
		if !ok {
			return nil, false
		}
		raw = v
	}
	if len(raw) == 0 {
		if attrInt(n, "noop_with_empty_axes", 0) == 1 {
			return []int{}, true
		}
		all := make([]int, r)
		for i := range all {
			all[i] = i
		}
		return all, true
	}
	seen := map[int]bool{}
	for _, a := range raw {
		ax := normAxis(a, r)
		if !seen[ax] {
			seen[ax] = true
			axes = append(axes, ax)
		}
	}
	return sortedInts(axes), true
}

func sortedInts(a []int) []int {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
	return a
}

func transposePerm(n *onnxpb.NodeProto, r int) []int {
	perm := make([]int, r)
	if p, ok := attrInts(n, "perm"); ok && len(p) == r {
		for i, v := range p {
			perm[i] = normAxis(v, r)
		}
		return perm
	}
	for i := range perm {
		perm[i] = r - 1 - i
	}
	return perm
}

// nodeAxes reads the axes of Squeeze/Unsqueeze (attribute before opset
// 13, constant input after).
func (c *ctx) nodeAxes(n *onnxpb.NodeProto) ([]int64, bool) {
	if a, ok := attrInts(n, "axes"); ok {
		return a, true
	}
	if len(n.Input) > 1 && n.Input[1] != "" {
		return c.constInts(n.Input[1])
	}
	return nil, true
}

func (c *ctx) inputRanks(n *onnxpb.NodeProto) []int {
	r := make([]int, len(n.Input))
	for i, name := range n.Input {
		r[i] = c.info(name).Rank()
	}
	return r
}
