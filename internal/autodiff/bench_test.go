package autodiff

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/onnxrt"
)

// BenchmarkDropout compares, on one attention-probability tensor of
// t5-small at batch 8 x 128 tokens ([8,8,128,128] float32), the seeded
// training dropout of EnableTrainingDropout with ONNX Runtime's own
// training-mode Dropout (random, not reproducible) and with a plain Mul (the
// floor for any elementwise op), with one and two intra-op threads. Run:
//
//	go test ./internal/autodiff -run '^$' -bench Dropout -benchtime 20x
func BenchmarkDropout(b *testing.B) {
	shape := []int64{8, 8, 128, 128}
	for _, threads := range []int{1, 2} {
		for _, kind := range []string{"seeded", "native", "mul"} {
			b.Run(fmt.Sprintf("%s/threads=%d", kind, threads), func(b *testing.B) {
				gb := onnx.NewGraphBuilder(nil)
				gb.Consts = onnx.ConstNode
				gb.AddInput("x", onnx.Float32, onnx.Sym("B"), onnx.D(8), onnx.Sym("T"), onnx.Sym("S"))
				switch kind {
				case "mul":
					gb.Node("Mul", []string{"x", gb.ConstFloat32(1.1)}, []string{"y"})
				case "native":
					gb.Node("Dropout", []string{"x", gb.ConstFloat32(0.1), gb.ConstBool(true)}, []string{"y"})
				default:
					gb.Node("Dropout", []string{"x", gb.ConstFloat32(0.1)}, []string{"y"})
				}
				gb.AddOutput("y", onnx.Float32, onnx.Sym("B"), onnx.D(8), onnx.Sym("T"), onnx.Sym("S"))
				g := gb.Graph()
				if kind == "seeded" {
					if _, err := EnableTrainingDropout(g, "seed"); err != nil {
						b.Fatal(err)
					}
				}
				m := &onnxpb.ModelProto{IrVersion: proto.Int64(8), Graph: g,
					OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(17)}}}
				data, _ := proto.Marshal(m)
				env := ortEnv(b)
				s, err := env.NewSessionFromBytes(data, kind, onnxrt.SessionOptions{IntraOpThreads: threads})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				x, _ := onnxrt.NewZeros(onnxrt.Float32, shape)
				defer x.Close()
				in := map[string]*onnxrt.Value{"x": x}
				if kind == "seeded" {
					seed, _ := onnxrt.NewTensor([]int64{}, []int64{42})
					defer seed.Close()
					in["seed"] = seed
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					out, err := s.Run(in, []string{"y"})
					if err != nil {
						b.Fatal(err)
					}
					out["y"].Close()
				}
			})
		}
	}
}
