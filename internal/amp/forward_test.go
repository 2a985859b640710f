package amp

import (
	"encoding/json"
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

func TestForwardRewriteRuns(t *testing.T) {
	env, err := onnxrt.Open(testenv.ORTLibrary(t))
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	for _, name := range []string{"t5-tiny", "bart-tiny", "marian-tiny"} {
		l32 := forwardLoss(t, env, name, nil)
		l16 := forwardLoss(t, env, name, func(m *onnxpb.ModelProto) error {
			rep, err := Rewrite(m.Graph, onnx.Opsets(m), Options{DType: onnx.Float16, Device: CPU})
			t.Logf("%s: %+v", name, rep)
			return err
		})
		emu := func(dt onnx.DType) float64 {
			return forwardLoss(t, env, name, func(m *onnxpb.ModelProto) error {
				if _, err := Rewrite(m.Graph, onnx.Opsets(m), Options{DType: dt, Device: CPU}); err != nil {
					return err
				}
				return Emulate(m.Graph, onnx.Opsets(m), dt)
			})
		}
		t.Logf("%s: float32 %.9g float16 %.9g emulated float16 %.9g emulated bfloat16 %.9g", name, l32, l16, emu(onnx.Float16), emu(onnx.BFloat16))
	}
}
