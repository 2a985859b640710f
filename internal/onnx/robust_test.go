package onnx

import (
	"math/rand"
	"os"
	"sort"
	"testing"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/testenv"
	"google.golang.org/protobuf/proto"
)

// TestInferMalformedNodesDoNotPanic feeds every operator with a rule
// random operand counts, ranks and attributes: inference must return types
// or errors, never panic (the rules index inputs, outputs and attributes).
func TestInferMalformedNodesDoNotPanic(t *testing.T) {
	ops := map[string]bool{}
	for _, set := range []map[string]bool{unaryOps, broadcastOps, compareOps, reduceOps} {
		for op := range set {
			ops[op] = true
		}
	}
	for _, op := range []string{"Not", "IsNaN", "Cast", "CastLike", "Dropout", "Where", "LayerNormalization",
		"SimplifiedLayerNormalization", "SkipLayerNormalization", "SkipSimplifiedLayerNormalization", "RMSNormalization",
		"MatMul", "FusedMatMul", "MatMulInteger", "Gemm", "Gather", "GatherElements", "GatherND", "Reshape", "Flatten",
		"Transpose", "Unsqueeze", "Squeeze", "Concat", "Slice", "Split", "Expand", "Tile", "Einsum", "Shape", "Size",
		"ConstantOfShape", "Constant", "Range", "ArgMax", "TopK", "NonZero", "OneHot", "Pad", "SoftmaxCrossEntropyLoss",
		"If", "Loop", "Attention", "MultiHeadAttention", "RandomUniformLike", "QuantizeLinear", "DequantizeLinear"} {
		ops[op] = true
	}
	names := make([]string, 0, len(ops))
	for op := range ops {
		names = append(names, op)
	}
	sort.Strings(names)
	rng := rand.New(rand.NewSource(1))
	attrNames := []string{"axis", "axes", "perm", "keepdims", "to", "split", "num_outputs", "starts", "ends",
		"equation", "value", "transA", "transB", "start", "end", "k", "batch_dims", "then_branch", "body", "stash_type"}
	randAttr := func(name string) Attr {
		switch rng.Intn(6) {
		case 0:
			return AttrInt(name, int64(rng.Intn(9)-4))
		case 1:
			v := make([]int64, rng.Intn(4))
			for i := range v {
				v[i] = int64(rng.Intn(9) - 4)
			}
			return AttrInts(name, v)
		case 2:
			return AttrString(name, []string{"ij->ji", "...,..", "a,b->c", "", "->", "ab,bc"}[rng.Intn(6)])
		case 3:
			if rng.Intn(2) == 0 { // raw data that does not fit the dims
				return AttrTensor(name, &onnxpb.TensorProto{DataType: proto.Int32(int32(Int64)), Dims: []int64{3}, RawData: []byte{1}})
			}
			k := rng.Intn(3)
			return AttrTensor(name, MustTensor("", []int64{int64(k)}, make([]int64, k)))
		case 4:
			return AttrGraph(name, &onnxpb.GraphProto{})
		}
		return AttrFloat(name, 0.5)
	}
	for _, op := range names {
		for trial := 0; trial < 200; trial++ {
			b := NewGraphBuilder(nil)
			var ins []string
			for i := rng.Intn(5); i > 0; i-- {
				dims := make([]Dim, rng.Intn(4))
				for j := range dims {
					dims[j] = []Dim{D(1), D(2), D(3), D(0), Sym("N")}[rng.Intn(5)]
				}
				elem := []DType{Float32, Int64, Bool}[rng.Intn(3)]
				if rng.Intn(3) == 0 {
					vals := make([]int64, NumElements(staticOnly(dims)))
					for k := range vals {
						vals[k] = int64(rng.Intn(7) - 3)
					}
					ins = append(ins, b.AddInitializer(MustTensor(b.Name("c"), staticOnly(dims), vals)))
					continue
				}
				if rng.Intn(8) == 0 {
					ins = append(ins, "")
					continue
				}
				ins = append(ins, b.AddInput(b.Name("x"), elem, dims...))
			}
			var attrs []Attr
			for i := rng.Intn(4); i > 0; i-- {
				attrs = append(attrs, randAttr(attrNames[rng.Intn(len(attrNames))]))
			}
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("%s with inputs %v attrs %v: panic %v", op, ins, attrs, r)
					}
				}()
				// Call the rules directly: the recover in safeNode must
				// not be what keeps this from crashing.
				b.OpN(op, ins, 1+rng.Intn(3), attrs...)
				inf := newInferer(nil)
				g := b.Graph()
				for _, vi := range g.Input {
					ti, _ := TypeInfoOf(vi)
					inf.types[vi.GetName()] = ti
				}
				for _, c := range g.Initializer {
					inf.types[c.GetName()] = TypeInfoOfTensor(c)
					inf.recordConst(c.GetName(), c)
				}
				inf.node(g.Node[len(g.Node)-1])
			}()
		}
	}
}

func staticOnly(dims []Dim) []int64 {
	out := make([]int64, len(dims))
	for i, d := range dims {
		out[i] = max(d.Value, 1)
	}
	return out
}

// TestLoadTruncatedModels cuts a real model at many points: every cut is
// an error (or, rarely, a smaller valid message), never a panic.
func TestLoadTruncatedModels(t *testing.T) {
	data, err := os.ReadFile(testenv.Testdata(t, "onnx", "kvcache_ts17.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewSource(2))
	for i := 0; i < 300; i++ {
		cut := rng.Intn(len(data))
		bad := append([]byte(nil), data[:cut]...)
		if i%2 == 1 && cut > 0 {
			bad[rng.Intn(cut)] ^= byte(1 + rng.Intn(255))
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("cut at %d: panic %v", cut, r)
				}
			}()
			m, err := LoadBytes(bad)
			if err == nil {
				InferModelShapes(m)
				Summarize(m)
				proto.Size(m)
			}
		}()
	}
}
