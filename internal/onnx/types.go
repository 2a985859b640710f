package onnx

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"google.golang.org/protobuf/proto"
)

// Dim is one dimension of a tensor shape: a static size (Value >= 0), a
// named symbolic size (Value -1, Param set) or unknown (Value -1, no Param).
type Dim struct {
	Value int64
	Param string
}

// D is a static dimension.
func D(v int64) Dim { return Dim{Value: v} }

// Sym is a symbolic dimension such as "batch".
func Sym(name string) Dim { return Dim{Value: -1, Param: name} }

// unknownDim is a dimension about which nothing is known.
var unknownDim = Dim{Value: -1}

// UnknownDim is a dimension about which nothing is known (Value -1, no
// Param).
func UnknownDim() Dim { return unknownDim }

// Static reports whether the dimension has a known size.
func (d Dim) Static() bool { return d.Value >= 0 }

// Same reports whether two dimensions are known to be equal: the same static
// size or the same symbol.
func (d Dim) Same(e Dim) bool {
	if d.Static() || e.Static() {
		return d.Value == e.Value
	}
	return d.Param != "" && d.Param == e.Param
}

// unknown reports a dimension with neither size nor symbol.
func (d Dim) unknown() bool { return !d.Static() && d.Param == "" }

func (d Dim) String() string {
	switch {
	case d.Static():
		return fmt.Sprint(d.Value)
	case d.Param != "":
		return d.Param
	}
	return "?"
}

// Dims makes static dimensions from sizes (-1 gives an unknown dimension).
func Dims(sizes ...int64) []Dim {
	out := make([]Dim, len(sizes))
	for i, s := range sizes {
		if s < 0 {
			out[i] = unknownDim
		} else {
			out[i] = D(s)
		}
	}
	return out
}

// TypeInfo is what is known statically about a tensor value.
type TypeInfo struct {
	Elem      DType // Undefined when unknown
	Dims      []Dim // valid when RankKnown
	RankKnown bool
}

// Tensor is a TypeInfo of known rank.
func Tensor(elem DType, dims ...Dim) TypeInfo {
	return TypeInfo{Elem: elem, Dims: append([]Dim{}, dims...), RankKnown: true}
}

// Rank is the number of dimensions, or -1 when unknown.
func (t TypeInfo) Rank() int {
	if !t.RankKnown {
		return -1
	}
	return len(t.Dims)
}

// StaticShape returns the sizes when every dimension is static.
func (t TypeInfo) StaticShape() ([]int64, bool) {
	if !t.RankKnown {
		return nil, false
	}
	out := make([]int64, len(t.Dims))
	for i, d := range t.Dims {
		if !d.Static() {
			return nil, false
		}
		out[i] = d.Value
	}
	return out, true
}

// SameShape reports whether two types provably have the same shape: known
// ranks that agree and pairwise Same dimensions.
func (t TypeInfo) SameShape(o TypeInfo) bool {
	if !t.RankKnown || !o.RankKnown || len(t.Dims) != len(o.Dims) {
		return false
	}
	for i, d := range t.Dims {
		if !d.Same(o.Dims[i]) {
			return false
		}
	}
	return true
}

// IsOne reports whether dimension i is statically 1 (it broadcasts).
func (t TypeInfo) IsOne(i int) bool {
	return t.RankKnown && i >= 0 && i < len(t.Dims) && t.Dims[i].Value == 1
}

func (t TypeInfo) String() string {
	var b strings.Builder
	b.WriteString(DTypeName(t.Elem))
	if !t.RankKnown {
		b.WriteString("[rank ?]")
		return b.String()
	}
	b.WriteByte('[')
	for i, d := range t.Dims {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(d.String())
	}
	b.WriteByte(']')
	return b.String()
}

// ValueInfo makes a tensor ValueInfoProto.
func ValueInfo(name string, elem DType, dims ...Dim) *onnxpb.ValueInfoProto {
	return ValueInfoOf(name, Tensor(elem, dims...))
}

// ValueInfoOf makes a ValueInfoProto from a TypeInfo (no shape when the rank
// is unknown).
func ValueInfoOf(name string, t TypeInfo) *onnxpb.ValueInfoProto {
	tt := &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(t.Elem))}
	if t.RankKnown {
		tt.Shape = &onnxpb.TensorShapeProto{Dim: make([]*onnxpb.TensorShapeProto_Dimension, 0, len(t.Dims))}
		for _, d := range t.Dims {
			pd := &onnxpb.TensorShapeProto_Dimension{}
			switch {
			case d.Static():
				pd.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d.Value}
			case d.Param != "":
				pd.Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: d.Param}
			}
			tt.Shape.Dim = append(tt.Shape.Dim, pd)
		}
	}
	return &onnxpb.ValueInfoProto{
		Name: proto.String(name),
		Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: tt}},
	}
}

