package ortdecoder

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/modelfile"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/testenv"
)

func concatNode(out string, ins ...string) *onnxpb.NodeProto {
	return &onnxpb.NodeProto{OpType: proto.String("Concat"), Input: ins, Output: []string{out},
		Attribute: []*onnxpb.AttributeProto{{Name: proto.String("axis"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(0)}}}
}

// TestBypassCopies: a one-input Concat is its input, and the Shape of a
// ConstantOfShape is the shape it was given; chains resolve to the first
// value, consumers in subgraphs are rewired too, what only fed the removed
// nodes goes, and nodes whose output the graph returns stay.
func TestBypassCopies(t *testing.T) {
	sub := &onnxpb.GraphProto{Node: []*onnxpb.NodeProto{{OpType: proto.String("Identity"), Input: []string{"c2"}, Output: []string{"s"}}}}
	op := func(typ string, out string, ins ...string) *onnxpb.NodeProto {
		return &onnxpb.NodeProto{OpType: proto.String(typ), Input: ins, Output: []string{out}}
	}
	sliced := op("Shape", "sliced", "filled")
	sliced.Attribute = []*onnxpb.AttributeProto{{Name: proto.String("start"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(1)}}
	g := &onnxpb.GraphProto{
		Input: []*onnxpb.ValueInfoProto{{Name: proto.String("x")}, {Name: proto.String("cond")}, {Name: proto.String("dims")}},
		Output: []*onnxpb.ValueInfoProto{{Name: proto.String("y")}, {Name: proto.String("returned")}, {Name: proto.String("z")},
			{Name: proto.String("expanded")}, {Name: proto.String("partial")}},
		Node: []*onnxpb.NodeProto{
			concatNode("c1", "x"),
			concatNode("c2", "c1"),
			concatNode("two", "c1", "x"),
			op("Add", "y", "c2", "two"),
			concatNode("returned", "x"),
			{OpType: proto.String("If"), Input: []string{"cond"}, Output: []string{"z"}, Attribute: []*onnxpb.AttributeProto{
				{Name: proto.String("then_branch"), Type: onnxpb.AttributeProto_GRAPH.Enum(), G: sub},
				{Name: proto.String("else_branch"), Type: onnxpb.AttributeProto_GRAPH.Enum(), G: sub}}},
			op("ConstantOfShape", "filled", "dims"),
			op("Shape", "shape", "filled"),
			op("Expand", "expanded", "x", "shape"),
			sliced,
			op("Expand", "partial", "x", "sliced"),
		},
	}
	bypassCopies(g)
	var got []string
	for _, n := range g.Node {
		got = append(got, n.GetOpType()+"("+strings.Join(n.Input, ",")+")->"+strings.Join(n.Output, ","))
	}
	want := []string{"Concat(x,x)->two", "Add(x,two)->y", "Concat(x)->returned", "If(cond)->z",
		"ConstantOfShape(dims)->filled", "Expand(x,dims)->expanded", "Shape(filled)->sliced", "Expand(x,sliced)->partial"}
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
		rewritten, ok, _, err := rewriteDecoderWithPast(path, true, false)
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

// TestRewrittenDecoderWithPastEqualsTheExport: the graph ortrain runs
// (one-input Concats bypassed, Reshape targets folded; with the reorder
// added, fed the identity, and without) gives the export's logits and
// presents bit for bit, on random inputs.
func TestRewrittenDecoderWithPastEqualsTheExport(t *testing.T) {
	env := openEnv(t)
	for _, model := range []string{"t5-tiny", "bart-tiny", "marian-tiny"} {
		path := testenv.Testdata(t, "models", model, DecoderWithPastFile)
		export, err := env.NewSession(path, onnxrt.SessionOptions{IntraOpThreads: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer export.Close()
		data, ok, _, err := rewriteDecoderWithPast(path, true, false)
		if err != nil || !ok {
			t.Fatalf("%s: rewrite: ok %v, %v", model, ok, err)
		}
		var m onnxpb.ModelProto
		if err := proto.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		{
			raw, err := modelfile.ReadFile(path, 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			var orig onnxpb.ModelProto
			if err := proto.Unmarshal(raw, &orig); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d nodes in the export, %d in the graph run", model, len(orig.Graph.Node), len(m.Graph.Node))
			if len(m.Graph.Node) >= len(orig.Graph.Node) {
				t.Errorf("%s: the rewritten graph has %d nodes, the export %d", model, len(m.Graph.Node), len(orig.Graph.Node))
			}
		}
		// the rows in two groups of two with equal encoder keys and values,
		// as beam search's (the in-place graph gets them once per group)
		const rows, past, source, vocab = 4, 4, 5, 40
		r := rand.New(rand.NewPCG(11, uint64(len(model))))
		feed := map[string]*onnxrt.Value{}
		for _, in := range export.Inputs() {
			shape := slices.Clone(in.Shape)
			for i, d := range shape {
				if d >= 0 {
					continue
				}
				switch {
				case i == 0:
					shape[i] = rows
				case in.Name == "input_ids" || in.Name == "decoder_input_ids":
					shape[i] = 1
				case strings.Contains(in.Name, "encoder") || strings.Contains(in.Name, "attention_mask"):
					shape[i] = source
				default:
					shape[i] = past
				}
			}
			n := 1
			for _, d := range shape {
				n *= int(d)
			}
			var v *onnxrt.Value
			switch in.DType {
			case onnxrt.Int64:
				ids := make([]int64, n)
				for i := range ids {
					ids[i] = 1
					if strings.Contains(in.Name, "ids") {
						ids[i] = int64(r.IntN(vocab))
					}
				}
				v, err = onnxrt.NewTensor(shape, ids)
			case onnxrt.Float32:
				xs := make([]float32, n)
				for i := range xs {
					xs[i] = float32(r.NormFloat64())
				}
				if isEncoderPast(in.Name) {
					per := n / rows
					for row := 1; row < rows; row += 2 {
						copy(xs[row*per:(row+1)*per], xs[(row-1)*per:row*per])
					}
				}
				v, err = onnxrt.NewTensor(shape, xs)
			default:
				t.Fatalf("%s: input %s of type %v", model, in.Name, in.DType)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			feed[in.Name] = v
		}
		identity, _ := onnxrt.NewTensor([]int64{rows}, []int64{0, 1, 2, 3})
		defer identity.Close()
		var names []string
		for _, o := range export.Outputs() {
			names = append(names, o.Name)
		}
		want, err := export.Run(feed, names)
		if err != nil {
			t.Fatalf("%s: the export: %v", model, err)
		}
		for _, reorder := range []bool{true, false} {
			data, ok, _, err := rewriteDecoderWithPast(path, reorder, false)
			if err != nil || !ok {
				t.Fatalf("%s: rewrite (reorder %v): ok %v, %v", model, reorder, ok, err)
			}
			rewritten, err := env.NewSessionFromBytes(data, model+" rewritten", onnxrt.SessionOptions{IntraOpThreads: 1})
			if err != nil {
				t.Fatal(err)
			}
			delete(feed, beamIndexInput)
			if reorder {
				feed[beamIndexInput] = identity
			}
			got, err := rewritten.Run(feed, names)
			rewritten.Close()
			if err != nil {
				t.Fatalf("%s: the rewritten graph (reorder %v): %v", model, reorder, err)
			}
			for _, name := range names {
				a, _ := want[name].Float32s()
				b, _ := got[name].Float32s()
				if !slices.Equal(want[name].Shape(), got[name].Shape()) || len(a) == 0 || !slices.EqualFunc(a, b, func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) }) {
					t.Errorf("%s (reorder %v): output %s differs (shapes %v, %v)", model, reorder, name, want[name].Shape(), got[name].Shape())
				}
				got[name].Close()
			}
		}
		attendsInPlace(t, env, model, path, feed, want, past)
		leftAsIs(t, model, path)
		for _, v := range want {
			v.Close()
		}
	}
}

// attendsInPlace: the graph that attends over its cache in place
// (attendInPlace) and shares the encoder keys and values among rows
// (shareSources), fed the same decoder past in buffers with room for more
// positions and writing its presents into them, and the encoder past once
// per group of two rows, gives the export's logits bit for bit, and the
// buffers then hold the export's presents.
func attendsInPlace(t *testing.T, env *onnxrt.Env, model, path string, feed, want map[string]*onnxrt.Value, past int64) {
	t.Helper()
	data, ok, how, err := rewriteDecoderWithPast(path, false, true)
	if err != nil || !ok || !how.inPlace || !how.sharedSources {
		t.Fatalf("%s: rewrite in place: ok %v, %+v, %v", model, ok, how, err)
	}
	s, err := env.NewSessionFromBytes(data, model+" in place", onnxrt.SessionOptions{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b, err := s.NewBinding()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const room = 9
	buffers := map[string]*onnxrt.Value{}
	for _, in := range s.Inputs() {
		v := feed[in.Name]
		if strings.HasPrefix(in.Name, "past_key_values.") && !isEncoderPast(in.Name) {
			shape := v.Shape()
			shape[cachePositionAxis] = room
			buf, err := onnxrt.NewZeros(onnxrt.Float32, shape)
			if err == nil {
				err = buf.CopyPrefix(v, cachePositionAxis)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer buf.Close()
			buffers["present."+strings.TrimPrefix(in.Name, "past_key_values.")] = buf
			v = buf
		}
		if isEncoderPast(in.Name) {
			// once per group of two rows
			shape := v.Shape()
			all, _ := v.Float32s()
			per := len(all) / int(shape[0])
			var once []float32
			for row := 0; row < int(shape[0]); row += 2 {
				once = append(once, all[row*per:(row+1)*per]...)
			}
			shape[0] = (shape[0] + 1) / 2
			v, _ = onnxrt.NewTensor(shape, once)
			defer v.Close()
		}
		if in.Name == pastLengthInput {
			v, _ = onnxrt.NewTensor([]int64{1}, []int32{int32(past)})
			defer v.Close()
		}
		if err := b.BindInput(in.Name, v); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range s.Outputs() {
		if buf := buffers[o.Name]; buf != nil {
			err = b.BindOutput(o.Name, buf)
		} else {
			err = b.BindOutputToHost(o.Name)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Run(); err != nil {
		t.Fatalf("%s: the in-place graph: %v", model, err)
	}
	got, err := b.Outputs()
	if err != nil {
		t.Fatal(err)
	}
	bits := func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) }
	for name, v := range got {
		w, _ := want[name].Float32s()
		g, _ := v.Float32s()
		if buf := buffers[name]; buf != nil {
			// the first past+1 positions of the buffer are the export's present
			shape := buf.Shape()
			all, _ := buf.Float32s()
			g = g[:0]
			per := int(shape[3])
			for blk := range int(shape[0] * shape[1]) {
				g = append(g, all[blk*room*per:(blk*room+int(past)+1)*per]...)
			}
		}
		if len(w) == 0 || !slices.EqualFunc(w, g, bits) {
			t.Errorf("%s in place: output %s differs", model, name)
		}
		v.Close()
	}
	if len(got) != len(want) {
		t.Errorf("%s in place: %d outputs, the export %d", model, len(got), len(want))
	}
}

// leftAsIs: a graph whose self-attention differs from what attendInPlace
// recognises in any layer (here one Softmax over another axis) is left as
// it was, and so is one whose cross-attention differs from what
// shareSources recognises (an encoder key with another reader).
func leftAsIs(t *testing.T, model, path string) {
	t.Helper()
	data, ok, _, err := rewriteDecoderWithPast(path, false, false)
	if err != nil || !ok {
		t.Fatal(err)
	}
	var m onnxpb.ModelProto
	if err := proto.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	// the first layer's self-attention comes first in these exports
	i := slices.IndexFunc(m.Graph.Node, func(n *onnxpb.NodeProto) bool { return n.GetOpType() == "Softmax" })
	m.Graph.Node[i].Attribute = []*onnxpb.AttributeProto{onnx.AttrInt("axis", 2)}
	before := proto.Clone(&m)
	if attendInPlace(m.Graph, onnx.Opsets(&m)) {
		t.Fatalf("%s: a Softmax over the heads attends in place", model)
	}
	if !proto.Equal(before, &m) {
		t.Errorf("%s: the graph changed although it was not rewritten", model)
	}
	// an encoder key read by anything but the attention and Shape: the
	// encoder past is not shared
	m.Graph.Node = append(m.Graph.Node, &onnxpb.NodeProto{OpType: proto.String("Identity"),
		Input: []string{"past_key_values.1.encoder.key"}, Output: []string{"ortrain_test_reader"}})
	m.Graph.Output = append(m.Graph.Output, &onnxpb.ValueInfoProto{Name: proto.String("ortrain_test_reader")})
	before = proto.Clone(&m)
	if shareSources(m.Graph, onnx.Opsets(&m)) {
		t.Fatalf("%s: an encoder key read by another node is shared", model)
	}
	if !proto.Equal(before, &m) {
		t.Errorf("%s: the graph changed although its sources were not shared", model)
	}
}

// TestGroupsOf: rows fall in groups of one size and one source each (beam
// search's beams, sampling's returned sequences), else in groups of one.
func TestGroupsOf(t *testing.T) {
	for _, c := range []struct{ srcOf, want []int }{
		{nil, []int{}},
		{[]int{0}, []int{0}},
		{[]int{0, 1, 2}, []int{0, 1, 2}},
		{[]int{0, 0, 0, 0, 1, 1, 1, 1}, []int{0, 1}},
		{[]int{3, 3, 5, 5, 7, 7}, []int{3, 5, 7}},
		{[]int{0, 0, 1, 1, 1, 1}, []int{0, 1, 1}}, // three groups of two
		{[]int{0, 0, 1}, []int{0, 0, 1}},
		{[]int{0, 0, 1, 2}, []int{0, 0, 1, 2}},
		{[]int{2, 2, 2, 2}, []int{2}},
		{[]int{1, 1, 0, 0, 1, 1}, []int{1, 0, 1}}, // a source twice: two groups
	} {
		if got := groupsOf(c.srcOf); !slices.Equal(got, c.want) {
			t.Errorf("groupsOf(%v) = %v, want %v", c.srcOf, got, c.want)
		}
	}
}

// TestReserveGrowsTheCache: the decoder cache gets room for the positions
// a step needs, twofold and by maxCacheGrowth at most each time, keeping
// the positions held.
func TestReserveGrowsTheCache(t *testing.T) {
	openEnv(t)
	const past = "past_key_values.0.decoder.key"
	held := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12} // [2 rows, 1 head, 3 positions, 2]
	v, err := onnxrt.NewTensor([]int64{2, 1, 3, 2}, held)
	if err != nil {
		t.Fatal(err)
	}
	s := &kvState{d: &KV{pastMap: map[string]string{"present.0.decoder.key": past}}, hidden: &cached{}, decPast: map[string]*cached{past: {val: v}}}
	defer s.Close()
	var rooms []int64
	for need := 4; need <= 700; need++ {
		into, err := s.reserve(need)
		if err != nil {
			t.Fatal(err)
		}
		buf := into["present.0.decoder.key"]
		if buf == nil || buf != s.decPast[past].val {
			t.Fatalf("need %d: the present is not written into the cache", need)
		}
		shape := buf.Shape()
		if room := shape[cachePositionAxis]; len(rooms) == 0 || rooms[len(rooms)-1] != room {
			rooms = append(rooms, room)
		}
		all, _ := buf.Float32s()
		room := int(shape[cachePositionAxis])
		for r := range 2 {
			if got := all[r*room*2 : r*room*2+6]; !slices.Equal(got, held[r*6:(r+1)*6]) {
				t.Fatalf("need %d: row %d holds %v, want %v", need, r, got, held[r*6:(r+1)*6])
			}
		}
	}
	if want := []int64{16, 32, 64, 128, 256, 512, 768}; !slices.Equal(rooms, want) {
		t.Errorf("rooms %v, want %v", rooms, want)
	}
}
