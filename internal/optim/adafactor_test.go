package optim

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/ortrain/ortrain/internal/onnxrt"
)

// TestAdafactorTransposedLayout: a matrix the graphs hold transposed
// (TorchScript's Linear weights) gets the update and the factored moments
// (in torch's layout) of the same matrix held as torch holds it, over
// several steps. The torch parity of the untransposed update is
// ortrain/engine's TestAdafactorTrajectoryMatchesPyTorch.
func TestAdafactorTransposedLayout(t *testing.T) {
	const rows, cols = 3, 5
	params := []Param{{Name: "w", Shape: []int64{rows, cols}, Decay: true}, {Name: "wt", Shape: []int64{cols, rows}, Decay: true, Transposed: true},
		{Name: "b", Shape: []int64{cols}}}
	m, err := BuildAdafactor(params)
	if err != nil {
		t.Fatal(err)
	}
	s := session(t, m)
	transpose := func(v []float32, r, c int) []float32 {
		out := make([]float32, len(v))
		for i := range r {
			for j := range c {
				out[j*r+i] = v[i*c+j]
			}
		}
		return out
	}
	rng := rand.New(rand.NewPCG(3, 4))
	randn := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	cur := map[string][]float32{"w": randn(rows * cols), "b": randn(cols)}
	cur["wt"] = transpose(cur["w"], rows, cols)
	for _, n := range []string{ExpAvgSqRowName("w"), ExpAvgSqRowName("wt")} {
		cur[n] = make([]float32, rows)
	}
	for _, n := range []string{ExpAvgSqColName("w"), ExpAvgSqColName("wt"), ExpAvgSqName("b")} {
		cur[n] = make([]float32, cols)
	}
	shapes := map[string][]int64{}
	for _, p := range params {
		shapes[p.Name] = p.Shape
		for _, st := range AdafactorState(p.Name, map[bool][]int64{true: {rows, cols}, false: p.Shape}[len(p.Shape) == 2]) {
			shapes[st.Name] = st.Shape
		}
	}
	for step := 1; step <= 5; step++ {
		g := randn(rows * cols)
		in := map[string]*onnxrt.Value{
			LearningRate: tensor(t, nil, []float64{0.01}), WeightDecay: tensor(t, nil, []float64{0.1}),
			Step: tensor(t, nil, []int64{int64(step)}), MaxGradNorm: tensor(t, nil, []float32{1}),
			GradName("w"): tensor(t, shapes["w"], g), GradName("wt"): tensor(t, shapes["wt"], transpose(g, rows, cols)),
			GradName("b"): tensor(t, shapes["b"], randn(cols)),
		}
		for n, v := range cur {
			in[n] = tensor(t, shapes[n], v)
		}
		out, err := s.Run(in, nil)
		if err != nil {
			t.Fatal(err)
		}
		for n := range cur {
			cur[n] = floats(t, out[UpdatedName(n)])
		}
		for _, v := range out {
			v.Close()
		}
		if !slices.Equal(cur["wt"], transpose(cur["w"], rows, cols)) {
			t.Fatalf("step %d: transposed parameter %v, want the transpose of %v", step, cur["wt"], cur["w"])
		}
		for _, st := range []func(string) string{ExpAvgSqRowName, ExpAvgSqColName} {
			if !slices.Equal(cur[st("wt")], cur[st("w")]) {
				t.Fatalf("step %d: %s %v, untransposed %v", step, st("wt"), cur[st("wt")], cur[st("w")])
			}
		}
	}
}
