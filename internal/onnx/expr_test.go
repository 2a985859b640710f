package onnx

import "testing"

func TestDimArith(t *testing.T) {
	cases := []struct {
		a    Dim
		op   byte
		b    Dim
		want string
	}{
		{D(2), '+', D(3), "5"},
		{Sym("past"), '+', Sym("seq"), "past + seq"},
		{Sym("seq"), '+', Sym("past"), "past + seq"},
		{Sym("past + seq"), '-', Sym("past"), "seq"},
		{Sym("batch"), '*', Sym("seq"), "batch*seq"},
		{Sym("seq*batch"), '/', Sym("seq"), "batch"},
		{Sym("batch*seq"), '*', D(8), "8*batch*seq"},
		{Sym("8*batch*seq"), '/', D(4), "2*batch*seq"},
		{Sym("batch"), '/', D(2), "?"},
		{Sym("seq"), '-', D(1), "seq - 1"},
		{Sym("seq - 1"), '+', D(1), "seq"},
		{Sym("a + b"), '*', Sym("c"), "a*c + b*c"},
		{D(3), '-', D(5), "?"},
		{unknownDim, '+', D(1), "?"},
		{Sym("weird name"), '+', D(0), "weird name"},
	}
	for _, c := range cases {
		if got := dimArith(c.a, c.op, c.b).String(); got != c.want {
			t.Errorf("%s %c %s = %s, want %s", c.a, c.op, c.b, got, c.want)
		}
	}
	if got := dimProduct([]Dim{Sym("b"), D(4), Sym("a")}).String(); got != "4*a*b" {
		t.Errorf("product %s", got)
	}
}
