package ortdecoder

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/generate"
	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/safetensors"
	"github.com/ortrain/ortrain/internal/testenv"
)

func randomSources(n int, lo, hi, eos int64, seed uint64) [][]int64 {
	x := seed
	next := func() uint64 { x = x*6364136223846793005 + 1442695040888963407; return x >> 33 }
	out := make([][]int64, n)
	for i := range out {
		l := 2 + int(next()%14)
		for range l {
			out[i] = append(out[i], lo+int64(next()%uint64(hi-lo)))
		}
		out[i] = append(out[i], eos)
	}
	return out
}

// TestKVAndRecomputeAgree runs many more sources than the HF references
// through both decoders: the KV cache must not change a single token.
func TestKVAndRecomputeAgree(t *testing.T) {
	env := openEnv(t)
	for _, model := range []string{"t5-tiny", "bart-tiny", "marian-tiny"} {
		dir := testenv.Testdata(t, "models", model)
		base, err := generate.LoadConfig(dir)
		if err != nil {
			t.Fatal(err)
		}
		decs := openDecoders(t, env, dir, base.PadTokenID)
		sources := randomSources(24, 4, 48, base.EOSTokenIDs[0], uint64(len(model)))
		for _, kw := range []string{`{}`, `{"num_beams": 4}`, `{"num_beams": 5, "num_return_sequences": 3, "length_penalty": 0.6}`, `{"num_beams": 4, "no_repeat_ngram_size": 2, "early_stopping": "never"}`} {
			var m map[string]json.RawMessage
			_ = json.Unmarshal([]byte(kw), &m)
			cfg := base
			if err := cfg.ApplyJSON(m); err != nil {
				t.Fatal(err)
			}
			var outs []*generate.Output
			for _, nd := range decs {
				out, err := generate.Generate(context.Background(), nd.dec, sources, cfg)
				if err != nil {
					t.Fatalf("%s %s %s: %v", model, nd.name, kw, err)
				}
				outs = append(outs, out)
			}
			for d := 1; d < len(outs); d++ {
				for i := range outs[0].Sequences {
					if !reflect.DeepEqual(outs[0].Sequences[i], outs[d].Sequences[i]) {
						t.Errorf("%s %s row %d: %s %v, %s %v", model, kw, i, decs[0].name, outs[0].Sequences[i], decs[d].name, outs[d].Sequences[i])
					}
				}
			}
		}
	}
}

// withoutPresentOutputs writes a copy of decoder_model.onnx that only outputs logits.
func withoutPresentOutputs(t *testing.T, src, dst string) {
	t.Helper()
	m := loadModel(t, src)
	var keep []*onnxpb.ValueInfoProto
	for _, o := range m.Graph.Output {
		if o.GetName() == "logits" {
			keep = append(keep, o)
		}
	}
	m.Graph.Output = keep
	saveModel(t, m, dst)
}

