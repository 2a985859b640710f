package artifacts

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/testenv"
	"github.com/ortrain/ortrain/internal/testmodel"
)

func TestLayerKey(t *testing.T) {
	for _, c := range []struct {
		name, stack string
		index       int
		ok          bool
	}{
		{"encoder.block.3.layer.1.DenseReluDense.wi.weight", "encoder.block", 3, true},
		{"model.decoder.layers.11.fc1.bias", "model.decoder.layers", 11, true},
		{"base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_A.weight", "base_model.model.encoder.block", 0, true},
		{"shared.weight", "", 0, false},
		{"model.encoder.embed_positions.weight", "", 0, false},
		{"layers.01.w", "", 0, false}, // not how torch numbers a list
		{"0.weight", "", 0, false},
	} {
		s, i, ok := layerKey(c.name)
		if s != c.stack || i != c.index || ok != c.ok {
			t.Errorf("layerKey(%q) = %q, %d, %v; want %q, %d, %v", c.name, s, i, ok, c.stack, c.index, c.ok)
		}
	}
}

// TestCheckpointLayersOfFixtures: the layers found in the T5, BART and
// Marian fixtures are their encoder and decoder layers, in order, without
// overlaps, each with recomputed nodes.
func TestCheckpointLayersOfFixtures(t *testing.T) {
	for _, c := range []struct {
		fixture string
		layers  []string
	}{
		{"t5-tiny", []string{"encoder.block.0", "encoder.block.1", "decoder.block.0", "decoder.block.1"}},
		{"bart-tiny", []string{"model.encoder.layers.0", "model.encoder.layers.1", "model.decoder.layers.0", "model.decoder.layers.1"}},
		{"marian-tiny", []string{"model.encoder.layers.0", "model.encoder.layers.1", "model.decoder.layers.0", "model.decoder.layers.1"}},
	} {
		dir := testenv.Testdata(t, "models", c.fixture)
		out := t.TempDir()
		man, err := Build(Config{Model: filepath.Join(dir, "model.onnx"), Out: out, GradientCheckpointing: true})
		if err != nil {
			t.Fatalf("%s: %v", c.fixture, err)
		}
		rec := man.GradientCheckpointing
		if rec == nil || len(rec.Layers) != len(c.layers) {
			t.Fatalf("%s: layers %+v, want %v", c.fixture, rec, c.layers)
		}
		for i, l := range rec.Layers {
			if l.Module != c.layers[i] || l.Recomputed == 0 {
				t.Errorf("%s: layer %d is %s with %d nodes recomputed, want %s with some", c.fixture, i, l.Module, l.Recomputed, c.layers[i])
			}
		}
		// The backward pass reads no activation of a layer after the first:
		// what it needs of them comes from the recomputation (layer 0's
		// leading layer-norm steps lie before its first weight, outside
		// every layer, and stay read).
		g, err := onnx.Load(filepath.Join(out, TrainingFile))
		if err != nil {
			t.Fatal(err)
		}
		params := map[string]bool{}
		for _, p := range man.Parameters {
			params[p.Name] = true
		}
		forward := map[string]*onnxpb.NodeProto{}
		for _, n := range g.Graph.Node {
			if !strings.HasPrefix(n.GetName(), "grad/") && !strings.HasPrefix(n.GetName(), "recompute/") {
				for _, o := range n.Output {
					forward[o] = n
				}
			}
		}
		for _, n := range g.Graph.Node {
			if !strings.HasPrefix(n.GetName(), "grad/") {
				continue
			}
			for _, in := range n.Input {
				p := forward[in]
				// (a weight's transpose read where the layer's gradient
				// flows into the layer before: not an activation)
				weightOnly := p != nil && len(p.Input) == 1 && params[p.Input[0]]
				if p != nil && p.GetOpType() != "Constant" && !weightOnly && (strings.Contains(p.GetName(), "/block.1/") || strings.Contains(p.GetName(), "/layers.1/")) {
					t.Errorf("%s: backward node %s reads %s of %s", c.fixture, n.GetName(), in, p.GetName())
				}
			}
		}
		// The manifest written says so too.
		b, err := os.ReadFile(filepath.Join(out, ManifestFile))
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			GradientCheckpointing *Checkpointing `json:"gradient_checkpointing"`
		}
		if err := json.Unmarshal(b, &m); err != nil || m.GradientCheckpointing == nil || len(m.GradientCheckpointing.Layers) != len(c.layers) {
			t.Errorf("%s: manifest.json gradient_checkpointing %+v (%v)", c.fixture, m.GradientCheckpointing, err)
		}
	}
}

// TestCheckpointingNeedsLayers: a model whose parameters lie in no module
// list has nothing to recompute, which is a settings error.
func TestCheckpointingNeedsLayers(t *testing.T) {
	dir := t.TempDir()
	model := testmodel.WriteToy(t, dir, testmodel.Toy{Act: "Tanh", Output: "logits"})
	_, err := Build(Config{Model: model, Out: filepath.Join(dir, "out"), GradientCheckpointing: true})
	if err == nil || !errors.Is(err, fault.Settings) {
		t.Fatalf("error %v, want a settings error", err)
	}
	t.Log(err)
}
