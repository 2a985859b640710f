package ortdecoder

import (
	"testing"

	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/testenv"
)

// TestCachePositionsTouchesOnlyPadAwareDecoderPositions: M2M100's decoder
// position CumSum is rewritten and its encoder's is not; graphs whose
// positions do not depend on the token ids are left alone.
func TestCachePositionsTouchesOnlyPadAwareDecoderPositions(t *testing.T) {
	for _, tc := range []struct {
		path []string
		want int
	}{
		{[]string{"multilingual", "m2m100-tiny", "model.onnx"}, 1},
		{[]string{"multilingual", "mbart-tiny", "model.onnx"}, 0},
		{[]string{"models", "t5-tiny", "model.onnx"}, 0},
		{[]string{"models", "bart-tiny", "model.onnx"}, 0},
		{[]string{"models", "marian-tiny", "model.onnx"}, 0},
		{[]string{"multilingual", "m2m100-tiny", "decoder_model.onnx"}, 0}, // no decoder_input_ids input
	} {
		m, err := onnx.Load(testenv.Testdata(t, tc.path...))
		if err != nil {
			t.Fatal(err)
		}
		before := len(m.Graph.Node)
		n, err := CachePositions(m)
		if err != nil || n != tc.want {
			t.Errorf("%v: %d CumSum nodes rewritten (%v), want %d", tc.path, n, err, tc.want)
		}
		if got := len(m.Graph.Node); got != before+2*tc.want {
			t.Errorf("%v: %d nodes after, %d before", tc.path, got, before)
		}
		if err := onnx.TopoSort(m.Graph); err != nil {
			t.Errorf("%v: %v", tc.path, err)
		}
	}
}
