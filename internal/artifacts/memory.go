package artifacts

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/optim"
)

// MemoryReport estimates what training keeps in device memory with the
// float32 graphs or a variant's.
type MemoryReport struct {
	Variant string // "" for float32
	// Parameters counts the trainable parameters.
	Parameters int64
	// KeptPerParameter is the bytes per trainable parameter held between
	// steps with AdamW: the float32 parameter, its gradient sum and the two
	// moments (16); mixed precision keeps the same float32 masters.
	KeptPerParameter int
	// CastPerParameter is the bytes per parameter of the low-precision
	// copies a mixed-precision step makes (autocast's weight cache),
	// alive from the forward pass to the parameter's last backward use.
	CastPerParameter int
	// SeqLen is the source and target length ActivationsPerToken assumes.
	SeqLen int
	// ActivationsPerToken is the bytes of the forward values the backward
	// pass reads (what a training step keeps alive), per token of a batch
	// of SeqLen source and SeqLen target tokens; attention scores make it
	// grow with SeqLen.
	ActivationsPerToken int64
}

// Lines describes the report for people.
func (r MemoryReport) Lines() []string {
	what := "float32"
	if r.Variant != "" {
		what = r.Variant
	}
	per := fmt.Sprintf("%d bytes per parameter kept between steps with AdamW (float32 parameter, gradient sum, two moments)", r.KeptPerParameter)
	if r.CastPerParameter > 0 {
		per += fmt.Sprintf(", %d more during a step (the parameters' %d-byte copies)", r.CastPerParameter, r.CastPerParameter)
	}
	return []string{
		fmt.Sprintf("memory (%s): %d trainable parameters, %s: %s", what, r.Parameters, per, byteSize(int64(r.KeptPerParameter+r.CastPerParameter)*r.Parameters)),
		fmt.Sprintf("memory (%s): activations kept for the backward pass: %s per token (batch of 1, %d source and %d target tokens)", what, byteSize(r.ActivationsPerToken), r.SeqLen, r.SeqLen),
	}
}

// Memory estimates the memory of training with the folder dir's float32
// graphs (variant "") or a variant's, at source and target length seqLen.
func (m *Manifest) Memory(dir, variant string, seqLen int) (MemoryReport, error) {
	r := MemoryReport{Variant: variant, KeptPerParameter: 16, SeqLen: seqLen}
	for _, p := range m.Trainable() {
		r.Parameters += onnx.NumElements(p.Shape)
	}
	file := m.Files.Training
	if variant != "" {
		v, err := m.Variant(variant)
		if err != nil {
			return r, err
		}
		if v.Files.Training == "" {
			return r, fmt.Errorf("the %s graphs do not train", variant)
		}
		file = v.Files.Training
		r.CastPerParameter = 2
		if v.Emulated {
			r.CastPerParameter = 4
		}
	}
	g, err := onnx.Load(filepath.Join(dir, file))
	if err != nil {
		return r, err
	}
	types, err := onnx.InferModelShapes(g)
	if err != nil {
		return r, err
	}
	shapes := map[string][]int64{optim.Labels: {1, int64(seqLen)}}
	for _, in := range m.Inputs {
		if in.DType == "int64" && len(in.Shape) == 2 {
			shapes[in.Name] = []int64{1, int64(seqLen)}
		}
	}
	sizes, err := onnx.BindSymbols(types, shapes)
	if err != nil {
		return r, err
	}
	params := map[string]bool{}
	for _, p := range m.Parameters {
		params[p.Name] = true
	}
	// Nodes of the backward pass: the gradients, and under gradient
	// checkpointing the layers' recomputation, which runs in it.
	backward := func(name string) bool {
		return strings.HasPrefix(name, "grad/") || strings.HasPrefix(name, "recompute/")
	}
	kept := map[string]bool{}
	produced := map[string]bool{}
	for _, n := range g.Graph.Node {
		if !backward(n.GetName()) {
			for _, o := range n.Output {
				produced[o] = true
			}
			continue
		}
		for _, in := range n.Input {
			if produced[in] && !params[in] {
				kept[in] = true
			}
		}
	}
	var total int64
	for v := range kept {
		t, ok := types[v]
		if !ok {
			continue
		}
		shape, ok := t.Shape(sizes)
		if !ok {
			continue
		}
		total += onnx.NumElements(shape) * int64(onnx.DTypeSize(t.Elem))
	}
	r.ActivationsPerToken = total / int64(2*seqLen)
	return r, nil
}
