package onnx

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"google.golang.org/protobuf/proto"
)

// DType is an ONNX tensor element type (TensorProto.DataType).
type DType = onnxpb.TensorProto_DataType

// The element types ortrain works with, under short names.
const (
	Undefined = onnxpb.TensorProto_UNDEFINED
	Float32   = onnxpb.TensorProto_FLOAT
	Float64   = onnxpb.TensorProto_DOUBLE
	Float16   = onnxpb.TensorProto_FLOAT16
	BFloat16  = onnxpb.TensorProto_BFLOAT16
	Int64     = onnxpb.TensorProto_INT64
	Int32     = onnxpb.TensorProto_INT32
	Int16     = onnxpb.TensorProto_INT16
	Int8      = onnxpb.TensorProto_INT8
	Uint8     = onnxpb.TensorProto_UINT8
	Uint16    = onnxpb.TensorProto_UINT16
	Uint32    = onnxpb.TensorProto_UINT32
	Uint64    = onnxpb.TensorProto_UINT64
	Bool      = onnxpb.TensorProto_BOOL
	String    = onnxpb.TensorProto_STRING
)

// DTypeBits is the storage width of one element in bits (4 for INT4, 8 for
// INT8, ...), or 0 for STRING, UNDEFINED and unknown types.
func DTypeBits(dt DType) int {
	switch dt {
	case onnxpb.TensorProto_UINT8, onnxpb.TensorProto_INT8, onnxpb.TensorProto_BOOL,
		onnxpb.TensorProto_FLOAT8E4M3FN, onnxpb.TensorProto_FLOAT8E4M3FNUZ,
		onnxpb.TensorProto_FLOAT8E5M2, onnxpb.TensorProto_FLOAT8E5M2FNUZ, onnxpb.TensorProto_FLOAT8E8M0:
		return 8
	case onnxpb.TensorProto_UINT16, onnxpb.TensorProto_INT16, onnxpb.TensorProto_FLOAT16, onnxpb.TensorProto_BFLOAT16:
		return 16
	case onnxpb.TensorProto_FLOAT, onnxpb.TensorProto_INT32, onnxpb.TensorProto_UINT32:
		return 32
	case onnxpb.TensorProto_INT64, onnxpb.TensorProto_DOUBLE, onnxpb.TensorProto_UINT64, onnxpb.TensorProto_COMPLEX64:
		return 64
	case onnxpb.TensorProto_COMPLEX128:
		return 128
	case onnxpb.TensorProto_UINT4, onnxpb.TensorProto_INT4, onnxpb.TensorProto_FLOAT4E2M1:
		return 4
	case onnxpb.TensorProto_UINT2, onnxpb.TensorProto_INT2:
		return 2
	case onnxpb.TensorProto_FLOAT6E2M3, onnxpb.TensorProto_FLOAT6E3M2:
		return 6
	}
	return 0
}

// DTypeSize is the size of one element in bytes, or 0 for types that are
// not a whole number of bytes (INT4, ...), STRING and unknown types.
func DTypeSize(dt DType) int {
	b := DTypeBits(dt)
	if b%8 != 0 {
		return 0
	}
	return b / 8
}

// DTypeName is the ONNX name of an element type ("FLOAT", "INT64", ...).
func DTypeName(dt DType) string {
	if s, ok := onnxpb.TensorProto_DataType_name[int32(dt)]; ok {
		return s
	}
	return fmt.Sprintf("DataType(%d)", int32(dt))
}

// ReadableDType is the name people use for an element type, as numpy and
// torch spell them: float32, float16, bfloat16, int64, bool, ...; other
// types are their ONNX name in lower case; "unknown" when undefined.
func ReadableDType(dt DType) string {
	switch dt {
	case onnxpb.TensorProto_UNDEFINED:
		return "unknown"
	case onnxpb.TensorProto_FLOAT:
		return "float32"
	case onnxpb.TensorProto_DOUBLE:
		return "float64"
	}
	return strings.ToLower(DTypeName(dt))
}

