package amp

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/optim"
	"github.com/ortrain/ortrain/internal/testenv"
)

type fixtureBatch map[string]struct {
	Shape []int64 `json:"shape"`
	Data  []int64 `json:"data"`
}

func loadBatch(t *testing.T, name string) fixtureBatch {
	t.Helper()
	raw, err := os.ReadFile(testenv.Testdata(t, "models", name, "refs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Batch fixtureBatch `json:"batch"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	return r.Batch
}

// forwardLoss runs model.onnx of a fixture with the loss appended, after
// rewrite (nil: float32 as exported), and returns the loss.
func forwardLoss(t *testing.T, env *onnxrt.Env, name string, rewrite func(m *onnxpb.ModelProto) error) float64 {
	t.Helper()
	m, err := onnx.Load(testenv.Testdata(t, "models", name, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if rewrite != nil {
		if err := rewrite(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := optim.AppendLoss(m.Graph, "logits", optim.LossOptions{}); err != nil {
		t.Fatal(err)
	}
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	s, err := env.NewSessionFromBytes(b, name, onnxrt.SessionOptions{IntraOpThreads: 1})
	if err != nil {
		os.WriteFile(filepath.Join(t.TempDir(), "bad.onnx"), b, 0o644)
		t.Fatal(err)
	}
	defer s.Close()
	in := map[string]*onnxrt.Value{}
	batch := loadBatch(t, name)
	for _, info := range s.Inputs() {
		key := info.Name
		v, ok := batch[key]
		if !ok {
			t.Fatalf("no batch value for input %s", key)
		}
		val, err := onnxrt.NewTensor(v.Shape, v.Data)
		if err != nil {
			t.Fatal(err)
		}
		defer val.Close()
		in[key] = val
	}
	outs, err := s.Run(in, []string{optim.Loss})
	if err != nil {
		t.Fatal(err)
	}
	defer outs[optim.Loss].Close()
	l, err := outs[optim.Loss].Scalar()
	if err != nil {
		t.Fatal(err)
	}
	return float64(l)
}

type fixtureLosses struct {
	Float32          float64 `json:"float32"`
	AutocastFloat16  float64 `json:"autocast_float16"`
	AutocastBFloat16 float64 `json:"autocast_bfloat16"`
	HalfFloat16      float64 `json:"half_float16"`
}

func readFixtureLosses(t *testing.T) map[string]fixtureLosses {
	t.Helper()
	raw, err := os.ReadFile(testenv.Testdata(t, "amp", "autocast_ops.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Fixtures struct {
			Losses map[string]fixtureLosses `json:"losses"`
		} `json:"fixtures"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Fixtures.Losses
}

func relDiff(a, b float64) float64 { return math.Abs(a-b) / math.Abs(b) }

// TestForwardMatchesTorch runs each fixture's forward graph and loss on its
// batch after Rewrite and compares the loss with PyTorch's
// (scripts/refs/amp_refs.py): CPU autocast float16 within 5e-5, the
// bfloat16 graph emulated in float32 within 5e-5 of CPU autocast bfloat16
// (a tenth of bfloat16's own effect at least), a half-precision model
// within 1e-3 of model.half() (whose loss is rounded to float16), and the
// float16 graph emulated in float32 within 1e-4 of the real one, which ONNX
// Runtime's CPU kernels compute.
func TestForwardMatchesTorch(t *testing.T) {
	env, err := onnxrt.Open(testenv.ORTLibrary(t))
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	refs := readFixtureLosses(t)
	rewrite := func(o Options, emulate bool) func(m *onnxpb.ModelProto) error {
		return func(m *onnxpb.ModelProto) error {
			if _, err := Rewrite(m.Graph, onnx.Opsets(m), o); err != nil {
				return err
			}
			if emulate {
				return Emulate(m.Graph, onnx.Opsets(m), o.DType)
			}
			return nil
		}
	}
	for _, name := range []string{"t5-tiny", "bart-tiny", "marian-tiny"} {
		ref := refs[name]
		l32 := forwardLoss(t, env, name, nil)
		l16 := forwardLoss(t, env, name, rewrite(Options{DType: onnx.Float16, Device: CPU}, false))
		e16 := forwardLoss(t, env, name, rewrite(Options{DType: onnx.Float16, Device: CPU}, true))
		eb16 := forwardLoss(t, env, name, rewrite(Options{DType: onnx.BFloat16, Device: CPU}, true))
		h16 := forwardLoss(t, env, name, rewrite(Options{DType: onnx.Float16, HalfModel: true}, false))
		t.Logf("%s: float32 %.9g (torch %.9g); autocast float16 %.9g (torch %.9g), emulated %.9g; emulated bfloat16 %.9g (torch %.9g); half model %.9g (torch %.9g)",
			name, l32, ref.Float32, l16, ref.AutocastFloat16, e16, eb16, ref.AutocastBFloat16, h16, ref.HalfFloat16)
		if d := relDiff(l32, ref.Float32); d > 2e-6 {
			t.Errorf("%s: float32 loss off by %.2g", name, d)
		}
		if d := relDiff(l16, ref.AutocastFloat16); d > 5e-5 {
			t.Errorf("%s: float16 autocast loss off by %.2g", name, d)
		}
		if d := relDiff(e16, l16); d > 1e-4 {
			t.Errorf("%s: emulated float16 off the real float16 graph by %.2g", name, d)
		}
		if d, own := relDiff(eb16, ref.AutocastBFloat16), relDiff(ref.Float32, ref.AutocastBFloat16); d > 5e-5 || d > own/10 {
			t.Errorf("%s: emulated bfloat16 loss off by %.2g (bfloat16 itself moves it by %.2g)", name, d, own)
		}
		if d := relDiff(h16, ref.HalfFloat16); d > 1e-3 {
			t.Errorf("%s: half-precision model's loss off by %.2g", name, d)
		}
	}
}
