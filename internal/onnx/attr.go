package onnx

import (
	"fmt"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"google.golang.org/protobuf/proto"
)

// Attr is a node attribute. Attributes of existing nodes can be passed to the
// builder as they are.
type Attr = *onnxpb.AttributeProto

func attr(name string, typ onnxpb.AttributeProto_AttributeType) Attr {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: typ.Enum()}
}

// AttrInt makes an INT attribute.
func AttrInt(name string, v int64) Attr {
	a := attr(name, onnxpb.AttributeProto_INT)
	a.I = proto.Int64(v)
	return a
}

// AttrInts makes an INTS attribute.
func AttrInts(name string, v []int64) Attr {
	a := attr(name, onnxpb.AttributeProto_INTS)
	a.Ints = append([]int64{}, v...)
	return a
}

// AttrFloat makes a FLOAT attribute.
func AttrFloat(name string, v float32) Attr {
	a := attr(name, onnxpb.AttributeProto_FLOAT)
	a.F = proto.Float32(v)
	return a
}

// AttrFloats makes a FLOATS attribute.
func AttrFloats(name string, v []float32) Attr {
	a := attr(name, onnxpb.AttributeProto_FLOATS)
	a.Floats = append([]float32{}, v...)
	return a
}

// AttrString makes a STRING attribute.
func AttrString(name, v string) Attr {
	a := attr(name, onnxpb.AttributeProto_STRING)
	a.S = []byte(v)
	return a
}

// AttrStrings makes a STRINGS attribute.
func AttrStrings(name string, v []string) Attr {
	a := attr(name, onnxpb.AttributeProto_STRINGS)
	for _, s := range v {
		a.Strings = append(a.Strings, []byte(s))
	}
	return a
}

// AttrTensor makes a TENSOR attribute.
func AttrTensor(name string, t *onnxpb.TensorProto) Attr {
	a := attr(name, onnxpb.AttributeProto_TENSOR)
	a.T = t
	return a
}

// AttrGraph makes a GRAPH attribute (the body of If, Loop, Scan).
func AttrGraph(name string, g *onnxpb.GraphProto) Attr {
	a := attr(name, onnxpb.AttributeProto_GRAPH)
	a.G = g
	return a
}

// FindAttr returns the node's attribute called name, or nil.
func FindAttr(n *onnxpb.NodeProto, name string) Attr {
	for _, a := range n.GetAttribute() {
		if a.GetName() == name {
			return a
		}
	}
	return nil
}

// AttrIntOr returns the node's INT attribute name, or def when absent.
func AttrIntOr(n *onnxpb.NodeProto, name string, def int64) int64 {
	if a := FindAttr(n, name); a != nil {
		return a.GetI()
	}
	return def
}

// AttrFloatOr returns the node's FLOAT attribute name, or def when absent.
func AttrFloatOr(n *onnxpb.NodeProto, name string, def float32) float32 {
	if a := FindAttr(n, name); a != nil {
		return a.GetF()
	}
	return def
}

// AttrStringOr returns the node's STRING attribute name, or def when absent.
func AttrStringOr(n *onnxpb.NodeProto, name string, def string) string {
	if a := FindAttr(n, name); a != nil {
		return string(a.GetS())
	}
	return def
}

// AttrIntsOf returns the node's INTS attribute name and whether it is present.
func AttrIntsOf(n *onnxpb.NodeProto, name string) ([]int64, bool) {
	if a := FindAttr(n, name); a != nil {
		return a.GetInts(), true
	}
	return nil, false
}

// NodeLabel names a node for error messages: its name, or its type and
// first output when it has no name.
func NodeLabel(n *onnxpb.NodeProto) string {
	if n.GetName() != "" {
		return fmt.Sprintf("%s node %q", n.GetOpType(), n.GetName())
	}
	if len(n.Output) > 0 {
		return fmt.Sprintf("%s node producing %q", n.GetOpType(), n.Output[0])
	}
	return n.GetOpType() + " node"
}
