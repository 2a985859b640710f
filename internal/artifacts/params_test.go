package artifacts

import (
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

func TestNotTrainableInTorch(t *testing.T) {
	if _, ok := notTrainableInTorch("final_logits_bias", "bart"); !ok {
		t.Error("final_logits_bias is a buffer")
	}
	if _, ok := notTrainableInTorch("model.encoder.embed_positions.weight", "marian"); !ok {
		t.Error("Marian's sinusoidal positions are frozen")
	}
	if _, ok := notTrainableInTorch("model.encoder.embed_positions.weight", "bart"); ok {
		t.Error("BART's learned positions are trainable")
	}
}