// IsFloat reports whether dt is a floating-point type (differentiable).
func IsFloat(dt DType) bool {
	switch dt {
	case onnxpb.TensorProto_FLOAT, onnxpb.TensorProto_DOUBLE, onnxpb.TensorProto_FLOAT16, onnxpb.TensorProto_BFLOAT16,
		onnxpb.TensorProto_FLOAT8E4M3FN, onnxpb.TensorProto_FLOAT8E4M3FNUZ, onnxpb.TensorProto_FLOAT8E5M2,
		onnxpb.TensorProto_FLOAT8E5M2FNUZ, onnxpb.TensorProto_FLOAT4E2M1, onnxpb.TensorProto_FLOAT8E8M0,
		onnxpb.TensorProto_FLOAT6E2M3, onnxpb.TensorProto_FLOAT6E3M2:
		return true
	}
	return false
}

// NumElements is the product of dims (1 for a scalar). A negative dim, or a
// product beyond int64, gives -1.
func NumElements(dims []int64) int64 {
	for _, d := range dims {
		if d < 0 {
			return -1
		}
		if d == 0 {
			return 0
		}
	}
	n := int64(1)
	for _, d := range dims {
		if n > math.MaxInt64/d {
			return -1
		}
		n *= d
	}
	return n
}

// ByteSize is the number of bytes the tensor's elements take in raw form
// (packed for sub-byte types; 0 for STRING or a size beyond int64).
func ByteSize(t *onnxpb.TensorProto) int64 {
	n, _ := ByteSizeChecked(t)
	return n
}

// ByteSizeChecked is ByteSize, false when the dims are negative, the
// element type has no raw form, or the size does not fit in an int64.
func ByteSizeChecked(t *onnxpb.TensorProto) (int64, bool) {
	return rawSize(t.GetDims(), DTypeBits(DType(t.GetDataType())))
}

func rawSize(dims []int64, bits int) (int64, bool) {
	n := NumElements(dims)
	if n < 0 || bits <= 0 || n > (math.MaxInt64-7)/int64(bits) {
		return 0, false
	}
	return (n*int64(bits) + 7) / 8, true
}

// sizeText is a byte count for messages, or "more than int64 bytes".
func sizeText(n int64, ok bool) string {
	if !ok {
		return "a size beyond 2^63 bytes (bad dims)"
	}
	return fmt.Sprintf("%d", n)
}

// IsExternal reports whether the tensor's data still lives in an external file.
func IsExternal(t *onnxpb.TensorProto) bool {
	return t.GetDataLocation() == onnxpb.TensorProto_EXTERNAL
}

// Elem is the set of Go element types that map one-to-one onto an ONNX type.
type Elem interface {
	~float32 | ~float64 | ~int64 | ~int32 | ~int16 | ~int8 | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~bool
}

// DTypeOf is the ONNX type of a Go element type. uint16 maps to UINT16; use
// NewFloat16Tensor or NewBFloat16Tensor for half-precision data.
func DTypeOf[T Elem]() DType {
	switch reflect.TypeFor[T]().Kind() {
	case reflect.Float32:
		return Float32
	case reflect.Float64:
		return Float64
	case reflect.Int64:
		return Int64
	case reflect.Int32:
		return Int32
	case reflect.Int16:
		return Int16
	case reflect.Int8:
		return Int8
	case reflect.Uint8:
		return Uint8
	case reflect.Uint16:
		return Uint16
	case reflect.Uint32:
		return Uint32
	case reflect.Uint64:
		return Uint64
	case reflect.Bool:
		return Bool
	}
	return Undefined
}

// NewTensor builds a tensor from a Go slice, stored little-endian in raw_data.
// It fails when len(data) does not match the product of dims.
func NewTensor[T Elem](name string, dims []int64, data []T) (*onnxpb.TensorProto, error) {
	dt := DTypeOf[T]()
	if dt == Undefined {
		return nil, fmt.Errorf("onnx: tensor %q: unsupported Go element type %T", name, *new(T))
	}
	if err := checkCount(name, dims, len(data)); err != nil {
		return nil, err
	}
	size := DTypeSize(dt)
	raw := make([]byte, len(data)*size)
	if reflect.TypeFor[T]() == goType(dt) {
		for i, v := range data {
			putElem(raw[i*size:], any(v))
		}
	} else { // a named type such as type Logit float32
		rv := reflect.ValueOf(data)
		for i := range data {
			putElem(raw[i*size:], rv.Index(i).Convert(goType(dt)).Interface())
		}
	}
	return newRaw(name, dt, dims, raw), nil
}

