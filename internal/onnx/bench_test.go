package onnx

import (
	"path/filepath"
	"testing"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/testenv"
)

// Peer figures for the same work come from scripts/bench/onnx_io.py
// (onnx Python's load, save and shape_inference on the same models).

func BenchmarkInferShapesT5(b *testing.B) {
	m, err := Load(testenv.Testdata(b, "onnx", "t5_ts17.onnx"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := InferModelShapes(m); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(m.Graph.Node)), "nodes")
}

// weightsModel is a MatMul chain with n [1024,1024] float32 weights (4 MiB each).
func weightsModel(b *testing.B, n int) *onnxpb.ModelProto {
	gb := NewGraphBuilder(nil)
	x := gb.AddInput("x", Float32, Sym("batch"), D(1024))
	w := make([]float32, 1024*1024)
	for i := range w {
		w[i] = float32(i%97) * 0.01
	}
	for i := 0; i < n; i++ {
		x = gb.Op("MatMul", []string{x, gb.AddInitializer(MustTensor("", []int64{1024, 1024}, w))})
	}
	gb.AddOutput(x, Float32, Sym("batch"), D(1024))
	return NewModel(gb.Graph(), 17)
}

func BenchmarkSaveLoad64MiB(b *testing.B) {
	m := weightsModel(b, 16)
	dir := b.TempDir()
	for _, ext := range []bool{false, true} {
		name := "inline"
		if ext {
			name = "external"
		}
		path := filepath.Join(dir, name+".onnx")
		b.Run("save-"+name, func(b *testing.B) {
			b.SetBytes(16 << 22)
			for b.Loop() {
				if err := Save(m, path, SaveOptions{ExternalData: ext}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("load-"+name, func(b *testing.B) {
			b.SetBytes(16 << 22)
			for b.Loop() {
				if _, err := Load(path); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
