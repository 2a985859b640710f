// Package testmodel writes small ONNX models with their safetensors weights
// for the tests of the packages that build and run training graphs.
package testmodel

import (
	"math/rand"
	"path/filepath"
	"testing"

	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/safetensors"
)

// Vocab and Dim are the toy model's vocabulary and hidden sizes.
const Vocab, Dim = 11, 4

// Toy describes a small forward graph: decoder tokens -> embedding -> Act
// -> projection. The projection is stored transposed under a synthetic name
// as TorchScript exports Linear weights; model.safetensors holds the
// PyTorch names and layouts. The options vary the graph for error cases.
type Toy struct {
	Act        string // op between embedding and projection
	Dropout    bool   // a training-mode Dropout after the embedding
	Output     string // name of the output
	ExtraInput string
	DecName    string // name of the decoder input (default decoder_input_ids)
}

// RandFloats draws n standard normal floats.
func RandFloats(r *rand.Rand, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(r.NormFloat64())
	}
	return out
}

// WriteToy writes dir/model.onnx and dir/model.safetensors and returns the
// model's path.
func WriteToy(t testing.TB, dir string, o Toy) string {
	t.Helper()
	r := rand.New(rand.NewSource(1))
	emb := RandFloats(r, Vocab*Dim)
	proj := RandFloats(r, Dim*Vocab) // graph layout [Dim, Vocab] = lm_head.weight^T
	b := onnx.NewGraphBuilder(nil)
	b.AddInput("input_ids", onnx.Int64, onnx.Sym("batch"), onnx.Sym("src"))
	dec := "decoder_input_ids"
	if o.DecName != "" {
		dec = o.DecName
	}
	b.AddInput(dec, onnx.Int64, onnx.Sym("batch"), onnx.Sym("tgt"))
	if o.ExtraInput != "" {
		b.AddInput(o.ExtraInput, onnx.Int64, onnx.Sym("batch"))
	}
	b.AddInitializer(onnx.MustTensor("shared.weight", []int64{Vocab, Dim}, emb))
	b.AddInitializer(onnx.MustTensor("onnx::MatMul_7", []int64{Dim, Vocab}, proj))
	h := b.Op("Gather", []string{"shared.weight", dec})
	if o.Dropout {
		ratio := b.AddInitializer(onnx.MustTensor("dropout_ratio", nil, []float32{0.3}))
		training := b.AddInitializer(onnx.MustTensor("dropout_training", nil, []bool{true}))
		h = b.Op("Dropout", []string{h, ratio, training})
	}
	if o.Act != "" {
		h = b.Op(o.Act, []string{h})
	}
	b.Node("MatMul", []string{h, "onnx::MatMul_7"}, []string{o.Output})
	b.AddOutput(o.Output, onnx.Float32, onnx.Sym("batch"), onnx.Sym("tgt"), onnx.D(Vocab))
	path := filepath.Join(dir, "model.onnx")
	if err := onnx.Save(onnx.NewModel(b.Graph(), 17), path, onnx.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	lmHead := make([]float32, len(proj))
	for r := 0; r < Dim; r++ {
		for c := 0; c < Vocab; c++ {
			lmHead[c*Dim+r] = proj[r*Vocab+c]
		}
	}
	if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), map[string]safetensors.Tensor{
		"shared.weight":  safetensors.FromFloat32([]int64{Vocab, Dim}, emb),
		"lm_head.weight": safetensors.FromFloat32([]int64{Vocab, Dim}, lmHead),
	}, nil); err != nil {
		t.Fatal(err)
	}
	return path
}
