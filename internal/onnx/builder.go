package onnx

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"google.golang.org/protobuf/proto"
)

// ConstMode says how the builder stores constants.
type ConstMode int

const (
	// ConstInitializer stores constants as graph initializers (the default).
	ConstInitializer ConstMode = iota
	// ConstNode stores constants as Constant nodes, which travel with the
	// nodes when a subgraph is extracted.
	ConstNode
)

// GraphBuilder appends nodes, inputs, outputs, initializers and constants to
// a graph, giving every new value and node a name that collides with no
// name already in the graph (nested graphs included).
//
// Builder methods do not validate operator semantics; run InferShapes on
// the result to catch rank and type mistakes.
type GraphBuilder struct {
	g      *onnxpb.GraphProto
	used   map[string]bool
	next   map[string]int
	consts map[string]string

	// Prefix is put in front of every generated name ("grad/", "optim/").
	Prefix string
	// Consts selects initializers or Constant nodes for the Const* helpers.
	Consts ConstMode
}

// NewGraphBuilder starts building on g; a nil g starts an empty graph.
func NewGraphBuilder(g *onnxpb.GraphProto) *GraphBuilder {
	if g == nil {
		g = &onnxpb.GraphProto{Name: proto.String("graph")}
	}
	b := &GraphBuilder{g: g, used: map[string]bool{}, next: map[string]int{}, consts: map[string]string{}}
	collectNames(g, b.used)
	return b
}

// Graph is the graph being built.
func (b *GraphBuilder) Graph() *onnxpb.GraphProto { return b.g }

// collectNames records every value and node name of g and its subgraphs.
func collectNames(g *onnxpb.GraphProto, used map[string]bool) {
	if g == nil {
		return
	}
	for _, vi := range g.Input {
		used[vi.GetName()] = true
	}
	for _, vi := range g.Output {
		used[vi.GetName()] = true
	}
	for _, vi := range g.ValueInfo {
		used[vi.GetName()] = true
	}
	for _, t := range g.Initializer {
		used[t.GetName()] = true
	}
	for _, st := range g.SparseInitializer {
		used[st.GetValues().GetName()] = true
	}
	for _, n := range g.Node {
		if n.GetName() != "" {
			used[n.GetName()] = true
		}
		for _, s := range n.Input {
			used[s] = true
		}
		for _, s := range n.Output {
			used[s] = true
		}
		for _, a := range n.Attribute {
			collectNames(a.G, used)
			for _, sg := range a.Graphs {
				collectNames(sg, used)
			}
		}
	}
	delete(used, "")
}

// Used reports whether a name is taken in the graph.
func (b *GraphBuilder) Used(name string) bool { return b.used[name] }

// Reserve marks a name as taken, so generated names avoid it.
func (b *GraphBuilder) Reserve(name string) { b.used[name] = true }

// Name returns a fresh name built from hint (Prefix+hint, or with a numeric
// suffix when that is taken) and reserves it.
func (b *GraphBuilder) Name(hint string) string {
	if hint == "" {
		hint = "v"
	}
	base := b.Prefix + hint
	if !b.used[base] {
		b.used[base] = true
		return base
	}
	for {
		b.next[base]++
		cand := base + "_" + strconv.Itoa(b.next[base])
		if !b.used[cand] {
			b.used[cand] = true
			return cand
		}
	}
}

// Op appends a node of the standard domain with one output and returns the
// output's name. Pass "" for an omitted optional input.
func (b *GraphBuilder) Op(opType string, inputs []string, attrs ...Attr) string {
	return b.OpDomain("", opType, inputs, 1, attrs...)[0]
}

// OpN appends a standard-domain node with n outputs and returns their names.
func (b *GraphBuilder) OpN(opType string, inputs []string, n int, attrs ...Attr) []string {
	return b.OpDomain("", opType, inputs, n, attrs...)
}

