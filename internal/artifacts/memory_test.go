package artifacts_test

import (
	"testing"

	"github.com/ortrain/ortrain/internal/amp"
	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/testenv"
)

// TestMemoryReport: a mixed-precision step keeps the same 16 bytes per
// parameter and 2 more during the step; the activations the backward pass
// reads are counted from the training graph (for T5 with CUDA's lists not
// fewer than float32's: the float32 softmax output is kept for the softmax
// gradient and its float16 copy for the product with the values, as in
// PyTorch).
func TestMemoryReport(t *testing.T) {
	cfg, err := artifacts.FolderConfig(testenv.Testdata(t, "models", "t5-tiny"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Out = t.TempDir()
	p := artifacts.Precision{Options: amp.Options{DType: onnx.Float16, Device: amp.CUDA}}
	cfg.Precisions = []artifacts.Precision{p}
	man, err := artifacts.Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r32, err := man.Memory(cfg.Out, "", 128)
	if err != nil {
		t.Fatal(err)
	}
	r16, err := man.Memory(cfg.Out, p.Name(), 128)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []artifacts.MemoryReport{r32, r16} {
		for _, l := range r.Lines() {
			t.Log(l)
		}
	}
	if r32.KeptPerParameter != 16 || r16.KeptPerParameter != 16 || r32.CastPerParameter != 0 || r16.CastPerParameter != 2 || r16.Parameters != r32.Parameters || r32.Parameters == 0 {
		t.Errorf("per-parameter bytes: %+v, %+v", r32, r16)
	}
	if r32.ActivationsPerToken <= 0 || r16.ActivationsPerToken <= 0 || r16.ActivationsPerToken == r32.ActivationsPerToken {
		t.Errorf("activations per token: float16 %d, float32 %d", r16.ActivationsPerToken, r32.ActivationsPerToken)
	}
	if _, err := man.Memory(cfg.Out, "half-bfloat16", 128); err == nil {
		t.Error("a variant the folder lacks was reported")
	}
}