// MustTensor is NewTensor for data known to be well formed (program
// constants); it panics on a length mismatch, which is a programming error.
func MustTensor[T Elem](name string, dims []int64, data []T) *onnxpb.TensorProto {
	t, err := NewTensor(name, dims, data)
	if err != nil {
		panic(err)
	}
	return t
}

// NewTensorRaw builds a tensor of any fixed-size type from little-endian bytes
// (for FLOAT16 and BFLOAT16 pass the 16-bit patterns).
func NewTensorRaw(name string, dt DType, dims []int64, raw []byte) (*onnxpb.TensorProto, error) {
	if DTypeBits(dt) == 0 {
		return nil, fmt.Errorf("onnx: tensor %q: element type %s has no raw form", name, DTypeName(dt))
	}
	n := NumElements(dims)
	if n < 0 {
		return nil, fmt.Errorf("onnx: tensor %q: negative dimension in %v", name, dims)
	}
	want := (n*int64(DTypeBits(dt)) + 7) / 8
	if int64(len(raw)) != want {
		return nil, fmt.Errorf("onnx: tensor %q: %d bytes of data for dims %v of %s (want %d)", name, len(raw), dims, DTypeName(dt), want)
	}
	return newRaw(name, dt, dims, append([]byte(nil), raw...)), nil
}

// NewFloat16Tensor builds a FLOAT16 tensor from IEEE half-precision bit patterns.
func NewFloat16Tensor(name string, dims []int64, bits []uint16) (*onnxpb.TensorProto, error) {
	return newHalf(name, Float16, dims, bits)
}

// NewBFloat16Tensor builds a BFLOAT16 tensor from bfloat16 bit patterns.
func NewBFloat16Tensor(name string, dims []int64, bits []uint16) (*onnxpb.TensorProto, error) {
	return newHalf(name, BFloat16, dims, bits)
}

func newHalf(name string, dt DType, dims []int64, bits []uint16) (*onnxpb.TensorProto, error) {
	if err := checkCount(name, dims, len(bits)); err != nil {
		return nil, err
	}
	raw := make([]byte, 2*len(bits))
	for i, v := range bits {
		binary.LittleEndian.PutUint16(raw[2*i:], v)
	}
	return newRaw(name, dt, dims, raw), nil
}

func checkCount(name string, dims []int64, n int) error {
	want := NumElements(dims)
	if want < 0 {
		return fmt.Errorf("onnx: tensor %q: negative dimension in %v", name, dims)
	}
	if want != int64(n) {
		return fmt.Errorf("onnx: tensor %q: %d values for dims %v (want %d)", name, n, dims, want)
	}
	return nil
}

func newRaw(name string, dt DType, dims []int64, raw []byte) *onnxpb.TensorProto {
	if raw == nil {
		raw = []byte{}
	}
	t := &onnxpb.TensorProto{
		DataType: proto.Int32(int32(dt)),
		Dims:     append([]int64{}, dims...),
		RawData:  raw,
	}
	if name != "" {
		t.Name = proto.String(name)
	}
	return t
}

func putElem(b []byte, v any) {
	switch x := v.(type) {
	case float32:
		binary.LittleEndian.PutUint32(b, math.Float32bits(x))
	case float64:
		binary.LittleEndian.PutUint64(b, math.Float64bits(x))
	case int64:
		binary.LittleEndian.PutUint64(b, uint64(x))
	case int32:
		binary.LittleEndian.PutUint32(b, uint32(x))
	case int16:
		binary.LittleEndian.PutUint16(b, uint16(x))
	case int8:
		b[0] = byte(x)
	case uint8:
		b[0] = x
	case uint16:
		binary.LittleEndian.PutUint16(b, x)
	case uint32:
		binary.LittleEndian.PutUint32(b, x)
	case uint64:
		binary.LittleEndian.PutUint64(b, x)
	case bool:
		if x {
			b[0] = 1
		} else {
			b[0] = 0
		}
	}
}