func loadModel(t *testing.T, path string) *onnxpb.ModelProto {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m onnxpb.ModelProto
	if err := proto.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

func saveModel(t *testing.T, m *onnxpb.ModelProto, path string) {
	t.Helper()
	out, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

// initFloats reads a float initializer (raw_data or float_data).
func initFloats(t *testing.T, init *onnxpb.TensorProto) []float32 {
	t.Helper()
	if raw := init.GetRawData(); len(raw) > 0 {
		out := make([]float32, len(raw)/4)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		return out
	}
	if len(init.GetExternalData()) > 0 {
		t.Fatalf("initializer %s uses external data", init.GetName())
	}
	return append([]float32(nil), init.GetFloatData()...)
}

// renameInput renames a value where nodes (and subgraphs) read it.
func renameInput(g *onnxpb.GraphProto, from, to string) {
	for _, n := range g.Node {
		for i, in := range n.Input {
			if in == from {
				n.Input[i] = to
			}
		}
		for _, a := range n.Attribute {
			if a.G != nil {
				renameInput(a.G, from, to)
			}
			for _, sg := range a.Graphs {
				renameInput(sg, from, to)
			}
		}
	}
	for _, o := range g.Output {
		if o.GetName() == from {
			o.Name = proto.String(to)
		}
	}
}

func TestKVErrors(t *testing.T) {
	env := openEnv(t)
	src := testenv.Testdata(t, "models", "t5-tiny")
	dir := t.TempDir()
	for _, f := range []string{EncoderFile, DecoderFile} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, f), b, 0o644)
	}
	_, err := OpenKV(env, dir, 0, Options{})
	if err == nil || !strings.Contains(err.Error(), DecoderWithPastFile) || !strings.Contains(err.Error(), "without the cache") {
		t.Errorf("missing decoder_with_past: %v", err)
	}
	b, _ := os.ReadFile(filepath.Join(src, DecoderWithPastFile))
	os.WriteFile(filepath.Join(dir, DecoderWithPastFile), b, 0o644)
	withoutPresentOutputs(t, filepath.Join(src, DecoderFile), filepath.Join(dir, DecoderFile))
	_, err = OpenKV(env, dir, 0, Options{})
	if err == nil || !strings.Contains(err.Error(), "present.*") || !strings.Contains(err.Error(), "use_cache") {
		t.Errorf("decoder without present outputs: %v", err)
	}
	_, err = NewRecompute(env, filepath.Join(src, EncoderFile), 0, Options{})
	if err == nil || !strings.Contains(err.Error(), "decoder_input_ids") {
		t.Errorf("recompute over an encoder graph: %v", err)
	}
}

// makeArtifactFolder turns the float initializers of t5-tiny's three
// generation graphs into graph inputs named "<role>.<initializer>", as an
// ortrain artifact folder holds them, with a manifest and the values in
// model.safetensors (2-D ones stored transposed, as PyTorch holds Linear
// weights that TorchScript exports transposed).
func makeArtifactFolder(t *testing.T, src string) (string, map[string][]float32) {
	t.Helper()
	dir := t.TempDir()
	type param struct {
		Name       string  `json:"name"`
		Shape      []int64 `json:"shape"`
		DType      string  `json:"dtype"`
		Transposed bool    `json:"transposed"`
		Trainable  bool    `json:"trainable"`
	}
	type gen struct {
		Role       string   `json:"role"`
		File       string   `json:"file"`
		Parameters []string `json:"parameters"`
	}
	var params []param
	var gens []gen
	values := map[string][]float32{}
	tensors := map[string]safetensors.Tensor{}
	for role, file := range map[string]string{"encoder": EncoderFile, "decoder": DecoderFile, "decoder_with_past": DecoderWithPastFile} {
		m := loadModel(t, filepath.Join(src, file))
		var keep []*onnxpb.TensorProto
		g := gen{Role: role, File: file}
		for _, init := range m.Graph.Initializer {
			if init.GetDataType() != int32(onnxpb.TensorProto_FLOAT) || len(init.Dims) == 0 {
				keep = append(keep, init)
				continue
			}
			data := initFloats(t, init)
			name := role + "." + init.GetName()
			renameInput(m.Graph, init.GetName(), name)
			dims := make([]*onnxpb.TensorShapeProto_Dimension, len(init.Dims))
			for i, d := range init.Dims {
				dims[i] = &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}}
			}
			m.Graph.Input = append(m.Graph.Input, &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{
				Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), Shape: &onnxpb.TensorShapeProto{Dim: dims}}}}})
			p := param{Name: name, Shape: init.Dims, DType: "float32", Transposed: len(init.Dims) == 2, Trainable: true}
			stored, shape := data, init.Dims
			if p.Transposed {
				stored, shape = artifacts.Transpose(data, init.Dims[0], init.Dims[1]), []int64{init.Dims[1], init.Dims[0]}
			}
			raw := make([]byte, 4*len(stored))
			for i, v := range stored {
				binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
			}
			tensors[name] = safetensors.Tensor{DType: safetensors.Float32, Shape: shape, Data: raw}
			values[name] = data
			params = append(params, p)
			g.Parameters = append(g.Parameters, name)
		}
		m.Graph.Initializer = keep
		saveModel(t, m, filepath.Join(dir, file))
		gens = append(gens, g)
	}
	if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), tensors, nil); err != nil {
		t.Fatal(err)
	}
	man := map[string]any{
		"format": "ortrain-artifacts", "format_version": 1,
		"files":          map[string]string{"encoder": EncoderFile, "decoder": DecoderFile, "decoder_with_past": DecoderWithPastFile, "parameters": "model.safetensors"},
		"parameters":     params,
		"generation":     gens,
		"special_tokens": map[string]int64{"pad_token_id": 0, "eos_token_id": 1, "decoder_start_token_id": 0},
	}
	b, _ := json.MarshalIndent(man, "", " ")
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, values
}

