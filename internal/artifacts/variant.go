package artifacts

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/amp"
	"github.com/ortrain/ortrain/internal/arch"
	"github.com/ortrain/ortrain/internal/cudakernels"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/optim"
)

// Variant is a set of graphs computing in a lower precision than the
// folder's float32 graphs, with the same inputs (float32 parameters among
// them) and outputs (float32 loss, logits and gradients).
type Variant struct {
	Name  string `json:"name"`
	DType string `json:"dtype"` // float16 or bfloat16
	// Autocast is the device whose torch.autocast op lists the graphs
	// follow; empty for a half-precision model without autocast.
	Autocast string `json:"autocast,omitempty"`
	// HalfModel: parameters and constants are cast to DType first
	// (model.to(dtype)), as for fp16_full_eval / bf16_full_eval.
	HalfModel bool `json:"half_model,omitempty"`
	// Emulated graphs compute in float32 and round through DType where
	// the real ones round (tests on CPUs without the kernels).
	Emulated bool `json:"emulated,omitempty"`
	// Files holds the graphs of this precision: training (autocast only),
	// eval, forward and the generation graphs the folder has.
	Files Files `json:"files"`
	// LowNodes and FP32Nodes count the forward graph's nodes computing
	// in DType and in float32; Casts the casts the rewrite added.
	LowNodes  int `json:"low_nodes"`
	FP32Nodes int `json:"fp32_nodes"`
	Casts     int `json:"casts"`
}

// Variant returns the variant named name, or an error naming those the
// folder has.
func (m *Manifest) Variant(name string) (*Variant, error) {
	var names []string
	for i := range m.Variants {
		if m.Variants[i].Name == name {
			return &m.Variants[i], nil
		}
		names = append(names, m.Variants[i].Name)
	}
	have := "none"
	if len(names) > 0 {
		have = strings.Join(names, ", ")
	}
	return nil, fmt.Errorf("the artifact folder has no %s graphs (it has: %s); rebuild it with that precision", name, have)
}

func variantFile(file, name string) string {
	return strings.TrimSuffix(file, ".onnx") + "." + name + ".onnx"
}

// buildVariant writes the graphs of precision p beside the float32 ones:
// the same construction with amp.Rewrite applied to the forward graph
// before dropout, the loss and the backward pass are added (and
// amp.Emulate applied to the result when p.Emulate).
func buildVariant(cfg Config, p Precision, fwd *onnxpb.ModelProto, man *Manifest, cands []candidate, prefixes []string, semantic *arch.Arch) (Variant, error) {
	dt := onnx.Float16
	if p.DType == onnx.BFloat16 {
		dt = onnx.BFloat16
	}
	name := p.Name()
	v := Variant{Name: name, DType: map[onnx.DType]string{onnx.Float16: "float16", onnx.BFloat16: "bfloat16"}[dt],
		Autocast: p.Device, HalfModel: p.HalfModel, Emulated: p.Emulate}
	counted := false
	rewrite := func(m *onnxpb.ModelProto) error {
		rep, err := amp.Rewrite(m.Graph, onnx.Opsets(m), p.Options)
		if err != nil {
			return err
		}
		if !counted {
			v.LowNodes, v.FP32Nodes, v.Casts, counted = rep.LowNodes, rep.FP32Nodes, rep.Casts, true
		}
		return nil
	}
	kernels, err := cudakernels.CUDA()
	if err != nil {
		return v, err
	}
	finish := func(m *onnxpb.ModelProto, file string) (string, error) {
		// One graph for every provider: nodes that CUDA has no
		// low-precision kernel for compute in float32 and round.
		if _, err := amp.FitKernels(m.Graph, onnx.Opsets(m), kernels); err != nil {
			return "", err
		}
		if p.Emulate {
			if err := amp.Emulate(m.Graph, onnx.Opsets(m), dt); err != nil {
				return "", err
			}
		}
		out := variantFile(file, name)
		return out, onnx.Save(m, filepath.Join(cfg.Out, out), onnx.SaveOptions{})
	}

	forward := proto.Clone(fwd).(*onnxpb.ModelProto)
	inferenceDropout(forward.Graph)
	paramsToInputs(forward.Graph, man.Parameters)
	if err := rewrite(forward); err != nil {
		return v, err
	}
	setOpsets(forward, man.Opsets)
	if v.Files.Forward, err = finish(forward, ForwardFile); err != nil {
		return v, err
	}

	eval := proto.Clone(fwd).(*onnxpb.ModelProto)
	inferenceDropout(eval.Graph)
	paramsToInputs(eval.Graph, man.Parameters)
	if err := rewrite(eval); err != nil {
		return v, err
	}
	if err := optim.AppendLoss(eval.Graph, Logits, optim.LossOptions{LabelSmoothing: cfg.LabelSmoothing}); err != nil {
		return v, badModel("%v", err)
	}
	setOpsets(eval, man.Opsets)
	if v.Files.Eval, err = finish(eval, EvalFile); err != nil {
		return v, err
	}

	if !p.HalfModel {
		train := proto.Clone(fwd).(*onnxpb.ModelProto)
		notes := man.Notes // the float32 training graph noted what this one would note again
		if _, err := buildTraining(train, man, cfg.DisableDropout, rewrite, semantic); err != nil {
			return v, err
		}
		man.Notes = notes
		if v.Files.Training, err = finish(train, TrainingFile); err != nil {
			return v, err
		}
	}

	gens, err := generationGraphs(cfg)
	if err != nil {
		return v, err
	}
	for _, gen := range gens {
		gm := gen.model
		inferenceDropout(gm.Graph)
		if _, err := bindGenerationParams(gm.Graph, man.Parameters, cands, prefixes); err != nil {
			return v, fmt.Errorf("%s: %w", gen.source, err)
		}
		if err := rewrite(gm); err != nil {
			return v, fmt.Errorf("%s: %w", gen.source, err)
		}
		file, err := finish(gm, gen.file)
		if err != nil {
			return v, err
		}
		switch gen.role {
		case "encoder":
			v.Files.Encoder = file
		case "decoder":
			v.Files.Decoder = file
		default:
			v.Files.DecoderWithPast = file
		}
	}
	return v, nil
}

// setOpsets raises the standard opset imports of m to those of the
// training graph (the backward pass may need a newer one).
func setOpsets(m *onnxpb.ModelProto, opsets map[string]int64) {
	for _, dom := range slices.Sorted(maps.Keys(opsets)) {
		if dom == "" || dom == "ai.onnx" {
			onnx.SetOpset(m, dom, opsets[dom])
		}
	}
}
