package onnx

import "testing"

func TestBroadcastDims(t *testing.T) {
	for _, c := range []struct {
		a, b []Dim
		want string
	}{
		{Dims(2, 1, 4), Dims(3, 1), "[2,3,4]"},
		{[]Dim{Sym("B"), D(1)}, []Dim{D(1), Sym("T")}, "[B,T]"},
		{[]Dim{Sym("B")}, []Dim{D(5)}, "[5]"}, // B must be 5
		{[]Dim{Sym("B")}, []Dim{Sym("B")}, "[B]"},
		{[]Dim{Sym("B")}, []Dim{Sym("T")}, "[?]"}, // either may be 1
		{nil, Dims(2), "[2]"},
	} {
		got, err := BroadcastDims(c.a, c.b)
		if err != nil || DimsString(got) != c.want {
			t.Errorf("%s with %s: got %s, %v; want %s", DimsString(c.a), DimsString(c.b), DimsString(got), err, c.want)
		}
	}
	if _, err := BroadcastDims(Dims(2, 3), Dims(4)); err == nil {
		t.Error("3 with 4: no error")
	}
}

func TestSameShape(t *testing.T) {
	bt := Tensor(Float32, Sym("B"), D(3))
	for _, c := range []struct {
		a, b TypeInfo
		want bool
	}{
		{bt, Tensor(Int64, Sym("B"), D(3)), true}, // element types do not matter
		{bt, Tensor(Float32, Sym("T"), D(3)), false},
		{bt, Tensor(Float32, UnknownDim(), D(3)), false},
		{Tensor(Float32, UnknownDim()), Tensor(Float32, UnknownDim()), false},
		{bt, Tensor(Float32, Sym("B")), false},
		{TypeInfo{Elem: Float32}, TypeInfo{Elem: Float32}, false},
		{Tensor(Float32), Tensor(Float32), true},
	} {
		if got := c.a.SameShape(c.b); got != c.want {
			t.Errorf("%s and %s: got %v", c.a, c.b, got)
		}
	}
}
