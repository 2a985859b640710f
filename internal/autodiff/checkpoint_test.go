package autodiff

import (
	"math/rand"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// twoLayerGraph: x [B, 8] through two layers h = Dropout(Tanh(h·W_k)) + h,
// loss = sum(h²); w1 and w2 are weight inputs. It returns the graph after
// EnableTrainingDropout and each layer's node range.
func twoLayerGraph(t *testing.T) (*onnxpb.GraphProto, []Segment) {
	b := onnx.NewGraphBuilder(nil)
	b.Consts = onnx.ConstNode
	b.AddInput("x", onnx.Float32, onnx.Sym("B"), onnx.D(8))
	b.AddInput("w1", onnx.Float32, onnx.D(8), onnx.D(8))
	b.AddInput("w2", onnx.Float32, onnx.D(8), onnx.D(8))
	h := "x"
	for _, w := range []string{"w1", "w2"} {
		wt := b.Op("Transpose", []string{w}) // a weight-only value inside the layer
		a := b.Op("Tanh", []string{b.Op("MatMul", []string{h, wt})})
		d := b.Op("Dropout", []string{a, b.ConstFloat32(0.3), b.ConstBool(true)})
		h = b.Op("Add", []string{d, h})
	}
	loss := b.Op("ReduceSum", []string{b.Op("Mul", []string{h, h})}, onnx.AttrInt("keepdims", 0))
	b.AddOutput(loss, onnx.Float32)
	g := b.Graph()
	if _, err := EnableTrainingDropout(g, "seed"); err != nil {
		t.Fatal(err)
	}
	// A layer runs from its weight's Transpose to the next layer's (the
	// last one to the loss).
	var starts []int
	for i, n := range g.Node {
		if n.GetOpType() == "Transpose" {
			starts = append(starts, i)
		}
	}
	end := len(g.Node)
	for i, n := range g.Node {
		if n.GetOpType() == "Mul" && len(n.Input) == 2 && n.Input[0] == n.Input[1] {
			end = i
		}
	}
	return g, []Segment{{"layer.0", starts[0], starts[1]}, {"layer.1", starts[1], end}}
}

// TestCheckpointGivesTheSameGradients: the recomputed layers (dropout
// included) give bit for bit the gradients of the graph that keeps its
// activations, and the backward pass reads none of a layer's activations.
func TestCheckpointGivesTheSameGradients(t *testing.T) {
	grads := func(checkpoint bool) (map[string]fdTensor, *Checkpoint, *onnxpb.GraphProto) {
		g, segs := twoLayerGraph(t)
		loss := g.Output[0].GetName()
		var cp *Checkpoint
		if checkpoint {
			cp = &Checkpoint{Segments: segs, Weights: []string{"w1", "w2"}}
		}
		out, err := Backward(g, map[string]int64{"": 17}, loss, []string{"w1", "w2", "x"}, Options{Checkpoint: cp})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, w := range []string{"w1", "w2", "x"} {
			g.Output = append(g.Output, &onnxpb.ValueInfoProto{Name: proto.String(out[w])})
			names = append(names, out[w])
		}
		s, err := newSession(t, g, map[string]int64{"": 17})
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewSource(3))
		feed := func(n int) []float64 {
			v := make([]float64, n)
			for i := range v {
				v[i] = r.NormFloat64()
			}
			return v
		}
		res := s.run(t, onnx.Float32, map[string]fdTensor{"x": {shape: []int64{5, 8}, data: feed(40)},
			"w1": {shape: []int64{8, 8}, data: feed(64)}, "w2": {shape: []int64{8, 8}, data: feed(64)}}, names,
			map[string]intTensor{"seed": {data: []int64{11}}})
		byWrt := map[string]fdTensor{}
		for i, w := range []string{"w1", "w2", "x"} {
			byWrt[w] = res[names[i]]
		}
		return byWrt, cp, g
	}
	want, _, _ := grads(false)
	got, cp, g := grads(true)
	for _, w := range []string{"w1", "w2", "x"} {
		for i := range want[w].data {
			if got[w].data[i] != want[w].data[i] {
				t.Fatalf("d/d%s[%d] = %v with checkpointing, %v without", w, i, got[w].data[i], want[w].data[i])
			}
		}
	}
	if len(cp.Recomputed) != 2 || cp.Recomputed[0] == 0 || cp.Recomputed[1] == 0 {
		t.Errorf("recomputed nodes %v", cp.Recomputed)
	}
	// What the backward pass reads inside the layers (their matmuls, tanh,
	// transposed weights and dropout masks) is recomputed; it still reads
	// the last layer's output, whose gradient the recomputation waits for.
	produced := map[string]string{}
	inside := map[string]bool{"MatMul": true, "Tanh": true, "Transpose": true, "Cast": true, "Less": true}
	for _, n := range g.Node {
		if !strings.HasPrefix(n.GetName(), "grad/") && !strings.HasPrefix(n.GetName(), "recompute/") && inside[n.GetOpType()] {
			for _, o := range n.Output {
				produced[o] = n.GetOpType()
			}
		}
	}
	for _, n := range g.Node {
		if strings.HasPrefix(n.GetName(), "grad/") {
			for _, in := range n.Input {
				if op, ok := produced[in]; ok {
					t.Errorf("backward node %s reads %s (%s) of the forward pass", n.GetName(), in, op)
				}
			}
		}
	}
}

func TestCheckpointBadSegment(t *testing.T) {
	g, _ := twoLayerGraph(t)
	cp := &Checkpoint{Segments: []Segment{{"layer.0", 0, len(g.Node) + 5}}}
	_, err := Backward(g, map[string]int64{"": 17}, g.Output[0].GetName(), []string{"w1"}, Options{Checkpoint: cp})
	if err == nil || !strings.Contains(err.Error(), `checkpoint segment "layer.0"`) {
		t.Fatalf("error %v", err)
	}
}
