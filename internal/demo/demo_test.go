package demo

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/testenv"
)

func session(t *testing.T, env *onnxrt.Env, m *onnxpb.ModelProto, name string) *onnxrt.Session {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	s, err := env.NewSessionFromBytes(b, name, onnxrt.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ints(t *testing.T, shape []int64, v []int64) *onnxrt.Value {
	t.Helper()
	x, err := onnxrt.NewTensor(shape, v)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return x
}

func run(t *testing.T, s *onnxrt.Session, in map[string]*onnxrt.Value, out string) ([]float32, []int64) {
	t.Helper()
	o, err := s.Run(in, []string{out})
	if err != nil {
		t.Fatal(err)
	}
	defer o[out].Close()
	v, err := o[out].Float32s()
	if err != nil {
		t.Fatal(err)
	}
	return v, o[out].Shape()
}

// The forward graph equals encoder + decoder graphs; it is causal; padding
// the source (mask 0) changes nothing.
func TestDemoModelGraphs(t *testing.T) {
	env, err := onnxrt.Open(testenv.ORTLibrary(t))
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	m, err := Build(DefaultConfig(50))
	if err != nil {
		t.Fatal(err)
	}
	for name, g := range map[string]*onnxpb.ModelProto{"forward": m.Forward, "encoder": m.Encoder, "decoder": m.Decoder} {
		if _, err := onnx.InferShapes(g.Graph, onnx.Opsets(g)); err != nil {
			t.Fatalf("%s: shape inference: %v", name, err)
		}
	}
	fwd := session(t, env, m.Forward, "forward")
	enc := session(t, env, m.Encoder, "encoder")
	dec := session(t, env, m.Decoder, "decoder")

	src := []int64{5, 9, 13, 1, 0, 7, 8, 1, 0, 0}
	mask := []int64{1, 1, 1, 1, 0, 1, 1, 1, 0, 0}
	tgt := []int64{0, 11, 12, 0, 21, 22}
	logits, shape := run(t, fwd, map[string]*onnxrt.Value{
		"input_ids": ints(t, []int64{2, 5}, src), "attention_mask": ints(t, []int64{2, 5}, mask),
		"decoder_input_ids": ints(t, []int64{2, 3}, tgt)}, "logits")
	if shape[0] != 2 || shape[1] != 3 || shape[2] != 50 {
		t.Fatalf("logits shape %v", shape)
	}
	hidden, hshape := run(t, enc, map[string]*onnxrt.Value{
		"input_ids": ints(t, []int64{2, 5}, src), "attention_mask": ints(t, []int64{2, 5}, mask)}, "last_hidden_state")
	h, err := onnxrt.NewTensor(hshape, hidden)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	logits2, _ := run(t, dec, map[string]*onnxrt.Value{
		"input_ids": ints(t, []int64{2, 3}, tgt), "encoder_attention_mask": ints(t, []int64{2, 5}, mask),
		"encoder_hidden_states": h}, "logits")
	assertClose(t, "forward vs encoder+decoder", logits, logits2, 1e-5)

	// Causality: changing the last decoder token leaves earlier positions alone.
	tgt2 := append([]int64(nil), tgt...)
	tgt2[2], tgt2[5] = 30, 31
	logits3, _ := run(t, fwd, map[string]*onnxrt.Value{
		"input_ids": ints(t, []int64{2, 5}, src), "attention_mask": ints(t, []int64{2, 5}, mask),
		"decoder_input_ids": ints(t, []int64{2, 3}, tgt2)}, "logits")
	for row := 0; row < 2; row++ {
		a := logits[row*150 : row*150+100]
		b := logits3[row*150 : row*150+100]
		assertClose(t, "causal", a, b, 1e-6)
	}
	// Padding: the second row alone, unpadded, gives the same logits.
	single, _ := run(t, fwd, map[string]*onnxrt.Value{
		"input_ids": ints(t, []int64{1, 3}, []int64{7, 8, 1}), "attention_mask": ints(t, []int64{1, 3}, []int64{1, 1, 1}),
		"decoder_input_ids": ints(t, []int64{1, 3}, tgt[3:])}, "logits")
	assertClose(t, "padding invariance", logits[150:], single, 1e-5)
}

func assertClose(t *testing.T, what string, a, b []float32, tol float64) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%s: lengths %d and %d", what, len(a), len(b))
	}
	worst := 0.0
	for i := range a {
		worst = math.Max(worst, math.Abs(float64(a[i]-b[i])))
	}
	if worst > tol {
		t.Fatalf("%s: max difference %g > %g", what, worst, tol)
	}
}

func TestDemoTaskAndFolder(t *testing.T) {
	task := NewTask(7, 300, 20, 20)
	again := NewTask(7, 300, 20, 20)
	if task.Train[17] != again.Train[17] || task.Dev[3] != again.Dev[3] {
		t.Fatal("the task is not deterministic for a seed")
	}
	index := map[string]bool{}
	for _, w := range task.Vocab {
		if index[w] {
			t.Fatalf("duplicate vocabulary entry %q", w)
		}
		index[w] = true
	}
	held := map[string]bool{}
	for _, p := range append(append([]Pair{}, task.Dev...), task.Test...) {
		held[p.Source] = true
	}
	for _, p := range task.Train {
		if held[p.Source] {
			t.Fatalf("training sentence %q is also held out", p.Source)
		}
		for _, w := range strings.Fields(p.Source + " " + p.Target) {
			if !index[w] {
				t.Fatalf("word %q missing from the vocabulary", w)
			}
		}
	}
	p := task.Train[0]
	if !strings.Contains(p.Target, " ta ") || !strings.Contains(p.Target, " ko ") {
		t.Fatalf("target %q lacks the case particles", p.Target)
	}
	dir := t.TempDir()
	if _, _, err := WriteFolder(dir, 1); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{ForwardFile, EncoderFile, DecoderFile, TokenizerFile, TrainFile, DevFile, TestFile, "config.json", "generation_config.json"} {
		if _, err := onnxLoadOrStat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
}

func onnxLoadOrStat(path string) (any, error) {
	if strings.HasSuffix(path, ".onnx") {
		return onnx.Load(path)
	}
	return nil, statFile(path)
}
