package lora

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// prefix names every node and value the rewrite adds, so that Strip can
// take the branches out again.
const prefix = "lora/"

// site is one place where a graph multiplies a layer's input by its weight.
type site struct {
	node *onnxpb.NodeProto
	// in and out are the layer's dims as this use reads the weight.
	in, out int64
}

// sites finds the nodes of g that apply the linear layer whose weight is
// the value weight (of graph shape shape): MatMul(x, W) or Gemm(x, W)
// (transA 0), with W the weight or Transpose(weight).
func sites(g *onnxpb.GraphProto, weight string, shape []int64) ([]site, error) {
	if len(shape) != 2 {
		return nil, fmt.Errorf("weight %s has shape %v, not a matrix", weight, shape)
	}
	transposed := map[string]bool{weight: false}
	for _, n := range g.Node {
		if n.GetOpType() == "Transpose" && len(n.Input) == 1 && n.Input[0] == weight {
			perm, ok := onnx.AttrIntsOf(n, "perm")
			if !ok || len(perm) == 2 && perm[0] == 1 && perm[1] == 0 {
				transposed[n.Output[0]] = true
			}
		}
	}
	var out []site
	for _, n := range g.Node {
		if len(n.Input) < 2 || n.GetDomain() != "" && n.GetDomain() != "ai.onnx" {
			continue
		}
		flip, ok := transposed[n.Input[1]]
		if !ok {
			continue
		}
		switch n.GetOpType() {
		case "MatMul":
		case "Gemm":
			if onnx.AttrIntOr(n, "transA", 0) != 0 {
				return nil, fmt.Errorf("node %s reads %s with transA: not a linear layer's form", n.GetName(), weight)
			}
			if onnx.AttrIntOr(n, "transB", 0) != 0 {
				flip = !flip
			}
		default:
			continue
		}
		s := site{node: n, in: shape[0], out: shape[1]}
		if flip {
			s.in, s.out = shape[1], shape[0]
		}
		out = append(out, s)
	}
	return out, nil
}

// Dims returns a linear layer's input and output features from how g
// multiplies by its weight (graph name weight, graph shape shape); ok is
// false when g never applies it as a linear layer.
func Dims(g *onnxpb.GraphProto, weight string, shape []int64) (in, out int64, ok bool, err error) {
	ss, err := sites(g, weight, shape)
	if err != nil || len(ss) == 0 {
		return 0, 0, false, err
	}
	// A weight that something else reads too (the Gather of a tied
	// embedding) is no nn.Linear's.
	multiplies := map[*onnxpb.NodeProto]bool{}
	for _, s := range ss {
		multiplies[s.node] = true
	}
	for _, n := range g.Node {
		if multiplies[n] || n.GetOpType() == "Transpose" && len(n.Input) == 1 {
			continue
		}
		for _, in := range n.Input {
			if in == weight {
				return 0, 0, false, nil
			}
		}
	}
	for _, s := range ss[1:] {
		if s.in != ss[0].in || s.out != ss[0].out {
			return 0, 0, false, fmt.Errorf("weight %s is read as %dx%d and as %dx%d", weight, ss[0].in, ss[0].out, s.in, s.out)
		}
	}
	return ss[0].in, ss[0].out, true, nil
}

// ApplyOptions say how the branches compute.
type ApplyOptions struct {
	Scaling float64
	// Dropout is the adapter input's dropout ratio; a Dropout node in
	// training mode is added when it is above 0 (the artifact builder
	// makes it seeded in the training graph and the identity elsewhere).
	Dropout float64
	// Opset is the graph's standard opset (Dropout takes its ratio as an
	// input from opset 12).
	Opset int64
}

