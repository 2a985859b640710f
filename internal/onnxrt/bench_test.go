package onnxrt

import (
	"math/rand/v2"
	"testing"

	ort "github.com/yalue/onnxruntime_go"
	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// Per-run overhead on a one-element Identity graph: our Run (a fresh
// IoBinding, ORT-allocated output), RunInto (preallocated output), a reused
// Binding, and the plain wrapper with preallocated tensors as the baseline.
func BenchmarkRunOverhead(b *testing.B) {
	env := openEnv(b)
	m := model(b, []*onnxpb.NodeProto{node("Identity", []string{"x"}, []string{"y"})},
		[]*onnxpb.ValueInfoProto{vi("x", f32, 1)}, []*onnxpb.ValueInfoProto{vi("y", f32, 1)})
	s, err := env.NewSessionFromBytes(m, "identity", SessionOptions{IntraOpThreads: 1, InterOpThreads: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	x := mustF32(b, []int64{1}, []float32{1})
	y, _ := NewZeros(Float32, []int64{1})
	defer y.Close()
	in := map[string]*Value{"x": x}
	b.Run("Run", func(b *testing.B) {
		for b.Loop() {
			out, err := s.Run(in, []string{"y"})
			if err != nil {
				b.Fatal(err)
			}
			out["y"].Close()
		}
	})
	b.Run("RunInto", func(b *testing.B) {
		outs := map[string]*Value{"y": y}
		for b.Loop() {
			if err := s.RunInto(in, outs); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ReusedBinding", func(b *testing.B) {
		bd, _ := s.NewBinding()
		defer bd.Close()
		bd.BindInput("x", x)
		bd.BindOutput("y", y)
		for b.Loop() {
			if err := bd.Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("WrapperBaseline", func(b *testing.B) {
		ws, err := ort.NewDynamicAdvancedSessionWithONNXData(m, []string{"x"}, []string{"y"}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer ws.Destroy()
		wx, _ := ort.NewTensor(ort.NewShape(1), []float32{1})
		wy, _ := ort.NewEmptyTensor[float32](ort.NewShape(1))
		defer wx.Destroy()
		defer wy.Destroy()
		for b.Loop() {
			if err := ws.Run([]ort.Value{wx}, []ort.Value{wy}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// A [64,512]x[512,512] MatMul with the weight as an initializer (ORT may
// prepack it) versus as a graph input (how ortrain feeds parameters).
func BenchmarkMatMulWeights(b *testing.B) {
	env := openEnv(b)
	const n, k, m = 64, 512, 512
	r := rand.New(rand.NewPCG(3, 4))
	w := make([]float32, k*m)
	for i := range w {
		w[i] = r.Float32() - 0.5
	}
	xs := make([]float32, n*k)
	for i := range xs {
		xs[i] = r.Float32() - 0.5
	}
	raw := make([]byte, 0, 4*len(w))
	for _, v := range w {
		bits := mathFloat32bits(v)
		raw = append(raw, byte(bits), byte(bits>>8), byte(bits>>16), byte(bits>>24))
	}
	winit := &onnxpb.TensorProto{Name: proto.String("w"), Dims: []int64{k, m}, DataType: proto.Int32(int32(f32)), RawData: raw}
	asInit := model(b, []*onnxpb.NodeProto{node("MatMul", []string{"x", "w"}, []string{"y"})},
		[]*onnxpb.ValueInfoProto{vi("x", f32, "n", k)}, []*onnxpb.ValueInfoProto{vi("y", f32, "n", m)}, winit)
	asInput := model(b, []*onnxpb.NodeProto{node("MatMul", []string{"x", "w"}, []string{"y"})},
		[]*onnxpb.ValueInfoProto{vi("x", f32, "n", k), vi("w", f32, k, m)}, []*onnxpb.ValueInfoProto{vi("y", f32, "n", m)})
	x := mustF32(b, []int64{n, k}, xs)
	wv := mustF32(b, []int64{k, m}, w)
	y, _ := NewZeros(Float32, []int64{n, m})
	defer y.Close()
	for _, c := range []struct {
		name  string
		model []byte
		bind  map[string]*Value
	}{
		{"Initializer", asInit, map[string]*Value{"x": x}},
		{"Input", asInput, map[string]*Value{"x": x, "w": wv}},
	} {
		b.Run(c.name, func(b *testing.B) {
			s, err := env.NewSessionFromBytes(c.model, c.name, SessionOptions{IntraOpThreads: 2, InterOpThreads: 1})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			bd, _ := s.NewBinding()
			defer bd.Close()
			for name, v := range c.bind {
				bd.BindInput(name, v)
			}
			bd.BindOutput("y", y)
			for b.Loop() {
				if err := bd.Run(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(2*n*k*m)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
