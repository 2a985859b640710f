package fixturecheck_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/testenv"
)

func loadModel(t *testing.T, path string) *onnxpb.ModelProto {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m onnxpb.ModelProto
	if err := proto.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &m
}

func initializers(m *onnxpb.ModelProto) map[string]*onnxpb.TensorProto {
	out := map[string]*onnxpb.TensorProto{}
	for _, t := range m.GetGraph().GetInitializer() {
		out[t.GetName()] = t
	}
	return out
}

// TestInitializersShareNames checks what lets one set of parameter values
// feed training and generation: every initializer of the Optimum-layout
// graphs exists in the forward graph under the same name with the same
// bytes, and the forward graph's initializers are exactly the names in
// refs.json, whose parameter names are PyTorch state_dict names.
func TestInitializersShareNames(t *testing.T) {
	for _, dir := range fixtures(t) {
		r := loadRefs(t, dir)
		var raw struct {
			Inits map[string]struct {
				PyTorch []string `json:"pytorch"`
				Kind    string   `json:"kind"`
			} `json:"onnx_initializers"`
		}
		b, _ := os.ReadFile(filepath.Join(dir, "refs.json"))
		if err := json.Unmarshal(b, &raw); err != nil {
			t.Fatal(err)
		}
		fwd := initializers(loadModel(t, filepath.Join(dir, "model.onnx")))
		if got, want := slices.Sorted(maps.Keys(fwd)), slices.Sorted(maps.Keys(raw.Inits)); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: model.onnx initializers %v, refs.json lists %v", r.Model, got, want)
		}
		for name, info := range raw.Inits {
			if info.Kind == "parameter" && !contains(info.PyTorch, name) {
				t.Errorf("%s: initializer %s is not one of its PyTorch names %v", r.Model, name, info.PyTorch)
			}
		}
		for _, g := range []string{"encoder_model.onnx", "decoder_model.onnx", "decoder_with_past_model.onnx"} {
			for name, ti := range initializers(loadModel(t, filepath.Join(dir, g))) {
				tf, ok := fwd[name]
				if !ok {
					t.Errorf("%s/%s: initializer %s is not in model.onnx", r.Model, g, name)
					continue
				}
				if !bytes.Equal(ti.GetRawData(), tf.GetRawData()) || fmt.Sprint(ti.GetDims()) != fmt.Sprint(tf.GetDims()) {
					t.Errorf("%s/%s: initializer %s differs from model.onnx's", r.Model, g, name)
				}
			}
		}
	}
}

// TestGradientRefsCoverParameters checks that testdata/gradients/<model>.json
// has one gradient of the right shape for every trainable initializer.
func TestGradientRefsCoverParameters(t *testing.T) {
	for _, dir := range fixtures(t) {
		name := filepath.Base(dir)
		path := testenv.Testdata(t, "gradients", name+".json")
		b, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%s: no gradient references: %v", name, err)
			continue
		}
		var g struct {
			Gradients map[string]struct {
				Shape []int64   `json:"shape"`
				Grad  []float32 `json:"grad"`
			} `json:"gradients"`
			Frozen  []string `json:"frozen_initializers"`
			Buffers []string `json:"buffer_initializers"`
		}
		if err := json.Unmarshal(b, &g); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		fwd := initializers(loadModel(t, filepath.Join(dir, "model.onnx")))
		covered := append(append(slices.Sorted(maps.Keys(g.Gradients)), g.Frozen...), g.Buffers...)
		sort.Strings(covered)
		if fmt.Sprint(covered) != fmt.Sprint(slices.Sorted(maps.Keys(fwd))) {
			t.Errorf("%s: gradients+frozen+buffers %v, model.onnx initializers %v", name, covered, slices.Sorted(maps.Keys(fwd)))
		}
		for n, gr := range g.Gradients {
			init, ok := fwd[n]
			if !ok {
				continue
			}
			if fmt.Sprint(gr.Shape) != fmt.Sprint(init.GetDims()) {
				t.Errorf("%s: %s gradient shape %v, initializer %v", name, n, gr.Shape, init.GetDims())
			}
			size := int64(1)
			for _, d := range gr.Shape {
				size *= d
			}
			if int64(len(gr.Grad)) != size {
				t.Errorf("%s: %s has %d gradient values for shape %v", name, n, len(gr.Grad), gr.Shape)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
