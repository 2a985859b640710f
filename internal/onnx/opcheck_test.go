package onnx

import (
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/testenv"
)

func TestOpSince(t *testing.T) {
	cases := []struct {
		op    string
		opset int64
		since int64
		ok    bool
	}{
		{"ReduceSum", 12, 11, true},
		{"ReduceSum", 18, 13, true},
		{"Gelu", 17, 0, false},
		{"Gelu", 20, 20, true},
		{"LayerNormalization", 16, 0, false},
		{"LayerNormalization", 17, 17, true},
		{"Upsample", 9, 9, true},
		{"Upsample", 10, 0, false}, // deprecated
		{"MatMull", 17, 0, false},
	}
	for _, c := range cases {
		since, ok := OpSince("", c.op, c.opset)
		if since != c.since || ok != c.ok {
			t.Errorf("OpSince(%s, %d) = %d %v, want %d %v", c.op, c.opset, since, ok, c.since, c.ok)
		}
	}
	if _, ok := OpSince("ai.onnx", "Relu", 14); !ok {
		t.Error("ai.onnx is the standard domain")
	}
}

func TestCheckOps(t *testing.T) {
	for _, name := range []string{"t5_ts17", "marian_ts14", "bart_dynamo18", "kvcache_ts17", "kvcache_dynamo18"} {
		m, err := Load(testenv.Testdata(t, "onnx", name+".onnx"))
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckOps(m); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	b := NewGraphBuilder(nil)
	x := b.AddInput("x", Float32, D(2))
	b.Op("Gelu", []string{x})
	b.Op("Relu6", []string{x})
	b.OpDomain("com.microsoft", "FastGelu", []string{x}, 1)
	m := NewModel(b.Graph(), 17)
	err := CheckOps(m)
	for _, want := range []string{`"Gelu" at opset 17`, "exists from opset 20", `"Relu6"`, `domain "com.microsoft" is not imported`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	SetOpset(m, "", 20)
	SetOpset(m, "com.microsoft", 1)
	err = CheckOps(m)
	if err == nil || strings.Contains(err.Error(), "Gelu") || !strings.Contains(err.Error(), "Relu6") {
		t.Errorf("at opset 20: %v", err)
	}
}

func TestCheckOpsAcceptsORTOperators(t *testing.T) {
	// ONNX Runtime's optimizer writes SimplifiedLayerNormalization into the
	// standard domain (as in genuine ORT training artifacts of T5).
	b := NewGraphBuilder(nil)
	x := b.AddInput("x", Float32, D(2), D(4))
	b.Op("SimplifiedLayerNormalization", []string{x, b.ConstFloat32s(make([]float32, 4), []int64{4})})
	if err := CheckOps(NewModel(b.Graph(), 14)); err != nil {
		t.Fatal(err)
	}
}
