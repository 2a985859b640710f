package optim

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// builder appends nodes to an ONNX graph under fresh, prefixed value names.
// It is deliberately tiny: the graphs built here use a dozen op types.
type builder struct {
	g      *onnxpb.GraphProto
	prefix string
	n      int
	used   map[string]bool
}

func newBuilder(g *onnxpb.GraphProto, prefix string) *builder {
	used := map[string]bool{}
	for _, v := range g.GetInput() {
		used[v.GetName()] = true
	}
	for _, t := range g.GetInitializer() {
		used[t.GetName()] = true
	}
	for _, n := range g.GetNode() {
		for _, o := range n.GetOutput() {
			used[o] = true
		}
	}
	return &builder{g: g, prefix: prefix, used: used}
}

// fresh returns an unused value name.
func (b *builder) fresh(hint string) string {
	for {
		b.n++
		name := fmt.Sprintf("%s%s_%d", b.prefix, hint, b.n)
		if !b.used[name] {
			b.used[name] = true
			return name
		}
	}
}

// op adds a node with one output and returns the output's name.
func (b *builder) op(opType string, inputs []string, attrs ...*onnxpb.AttributeProto) string {
	out := b.fresh(opType)
	b.opTo(opType, inputs, out, attrs...)
	return out
}

// opTo adds a node writing to the given output name.
func (b *builder) opTo(opType string, inputs []string, out string, attrs ...*onnxpb.AttributeProto) {
	b.used[out] = true
	b.g.Node = append(b.g.Node, &onnxpb.NodeProto{
		Name:      proto.String(b.prefix + opType + "_" + out),
		OpType:    proto.String(opType),
		Input:     inputs,
		Output:    []string{out},
		Attribute: attrs,
	})
}

func (b *builder) constTensor(hint string, t *onnxpb.TensorProto) string {
	name := b.fresh(hint)
	t.Name = proto.String(name)
	b.g.Initializer = append(b.g.Initializer, t)
	return name
}

func (b *builder) scalarF32(v float32) string {
	return b.constTensor("c", &onnxpb.TensorProto{DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), FloatData: []float32{v}})
}

func (b *builder) scalarF64(v float64) string {
	return b.constTensor("c", &onnxpb.TensorProto{DataType: proto.Int32(int32(onnxpb.TensorProto_DOUBLE)), DoubleData: []float64{v}})
}

func (b *builder) scalarI64(v int64) string {
	return b.constTensor("c", &onnxpb.TensorProto{DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), Int64Data: []int64{v}})
}

func (b *builder) vecI64(v ...int64) string {
	return b.constTensor("c", &onnxpb.TensorProto{Dims: []int64{int64(len(v))}, DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), Int64Data: v})
}

func (b *builder) cast(x string, to onnxpb.TensorProto_DataType) string {
	return b.op("Cast", []string{x}, attrInt("to", int64(to)))
}

func attrInt(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

// ValueInfo describes a graph input or output: element type and dims, where
// a dim < 0 is symbolic and named by the matching DimNames entry (or left
// anonymous when that is empty).
func valueInfo(name string, dt onnxpb.TensorProto_DataType, dims []int64, dimNames []string) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{}
	for i, d := range dims {
		dim := &onnxpb.TensorShapeProto_Dimension{}
		if d >= 0 {
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}
		} else if i < len(dimNames) && dimNames[i] != "" {
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: dimNames[i]}
		}
		shape.Dim = append(shape.Dim, dim)
	}
	return &onnxpb.ValueInfoProto{
		Name: proto.String(name),
		Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
			ElemType: proto.Int32(int32(dt)),
			Shape:    shape,
		}}},
	}
}

// newModel wraps a graph with the default-domain opset the builders target.
func newModel(g *onnxpb.GraphProto, opset int64) *onnxpb.ModelProto {
	return &onnxpb.ModelProto{
		IrVersion:    proto.Int64(8),
		ProducerName: proto.String("ortrain"),
		OpsetImport:  []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(opset)}},
		Graph:        g,
	}
}
