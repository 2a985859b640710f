package onnx

import (
	"slices"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/testenv"
	"google.golang.org/protobuf/proto"
)

func TestBuilderUniqueNames(t *testing.T) {
	g := &onnxpb.GraphProto{
		Node: []*onnxpb.NodeProto{{Name: proto.String("Add"), OpType: proto.String("Add"), Input: []string{"a", "b"}, Output: []string{"Add_out"}}},
	}
	b := NewGraphBuilder(g)
	out := b.Op("Add", []string{"Add_out", "a"})
	if out == "Add_out" || out == "a" {
		t.Fatalf("collision: %s", out)
	}
	seen := map[string]bool{}
	for _, n := range g.Node {
		if seen[n.GetName()] {
			t.Fatalf("duplicate node name %s", n.GetName())
		}
		seen[n.GetName()] = true
		for _, o := range n.Output {
			if seen[o] {
				t.Fatalf("duplicate value %s", o)
			}
			seen[o] = true
		}
	}
	outs := b.OpN("Split", []string{out}, 3, AttrInt("axis", 0))
	if len(outs) != 3 || outs[0] == outs[1] {
		t.Fatalf("OpN outputs %v", outs)
	}
	// Identical constants are shared.
	c1, c2 := b.ConstInt64Vec(1, 2), b.ConstInt64Vec(1, 2)
	if c1 != c2 || len(g.Initializer) != 1 {
		t.Fatalf("constants %s %s, %d initializers", c1, c2, len(g.Initializer))
	}
	b.Consts = ConstNode
	c3 := b.ConstFloat32(1)
	if p := Producers(g)[c3]; p == nil || p.GetOpType() != "Constant" {
		t.Fatalf("ConstNode did not make a Constant node")
	}
	b.Prefix = "grad/"
	if n := b.Name("x"); n != "grad/x" {
		t.Fatalf("prefixed name %s", n)
	}
}

func chain(t *testing.T) *onnxpb.GraphProto {
	b := NewGraphBuilder(nil)
	x := b.AddInput("x", Float32, D(2))
	y := b.AddInput("y", Float32, D(2))
	a := b.Op("Relu", []string{x})
	c := b.Op("Add", []string{a, y})
	d := b.Op("Neg", []string{c})
	b.Op("Exp", []string{x}) // dead
	b.AddOutput(d, Float32, D(2))
	return b.Graph()
}

func TestTopoSort(t *testing.T) {
	g := chain(t)
	slices.Reverse(g.Node)
	if err := TopoSort(g); err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, n := range g.Node {
		for _, o := range n.Output {
			pos[o] = i
		}
	}
	for i, n := range g.Node {
		for _, s := range n.Input {
			if p, ok := pos[s]; ok && p >= i {
				t.Fatalf("%s before its input %s", NodeLabel(n), s)
			}
		}
	}
	// Make a cycle: Relu reads Neg's output.
	g.Node[0].Input[0] = g.Output[0].GetName()
	for _, n := range g.Node {
		if n.GetOpType() == "Relu" {
			n.Input[0] = g.Output[0].GetName()
		}
	}
	err := TopoSort(g)
	if err == nil || !strings.Contains(err.Error(), "cycle") || !strings.Contains(err.Error(), "node") {
		t.Fatalf("cycle: %v", err)
	}
}

func TestExtractAndDeadNodes(t *testing.T) {
	g := chain(t)
	relu := g.Node[0].Output[0]
	add := g.Node[1].Output[0]
	sub, err := Extract(g, []string{relu, "y"}, []string{add})
	if err != nil {
		t.Fatal(err)
	}
	if len(sub.Node) != 1 || sub.Node[0].GetOpType() != "Add" {
		t.Fatalf("extracted %v", sub.Node)
	}
	_, err = Extract(g, []string{"x"}, []string{add})
	if err == nil || !strings.Contains(err.Error(), `"y"`) {
		t.Fatalf("missing input: %v", err)
	}
	if n := RemoveDeadNodes(g); n != 1 {
		t.Fatalf("removed %d", n)
	}
	for _, n := range g.Node {
		if n.GetOpType() == "Exp" {
			t.Fatal("dead Exp kept")
		}
	}
	RenameValue(g, relu, "hidden")
	if g.Node[0].Output[0] != "hidden" || g.Node[1].Input[0] != "hidden" {
		t.Fatal("rename")
	}
	if got := Consumers(g)["y"]; len(got) != 1 || got[0].GetOpType() != "Add" {
		t.Fatal("consumers")
	}
}