// TypeInfoOf reads the tensor type of a ValueInfoProto. ok is false when the
// value is not a tensor (sequence, map, ...) or has no type.
func TypeInfoOf(vi *onnxpb.ValueInfoProto) (TypeInfo, bool) {
	return typeInfoOfProto(vi.GetType())
}

func typeInfoOfProto(tp *onnxpb.TypeProto) (TypeInfo, bool) {
	tt := tp.GetTensorType()
	if tt == nil {
		return TypeInfo{}, false
	}
	ti := TypeInfo{Elem: DType(tt.GetElemType())}
	if tt.Shape != nil {
		ti.RankKnown = true
		ti.Dims = make([]Dim, len(tt.Shape.Dim))
		for i, d := range tt.Shape.Dim {
			switch v := d.GetValue().(type) {
			case *onnxpb.TensorShapeProto_Dimension_DimValue:
				ti.Dims[i] = D(v.DimValue)
			case *onnxpb.TensorShapeProto_Dimension_DimParam:
				ti.Dims[i] = Sym(v.DimParam)
			default:
				ti.Dims[i] = unknownDim
			}
		}
	}
	return ti, true
}

// TypeInfoOfTensor is the (fully static) type of a tensor's value.
func TypeInfoOfTensor(t *onnxpb.TensorProto) TypeInfo {
	return Tensor(DType(t.GetDataType()), Dims(t.GetDims()...)...)
}

// BindSymbols matches concrete shapes of graph inputs (name -> sizes)
// against their declared types and returns the size each symbolic
// dimension stands for. It is an error when a shape has the wrong rank,
// contradicts a static dimension, or gives one symbol two sizes; the error
// names the input.
func BindSymbols(types map[string]TypeInfo, shapes map[string][]int64) (map[string]int64, error) {
	sizes := map[string]int64{}
	names := make([]string, 0, len(shapes))
	for n := range shapes {
		names = append(names, n)
	}
	sortStrings(names)
	from := map[string]string{}
	for _, name := range names {
		shape := shapes[name]
		t, ok := types[name]
		if !ok {
			return nil, fmt.Errorf("onnx: no type known for input %q", name)
		}
		if !t.RankKnown {
			continue
		}
		if len(shape) != len(t.Dims) {
			return nil, fmt.Errorf("onnx: input %q has shape %v, its type %s has rank %d", name, shape, t, len(t.Dims))
		}
		for i, d := range t.Dims {
			switch {
			case d.Static():
				if shape[i] != d.Value {
					return nil, fmt.Errorf("onnx: input %q has shape %v, dimension %d must be %d", name, shape, i, d.Value)
				}
			case d.Param != "":
				if _, isExpr := parsePoly(d.Param); isExpr {
					continue // an expression: checked once its symbols are bound
				}
				if v, seen := sizes[d.Param]; seen && v != shape[i] {
					return nil, fmt.Errorf("onnx: input %q gives %s = %d, input %q gave %d", name, d.Param, shape[i], from[d.Param], v)
				}
				sizes[d.Param], from[d.Param] = shape[i], name
			}
		}
	}
	return sizes, nil
}

// Shape evaluates a type's dimensions for bound symbol sizes (see
// BindSymbols); ok is false when the rank or a dimension stays unknown.
func (t TypeInfo) Shape(sizes map[string]int64) ([]int64, bool) {
	if !t.RankKnown {
		return nil, false
	}
	out := make([]int64, len(t.Dims))
	for i, d := range t.Dims {
		v, ok := d.Eval(sizes)
		if !ok {
			return nil, false
		}
		out[i] = v
	}
	return out, true
}

// MarshalJSON writes {"dtype": "float16", "shape": [..]}: dtype a readable
// name (ReadableDType; "unknown" when undefined), shape null when the rank
// is unknown, each dimension a number, its symbolic name, or null.
func (t TypeInfo) MarshalJSON() ([]byte, error) {
	v := struct {
		DType string `json:"dtype"`
		Shape []any  `json:"shape"`
	}{DType: ReadableDType(t.Elem)}
	if t.RankKnown {
		v.Shape = make([]any, len(t.Dims))
		for i, d := range t.Dims {
			switch {
			case d.Static():
				v.Shape[i] = d.Value
			case d.Param != "":
				v.Shape[i] = d.Param
			}
		}
	}
	return json.Marshal(v)
}
