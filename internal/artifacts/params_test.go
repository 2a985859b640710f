package artifacts

import (
	"errors"
	"maps"
	"slices"
	"strings"

	"testing"

	"github.com/ortrain/ortrain/internal/arch"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/safetensors"
)

func ones(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = 1
	}
	return v
}

// identifyGraph is a graph whose initializers are read by nodes named
// with module paths, as TorchScript exports name them.
func identifyGraph(inits map[string][]float32, shapes map[string][]int64, nodes [][3]string) (*onnxpb.GraphProto, []candidate) {
	g := &onnxpb.GraphProto{}
	for _, n := range slices.Sorted(maps.Keys(inits)) {
		g.Initializer = append(g.Initializer, onnx.MustTensor(n, shapes[n], inits[n]))
	}
	for _, n := range nodes { // name, op, initializer (read as input 1; Gather: 0)
		in := []string{"x", n[2]}
		if n[1] == "Gather" {
			in = []string{n[2], "x"}
		}
		g.Node = append(g.Node, &onnxpb.NodeProto{Name: proto.String(n[0]), OpType: proto.String(n[1]), Input: in, Output: []string{n[0] + "_out"}})
	}
	cands, err := candidates(g)
	if err != nil {
		panic(err)
	}
	return g, cands
}

// TestIdentifyParameters: names come from the initializer's own name, from
// folded copies (a transposed tied embedding), from module paths and from
// unique values in the weights file; values several tensors share decide
// nothing, and a name whose values differ from the file's is refused.
func TestIdentifyParameters(t *testing.T) {
	emb := []float32{1, 2, 3, 4, 5, 6} // torch [3,2]
	lin := []float32{7, 8, 9, 10, 11, 12}
	bias := []float32{0.5, 0.25}
	inits := map[string][]float32{
		"model.shared.weight": emb,
		"onnx::MatMul_9":      Transpose(emb, 3, 2), // tied lm_head, folded transpose
		"onnx::MatMul_3":      Transpose(lin, 2, 3), // fc1, torch [2,3]
		"onnx::Add_4":         bias,                 // folded buffer: no module path
		"model.enc.norm.bias": {0, 0},
		"model.dec.norm.bias": {0, 0},
		"onnx::Mul_5":         {0, 0}, // zeros: three tensors of the file hold them
	}
	shapes := map[string][]int64{"model.shared.weight": {3, 2}, "onnx::MatMul_9": {2, 3}, "onnx::MatMul_3": {3, 2}, "onnx::Add_4": {2},
		"model.enc.norm.bias": {2}, "model.dec.norm.bias": {2}, "onnx::Mul_5": {2}}
	nodes := [][3]string{
		{"/model/encoder/embed_tokens/Gather", "Gather", "model.shared.weight"},
		{"/lm_head/MatMul", "MatMul", "onnx::MatMul_9"},
		{"/model/encoder/layers.0/fc1/MatMul", "MatMul", "onnx::MatMul_3"},
		{"/Add", "Add", "onnx::Add_4"},
		{"/model/enc/norm/Add", "Add", "model.enc.norm.bias"},
		{"/model/dec/norm/Add", "Add", "model.dec.norm.bias"},
		{"/Mul", "Mul", "onnx::Mul_5"},
	}
	g, cands := identifyGraph(inits, shapes, nodes)

	// Without a weights file: names, the folded copy and the module path.
	id, err := identify(g, cands, nil, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Parameter{}
	for _, p := range id.params {
		got[p.Name] = p
	}
	if p := got["model.shared.weight"]; len(p.Aliases) != 1 || p.Aliases[0] != (Alias{ONNXName: "onnx::MatMul_9", Transposed: true}) {
		t.Errorf("tied lm_head: %+v", p)
	}
	if p := got["model.encoder.layers.0.fc1.weight"]; !p.Transposed || p.ONNXName != "onnx::MatMul_3" || p.MatchedBy != ByModulePath {
		t.Errorf("fc1 by module path: %+v", p)
	}
	var un []string
	for _, u := range id.unmatched {
		un = append(un, u.ONNXName)
	}
	if strings.Join(un, ",") != "onnx::Add_4,onnx::Mul_5" || len(id.params) != 4 {
		t.Errorf("unmatched %v, parameters %+v", un, id.params)
	}

	// With the weights file the folded buffer is found by its values; the
	// zeros that three tensors hold stay unmatched.
	w := &safetensors.File{Tensors: map[string]safetensors.Tensor{
		"model.shared.weight":                safetensors.FromFloat32([]int64{3, 2}, emb),
		"model.encoder.layers.0.fc1.weight":  safetensors.FromFloat32([]int64{2, 3}, lin),
		"final_logits_bias":                  safetensors.FromFloat32([]int64{2}, bias),
		"model.enc.norm.bias":                safetensors.FromFloat32([]int64{2}, []float32{0, 0}),
		"model.dec.norm.bias":                safetensors.FromFloat32([]int64{2}, []float32{0, 0}),
		"model.encoder.layers.0.fc1.bias":    safetensors.FromFloat32([]int64{2}, []float32{0, 0}),
		"model.encoder.embed_positions.only": safetensors.FromFloat32([]int64{2}, []float32{3, 3}),
	}}
	id, err = identify(g, cands, w, "model.safetensors", nil)
	if err != nil {
		t.Fatal(err)
	}
	got = map[string]Parameter{}
	for _, p := range id.params {
		got[p.Name] = p
	}
	if p := got["final_logits_bias"]; p.ONNXName != "onnx::Add_4" || p.MatchedBy != ByContent {
		t.Errorf("final_logits_bias by content: %+v", p)
	}
	if p := got["model.encoder.layers.0.fc1.weight"]; !p.Transposed || p.MatchedBy != ByModulePath {
		t.Errorf("fc1 checked against the file: %+v", p)
	}
	if len(id.unmatched) != 1 || id.unmatched[0].ONNXName != "onnx::Mul_5" || !strings.Contains(id.unmatched[0].Reason, "3 tensors") {
		t.Errorf("unmatched %+v", id.unmatched)
	}
	// --param-name decides what values cannot.
	id, err = identify(g, cands, w, "model.safetensors", map[string]string{"onnx::Mul_5": "model.encoder.layers.0.fc1.bias"})
	if err != nil || len(id.unmatched) != 0 {
		t.Errorf("--param-name: %v, unmatched %+v", err, id.unmatched)
	}

	// Weights of another model: the module path names a tensor with other values.
	other := *w
	other.Tensors = maps.Clone(w.Tensors)
	other.Tensors["model.encoder.layers.0.fc1.weight"] = safetensors.FromFloat32([]int64{2, 3}, []float32{1, 1, 1, 1, 1, 2})
	_, err = identify(g, cands, &other, "model.safetensors", nil)
	if err == nil || !errors.Is(err, fault.Input) || !strings.Contains(err.Error(), "another model") {
		t.Errorf("weights of another model: %v", err)
	}
}

// TestFreezeFollowsTheArchitectureTable: what HF's optimizer never sees
// (buffers) stays frozen, and what transformers 5.24 trains after
// from_pretrained trains, by the generated table rather than by names.
func TestFreezeFollowsTheArchitectureTable(t *testing.T) {
	cases := []struct {
		modelType, name string
		trainable       bool
	}{
		{"bart", "final_logits_bias", false},
		{"bart", "model.encoder.embed_positions.weight", true},
		{"marian", "model.encoder.embed_positions.weight", true}, // sinusoidal, trainable after from_pretrained
		{"pegasus", "model.decoder.embed_positions.weight", true},
		{"marian", "final_logits_bias", false},
		{"t5", "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", true},
	}
	for _, c := range cases {
		a, ok := arch.Lookup(c.modelType)
		if !ok {
			t.Fatalf("%s not in the table", c.modelType)
		}
		params := []Parameter{{Name: c.name, Shape: []int64{2, 2}}, {Name: "lm_head.weight", Shape: []int64{2, 2}}}
		if err := applyFreeze(params, nil, &a); err != nil {
			t.Fatal(err)
		}
		if params[0].Trainable != c.trainable {
			t.Errorf("%s %s: trainable %v (%s), HF %v", c.modelType, c.name, params[0].Trainable, params[0].FrozenBy, c.trainable)
		}
	}
	params := []Parameter{{Name: "final_logits_bias", Shape: []int64{1, 4}}}
	if err := applyFreeze(params, nil, nil); err != nil || !params[0].Trainable {
		t.Errorf("without an architecture every tensor trains: %v %v", params[0], err)
	}
}
