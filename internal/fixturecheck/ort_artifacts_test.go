package fixturecheck_test

import (
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/safetensors"
	"github.com/ortrain/ortrain/internal/testenv"
)

// TestORTArtifactsEvalModel runs the eval graph that onnxruntime-training
// 1.19.2 generated (testdata/ort-artifacts/t5-tiny) on a current inference
// build of ONNX Runtime, feeding the parameters from the fixture's
// safetensors, and checks its loss against the loss ONNX Runtime 1.19.2
// computed and against PyTorch's.
func TestORTArtifactsEvalModel(t *testing.T) {
	dir := testenv.Testdata(t, "ort-artifacts", "t5-tiny")
	var ref struct {
		EvalLoss    float64  `json:"eval_loss_initial_checkpoint"`
		PyTorchLoss float64  `json:"pytorch_loss"`
		Trainable   []string `json:"requires_grad"`
	}
	b, err := os.ReadFile(dir + "/refs.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatalf("%s/refs.json: %v", dir, err)
	}
	fixture := loadRefs(t, testenv.Testdata(t, "models", "t5-tiny"))
	weights, err := safetensors.ReadFile(testenv.Testdata(t, "models", "t5-tiny", "model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}

	env, err := onnxrt.Open(testenv.ORTLibrary(t))
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	sess, err := env.NewSession(dir+"/eval_model.onnx", onnxrt.SessionOptions{})
	if err != nil {
		t.Fatalf("eval_model.onnx made by onnxruntime-training 1.19.2 does not load: %v", err)
	}
	defer sess.Close()

	bt := fixture.Batch
	in := map[string]*onnxrt.Value{
		"input_ids":              ints(t, bt.InputIDs),
		"attention_mask":         ints(t, bt.AttentionMask),
		"decoder_input_ids":      ints(t, bt.DecoderInputIDs),
		"decoder_attention_mask": ints(t, bt.DecoderAttentionMask),
		"labels":                 ints(t, bt.Labels),
	}
	for _, name := range ref.Trainable {
		w, ok := weights.Tensors[name]
		if !ok {
			t.Fatalf("parameter %s of the artifacts is not in model.safetensors", name)
		}
		v, err := onnxrt.NewTensorRaw(onnxrt.Float32, w.Shape, w.Data)
		if err != nil {
			t.Fatal(err)
		}
		defer v.Close()
		in[name] = v
	}
	for _, io := range sess.Inputs() {
		if _, ok := in[io.Name]; !ok {
			t.Fatalf("eval_model.onnx input %s is not fed", io.Name)
		}
	}
	out, err := sess.Run(in, []string{"loss"})
	if err != nil {
		t.Fatal(err)
	}
	defer out["loss"].Close()
	loss, err := out["loss"].Scalar()
	if err != nil {
		t.Fatal(err)
	}
	if d := math.Abs(loss - ref.EvalLoss); d > 1e-5 {
		t.Errorf("eval loss %.7f, ONNX Runtime 1.19.2 computed %.7f (diff %.2g)", loss, ref.EvalLoss, d)
	}
	if d := math.Abs(loss - ref.PyTorchLoss); d > 1e-5 {
		t.Errorf("eval loss %.7f, PyTorch %.7f (diff %.2g)", loss, ref.PyTorchLoss, d)
	}
	t.Logf("eval loss %.7f (ORT 1.19.2 %.7f, PyTorch %.7f)", loss, ref.EvalLoss, ref.PyTorchLoss)
}