// ErrExternalData is returned when a tensor's values are asked for while its
// data still lives in an external file (a model loaded with KeepExternal).
var ErrExternalData = errors.New("tensor data is external and not loaded")

// RawBytes returns the tensor's elements as little-endian bytes, whether the
// tensor stores them in raw_data or in the typed fields. The result may alias
// the tensor's raw_data.
func RawBytes(t *onnxpb.TensorProto) ([]byte, error) {
	name := t.GetName()
	dt := DType(t.GetDataType())
	if IsExternal(t) {
		return nil, fmt.Errorf("onnx: tensor %q: %w (location %q); load the model without KeepExternal or call ResolveExternalData",
			name, ErrExternalData, externalInfo(t)["location"])
	}
	if dt == String {
		return nil, fmt.Errorf("onnx: tensor %q: STRING tensors have no raw form", name)
	}
	bits := DTypeBits(dt)
	if bits == 0 {
		return nil, fmt.Errorf("onnx: tensor %q: unsupported element type %s", name, DTypeName(dt))
	}
	n := NumElements(t.GetDims())
	want, ok := rawSize(t.GetDims(), bits)
	if !ok {
		return nil, fmt.Errorf("onnx: tensor %q: dims %v are negative or hold more elements than any tensor can", name, t.GetDims())
	}
	if t.RawData != nil {
		if int64(len(t.RawData)) != want {
			return nil, fmt.Errorf("onnx: tensor %q: raw_data holds %d bytes, dims %v of %s need %d",
				name, len(t.RawData), t.GetDims(), DTypeName(dt), want)
		}
		return t.RawData, nil
	}
	if bits%8 != 0 {
		if len(t.Int32Data) > 0 || n == 0 {
			if int64(len(t.Int32Data)) != want {
				return nil, fmt.Errorf("onnx: tensor %q: int32_data holds %d packed bytes, need %d", name, len(t.Int32Data), want)
			}
			out := make([]byte, 0, want)
			for _, v := range t.Int32Data {
				out = append(out, byte(v))
			}
			return out, nil
		}
	}
	size := bits / 8
	count := func(have int) error {
		if int64(have) != n {
			return fmt.Errorf("onnx: tensor %q: typed data holds %d values, dims %v need %d", name, have, t.GetDims(), n)
		}
		return nil
	}
	// The typed data is what the file holds; the dims only claim. Check
	// that they agree before allocating what the dims claim.
	if have := typedCount(t, dt); int64(have) != n {
		return nil, count(have)
	}
	out := make([]byte, want)
	switch dt {
	case Float32:
		if err := count(len(t.FloatData)); err != nil {
			return nil, err
		}
		for i, v := range t.FloatData {
			binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
		}
	case onnxpb.TensorProto_COMPLEX64:
		if err := count(len(t.FloatData) / 2); err != nil {
			return nil, err
		}
		for i, v := range t.FloatData {
			binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
		}
	case Float64:
		if err := count(len(t.DoubleData)); err != nil {
			return nil, err
		}
		for i, v := range t.DoubleData {
			binary.LittleEndian.PutUint64(out[8*i:], math.Float64bits(v))
		}
	case onnxpb.TensorProto_COMPLEX128:
		if err := count(len(t.DoubleData) / 2); err != nil {
			return nil, err
		}
		for i, v := range t.DoubleData {
			binary.LittleEndian.PutUint64(out[8*i:], math.Float64bits(v))
		}
	case Int64:
		if err := count(len(t.Int64Data)); err != nil {
			return nil, err
		}
		for i, v := range t.Int64Data {
			binary.LittleEndian.PutUint64(out[8*i:], uint64(v))
		}
	case Uint32, Uint64:
		if err := count(len(t.Uint64Data)); err != nil {
			return nil, err
		}
		for i, v := range t.Uint64Data {
			if size == 4 {
				binary.LittleEndian.PutUint32(out[4*i:], uint32(v))
			} else {
				binary.LittleEndian.PutUint64(out[8*i:], v)
			}
		}
	default:
		// INT32, INT16, INT8, UINT16, UINT8, BOOL, FLOAT16, BFLOAT16, FLOAT8*: int32_data.
		if err := count(len(t.Int32Data)); err != nil {
			return nil, err
		}
		for i, v := range t.Int32Data {
			switch size {
			case 1:
				out[i] = byte(v)
			case 2:
				binary.LittleEndian.PutUint16(out[2*i:], uint16(v))
			case 4:
				binary.LittleEndian.PutUint32(out[4*i:], uint32(v))
			}
		}
	}
	return out, nil
}

