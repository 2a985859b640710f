package onnxrt_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/testenv"
)

// blockDims of the attention block under test.
const (
	bV, bD, bH, bT, bB = 11, 8, 2, 5, 3
	bDh                = bD / bH
	lnEps              = 1e-5
)

type blockWeights struct {
	emb, wq, wk, wv, wo []float64 // emb [V,D]; w* [D,D]
	bq, gamma, beta     []float64 // [D]
}

func randVec(r *rand.Rand, n int, scale float64) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = (r.Float64()*2 - 1) * scale
	}
	return v
}

func f32s(x []float64) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(v)
	}
	return out
}

// buildBlock makes a pre-LayerNorm causal self-attention block with the
// builder: Gather, LayerNormalization, MatMul, Add, Reshape, Transpose, Mul,
// Where, Softmax.
func buildBlock(w blockWeights) *onnxpb.ModelProto {
	g := &onnxpb.GraphProto{Name: proto.String("block")}
	b := onnx.NewGraphBuilder(g)
	ids := b.AddInput("ids", onnx.Int64, onnx.Sym("batch"), onnx.D(bT))
	init := func(name string, dims []int64, v []float64) string {
		return b.AddInitializer(onnx.MustTensor(name, dims, f32s(v)))
	}
	emb := init("emb", []int64{bV, bD}, w.emb)
	x := b.Op("Gather", []string{emb, ids})
	h := b.Op("LayerNormalization", []string{x, init("gamma", []int64{bD}, w.gamma), init("beta", []int64{bD}, w.beta)},
		onnx.AttrInt("axis", -1), onnx.AttrFloat("epsilon", lnEps))
	q := b.Op("Add", []string{b.Op("MatMul", []string{h, init("wq", []int64{bD, bD}, w.wq)}), init("bq", []int64{bD}, w.bq)})
	k := b.Op("MatMul", []string{h, init("wk", []int64{bD, bD}, w.wk)})
	v := b.Op("MatMul", []string{h, init("wv", []int64{bD, bD}, w.wv)})
	heads := b.ConstInt64Vec(0, 0, bH, bDh)
	split := func(t string, perm ...int64) string {
		return b.Op("Transpose", []string{b.Op("Reshape", []string{t, heads})}, onnx.AttrInts("perm", perm))
	}
	qh, kt, vh := split(q, 0, 2, 1, 3), split(k, 0, 2, 3, 1), split(v, 0, 2, 1, 3)
	scores := b.Op("Mul", []string{b.Op("MatMul", []string{qh, kt}), b.ConstFloat32(float32(1 / math.Sqrt(bDh)))})
	causal := make([]bool, bT*bT)
	for i := 0; i < bT; i++ {
		for j := 0; j <= i; j++ {
			causal[i*bT+j] = true
		}
	}
	mask := b.Const(onnx.MustTensor("causal", []int64{bT, bT}, causal))
	masked := b.Op("Where", []string{mask, scores, b.ConstFloat32(-1e9)})
	p := b.Op("Softmax", []string{masked}, onnx.AttrInt("axis", -1))
	ctx := b.Op("Reshape", []string{b.Op("Transpose", []string{b.Op("MatMul", []string{p, vh})}, onnx.AttrInts("perm", []int64{0, 2, 1, 3})), b.ConstInt64Vec(0, 0, bD)})
	out := b.Op("Add", []string{b.Op("MatMul", []string{ctx, init("wo", []int64{bD, bD}, w.wo)}), x})
	b.AddOutput(out, onnx.Float32, onnx.Sym("batch"), onnx.D(bT), onnx.D(bD))
	return onnx.NewModel(g, 17)
}

