package autodiff

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"google.golang.org/protobuf/proto"
)

// Element types used by the rules, under short names.
const (
	tFloat32  = onnx.Float32
	tFloat64  = onnx.Float64
	tFloat16  = onnx.Float16
	tBFloat16 = onnx.BFloat16
	tInt64    = onnx.Int64
	tInt32    = onnx.Int32
	tBool     = onnx.Bool
)

// isFloat reports whether values of element type dt can carry a gradient.
func isFloat(dt onnx.DType) bool {
	return dt == tFloat32 || dt == tFloat64 || dt == tFloat16 || dt == tBFloat16
}

func dtypeName(dt onnx.DType) string {
	if s, ok := onnxpb.TensorProto_DataType_name[int32(dt)]; ok {
		return s
	}
	return fmt.Sprintf("type %d", dt)
}

// attr returns the node attribute called name, or nil.
func attr(n *onnxpb.NodeProto, name string) *onnxpb.AttributeProto {
	for _, a := range n.Attribute {
		if a.GetName() == name {
			return a
		}
	}
	return nil
}

func attrInt(n *onnxpb.NodeProto, name string, def int64) int64 {
	if a := attr(n, name); a != nil {
		return a.GetI()
	}
	return def
}

func attrFloat(n *onnxpb.NodeProto, name string, def float32) float32 {
	if a := attr(n, name); a != nil {
		return a.GetF()
	}
	return def
}

func attrString(n *onnxpb.NodeProto, name, def string) string {
	if a := attr(n, name); a != nil {
		return string(a.GetS())
	}
	return def
}

func attrInts(n *onnxpb.NodeProto, name string) ([]int64, bool) {
	if a := attr(n, name); a != nil {
		return a.GetInts(), true
	}
	return nil, false
}

func intAttr(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

func floatAttr(name string, v float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: proto.Float32(v)}
}

func intsAttr(name string, v []int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: append([]int64{}, v...)}
}

func stringAttr(name, v string) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_STRING.Enum(), S: []byte(v)}
}

func tensorAttr(name string, t *onnxpb.TensorProto) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_TENSOR.Enum(), T: t}
}

// scalarTensor makes a tensor of element type dt holding v (rounded to
// the type), with the given dims (nil = rank 0).
func scalarTensor(dt onnx.DType, v float64, dims []int64) (*onnxpb.TensorProto, error) {
	n := int64(1)
	for _, d := range dims {
		n *= d
	}
	t := &onnxpb.TensorProto{DataType: proto.Int32(int32(dt)), Dims: append([]int64{}, dims...)}
	switch dt {
	case tFloat32:
		for i := int64(0); i < n; i++ {
			t.FloatData = append(t.FloatData, float32(v))
		}
	case tFloat64:
		for i := int64(0); i < n; i++ {
			t.DoubleData = append(t.DoubleData, v)
		}
	case tInt64:
		for i := int64(0); i < n; i++ {
			t.Int64Data = append(t.Int64Data, int64(v))
		}
	case tInt32, tBool:
		for i := int64(0); i < n; i++ {
			t.Int32Data = append(t.Int32Data, int32(v))
		}
	case tFloat16, tBFloat16:
		bits := f16bits(float32(v))
		if dt == tBFloat16 {
			bits = uint16(math.Float32bits(float32(v)) >> 16)
		}
		raw := make([]byte, 2*n)
		for i := int64(0); i < n; i++ {
			binary.LittleEndian.PutUint16(raw[2*i:], bits)
		}
		t.RawData = raw
	default:
		return nil, fmt.Errorf("autodiff: cannot make a constant of element type %s", dtypeName(dt))
	}
	return t, nil
}

// f16bits converts to IEEE half precision (round to nearest even; the
// constants used by the rules are small exact values).
func f16bits(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23&0xff) - 127 + 15
	mant := b & 0x7fffff
	switch {
	case b&0x7fffffff == 0:
		return sign
	case exp >= 31:
		return sign | 0x7c00
	case exp <= 0:
		return sign
	}
	m := mant >> 13
	if rem := mant & 0x1fff; rem > 0x1000 || (rem == 0x1000 && m&1 == 1) {
		m++
		if m == 0x400 {
			m = 0
			exp++
		}
	}
	return sign | uint16(exp)<<10 | uint16(m)
}

// tensorInts decodes an integer tensor (int64 or int32) held in the proto.
func tensorInts(t *onnxpb.TensorProto) ([]int64, bool) {
	if len(t.ExternalData) > 0 {
		return nil, false
	}
	switch onnx.DType(t.GetDataType()) {
	case tInt64:
		if len(t.RawData) > 0 {
			out := make([]int64, len(t.RawData)/8)
			for i := range out {
				out[i] = int64(binary.LittleEndian.Uint64(t.RawData[8*i:]))
			}
			return out, true
		}
		return append([]int64{}, t.Int64Data...), true
	case tInt32:
		if len(t.RawData) > 0 {
			out := make([]int64, len(t.RawData)/4)
			for i := range out {
				out[i] = int64(int32(binary.LittleEndian.Uint32(t.RawData[4*i:])))
			}
			return out, true
		}
		out := make([]int64, len(t.Int32Data))
		for i, v := range t.Int32Data {
			out[i] = int64(v)
		}
		return out, true
	}
	return nil, false
}

// tensorFloats decodes a float32 or float64 tensor held in the proto.
func tensorFloats(t *onnxpb.TensorProto) ([]float64, bool) {
	if len(t.ExternalData) > 0 {
		return nil, false
	}
	switch onnx.DType(t.GetDataType()) {
	case tFloat32:
		if len(t.RawData) > 0 {
			out := make([]float64, len(t.RawData)/4)
			for i := range out {
				out[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(t.RawData[4*i:])))
			}
			return out, true
		}
		out := make([]float64, len(t.FloatData))
		for i, v := range t.FloatData {
			out[i] = float64(v)
		}
		return out, true
	case tFloat64:
		if len(t.RawData) > 0 {
			out := make([]float64, len(t.RawData)/8)
			for i := range out {
				out[i] = math.Float64frombits(binary.LittleEndian.Uint64(t.RawData[8*i:]))
			}
			return out, true
		}
		return append([]float64{}, t.DoubleData...), true
	}
	if v, ok := tensorInts(t); ok {
		out := make([]float64, len(v))
		for i, x := range v {
			out[i] = float64(x)
		}
		return out, true
	}
	return nil, false
}

// mustTensor is scalarTensor for the element types the rules already
// checked (float and integer types); it never fails for those.
func mustTensor(dt onnx.DType, v float64, dims []int64) *onnxpb.TensorProto {
	t, err := scalarTensor(dt, v, dims)
	if err != nil {
		return &onnxpb.TensorProto{DataType: proto.Int32(int32(dt)), Dims: dims}
	}
	return t
}
