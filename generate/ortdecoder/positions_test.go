package ortdecoder

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/ortrain/ortrain/generate"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
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

// A full graph with external data takes the rewrite too (written whole to
// a temporary folder): M2M100's recompute decoding still equals HF's.
func TestRecomputeExternalDataCountsPads(t *testing.T) {
	env := openEnv(t)
	src := testenv.Testdata(t, "multilingual", "m2m100-tiny")
	m, err := onnx.Load(filepath.Join(src, FullModelFile))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, FullModelFile)
	if err := onnx.Save(m, path, onnx.SaveOptions{ExternalData: true, SizeThreshold: 1024}); err != nil {
		t.Fatal(err)
	}
	if len(onnx.ExternalDataFiles(mustLoadKeep(t, path))) == 0 {
		t.Fatal("the copy has no external data")
	}
	data, err := os.ReadFile(testenv.Testdata(t, "multilingual", "generate.json"))
	if err != nil {
		t.Fatal(err)
	}
	var refs multilingualGenRefs
	if err := json.Unmarshal(data, &refs); err != nil {
		t.Fatal(err)
	}
	base, err := generate.LoadConfig(src)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := NewRecompute(env, path, base.PadTokenID, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	ref := refs.Models["m2m100-tiny"]
	checked := 0
	for _, c := range ref.Cases {
		if c.UseCacheFalseEqual {
			continue // only the cases where counting pads matters
		}
		cfg := base
		if err := cfg.ApplyJSON(c.Kwargs); err != nil {
			t.Fatal(err)
		}
		out, err := generate.Generate(context.Background(), rc, ref.Sources[c.Batch], cfg)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(out.Sequences) != fmt.Sprint(c.Sequences) {
			t.Errorf("%s:\n got %v\nwant %v", c.Name, out.Sequences, c.Sequences)
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no case where the cache matters")
	}
}

func mustLoadKeep(t *testing.T, path string) *onnxpb.ModelProto {
	t.Helper()
	m, err := onnx.LoadWith(path, onnx.LoadOptions{KeepExternal: true})
	if err != nil {
		t.Fatal(err)
	}
	return m
}
