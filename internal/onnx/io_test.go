package onnx

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/testenv"
)

// smallModel builds x[2,3] -> MatMul(W[3,4]) + b[4] -> y, with W and b as
// initializers, and a Constant node holding a tensor attribute.
func smallModel(t testing.TB) *onnxpb.ModelProto {
	t.Helper()
	b := NewGraphBuilder(nil)
	x := b.AddInput("x", Float32, Sym("batch"), D(3))
	w := make([]float32, 3*4)
	for i := range w {
		w[i] = float32(i) * 0.5
	}
	W := b.AddInitializer(MustTensor("W", []int64{3, 4}, w))
	bias := b.AddInitializer(MustTensor("bias", []int64{4}, []float32{1, 2, 3, 4}))
	h := b.Op("MatMul", []string{x, W})
	y := b.Op("Add", []string{h, bias})
	b.Consts = ConstNode
	two := b.ConstFloat32s([]float32{2, 2, 2, 2}, []int64{4})
	z := b.Op("Mul", []string{y, two})
	b.AddOutput(z, Float32, Sym("batch"), D(4))
	return NewModel(b.Graph(), 17)
}

func TestSaveLoadInline(t *testing.T) {
	m := smallModel(t)
	path := filepath.Join(t.TempDir(), "m.onnx")
	if err := Save(m, path, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".data"); !os.IsNotExist(err) {
		t.Fatalf("inline save wrote a data file: %v", err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, m) {
		t.Fatalf("round trip changed the model")
	}
}

func TestSaveLoadExternal(t *testing.T) {
	m := smallModel(t)
	before := proto.Clone(m).(*onnxpb.ModelProto)
	dir := t.TempDir()
	path := filepath.Join(dir, "m.onnx")
	// Threshold -1: every tensor goes out, even the 16-byte bias.
	if err := Save(m, path, SaveOptions{ExternalData: true, ExternalDataFile: "weights.bin", SizeThreshold: -1}); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(m, before) {
		t.Fatal("Save left the model modified")
	}
	lazy, err := LoadWith(path, LoadOptions{KeepExternal: true})
	if err != nil {
		t.Fatal(err)
	}
	if files := ExternalDataFiles(lazy); !slices.Equal(files, []string{"weights.bin"}) {
		t.Fatalf("external files %v", files)
	}
	for _, init := range lazy.Graph.Initializer {
		if !IsExternal(init) {
			t.Fatalf("initializer %s not external", init.GetName())
		}
		if _, err := Float32s(init); !errors.Is(err, ErrExternalData) {
			t.Fatalf("reading a lazy tensor: %v", err)
		}
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, init := range got.Graph.Initializer {
		a, err := Float32s(init)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := Float32s(m.Graph.Initializer[i])
		if !slices.Equal(a, b) {
			t.Fatalf("%s: %v != %v", init.GetName(), a, b)
		}
	}
	if !proto.Equal(got, m) {
		t.Fatal("external round trip changed the model")
	}
	// Resolving the lazy model later gives the same result.
	if err := ResolveExternalData(lazy, dir); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(lazy, m) {
		t.Fatal("ResolveExternalData differs from Load")
	}
	// A model with external data cannot be decoded from bytes alone.
	data, _ := os.ReadFile(path)
	if _, err := LoadBytes(data); err == nil || !strings.Contains(err.Error(), "weights.bin") {
		t.Fatalf("LoadBytes of an external model: %v", err)
	}
	if _, err := LoadBytesWith(data, LoadOptions{Dir: dir}); err != nil {
		t.Fatal(err)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	m := smallModel(t)
	path := filepath.Join(dir, "m.onnx")
	if err := Save(m, path, SaveOptions{ExternalData: true, SizeThreshold: -1}); err != nil {
		t.Fatal(err)
	}
	// Truncate the data file: the error names the tensor and the file.
	if err := os.Truncate(path+".data", 10); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), `"W"`) || !strings.Contains(err.Error(), "m.onnx.data") {
		t.Fatalf("truncated data: %v", err)
	}
	os.Remove(path + ".data")
	_, err = Load(path)
	if err == nil || !strings.Contains(err.Error(), "m.onnx.data") {
		t.Fatalf("missing data: %v", err)
	}

	cases := map[string][]byte{
		"empty.onnx":  {},
		"text.onnx":   []byte("this is not a model\n"),
		"random.onnx": {0xff, 0xff, 0xff, 0x01, 0x02},
	}
	for name, data := range cases {
		p := filepath.Join(dir, name)
		os.WriteFile(p, data, 0o644)
		_, err := Load(p)
		if !errors.Is(err, ErrNotModel) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A valid protobuf of another message (a bare tensor) is not a model.
	tb, _ := proto.Marshal(MustTensor("t", []int64{2}, []float32{1, 2}))
	p := filepath.Join(dir, "tensor.pb")
	os.WriteFile(p, tb, 0o644)
	if _, err := Load(p); !errors.Is(err, ErrNotModel) {
		t.Errorf("tensor file: %v", err)
	}
	if _, err := Load(filepath.Join(dir, "absent.onnx")); err == nil || !strings.Contains(err.Error(), "absent.onnx") {
		t.Errorf("absent file: %v", err)
	}
}

func TestExternalLocationMustStayInFolder(t *testing.T) {
	m := smallModel(t)
	w := m.Graph.Initializer[0]
	w.RawData = nil
	w.DataLocation = onnxpb.TensorProto_EXTERNAL.Enum()
	w.ExternalData = []*onnxpb.StringStringEntryProto{{Key: proto.String("location"), Value: proto.String("../../etc/passwd")}}
	data, _ := proto.Marshal(m)
	_, err := LoadBytesWith(data, LoadOptions{Dir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "leaves the model's folder") {
		t.Fatalf("got %v", err)
	}
}

func TestSaveSwitchesToExternalWhenTooBig(t *testing.T) {
	m := smallModel(t)
	m.Graph.Initializer = append(m.Graph.Initializer, MustTensor("big", []int64{1000}, make([]float32, 1000)))
	dir := t.TempDir()
	path := filepath.Join(dir, "big.onnx")
	// A limit just under the model's size stands for protobuf's 2 GiB: Save
	// must move the weights out although nobody asked.
	if err := save(m, path, SaveOptions{}, proto.Size(m)-1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".data"); err != nil {
		t.Fatalf("no external data written: %v", err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, m) {
		t.Fatal("reloaded model differs")
	}
	// When even external data cannot bring it under the limit, say so.
	err = save(m, filepath.Join(dir, "huge.onnx"), SaveOptions{SizeThreshold: 1 << 20}, 100)
	if err == nil || !strings.Contains(err.Error(), "SizeThreshold") {
		t.Fatalf("too big: %v", err)
	}
}

func TestSaveIsAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.onnx")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Saving into a folder that vanished fails and leaves nothing behind.
	if err := Save(smallModel(t), filepath.Join(dir, "gone", "m.onnx"), SaveOptions{}); err == nil {
		t.Fatal("save into a missing folder succeeded")
	}
	if err := Save(smallModel(t), path, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
}

// TestLoadPythonExternalData reads a model that onnx Python saved with
// external data (testdata/onnx/external, made by make_onnx_testmodels.py):
// every tensor equals the inline export's.
func TestLoadPythonExternalData(t *testing.T) {
	inline, err := Load(testenv.Testdata(t, "onnx", "kvcache_ts17.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	ext, err := Load(testenv.Testdata(t, "onnx", "external", "kvcache_ts17.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(inline, ext) {
		t.Fatal("external-data model differs from the inline one after loading")
	}
	lazy, err := LoadWith(testenv.Testdata(t, "onnx", "external", "kvcache_ts17.onnx"), LoadOptions{KeepExternal: true})
	if err != nil {
		t.Fatal(err)
	}
	if files := ExternalDataFiles(lazy); len(files) != 1 || files[0] != "kvcache_ts17.onnx.data" {
		t.Fatalf("external files %v", files)
	}
}

func TestSaveExternalTypedFields(t *testing.T) {
	// Tensors that keep their values in float_data / int64_data (as some
	// tools write them) go to the data file as raw little-endian bytes.
	m := smallModel(t)
	vals := make([]float32, 300)
	for i := range vals {
		vals[i] = float32(i) / 7
	}
	m.Graph.Initializer = append(m.Graph.Initializer,
		&onnxpb.TensorProto{Name: proto.String("typed_f"), DataType: proto.Int32(int32(Float32)), Dims: []int64{300}, FloatData: vals},
		&onnxpb.TensorProto{Name: proto.String("typed_i"), DataType: proto.Int32(int32(Int64)), Dims: []int64{200}, Int64Data: make([]int64, 200)})
	path := filepath.Join(t.TempDir(), "typed.onnx")
	if err := Save(m, path, SaveOptions{ExternalData: true}); err != nil {
		t.Fatal(err)
	}
	if len(m.Graph.Initializer[2].FloatData) != 300 {
		t.Fatal("Save changed the caller's tensor")
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Float32s(got.Graph.Initializer[2])
	if err != nil || !slices.Equal(f, vals) || got.Graph.Initializer[2].RawData == nil {
		t.Fatalf("typed float tensor: %v %v", err, f[:3])
	}
	if i, err := Int64s(got.Graph.Initializer[3]); err != nil || len(i) != 200 {
		t.Fatalf("typed int tensor: %v", err)
	}
}
