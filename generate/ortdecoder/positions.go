package ortdecoder

import (
	"fmt"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/modelfile"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/onnxrt"
)

// DecoderInputIDs is the full graph's input of decoder token ids.
const DecoderInputIDs = "decoder_input_ids"

// CachePositions rewrites a full seq2seq graph (input_ids, attention_mask,
// decoder_input_ids → logits) so that, run over a whole decoder prefix, it
// gives the positions HF's generate() gives with its default KV cache.
//
// Some models derive position ids from the token ids, skipping pad ids:
// M2M100 and NLLB (create_position_ids_from_input_ids, after fairseq's
// make_positions) compute cumsum(ids != pad) * (ids != pad) + pad. Over a
// whole prefix (training, or decoding without a cache) a pad id inside the
// prefix does not advance the positions after it; with a cache each new
// token gets cumsum over itself plus the cache length, which counts every
// earlier token, pad ids included. So a model that emits a pad id
// generates differently with and without a cache, and HF's default is the
// cache. The rewrite makes every CumSum whose data input is computed from
// decoder_input_ids alone count all positions (its data input becomes
// ones), which is the cache's count; encoder positions and the training
// graphs are left as they are. It returns how many CumSum nodes it changed.
func CachePositions(m *onnxpb.ModelProto) (int, error) {
	g := m.GetGraph()
	if g == nil {
		return 0, fmt.Errorf("model has no graph")
	}
	inputs := map[string]bool{}
	for _, in := range g.Input {
		inputs[in.GetName()] = true
	}
	if !inputs[DecoderInputIDs] {
		return 0, nil
	}
	prod := onnx.Producers(g)
	// roots memoizes the graph inputs each value is computed from.
	roots := map[string]map[string]bool{}
	var rootsOf func(v string, depth int) map[string]bool
	rootsOf = func(v string, depth int) map[string]bool {
		if r, ok := roots[v]; ok {
			return r
		}
		r := map[string]bool{}
		roots[v] = r // cycles (invalid graphs) end here
		switch {
		case inputs[v]:
			r[v] = true
		case depth > 10000:
			r["(too deep)"] = true
		default:
			if n := prod[v]; n != nil {
				for _, in := range onnx.NodeInputs(n) {
					for k := range rootsOf(in, depth+1) {
						r[k] = true
					}
				}
			}
		}
		return r
	}
	opset := int64(0)
	for _, o := range m.OpsetImport {
		if o.GetDomain() == "" || o.GetDomain() == "ai.onnx" {
			opset = o.GetVersion()
		}
	}
	b := onnx.NewGraphBuilder(g)
	changed := 0
	var rewritten []*onnxpb.NodeProto
	for _, n := range g.Node {
		if n.GetOpType() == "CumSum" && n.GetDomain() == "" && len(n.Input) >= 1 {
			r := rootsOf(n.Input[0], 0)
			if len(r) == 1 && r[DecoderInputIDs] {
				x := n.Input[0]
				if opset < 15 {
					return 0, fmt.Errorf("the decoder position ids are computed from decoder_input_ids with CumSum (node %q), and rewriting them for decoding without a cache needs opset 15 (CastLike); the graph has opset %d: decode with the KV-cache graphs instead", n.GetName(), opset)
				}
				same := b.Name(x + "_ortrain_all_positions")
				ones := b.Name(x + "_ortrain_ones")
				rewritten = append(rewritten,
					&onnxpb.NodeProto{Name: proto.String(same), OpType: proto.String("Equal"), Input: []string{x, x}, Output: []string{same}},
					&onnxpb.NodeProto{Name: proto.String(ones), OpType: proto.String("CastLike"), Input: []string{same, x}, Output: []string{ones}})
				n.Input[0] = ones
				changed++
			}
		}
		rewritten = append(rewritten, n)
	}
	if changed > 0 {
		g.Node = rewritten
	}
	return changed, nil
}

// openRecomputeSession opens a full graph for decoding without a cache,
// with CachePositions applied when the graph needs it.
func openRecomputeSession(env *onnxrt.Env, path string, o Options) (*onnxrt.Session, error) {
	opts := o.session()
	data, err := modelfile.ReadFile(path, 2<<30) // a model file; its weights over 2 GB are external data
	if err != nil {
		return nil, err
	}
	m, err := onnx.LoadBytesWith(data, onnx.LoadOptions{KeepExternal: true})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	n, err := CachePositions(m)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if o.DType != onnx.Undefined {
		return sessionOfModel(env, m, path, o)
	}
	if n == 0 {
		return env.NewSession(path, opts)
	}
	if len(onnx.ExternalDataFiles(m)) == 0 {
		b, err := proto.Marshal(m)
		if err != nil {
			return nil, err
		}
		return env.NewSessionFromBytes(b, path, opts)
	}
	// External data: a session made from bytes could not find the data
	// files, so the rewritten model is written whole to a temporary folder.
	if err := onnx.ResolveExternalData(m, filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	tmp, err := os.MkdirTemp("", "ortrain-recompute-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "model.onnx")
	if err := onnx.Save(m, out, onnx.SaveOptions{ExternalData: true}); err != nil {
		return nil, err
	}
	return env.NewSession(out, opts)
}
