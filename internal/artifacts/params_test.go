package artifacts

import (
	"github.com/ortrain/ortrain/internal/arch"
	"testing"

	"github.com/ortrain/ortrain/internal/safetensors"
)

func ones(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = 1
	}
	return v
}

// TestMatchWeightsByContent: names come from equal names first, then from
// contents (transposed too); equal contents go to the name with the same
// ending; unmatched float tensors stay constants.
func TestMatchWeightsByContent(t *testing.T) {
	lin := []float32{1, 2, 3, 4, 5, 6} // torch [2,3]; graph holds [3,2]
	linT := Transpose(lin, 2, 3)
	w := &safetensors.File{Tensors: map[string]safetensors.Tensor{
		"encoder.norm.weight": safetensors.FromFloat32([]int64{4}, ones(4)),
		"decoder.norm.weight": safetensors.FromFloat32([]int64{4}, ones(4)),
		"proj.weight":         safetensors.FromFloat32([]int64{2, 3}, lin),
		"same.weight":         safetensors.FromFloat32([]int64{2}, []float32{7, 8}),
	}}
	raw := func(v []float32) []byte { return safetensors.FromFloat32([]int64{int64(len(v))}, v).Data }
	cands := []candidate{
		{onnxName: "m.decoder.norm.weight", shape: []int64{4}, raw: raw(ones(4))},
		{onnxName: "m.encoder.norm.weight", shape: []int64{4}, raw: raw(ones(4))},
		{onnxName: "onnx::MatMul_3", shape: []int64{3, 2}, raw: raw(linT)},
		{onnxName: "same.weight", shape: []int64{2}, raw: raw([]float32{7, 8})},
		{onnxName: "folded_constant", shape: []int64{2}, raw: raw([]float32{9, 9})},
	}
	params, constants, _, byContent, err := matchWeights(cands, w, "w.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Parameter{}
	for _, p := range params {
		got[p.ONNXName+"|"+p.Name] = p
	}
	for _, want := range []string{"m.decoder.norm.weight|decoder.norm.weight", "m.encoder.norm.weight|encoder.norm.weight", "onnx::MatMul_3|proj.weight", "|same.weight"} {
		if _, ok := got[want]; !ok {
			t.Errorf("missing match %s in %+v", want, params)
		}
	}
	if !got["onnx::MatMul_3|proj.weight"].Transposed || byContent != 3 {
		t.Errorf("transposed %v, matched by content %d", got["onnx::MatMul_3|proj.weight"].Transposed, byContent)
	}
	if len(constants) != 1 || constants[0] != "folded_constant" {
		t.Errorf("constants %v", constants)
	}
	// Equal name but other values: the weights belong to another model.
	cands[3].raw = raw([]float32{0, 0})
	if _, _, _, _, err := matchWeights(cands, w, "w.safetensors"); err == nil {
		t.Error("a same-named tensor with other values was accepted")
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
