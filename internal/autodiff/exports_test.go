package autodiff

import (
	"encoding/json"
	"math"
	"math/rand"
	"os"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/testenv"
)

// TestExportsDirectionalDerivative differentiates the one-layer exports of
// testdata/onnx (T5 TorchScript opset 17, Marian TorchScript opset 14,
// BART dynamo opset 18, a KV-cache attention both ways) with respect to
// every float initializer and float input at once, loss = sum of squares of
// all outputs, and compares the gradient's dot product with a random
// direction against a central difference along that direction.
func TestExportsDirectionalDerivative(t *testing.T) {
	env := ortEnv(t)
	for _, name := range []string{"t5_ts17", "marian_ts14", "bart_dynamo18", "kvcache_ts17", "kvcache_dynamo18"} {
		t.Run(name, func(t *testing.T) {
			m, err := onnx.Load(testenv.Testdata(t, "onnx", name+".onnx"))
			if err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(testenv.Testdata(t, "onnx", name+".shapes.json"))
			if err != nil {
				t.Fatal(err)
			}
			var ref struct {
				Settings map[string]map[string]int64 `json:"settings"`
			}
			if err := json.Unmarshal(raw, &ref); err != nil {
				t.Fatal(err)
			}
			sizes := ref.Settings["a"]
			g := m.Graph
			rng := rand.New(rand.NewSource(11))
			floats := map[string][]float32{}
			shapes := map[string][]int64{}
			ints := map[string][]int64{}
			var wrt []string
			for _, in := range g.Input {
				tt := in.GetType().GetTensorType()
				var shape []int64
				for _, d := range tt.GetShape().GetDim() {
					if p := d.GetDimParam(); p != "" {
						shape = append(shape, sizes[p])
					} else {
						shape = append(shape, d.GetDimValue())
					}
				}
				shapes[in.GetName()] = shape
				n := onnx.NumElements(shape)
				if tt.GetElemType() == int32(onnx.Float32) {
					v := make([]float32, n)
					for i := range v {
						v[i] = float32(rng.NormFloat64() * 0.5)
					}
					floats[in.GetName()] = v
					wrt = append(wrt, in.GetName())
					continue
				}
				v := make([]int64, n)
				for i := range v {
					v[i] = 2 + rng.Int63n(8)
					if in.GetName() == "attention_mask" {
						v[i] = 1
					}
				}
				ints[in.GetName()] = v
			}
			// Float initializers (weights) become inputs so they can move.
			keep := g.Initializer[:0]
			for _, init := range g.Initializer {
				if init.GetDataType() != int32(onnx.Float32) || onnx.NumElements(init.Dims) < 2 {
					keep = append(keep, init)
					continue
				}
				v, err := onnx.Float32s(init)
				if err != nil {
					t.Fatal(err)
				}
				floats[init.GetName()] = v
				shapes[init.GetName()] = init.Dims
				dims := make([]onnx.Dim, len(init.Dims))
				for i, d := range init.Dims {
					dims[i] = onnx.D(d)
				}
				g.Input = append(g.Input, onnx.ValueInfoOf(init.GetName(), onnx.Tensor(onnx.Float32, dims...)))
				wrt = append(wrt, init.GetName())
			}
			g.Initializer = keep
			b := onnx.NewGraphBuilder(g)
			b.Consts = onnx.ConstNode
			var terms []string
			for _, o := range g.Output {
				terms = append(terms, b.Op("ReduceSumSquare", []string{o.GetName()}, onnx.AttrInt("keepdims", 0)))
			}
			loss := b.Op("Sum", terms)
			opsets := onnx.Opsets(m)
			grads, err := Backward(g, opsets, loss, wrt, Options{ZeroGradients: true})
			if err != nil {
				t.Fatal(err)
			}
			g.Output = nil
			b.AddOutput(loss, onnx.Float32)
			names := []string{loss}
			for _, w := range wrt {
				b.AddOutputInfo(grads[w], onnx.TypeInfo{Elem: onnx.Float32})
				names = append(names, grads[w])
			}
			for d, v := range opsets {
				onnx.SetOpset(m, d, v)
			}
			if v := onnx.Opset(m, ""); m.GetIrVersion() < onnx.IRVersionFor(v) {
				m.IrVersion = proto.Int64(onnx.IRVersionFor(v))
			}
			data, err := proto.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			s, err := env.NewSessionFromBytes(data, name, onnxrt.SessionOptions{IntraOpThreads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			run := func(shift float32, dir map[string][]float32, outs []string) map[string][]float32 {
				feeds := map[string]*onnxrt.Value{}
				for k, v := range ints {
					val, err := onnxrt.NewTensor(shapes[k], v)
					if err != nil {
						t.Fatal(err)
					}
					defer val.Close()
					feeds[k] = val
				}
				for k, v := range floats {
					w := v
					if dir != nil {
						w = make([]float32, len(v))
						for i := range v {
							w[i] = v[i] + shift*dir[k][i]
						}
					}
					val, err := onnxrt.NewTensor(shapes[k], w)
					if err != nil {
						t.Fatal(err)
					}
					defer val.Close()
					feeds[k] = val
				}
				res, err := s.Run(feeds, outs)
				if err != nil {
					t.Fatal(err)
				}
				out := map[string][]float32{}
				for k, v := range res {
					out[k], _ = v.Float32s()
					v.Close()
				}
				return out
			}
			got := run(0, nil, names)
			dir := map[string][]float32{}
			an := 0.0
			for _, w := range wrt {
				gr := got[grads[w]]
				d := make([]float32, len(gr))
				for i := range d {
					d[i] = float32(rng.NormFloat64())
					an += float64(d[i]) * float64(gr[i])
					if math.IsNaN(float64(gr[i])) || math.IsInf(float64(gr[i]), 0) {
						t.Fatalf("gradient of %s not finite", w)
					}
				}
				dir[w] = d
			}
			const h = 3e-4 // float32: rounding grows below, curvature above
			lp := float64(run(h, dir, []string{loss})[loss][0])
			lm := float64(run(-h, dir, []string{loss})[loss][0])
			fd := (lp - lm) / (2 * h)
			rel := math.Abs(fd-an) / math.Max(math.Abs(an), 1e-6)
			t.Logf("%d tensors, opset %d: directional derivative %.6g, finite difference %.6g (relative error %.2e)", len(wrt), onnx.Opset(m, ""), an, fd, rel)
			// float32 throughout: central differences of a loss of this
			// size are good to a few 1e-3 (the per-op float64 checks are
			// the exact ones); a wrong rule shows as O(1).
			if rel > 1e-2 {
				t.Errorf("directional derivative %.6g, finite difference %.6g", an, fd)
			}
		})
	}
}