// typedCount is the number of elements the typed field of dt holds.
func typedCount(t *onnxpb.TensorProto, dt DType) int {
	switch dt {
	case Float32:
		return len(t.FloatData)
	case onnxpb.TensorProto_COMPLEX64:
		return len(t.FloatData) / 2
	case Float64:
		return len(t.DoubleData)
	case onnxpb.TensorProto_COMPLEX128:
		return len(t.DoubleData) / 2
	case Int64:
		return len(t.Int64Data)
	case Uint32, Uint64:
		return len(t.Uint64Data)
	}
	return len(t.Int32Data)
}

func readAs[T any](t *onnxpb.TensorProto, want DType, size int, conv func([]byte) T) ([]T, error) {
	if got := DType(t.GetDataType()); got != want {
		return nil, fmt.Errorf("onnx: tensor %q is %s, not %s", t.GetName(), DTypeName(got), DTypeName(want))
	}
	raw, err := RawBytes(t)
	if err != nil {
		return nil, err
	}
	out := make([]T, len(raw)/size)
	for i := range out {
		out[i] = conv(raw[i*size:])
	}
	return out, nil
}

// Float32s returns the values of a FLOAT tensor.
func Float32s(t *onnxpb.TensorProto) ([]float32, error) {
	return readAs(t, Float32, 4, func(b []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b)) })
}

// Float64s returns the values of a DOUBLE tensor.
func Float64s(t *onnxpb.TensorProto) ([]float64, error) {
	return readAs(t, Float64, 8, func(b []byte) float64 { return math.Float64frombits(binary.LittleEndian.Uint64(b)) })
}

// Int64s returns the values of an INT64 tensor.
func Int64s(t *onnxpb.TensorProto) ([]int64, error) {
	return readAs(t, Int64, 8, func(b []byte) int64 { return int64(binary.LittleEndian.Uint64(b)) })
}

// Int32s returns the values of an INT32 tensor.
func Int32s(t *onnxpb.TensorProto) ([]int32, error) {
	return readAs(t, Int32, 4, func(b []byte) int32 { return int32(binary.LittleEndian.Uint32(b)) })
}

// Bools returns the values of a BOOL tensor.
func Bools(t *onnxpb.TensorProto) ([]bool, error) {
	return readAs(t, Bool, 1, func(b []byte) bool { return b[0] != 0 })
}

// HalfBits returns the 16-bit patterns of a FLOAT16, BFLOAT16 or UINT16 tensor.
func HalfBits(t *onnxpb.TensorProto) ([]uint16, error) {
	dt := DType(t.GetDataType())
	if dt != Float16 && dt != BFloat16 && dt != Uint16 {
		return nil, fmt.Errorf("onnx: tensor %q is %s, not FLOAT16, BFLOAT16 or UINT16", t.GetName(), DTypeName(dt))
	}
	return readAs(t, dt, 2, func(b []byte) uint16 { return binary.LittleEndian.Uint16(b) })
}

