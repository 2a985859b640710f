package ortdecoder

import (
	"fmt"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/amp"
	"github.com/ortrain/ortrain/internal/cudakernels"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/onnxrt"
)

// ParseDType reads predict's --dtype: float32 (the model as exported),
// float16 or bfloat16 (the model cast to that type first, as
// model.to(dtype) before generate()).
func ParseDType(s string) (onnx.DType, error) {
	switch s {
	case "", "float32", "fp32":
		return onnx.Undefined, nil
	case "float16", "fp16", "half":
		return onnx.Float16, nil
	case "bfloat16", "bf16":
		return onnx.BFloat16, nil
	}
	return onnx.Undefined, fmt.Errorf("dtype %q: want float32, float16 or bfloat16", s)
}

// halfModel rewrites a generation graph to compute in dt as a model cast
// with model.to(dt) does (amp.Rewrite with HalfModel): its float inputs and
// outputs stay float32 (exact for half values), so the KV cache and the
// logits pass as before. Nodes CUDA has no kernel for in dt compute in
// float32 and round (amp.FitKernels).
func halfModel(m *onnxpb.ModelProto, dt onnx.DType) error {
	if _, err := amp.Rewrite(m.Graph, onnx.Opsets(m), amp.Options{DType: dt, HalfModel: true}); err != nil {
		return err
	}
	kernels, err := cudakernels.CUDA()
	if err != nil {
		return err
	}
	_, err = amp.FitKernels(m.Graph, onnx.Opsets(m), kernels)
	return err
}

// sessionOf opens a session for the graph file path, in half precision when
// o.DType says so.
func sessionOf(env *onnxrt.Env, path string, o Options) (*onnxrt.Session, error) {
	if o.DType == onnx.Undefined {
		return env.NewSession(path, o.session())
	}
	m, err := onnx.Load(path)
	if err != nil {
		return nil, err
	}
	return sessionOfModel(env, m, path, o)
}

// sessionOfModel opens a session for a loaded graph (from path, whose
// folder holds its external data), in half precision when o.DType says so.
func sessionOfModel(env *onnxrt.Env, m *onnxpb.ModelProto, path string, o Options) (*onnxrt.Session, error) {
	if o.DType != onnx.Undefined {
		if err := onnx.ResolveExternalData(m, filepath.Dir(path)); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if err := halfModel(m, o.DType); err != nil {
			return nil, fmt.Errorf("%s in %s: %w", path, dtypeName(o.DType), err)
		}
	}
	if len(onnx.ExternalDataFiles(m)) == 0 && proto.Size(m) < 1<<31-1 {
		b, err := proto.Marshal(m)
		if err != nil {
			return nil, err
		}
		return env.NewSessionFromBytes(b, path, o.session())
	}
	// Too large for one protobuf, or with external data a session made
	// from bytes could not find: write it whole to a temporary folder.
	if err := onnx.ResolveExternalData(m, filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	tmp, err := os.MkdirTemp("", "ortrain-graph-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "model.onnx")
	if err := onnx.Save(m, out, onnx.SaveOptions{ExternalData: true}); err != nil {
		return nil, err
	}
	return env.NewSession(out, o.session())
}

func dtypeName(dt onnx.DType) string {
	if dt == onnx.BFloat16 {
		return "bfloat16"
	}
	return "float16"
}
