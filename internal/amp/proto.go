package amp

import (
	"encoding/binary"
	"fmt"
	"math"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

func attrNamed(n *onnxpb.NodeProto, name string) *onnxpb.AttributeProto {
	for _, a := range n.Attribute {
		if a.GetName() == name {
			return a
		}
	}
	return nil
}

func attrInt(n *onnxpb.NodeProto, name string) int64 {
	if a := attrNamed(n, name); a != nil {
		return a.GetI()
	}
	return 0
}

func setAttrInt(n *onnxpb.NodeProto, name string, v int64) {
	if a := attrNamed(n, name); a != nil {
		a.I = proto.Int64(v)
		return
	}
	n.Attribute = append(n.Attribute, onnx.AttrInt(name, v))
}

// maxHalf is float16's largest finite value.
const maxHalf = 65504

// toLow converts a float32 tensor in place to dt (float16 or bfloat16),
// rounding to nearest even; float16 saturates at +-65504 instead of
// overflowing to infinity (see Options.HalfModel).
func toLow(t *onnxpb.TensorProto, dt onnx.DType) error {
	if onnx.IsExternal(t) {
		return fmt.Errorf("its data is in an external file; load the model with its external data first")
	}
	vals, err := onnx.Float32s(t)
	if err != nil {
		return err
	}
	raw := make([]byte, 2*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint16(raw[2*i:], lowBits(v, dt))
	}
	t.DataType = proto.Int32(int32(dt))
	t.FloatData, t.Int32Data, t.DoubleData, t.Int64Data = nil, nil, nil, nil
	t.RawData = raw
	return nil
}

func lowBits(v float32, dt onnx.DType) uint16 {
	if dt == onnx.BFloat16 {
		return onnx.Float32ToBFloat16(v)
	}
	if !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) {
		v = float32(math.Max(-maxHalf, math.Min(maxHalf, float64(v))))
	}
	return onnx.Float32ToHalf(v)
}
