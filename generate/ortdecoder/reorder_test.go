package ortdecoder

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/modelfile"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/testenv"
)

func concatNode(out string, ins ...string) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{OpType: proto.String("Concat"), Input: ins, Output: []string{out},
		Attribute: []*onnxpb.AttributeProto{{Name: proto.String("axis"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(0)}}}
}

// TestBypassSingleInputConcats: a one-input Concat is its input; chains of
// them resolve to the first input, consumers in subgraphs are rewired too,
// and a Concat whose output the graph returns stays.
func TestBypassSingleInputConcats(t *testing.T) {
	sub := &onnxpb.GraphProto{Node: []*onnxpb.NodeProto{{OpType: proto.String("Identity"), Input: []string{"c2"}, Output: []string{"s"}}}}
	g := &onnxpb.GraphProto{
		Input:  []*onnxpb.ValueInfoProto{{Name: proto.String("x")}, {Name: proto.String("cond")}},
		Output: []*onnxpb.ValueInfoProto{{Name: proto.String("y")}, {Name: proto.String("returned")}, {Name: proto.String("z")}},
		Node: []*onnxpb.NodeProto{
			concatNode("c1", "x"),
			concatNode("c2", "c1"),
			concatNode("two", "c1", "x"),
			{OpType: proto.String("Add"), Input: []string{"c2", "two"}, Output: []string{"y"}},
			concatNode("returned", "x"),
			{OpType: proto.String("If"), Input: []string{"cond"}, Output: []string{"z"}, Attribute: []*onnxpb.AttributeProto{
				{Name: proto.String("then_branch"), Type: onnxpb.AttributeProto_GRAPH.Enum(), G: sub},
				{Name: proto.String("else_branch"), Type: onnxpb.AttributeProto_GRAPH.Enum(), G: sub}}},
		},
	}
	bypassSingleInputConcats(g)
	var got []string
	for _, n := range g.Node {
		got = append(got, n.GetOpType()+"("+strings.Join(n.Input, ",")+")->"+strings.Join(n.Output, ","))
	}
	want := []string{"Concat(x,x)->two", "Add(x,two)->y", "Concat(x)->returned", "If(cond)->z"}
	if !slices.Equal(got, want) {
		t.Fatalf("nodes %q, want %q", got, want)
	}
	if in := sub.Node[0].Input[0]; in != "x" {
		t.Fatalf("the subgraph reads %q, want x", in)
	}
}

// TestDecoderWithPastLosesItsCacheCopies: the fixtures exported with
// transformers' cache classes have one-input Concats on the cached encoder
// keys and values; the graph ortrain runs has none (TestFixturesMatchHF
// runs that graph against HF's tokens).
func TestDecoderWithPastLosesItsCacheCopies(t *testing.T) {
	for _, model := range []string{"t5-tiny", "bart-tiny", "marian-tiny"} {
		path := testenv.Testdata(t, "models", model, DecoderWithPastFile)
		count := func(data []byte) int {
			var m onnxpb.ModelProto
			if err := proto.Unmarshal(data, &m); err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, node := range m.Graph.Node {
				if node.GetOpType() == "Concat" && len(node.Input) == 1 {
					n++
				}
			}
			return n
		}
		raw, err := modelfile.ReadFile(path, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		rewritten, ok, err := withInGraphReorder(path)
		if err != nil || !ok {
			t.Fatalf("%s: rewrite: ok %v, %v", model, ok, err)
		}
		before, after := count(raw), count(rewritten)
		if before == 0 || after != 0 {
			t.Fatalf("%s: %d one-input Concats in the export, %d in the graph run; want some, then none", model, before, after)
		}
		t.Logf("%s: %d one-input Concats bypassed", model, before)
	}
}

// TestHeadEditsLogitsInPlace: the head keeps the logits [rows, 1, vocab]
// from input to TopK (a Reshape of the input made ONNX Runtime copy the
// whole [rows, vocab] before each edit); the only Reshapes are of TopK's
// [rows, 1, k] outputs. Every combination of edits.
func TestHeadEditsLogitsInPlace(t *testing.T) {
	for bits := 0; bits < 32; bits++ {
		kind := headKind{logits: onnxrt.Float32, lastOnly: bits&1 != 0, logSoftmax: bits&2 != 0,
			penalty: bits&4 != 0, banned: bits&8 != 0, force: bits&16 != 0}
		data, err := headModel(kind)
		if err != nil {
			t.Fatal(err)
		}
		var m onnxpb.ModelProto
		if err := proto.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		topk := map[string]bool{}
		for _, n := range m.Graph.Node {
			if n.GetOpType() == "TopK" {
				for _, o := range n.Output {
					topk[o] = true
				}
			}
		}
		for _, n := range m.Graph.Node {
			if (n.GetOpType() == "Reshape" || n.GetOpType() == "Squeeze" || n.GetOpType() == "Flatten") && !topk[n.Input[0]] {
				t.Fatalf("head (%v): %s of %s", kind, n.GetOpType(), n.Input[0])
			}
		}
	}
}