// OpDomain appends a node of an operator domain ("" is the standard one).
// ortrain's own graphs use only standard operators, so that any build of
// ONNX Runtime runs them.
func (b *GraphBuilder) OpDomain(domain, opType string, inputs []string, n int, attrs ...Attr) []string {
	name := b.Name(opType)
	outs := make([]string, n)
	for i := range outs {
		if n == 1 {
			outs[i] = b.Name(strings.TrimPrefix(name, b.Prefix) + "_out")
		} else {
			outs[i] = b.Name(strings.TrimPrefix(name, b.Prefix) + "_out" + strconv.Itoa(i))
		}
	}
	b.AddNode(&onnxpb.NodeProto{
		Name: proto.String(name), OpType: proto.String(opType), Domain: domainPtr(domain),
		Input: append([]string{}, inputs...), Output: outs, Attribute: attrs,
	})
	return outs
}

func domainPtr(domain string) *string {
	if domain == "" {
		return nil
	}
	return proto.String(domain)
}

// Node appends a node with caller-chosen output names (reserved from now on).
func (b *GraphBuilder) Node(opType string, inputs, outputs []string, attrs ...Attr) *onnxpb.NodeProto {
	n := &onnxpb.NodeProto{
		Name: proto.String(b.Name(opType)), OpType: proto.String(opType),
		Input: append([]string{}, inputs...), Output: append([]string{}, outputs...), Attribute: attrs,
	}
	b.AddNode(n)
	return n
}

// AddNode appends an existing node and reserves its names.
func (b *GraphBuilder) AddNode(n *onnxpb.NodeProto) {
	b.g.Node = append(b.g.Node, n)
	if n.GetName() != "" {
		b.used[n.GetName()] = true
	}
	for _, s := range append(append([]string{}, n.Input...), n.Output...) {
		if s != "" {
			b.used[s] = true
		}
	}
	for _, a := range n.Attribute {
		collectNames(a.G, b.used)
		for _, sg := range a.Graphs {
			collectNames(sg, b.used)
		}
	}
}

// AddInput declares a graph input and returns its name.
func (b *GraphBuilder) AddInput(name string, elem DType, dims ...Dim) string {
	b.used[name] = true
	b.g.Input = append(b.g.Input, ValueInfo(name, elem, dims...))
	return name
}

// AddOutput declares a graph output.
func (b *GraphBuilder) AddOutput(name string, elem DType, dims ...Dim) {
	b.used[name] = true
	b.g.Output = append(b.g.Output, ValueInfo(name, elem, dims...))
}

// AddOutputInfo declares a graph output with a type known from inference
// (no shape when the rank is unknown).
func (b *GraphBuilder) AddOutputInfo(name string, t TypeInfo) {
	b.used[name] = true
	b.g.Output = append(b.g.Output, ValueInfoOf(name, t))
}

// SetValueInfo records a value's type in the graph's value_info.
func (b *GraphBuilder) SetValueInfo(name string, t TypeInfo) {
	for i, vi := range b.g.ValueInfo {
		if vi.GetName() == name {
			b.g.ValueInfo[i] = ValueInfoOf(name, t)
			return
		}
	}
	b.g.ValueInfo = append(b.g.ValueInfo, ValueInfoOf(name, t))
}

// AddInitializer adds a tensor as an initializer and returns its name (a
// generated one when the tensor has none).
func (b *GraphBuilder) AddInitializer(t *onnxpb.TensorProto) string {
	if t.GetName() == "" {
		t.Name = proto.String(b.Name("init"))
	}
	b.used[t.GetName()] = true
	b.g.Initializer = append(b.g.Initializer, t)
	return t.GetName()
}

// Const adds a constant tensor (as an initializer or a Constant node, per
// Consts) under a fresh name and returns the name. Identical constants
// (up to 4 KiB) made by the same builder share one value.
func (b *GraphBuilder) Const(t *onnxpb.TensorProto) string {
	raw, err := RawBytes(t)
	key := ""
	if err == nil && len(raw) <= 4096 { // share small constants only: the key holds the bytes
		key = fmt.Sprintf("%d|%v|%x", t.GetDataType(), t.GetDims(), raw)
		if name, ok := b.consts[key]; ok {
			return name
		}
	}
	c := proto.Clone(t).(*onnxpb.TensorProto)
	name := b.Name("const")
	if b.Consts == ConstNode {
		c.Name = nil
		b.AddNode(&onnxpb.NodeProto{
			Name: proto.String(b.Name("Constant")), OpType: proto.String("Constant"),
			Output: []string{name}, Attribute: []Attr{AttrTensor("value", c)},
		})
	} else {
		c.Name = proto.String(name)
		b.AddInitializer(c)
	}
	if key != "" {
		b.consts[key] = name
	}
	return name
}

