package onnx

import (
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/testenv"
)

// FuzzLoadModel decodes arbitrary bytes as a model whose external data
// lives in a folder holding two data files, then reads every tensor, sums
// it up and infers its shapes: nothing may panic, hang or allocate what the
// bytes merely claim. Run by scripts/fuzz.sh with a fixed budget.
func FuzzLoadModel(f *testing.F) {
	dir := f.TempDir()
	os.WriteFile(filepath.Join(dir, "data.bin"), make([]byte, 256), 0o644)
	ext, err := os.ReadFile(testenv.Testdata(f, "onnx", "external", "kvcache_ts17.onnx.data"))
	if err != nil {
		f.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "kvcache_ts17.onnx.data"), ext, 0o644)
	small, _ := proto.Marshal(smallModel(f))
	f.Add(small)
	for _, p := range [][]string{{"onnx", "external", "kvcache_ts17.onnx"}, {"onnx", "kvcache_ts17.onnx"}} {
		b, err := os.ReadFile(testenv.Testdata(f, p...))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := LoadBytesWith(data, LoadOptions{Dir: dir})
		if err != nil {
			return
		}
		Summarize(m)
		forEachTensor(m, func(tp *onnxpb.TensorProto) error {
			RawBytes(tp)
			ToFloat64s(tp)
			return nil
		})
		if len(m.GetGraph().GetNode()) < 200 {
			InferModelShapes(m)
		}
	})
}