func TestOpsets(t *testing.T) {
	m := NewModel(chain(t), 17)
	if Opset(m, "") != 17 || Opset(m, "ai.onnx") != 17 || Opset(m, "com.microsoft") != 0 {
		t.Fatal("Opset")
	}
	SetOpset(m, "com.microsoft", 1)
	SetOpset(m, "ai.onnx", 18)
	if o := Opsets(m); o[""] != 18 || o["com.microsoft"] != 1 || len(o) != 2 {
		t.Fatalf("Opsets %v", o)
	}
}

func TestExtractInfersTypes(t *testing.T) {
	// The encoder half of a real export, cut at a value that has no
	// recorded type: the cut gets its inferred type.
	m, err := Load(testenv.Testdata(t, "onnx", "t5_ts17.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	types, err := InferModelShapes(m)
	if err != nil {
		t.Fatal(err)
	}
	// The encoder's output (what the decoder's cross attention reads) is
	// the last [batch, enc, 16] Mul computed from the encoder inputs alone.
	var cut string
	for _, n := range m.Graph.Node {
		if n.GetOpType() != "Mul" || types[n.Output[0]].String() != "FLOAT[batch,enc,16]" {
			continue
		}
		if _, err := Extract(m.Graph, []string{"input_ids", "attention_mask"}, []string{n.Output[0]}); err == nil {
			cut = n.Output[0]
		}
	}
	if cut == "" {
		t.Fatal("no encoder-only Mul found")
	}
	sub, err := Extract(m.Graph, []string{"input_ids", "attention_mask"}, []string{cut})
	if err != nil {
		t.Fatal(err)
	}
	got, ok := TypeInfoOf(sub.Output[0])
	if !ok || got.String() != types[cut].String() || got.String() != "FLOAT[batch,enc,16]" {
		t.Fatalf("extracted output type %v (inferred %v)", got, types[cut])
	}
	for _, n := range sub.Node {
		for _, s := range n.Input {
			if s == "decoder_input_ids" {
				t.Fatal("encoder subgraph reads decoder_input_ids")
			}
		}
	}
	if len(sub.Node) >= len(m.Graph.Node) {
		t.Fatalf("extracted %d of %d nodes", len(sub.Node), len(m.Graph.Node))
	}
}

// TestRenameValues: every use is renamed, except inside a subgraph that
// defines a value of the same name.
func TestRenameValues(t *testing.T) {
	inner := &onnxpb.GraphProto{
		Node:   []*onnxpb.NodeProto{{OpType: proto.String("Identity"), Input: []string{"a"}, Output: []string{"b"}}},
		Output: []*onnxpb.ValueInfoProto{{Name: proto.String("b")}},
	}
	g := &onnxpb.GraphProto{
		Input:       []*onnxpb.ValueInfoProto{{Name: proto.String("a")}},
		Initializer: []*onnxpb.TensorProto{{Name: proto.String("w")}},
		Node: []*onnxpb.NodeProto{
			{OpType: proto.String("Add"), Input: []string{"a", "w"}, Output: []string{"b"}},
			{OpType: proto.String("If"), Input: []string{"c"}, Output: []string{"d"}, Attribute: []*onnxpb.AttributeProto{{Name: proto.String("then_branch"), G: inner}}},
		},
		Output: []*onnxpb.ValueInfoProto{{Name: proto.String("b")}},
	}
	RenameValues(g, map[string]string{"a": "x", "w": "y", "b": "z"})
	if g.Input[0].GetName() != "x" || g.Initializer[0].GetName() != "y" || g.Output[0].GetName() != "z" {
		t.Errorf("graph names %s %s %s", g.Input[0].GetName(), g.Initializer[0].GetName(), g.Output[0].GetName())
	}
	if n := g.Node[0]; n.Input[0] != "x" || n.Input[1] != "y" || n.Output[0] != "z" {
		t.Errorf("node %v -> %v", n.Input, n.Output)
	}
	// The subgraph reads the outer a (renamed) and defines its own b (kept).
	if n := inner.Node[0]; n.Input[0] != "x" || n.Output[0] != "b" || inner.Output[0].GetName() != "b" {
		t.Errorf("subgraph %v -> %v, output %s", n.Input, n.Output, inner.Output[0].GetName())
	}
}
