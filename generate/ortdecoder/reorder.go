package ortdecoder

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/modelfile"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/onnxrt"
)

// beamIndexInput is the input that rewriteDecoderWithPast adds to a
// decoder-with-past graph: the row of the past that each new row continues.
const beamIndexInput = "ortrain_beam_idx"

// rewriteDecoderWithPast simplifies a decoder-with-past graph (bypassCopies,
// onnx.FoldReshapeShapes) and, with reorder, makes it gather its decoder
// past_key_values inputs along the batch axis by ortrain_beam_idx before
// use: beam search then feeds the previous step's present values back as
// they are, and the reordering (HF's cache reorder_cache) happens inside
// ONNX Runtime, on its device, with no copy through Go. Graphs with
// external data are left alone (ok false), since a session made from bytes
// could not find their data files.
//
// Without reorder, and if inPlace, the self-attention also reads the cache
// in place and shares each source's encoder keys and values among its
// rows where the graph allows it (attendInPlace, shareSources; how
// reports what was done).
func rewriteDecoderWithPast(path string, reorder, inPlace bool) (model []byte, ok bool, how pastGraph, err error) {
	data, err := modelfile.ReadFile(path, 2<<30)
	if err != nil {
		return nil, false, pastGraph{}, err
	}
	var m onnxpb.ModelProto
	if err := proto.Unmarshal(data, &m); err != nil {
		return nil, false, pastGraph{}, fmt.Errorf("%s: not an ONNX model: %w", path, err)
	}
	g := m.Graph
	for _, t := range g.Initializer {
		if t.GetDataLocation() == onnxpb.TensorProto_EXTERNAL {
			return nil, false, pastGraph{}, nil
		}
	}
	bypassCopies(g)
	// Before the reorder is added: the export's symbols say that the past
	// and the new rows are as many, which the reorder keeps true.
	onnx.FoldReshapeShapes(g, onnx.Opsets(&m))
	if !reorder {
		if inPlace {
			how.inPlace = attendInPlace(g, onnx.Opsets(&m))
			how.sharedSources = shareSources(g, onnx.Opsets(&m))
		}
		if how.inPlace {
			onnx.SetOpset(&m, msDomain, 1)
		}
		out, err := proto.Marshal(&m)
		return out, err == nil, how, err
	}
	var gathers []*onnxpb.NodeProto
	renamed := map[string]string{}
	for _, in := range g.Input {
		name := in.GetName()
		if name == beamIndexInput {
			return nil, false, pastGraph{}, nil
		}
		if !strings.HasPrefix(name, "past_key_values.") || isEncoderPast(name) {
			continue
		}
		out := name + ".reordered"
		renamed[name] = out
		gathers = append(gathers, &onnxpb.NodeProto{
			Name: proto.String("ortrain_reorder_" + name), OpType: proto.String("Gather"),
			Input: []string{name, beamIndexInput}, Output: []string{out},
			Attribute: []*onnxpb.AttributeProto{{Name: proto.String("axis"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(0)}},
		})
	}
	if len(gathers) == 0 {
		return nil, false, pastGraph{}, nil
	}
	renameUses(g, renamed)
	g.Node = append(gathers, g.Node...)
	g.Input = append(g.Input, &onnxpb.ValueInfoProto{Name: proto.String(beamIndexInput), Type: &onnxpb.TypeProto{
		Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
			ElemType: proto.Int32(int32(onnxpb.TensorProto_INT64)),
			Shape: &onnxpb.TensorShapeProto{Dim: []*onnxpb.TensorShapeProto_Dimension{
				// Its own symbol: the rows of the past (the previous step's
				// batch) and the new rows need not be as many, and ONNX
				// Runtime plans buffers by symbols.
				{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "ortrain_beam_rows"}}}},
		}}}})
	out, err := proto.Marshal(&m)
	return out, err == nil, pastGraph{inGraphReorder: true}, err
}