// TestArtifactsDecoder generates through generation graphs whose parameters
// are inputs: with the folder's own values it must match HF token for
// token; with other values fed by the caller the output must follow them.
func TestArtifactsDecoder(t *testing.T) {
	env := openEnv(t)
	src := testenv.Testdata(t, "models", "t5-tiny")
	dir, values := makeArtifactFolder(t, src)
	refs := loadFixtureRefs(t).Models["t5-tiny"]
	base, err := generate.LoadConfig(src)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := OpenArtifacts(env, dir, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	for _, c := range refs.Cases {
		cfg := base
		if err := cfg.ApplyJSON(c.Kwargs); err != nil {
			t.Fatal(err)
		}
		out, err := generate.Generate(context.Background(), dec, refs.Sources[c.Batch], cfg)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(out.Sequences) != fmt.Sprint(c.Sequences) {
			t.Errorf("%s:\n got %v\nwant %v", c.Name, out.Sequences, c.Sequences)
		}
	}

	// the trainer's values: the same parameters, the output projection scaled
	params := map[string]*onnxrt.Value{}
	var shapes = map[string][]int64{}
	for _, p := range mustManifest(t, dir).Parameters {
		shapes[p.Name] = p.Shape
	}
	changed := 0
	for name, data := range values {
		d := append([]float32(nil), data...)
		if strings.HasPrefix(name, "decoder") && strings.Contains(name, "lm_head") || strings.Contains(name, "shared") {
			for i := range d {
				d[i] = -d[i]
			}
			changed++
		}
		v, err := onnxrt.NewTensor(shapes[name], d)
		if err != nil {
			t.Fatal(err)
		}
		defer v.Close()
		params[name] = v
	}
	if changed == 0 {
		t.Fatal("found no embedding / lm_head parameter to change")
	}
	fed, err := OpenArtifacts(env, dir, params, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fed.Close()
	sources := refs.Sources["b8"]
	a, err := generate.Generate(context.Background(), dec, sources, base)
	if err != nil {
		t.Fatal(err)
	}
	b, err := generate.Generate(context.Background(), fed, sources, base)
	if err != nil {
		t.Fatal(err)
	}
	if reflect.DeepEqual(a.Sequences, b.Sequences) {
		t.Error("negated embeddings fed as inputs left every output unchanged: the graphs do not read the fed parameters")
	}
	// the same decoder follows new values after SetParameters
	if err := dec.SetParameters(params); err != nil {
		t.Fatal(err)
	}
	c, err := generate.Generate(context.Background(), dec, sources, base)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.Sequences, b.Sequences) {
		t.Error("after SetParameters the decoder does not decode as one opened with those values")
	}
	delete(params, mustManifest(t, dir).Generation[0].Parameters[0])
	if err := dec.SetParameters(params); err == nil || !strings.Contains(err.Error(), "not provided") {
		t.Errorf("SetParameters with a missing parameter: %v", err)
	}
	if _, err := OpenArtifacts(env, dir, params, Options{}); err == nil || !strings.Contains(err.Error(), "not provided") {
		t.Errorf("missing parameter: %v", err)
	}
}

func mustManifest(t *testing.T, dir string) *artifacts.Manifest {
	t.Helper()
	m, err := artifacts.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