// ToFloat64s converts the values of any real numeric or BOOL tensor
// (FLOAT16 and BFLOAT16 included) to float64.
func ToFloat64s(t *onnxpb.TensorProto) ([]float64, error) {
	dt := DType(t.GetDataType())
	size := DTypeSize(dt)
	if size == 0 || dt == onnxpb.TensorProto_COMPLEX64 || dt == onnxpb.TensorProto_COMPLEX128 || (size == 1 && dt != Int8 && dt != Uint8 && dt != Bool) {
		return nil, fmt.Errorf("onnx: tensor %q: cannot convert %s to float64", t.GetName(), DTypeName(dt))
	}
	raw, err := RawBytes(t)
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(raw)/size)
	for i := range out {
		out[i] = decodeFloat(dt, raw[i*size:])
	}
	return out, nil
}

// ToInt64s converts the values of any integer or BOOL tensor to int64.
func ToInt64s(t *onnxpb.TensorProto) ([]int64, error) {
	dt := DType(t.GetDataType())
	switch dt {
	case Int64, Int32, Int16, Int8, Uint8, Uint16, Uint32, Uint64, Bool:
	default:
		return nil, fmt.Errorf("onnx: tensor %q: cannot convert %s to int64", t.GetName(), DTypeName(dt))
	}
	raw, err := RawBytes(t)
	if err != nil {
		return nil, err
	}
	size := DTypeSize(dt)
	out := make([]int64, len(raw)/size)
	for i := range out {
		out[i] = decodeInt(dt, raw[i*size:])
	}
	return out, nil
}

func decodeInt(dt DType, b []byte) int64 {
	switch dt {
	case Int64, Uint64:
		return int64(binary.LittleEndian.Uint64(b))
	case Int32:
		return int64(int32(binary.LittleEndian.Uint32(b)))
	case Uint32:
		return int64(binary.LittleEndian.Uint32(b))
	case Int16:
		return int64(int16(binary.LittleEndian.Uint16(b)))
	case Uint16:
		return int64(binary.LittleEndian.Uint16(b))
	case Int8:
		return int64(int8(b[0]))
	case Uint8, Bool:
		return int64(b[0])
	}
	return 0
}

func decodeFloat(dt DType, b []byte) float64 {
	switch dt {
	case Float32:
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(b)))
	case Float64:
		return math.Float64frombits(binary.LittleEndian.Uint64(b))
	case Float16:
		return float64(HalfToFloat32(binary.LittleEndian.Uint16(b)))
	case BFloat16:
		return float64(math.Float32frombits(uint32(binary.LittleEndian.Uint16(b)) << 16))
	case Uint64:
		return float64(binary.LittleEndian.Uint64(b))
	}
	return float64(decodeInt(dt, b))
}

// HalfToFloat32 converts an IEEE 754 half-precision bit pattern to float32.
func HalfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: renormalise
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		mant &= 0x3ff
		return math.Float32frombits(sign | e<<23 | mant<<13)
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// Float32ToHalf converts a float32 to the nearest IEEE half-precision bit
// pattern (round to nearest even; overflow gives infinity).
func Float32ToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 {
			return sign
		}
		mant |= 0x800000
		shift := uint32(14 - e)
		half := uint32(1) << (shift - 1)
		r := mant >> shift
		rem := mant & (1<<shift - 1)
		if rem > half || (rem == half && r&1 == 1) {
			r++
		}
		return sign | uint16(r)
	}
	r := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && r&1 == 1) {
		r++
	}
	return sign | uint16(r)
}

// Float32ToBFloat16 converts a float32 to bfloat16 bits, rounding to nearest even.
func Float32ToBFloat16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}

func goType(dt DType) reflect.Type {
	switch dt {
	case Float32:
		return reflect.TypeFor[float32]()
	case Float64:
		return reflect.TypeFor[float64]()
	case Int64:
		return reflect.TypeFor[int64]()
	case Int32:
		return reflect.TypeFor[int32]()
	case Int16:
		return reflect.TypeFor[int16]()
	case Int8:
		return reflect.TypeFor[int8]()
	case Uint8:
		return reflect.TypeFor[uint8]()
	case Uint16:
		return reflect.TypeFor[uint16]()
	case Uint32:
		return reflect.TypeFor[uint32]()
	case Uint64:
		return reflect.TypeFor[uint64]()
	}
	return reflect.TypeFor[bool]()
}