// referenceBlock computes the same block in float64.
func referenceBlock(w blockWeights, ids []int64, batch int) []float64 {
	out := make([]float64, batch*bT*bD)
	matvec := func(x []float64, m []float64) []float64 { // x [D] @ m [D,D]
		y := make([]float64, bD)
		for j := 0; j < bD; j++ {
			for i := 0; i < bD; i++ {
				y[j] += x[i] * m[i*bD+j]
			}
		}
		return y
	}
	for bi := 0; bi < batch; bi++ {
		xs := make([][]float64, bT)
		q, k, v := make([][]float64, bT), make([][]float64, bT), make([][]float64, bT)
		for t := 0; t < bT; t++ {
			id := ids[bi*bT+t]
			xs[t] = w.emb[id*bD : (id+1)*bD]
			mean, vr := 0.0, 0.0
			for _, e := range xs[t] {
				mean += e
			}
			mean /= bD
			for _, e := range xs[t] {
				vr += (e - mean) * (e - mean)
			}
			vr /= bD
			h := make([]float64, bD)
			for i, e := range xs[t] {
				h[i] = (e-mean)/math.Sqrt(vr+lnEps)*w.gamma[i] + w.beta[i]
			}
			q[t], k[t], v[t] = matvec(h, w.wq), matvec(h, w.wk), matvec(h, w.wv)
			for i := range q[t] {
				q[t][i] += w.bq[i]
			}
		}
		for t := 0; t < bT; t++ {
			ctx := make([]float64, bD)
			for hd := 0; hd < bH; hd++ {
				s := make([]float64, t+1)
				mx := math.Inf(-1)
				for u := 0; u <= t; u++ {
					for d := 0; d < bDh; d++ {
						s[u] += q[t][hd*bDh+d] * k[u][hd*bDh+d]
					}
					s[u] /= math.Sqrt(bDh)
					mx = math.Max(mx, s[u])
				}
				z := 0.0
				for u := range s {
					s[u] = math.Exp(s[u] - mx)
					z += s[u]
				}
				for u := range s {
					for d := 0; d < bDh; d++ {
						ctx[hd*bDh+d] += s[u] / z * v[u][hd*bDh+d]
					}
				}
			}
			o := matvec(ctx, w.wo)
			for i := range o {
				out[(bi*bT+t)*bD+i] = o[i] + xs[t][i]
			}
		}
	}
	return out
}

func TestTransformerBlockMatchesFloat64(t *testing.T) {
	env, err := onnxrt.Open(testenv.ORTLibrary(t))
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	r := rand.New(rand.NewPCG(1, 2))
	w := blockWeights{
		emb: randVec(r, bV*bD, 1), wq: randVec(r, bD*bD, 0.5), wk: randVec(r, bD*bD, 0.5),
		wv: randVec(r, bD*bD, 0.5), wo: randVec(r, bD*bD, 0.5), bq: randVec(r, bD, 0.1),
		gamma: randVec(r, bD, 1), beta: randVec(r, bD, 0.1),
	}
	m := buildBlock(w)
	if _, err := onnx.InferShapes(m.Graph, onnx.Opsets(m)); err != nil {
		t.Fatalf("shape inference on the built block: %v", err)
	}
	data, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	s, err := env.NewSessionFromBytes(data, "block", onnxrt.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ids := make([]int64, bB*bT)
	for i := range ids {
		ids[i] = r.Int64N(bV)
	}
	in, _ := onnxrt.NewTensor([]int64{bB, bT}, ids)
	defer in.Close()
	outs, err := s.Run(map[string]*onnxrt.Value{"ids": in}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range outs {
		defer o.Close()
		got, err := o.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		want := referenceBlock(w, ids, bB)
		if len(got) != len(want) {
			t.Fatalf("len %d want %d", len(got), len(want))
		}
		maxErr := 0.0
		for i := range got {
			maxErr = math.Max(maxErr, math.Abs(float64(got[i])-want[i])/math.Max(1, math.Abs(want[i])))
		}
		t.Logf("max error vs float64: %.3g", maxErr)
		if maxErr > 1e-5 {
			t.Fatalf("max error %g", maxErr)
		}
	}
}