// ConstInt64s adds an INT64 constant of the given dims.
func (b *GraphBuilder) ConstInt64s(vals []int64, dims []int64) string {
	return b.Const(MustTensor("", dims, vals))
}

// ConstInt64Vec adds a 1-D INT64 constant.
func (b *GraphBuilder) ConstInt64Vec(vals ...int64) string {
	return b.ConstInt64s(vals, []int64{int64(len(vals))})
}

// ConstInt64 adds a scalar INT64 constant.
func (b *GraphBuilder) ConstInt64(v int64) string {
	return b.ConstInt64s([]int64{v}, nil)
}

// ConstFloat32s adds a FLOAT constant of the given dims.
func (b *GraphBuilder) ConstFloat32s(vals []float32, dims []int64) string {
	return b.Const(MustTensor("", dims, vals))
}

// ConstFloat32 adds a scalar FLOAT constant.
func (b *GraphBuilder) ConstFloat32(v float32) string {
	return b.ConstFloat32s([]float32{v}, nil)
}

// ConstBool adds a scalar BOOL constant.
func (b *GraphBuilder) ConstBool(v bool) string {
	return b.Const(MustTensor("", nil, []bool{v}))
}

// ConstScalar adds a scalar constant of any float or integer type, for
// example 1 in the element type of a value being differentiated.
func (b *GraphBuilder) ConstScalar(dt DType, v float64) (string, error) {
	t, err := ScalarTensor(dt, v)
	if err != nil {
		return "", err
	}
	return b.Const(t), nil
}

// ScalarTensor makes an unnamed rank-0 tensor of type dt holding v.
func ScalarTensor(dt DType, v float64) (*onnxpb.TensorProto, error) {
	switch dt {
	case Float32:
		return NewTensor("", nil, []float32{float32(v)})
	case Float64:
		return NewTensor("", nil, []float64{v})
	case Float16:
		return NewFloat16Tensor("", nil, []uint16{Float32ToHalf(float32(v))})
	case BFloat16:
		return NewBFloat16Tensor("", nil, []uint16{Float32ToBFloat16(float32(v))})
	case Int64:
		return NewTensor("", nil, []int64{int64(v)})
	case Int32:
		return NewTensor("", nil, []int32{int32(v)})
	case Int16:
		return NewTensor("", nil, []int16{int16(v)})
	case Int8:
		return NewTensor("", nil, []int8{int8(v)})
	case Uint8:
		return NewTensor("", nil, []uint8{uint8(v)})
	case Uint16:
		return NewTensor("", nil, []uint16{uint16(v)})
	case Uint32:
		return NewTensor("", nil, []uint32{uint32(v)})
	case Uint64:
		return NewTensor("", nil, []uint64{uint64(v)})
	case Bool:
		return NewTensor("", nil, []bool{v != 0})
	}
	return nil, fmt.Errorf("onnx: no scalar constant of type %s", DTypeName(dt))
}

// NewModel wraps a graph in a model that imports the standard operator set
// at the given version, with the IR version that opset requires.
func NewModel(g *onnxpb.GraphProto, opset int64) *onnxpb.ModelProto {
	return &onnxpb.ModelProto{
		IrVersion:    proto.Int64(IRVersionFor(opset)),
		ProducerName: proto.String("ortrain"),
		OpsetImport:  []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(opset)}},
		Graph:        g,
	}
}

// IRVersionFor is the IR version that introduced the given standard opset
// (the lowest IR version a checker accepts for it).
func IRVersionFor(opset int64) int64 {
	switch {
	case opset <= 8:
		return 3
	case opset == 9:
		return 4
	case opset == 10:
		return 5
	case opset == 11:
		return 6
	case opset <= 14:
		return 7
	case opset <= 18:
		return 8
	case opset <= 20:
		return 9
	case opset <= 22:
		return 10
	case opset == 23:
		return 11
	}
	return 12
}
