package onnx

import (
	"math"
	"slices"
	"testing"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"google.golang.org/protobuf/proto"
)

func TestTensorRoundTrip(t *testing.T) {
	f32 := MustTensor("a", []int64{2, 2}, []float32{1, -2.5, 3, float32(math.Inf(1))})
	if got, _ := Float32s(f32); !slices.Equal(got, []float32{1, -2.5, 3, float32(math.Inf(1))}) {
		t.Errorf("float32 %v", got)
	}
	i64 := MustTensor("b", []int64{3}, []int64{-1, 0, 1 << 40})
	if got, _ := Int64s(i64); !slices.Equal(got, []int64{-1, 0, 1 << 40}) {
		t.Errorf("int64 %v", got)
	}
	i32 := MustTensor("c", nil, []int32{-7})
	if got, _ := Int32s(i32); !slices.Equal(got, []int32{-7}) {
		t.Errorf("int32 %v", got)
	}
	bl := MustTensor("d", []int64{3}, []bool{true, false, true})
	if got, _ := Bools(bl); !slices.Equal(got, []bool{true, false, true}) {
		t.Errorf("bool %v", got)
	}
	f64 := MustTensor("e", []int64{1}, []float64{math.Pi})
	if got, _ := Float64s(f64); got[0] != math.Pi {
		t.Errorf("float64 %v", got)
	}
	if _, err := Int64s(f32); err == nil {
		t.Error("Int64s of a FLOAT tensor succeeded")
	}
	if _, err := NewTensor("bad", []int64{2, 3}, []float32{1}); err == nil {
		t.Error("length mismatch accepted")
	}
	type logit float32
	named := MustTensor("n", []int64{2}, []logit{1.5, 2})
	if got, _ := Float32s(named); !slices.Equal(got, []float32{1.5, 2}) {
		t.Errorf("named type %v", got)
	}
}

func TestTypedFields(t *testing.T) {
	// Tensors written by other tools often use the typed fields.
	cases := []struct {
		t    *onnxpb.TensorProto
		want []float64
	}{
		{&onnxpb.TensorProto{DataType: proto.Int32(int32(Float32)), Dims: []int64{2}, FloatData: []float32{1, 2}}, []float64{1, 2}},
		{&onnxpb.TensorProto{DataType: proto.Int32(int32(Int64)), Dims: []int64{2}, Int64Data: []int64{-3, 4}}, []float64{-3, 4}},
		{&onnxpb.TensorProto{DataType: proto.Int32(int32(Int8)), Dims: []int64{2}, Int32Data: []int32{-3, 4}}, []float64{-3, 4}},
		{&onnxpb.TensorProto{DataType: proto.Int32(int32(Float16)), Dims: []int64{1}, Int32Data: []int32{0x3c00}}, []float64{1}},
		{&onnxpb.TensorProto{DataType: proto.Int32(int32(BFloat16)), Dims: []int64{1}, Int32Data: []int32{0xc000}}, []float64{-2}},
		{&onnxpb.TensorProto{DataType: proto.Int32(int32(Float64)), Dims: []int64{}, DoubleData: []float64{0.25}}, []float64{0.25}},
		{&onnxpb.TensorProto{DataType: proto.Int32(int32(Uint32)), Dims: []int64{1}, Uint64Data: []uint64{7}}, []float64{7}},
	}
	for i, c := range cases {
		got, err := ToFloat64s(c.t)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("case %d: %v %v", i, got, err)
		}
	}
	bad := &onnxpb.TensorProto{DataType: proto.Int32(int32(Float32)), Dims: []int64{3}, FloatData: []float32{1}}
	if _, err := Float32s(bad); err == nil {
		t.Error("short float_data accepted")
	}
}

func TestHalf(t *testing.T) {
	for _, f := range []float32{0, 1, -2, 0.5, 65504, 6.1035156e-05, 5.9604645e-08, float32(math.Inf(-1))} {
		h := Float32ToHalf(f)
		if back := HalfToFloat32(h); back != f {
			t.Errorf("half(%g) = %#04x -> %g", f, h, back)
		}
	}
	if h := Float32ToHalf(1e6); h != 0x7c00 {
		t.Errorf("overflow gives %#04x", h)
	}
	if h := Float32ToHalf(float32(math.NaN())); HalfToFloat32(h) == HalfToFloat32(h) {
		t.Error("NaN lost")
	}
	if b := Float32ToBFloat16(1.0); b != 0x3f80 {
		t.Errorf("bf16(1) = %#04x", b)
	}
	ft, _ := NewFloat16Tensor("h", []int64{2}, []uint16{0x3c00, 0xc000})
	if got, _ := ToFloat64s(ft); !slices.Equal(got, []float64{1, -2}) {
		t.Errorf("f16 tensor %v", got)
	}
	if got, _ := HalfBits(ft); !slices.Equal(got, []uint16{0x3c00, 0xc000}) {
		t.Errorf("f16 bits %v", got)
	}
}

func TestDTypeSizes(t *testing.T) {
	for dt, want := range map[DType]int{Float32: 4, Float64: 8, Float16: 2, BFloat16: 2, Int64: 8, Bool: 1, String: 0, onnxpb.TensorProto_INT4: 0} {
		if got := DTypeSize(dt); got != want {
			t.Errorf("%s: %d", DTypeName(dt), got)
		}
	}
	if NumElements(nil) != 1 || NumElements([]int64{2, 0, 3}) != 0 || NumElements([]int64{2, -1}) != -1 {
		t.Error("NumElements")
	}
	int4 := &onnxpb.TensorProto{DataType: proto.Int32(int32(onnxpb.TensorProto_INT4)), Dims: []int64{3}}
	if ByteSize(int4) != 2 {
		t.Errorf("int4 x3 bytes %d", ByteSize(int4))
	}
}