// Apply adds beside every use of each module's weight (its name in g)
// the adapter branch of PEFT's lora.Linear.forward:
//
//	y = base(x) + (dropout(x) @ A) @ B * scaling
//
// where A and B are the values AName(m) and BName(m) in the graphs' layout
// ([in, r] and [r, out]: the transposes of PEFT's lora_A and lora_B
// weights). The branch joins the layer's MatMul or Gemm output, before a
// separate bias Add. It returns how many uses each module's branch was
// added at (modules g does not apply are left out).
func Apply(g *onnxpb.GraphProto, mods []Module, weights map[string][]int64, opts ApplyOptions) (map[string]int, error) {
	if opts.Dropout > 0 && opts.Opset < 12 {
		return nil, fmt.Errorf("lora_dropout needs opset 12 or newer (the graph has opset %d)", opts.Opset)
	}
	b := onnx.NewGraphBuilder(g)
	b.Prefix = prefix
	after := map[*onnxpb.NodeProto][]*onnxpb.NodeProto{}
	count := map[string]int{}
	scale := ""
	if opts.Scaling != 1 {
		scale = b.ConstFloat32(float32(opts.Scaling))
	}
	ratio, training := "", ""
	if opts.Dropout > 0 {
		ratio = b.ConstFloat32(float32(opts.Dropout))
		training = b.ConstBool(true)
	}
	for _, m := range mods {
		ss, err := sites(g, m.Weight, weights[m.Weight])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.Name, err)
		}
		for i, s := range ss {
			if s.in != m.In || s.out != m.Out {
				return nil, fmt.Errorf("%s: node %s reads the weight as %dx%d, the layer is %dx%d", m.Name, s.node.GetName(), s.in, s.out, m.In, m.Out)
			}
			tag := prefix + m.Name + "/"
			if i > 0 {
				tag = fmt.Sprintf("%s%s/%d/", prefix, m.Name, i)
			}
			x, y := s.node.Input[0], s.node.Output[0]
			base := b.Name(m.Name + "/base")
			s.node.Output[0] = base
			var nodes []*onnxpb.NodeProto
			node := func(op, role string, in []string) string {
				out := b.Name(m.Name + "/" + role)
				nodes = append(nodes, &onnxpb.NodeProto{Name: proto.String(tag + role), OpType: proto.String(op), Input: in, Output: []string{out}})
				return out
			}
			h := x
			if opts.Dropout > 0 {
				h = node("Dropout", "dropout", []string{x, ratio, training})
			}
			h = node("MatMul", "lora_a", []string{h, AName(m.Name)})
			h = node("MatMul", "lora_b", []string{h, BName(m.Name)})
			if scale != "" {
				h = node("Mul", "scale", []string{h, scale})
			}
			nodes = append(nodes, &onnxpb.NodeProto{Name: proto.String(tag + "add"), OpType: proto.String("Add"), Input: []string{base, h}, Output: []string{y}})
			after[s.node] = append(after[s.node], nodes...)
			count[m.Name]++
		}
	}
	nodes := make([]*onnxpb.NodeProto, 0, len(g.Node))
	for _, n := range g.Node {
		nodes = append(nodes, n)
		nodes = append(nodes, after[n]...)
	}
	g.Node = nodes
	return count, nil
}

// Strip takes the branches Apply added out of g again (the layers' own
// outputs get their names back) and drops the adapter inputs, for a graph
// that runs with merged weights.
func Strip(g *onnxpb.GraphProto) {
	renamed := map[string]string{}
	kept := g.Node[:0]
	for _, n := range g.Node {
		if !strings.HasPrefix(n.GetName(), prefix) {
			kept = append(kept, n)
			continue
		}
		if strings.HasSuffix(n.GetName(), "/add") && n.GetOpType() == "Add" {
			renamed[n.Input[0]] = n.Output[0]
		}
	}
	g.Node = kept
	for _, n := range g.Node {
		for i, o := range n.Output {
			if to, ok := renamed[o]; ok {
				n.Output[i] = to
			}
		}
	}
	used := map[string]bool{}
	for _, n := range g.Node {
		for _, in := range onnx.NodeInputs(n) {
			used[in] = true
		}
	}
	for _, o := range g.Output {
		used[o.GetName()] = true
	}
	inits := g.Initializer[:0]
	for _, t := range g.Initializer {
		if used[t.GetName()] || !strings.HasPrefix(t.GetName(), prefix) {
			inits = append(inits, t)
		}
	}
	g.Initializer = inits
	ins := g.Input[:0]
	for _, in := range g.Input {
		n := in.GetName()
		if used[n] || !(strings.HasSuffix(n, ".lora_A.weight") || strings.HasSuffix(n, ".lora_B.weight")) {
			ins = append(ins, in)
		}
	}
	g.Input = ins
	vi := g.ValueInfo[:0]
	for _, v := range g.ValueInfo {
		if !strings.HasPrefix(v.GetName(), prefix) {
			vi = append(vi, v)
		}
	}
	g.ValueInfo = vi
}