// bypassCopies removes two kinds of node whose output is a value the
// graph already has, and makes their consumers read that value:
//   - a Concat of one input (its input). Exports from recent transformers
//     make one for each layer's cached encoder keys and values (a torch.cat
//     of a one-element list while the cache is rebuilt), which ONNX Runtime
//     runs as a copy of the whole cache at every decoding step;
//   - the Shape of a ConstantOfShape (the shape it was given): T5's export
//     fills a [rows, source length, model width] tensor at every step only
//     to read its shape.
//
// Nodes whose output the graph returns stay; what only fed the removed
// nodes goes too.
func bypassCopies(g *onnxpb.GraphProto) {
	returned := map[string]bool{}
	for _, o := range g.Output {
		returned[o.GetName()] = true
	}
	filled := map[string]string{} // ConstantOfShape output -> its shape input
	renamed := map[string]string{}
	resolve := func(name string) string {
		if to, ok := renamed[name]; ok {
			return to
		}
		return name
	}
	kept := g.Node[:0]
	for _, n := range g.Node {
		if n.GetDomain() != "" || len(n.Output) != 1 || returned[n.Output[0]] {
			kept = append(kept, n)
			continue
		}
		switch {
		case n.GetOpType() == "Concat" && len(n.Input) == 1 && n.Input[0] != "":
			renamed[n.Output[0]] = resolve(n.Input[0])
			continue
		case n.GetOpType() == "ConstantOfShape" && len(n.Input) == 1 && n.Input[0] != "":
			filled[n.Output[0]] = resolve(n.Input[0])
		case n.GetOpType() == "Shape" && len(n.Input) == 1 && len(n.Attribute) == 0 && filled[resolve(n.Input[0])] != "":
			renamed[n.Output[0]] = filled[resolve(n.Input[0])]
			continue
		}
		kept = append(kept, n)
	}
	g.Node = kept
	if len(renamed) > 0 {
		renameUses(g, renamed)
		onnx.RemoveDeadNodes(g)
	}
}

// renameUses makes nodes (and subgraphs) read renamed values.
func renameUses(g *onnxpb.GraphProto, renamed map[string]string) {
	for _, n := range g.Node {
		for i, in := range n.Input {
			if to, ok := renamed[in]; ok {
				n.Input[i] = to
			}
		}
		for _, a := range n.Attribute {
			if a.G != nil {
				renameUses(a.G, renamed)
			}
			for _, sg := range a.Graphs {
				renameUses(sg, renamed)
			}
		}
	}
}

// openDecoderWithPast opens the decoder-with-past graph, simplified, with
// the in-graph reorder if inGraph and the graph allows it, and otherwise,
// for float32 sessions, attending over its cache in place where the graph
// allows it (the CPU sessions, whose cache stays in host memory).
func openDecoderWithPast(env *onnxrt.Env, path string, opts Options, inGraph bool) (*onnxrt.Session, pastGraph, error) {
	model, ok, how, err := rewriteDecoderWithPast(path, inGraph, !inGraph && opts.DType == onnx.Undefined)
	if err != nil {
		return nil, pastGraph{}, err
	}
	if !ok {
		s, err := sessionOf(env, path, opts)
		return s, pastGraph{}, err
	}
	if opts.DType != onnx.Undefined {
		var m onnxpb.ModelProto
		if err := proto.Unmarshal(model, &m); err != nil {
			return nil, pastGraph{}, err
		}
		s, err := sessionOfModel(env, &m, path, opts)
		return s, how, err
	}
	so := opts.session()
	if !inGraph {
		// On the CPU this session does most of a step's work, in ~300
		// nodes: its workers wait for the next node spinning, instead of
		// being woken for each (beam 4 at two threads on the generation
		// benchmark: 3.13 -> 2.77 s). The other sessions of a step, short
		// ones, keep theirs asleep (Options.session).
		so.NoSpinning = false
	}
	s, err := env.NewSessionFromBytes(model, path, so)
	return s, how, err
}

// pastGraph says what openDecoderWithPast made of the graph.
type pastGraph struct {
	// inGraphReorder: it gathers its decoder past by beamIndexInput.
	inGraphReorder bool
	// inPlace: its self-attention reads and extends the decoder past in
	// place (attendInPlace).
	inPlace bool
	// sharedSources: its encoder past has a row per group of decoder rows
	// (shareSources).
	sharedSources bool
}
