// Package ortimport turns an artifact folder made for ONNX Runtime's
// (retired) training API — onnxruntime.training.artifacts.generate_artifacts:
// checkpoint, training_model.onnx, eval_model.onnx, optimizer_model.onnx —
// into ortrain artifacts that train on any current ONNX Runtime, and writes
// ortrain parameters back as such a checkpoint.
//
// The training model is not used: its gradient kernels are com.microsoft
// training ops that only a training build of ONNX Runtime has. The forward
// part of the eval model (batch in, logits out) is extracted, the checkpoint's
// parameters are put back into it, and ortrain's own autodiff builds the
// training graphs. Parameters, AdamW moments and the step carry over, so
// training continues where it stopped.
package ortimport

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/optim"
	"github.com/ortrain/ortrain/internal/ortckpt"
	"github.com/ortrain/ortrain/internal/safetensors"
)

// Files of an ONNX Runtime artifact folder (without a prefix).
const (
	CheckpointFile = "checkpoint"
	EvalFile       = "eval_model.onnx"
	OptimizerFile  = "optimizer_model.onnx"
	TrainingFile   = "training_model.onnx"
)

// Files ortrain adds to the folder it writes.
const (
	ForwardFile        = "imported_forward.onnx"
	OptimizerStateFile = "optimizer_state.safetensors"
	ReportFile         = "ort_import.json"
)

// inputErr reports a problem with the folder being imported: bad input.
func inputErr(format string, args ...any) error {
	return fault.Inputf("cannot import ONNX Runtime artifacts: %s", fmt.Sprintf(format, args...))
}

// Options of an import.
type Options struct {
	From string // the ONNX Runtime artifact folder
	Out  string // the ortrain artifact folder to write
	// Prefix of the artifact file names, as generate_artifacts' prefix.
	Prefix string
	// Logits names the forward output inside the eval model; default: the
	// value "logits", else the tensor the loss block reshapes.
	Logits  string
	Version string // ortrain version for the manifest
}

// Optimizer describes the imported optimizer graph.
type Optimizer struct {
	Type        string  `json:"type"` // "adamw", "sgd" or "" when there is no optimizer model
	Beta1       float64 `json:"beta1,omitempty"`
	Beta2       float64 `json:"beta2,omitempty"`
	Epsilon     float64 `json:"epsilon,omitempty"`
	WeightDecay float64 `json:"weight_decay"`
	AdamMode    int64   `json:"adam_mode"`
	CorrectBias int64   `json:"correct_bias"`
	MaxGradNorm float64 `json:"max_grad_norm,omitempty"`
}

// Report is what the import found and decided; written as ort_import.json.
type Report struct {
	From            string    `json:"from"`
	CheckpointVer   int32     `json:"checkpoint_version"`
	Trainable       int       `json:"trainable_parameters"`
	Frozen          int       `json:"frozen_parameters"`
	Step            int64     `json:"step"`
	InitialLR       float32   `json:"initial_learning_rate"`
	MomentsImported bool      `json:"moments_imported"`
	Logits          string    `json:"logits"`
	Optimizer       Optimizer `json:"onnxruntime_optimizer"`
	// Semantics says how ortrain continues, in words, for the manifest's readers.
	Semantics  string              `json:"semantics"`
	Properties map[string]any      `json:"properties,omitempty"`
	Manifest   *artifacts.Manifest `json:"-"`
}

func (o Options) path(name string) string { return filepath.Join(o.From, o.Prefix+name) }

// Import converts the folder o.From into ortrain artifacts in o.Out.
func Import(o Options) (*Report, error) {
	ckpt, err := ortckpt.ReadFile(o.path(CheckpointFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, inputErr("%s has no %s file: is it a folder made by generate_artifacts (with --prefix if it used one)?", o.From, o.Prefix+CheckpointFile)
		}
		return nil, inputErr("%v", err)
	}
	if ckpt.IsNominal {
		return nil, inputErr("%s is a nominal checkpoint (parameter names without values); import the full checkpoint", o.path(CheckpointFile))
	}
	evalPath := o.path(EvalFile)
	if _, err := os.Stat(evalPath); err != nil {
		return nil, inputErr("missing eval model %s: ortrain rebuilds the forward graph from it (the training model's gradient ops need a training build of ONNX Runtime)", evalPath)
	}
	eval, err := onnx.Load(evalPath)
	if err != nil {
		return nil, inputErr("%v", err)
	}
	forward, logits, err := extractForward(eval, ckpt, o.Logits, evalPath)
	if err != nil {
		return nil, err
	}
	opt, err := readOptimizer(o.path(OptimizerFile))
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", o.Out, err)
	}
	fwdPath := filepath.Join(o.Out, ForwardFile)
	if err := onnx.Save(forward, fwdPath, onnx.SaveOptions{}); err != nil {
		return nil, err
	}
	var freeze []string
	for _, t := range ckpt.Frozen {
		freeze = append(freeze, "^"+regexp.QuoteMeta(t.Name)+"$")
	}
	man, err := artifacts.Build(artifacts.Config{Model: fwdPath, Out: o.Out, Freeze: freeze, Version: o.Version})
	if err != nil {
		return nil, err
	}
	rep := &Report{From: o.From, CheckpointVer: ckpt.Version, Trainable: len(ckpt.Trainable), Frozen: len(ckpt.Frozen),
		Logits: logits, Optimizer: opt, Manifest: man, Properties: map[string]any{}}
	for k, v := range ckpt.Ints {
		rep.Properties[k] = v
	}
	for k, v := range ckpt.Floats {
		rep.Properties[k] = v
	}
	for k, v := range ckpt.Strings {
		rep.Properties[k] = v
	}
	if err := writeOptimizerState(o.Out, ckpt, man, rep); err != nil {
		return nil, err
	}
	rep.Semantics = semantics(opt, rep)
	man.Notes = append(man.Notes, "imported from ONNX Runtime training artifacts in "+o.From+": "+rep.Semantics)
	if err := writeJSON(filepath.Join(o.Out, artifacts.ManifestFile), man); err != nil {
		return nil, err
	}
	if err := writeJSON(filepath.Join(o.Out, ReportFile), rep); err != nil {
		return nil, err
	}
	return rep, nil
}

// extractForward turns the eval model (forward + loss, parameters as
// inputs) back into a forward model with the checkpoint's parameters as
// initializers.
func extractForward(eval *onnxpb.ModelProto, ckpt *ortckpt.Checkpoint, logits, path string) (*onnxpb.ModelProto, string, error) {
	m := proto.Clone(eval).(*onnxpb.ModelProto)
	g := m.GetGraph()
	inputs := map[string]*onnxpb.ValueInfoProto{}
	for _, in := range g.Input {
		inputs[in.GetName()] = in
	}
	params := map[string]ortckpt.Tensor{}
	for _, t := range append(append([]ortckpt.Tensor{}, ckpt.Trainable...), ckpt.Frozen...) {
		if _, ok := inputs[t.Name]; !ok {
			return nil, "", inputErr("the checkpoint holds parameter %q, which %s does not take: checkpoint and eval model do not belong together", t.Name, path)
		}
		params[t.Name] = t
	}
	// Parameters become initializers again.
	var batch []string
	kept := g.Input[:0]
	for _, in := range g.Input {
		t, ok := params[in.GetName()]
		if !ok {
			kept = append(kept, in)
			continue
		}
		tp, err := onnx.NewTensorRaw(t.Name, onnx.DType(t.DataType), t.Dims, t.Raw)
		if err != nil {
			return nil, "", inputErr("parameter %q: %v", t.Name, err)
		}
		g.Initializer = append(g.Initializer, tp)
	}
	g.Input = kept
	if logits == "" {
		var err error
		if logits, err = findLogits(g); err != nil {
			return nil, "", inputErr("%s: %v", path, err)
		}
	}
	for _, in := range g.Input {
		if in.GetName() != optim.Labels {
			batch = append(batch, in.GetName())
		}
	}
	fwd, err := onnx.ExtractModel(m, batch, []string{logits})
	if err != nil {
		return nil, "", inputErr("%s: extracting the forward graph up to %q: %v", path, logits, err)
	}
	// Keep only the batch inputs the forward part reads.
	if logits != artifacts.Logits {
		onnx.RenameValue(fwd.Graph, logits, artifacts.Logits)
	}
	return fwd, logits, nil
}

// findLogits picks the forward output: a value named logits, else the
// tensor that the loss reads (through Reshape/Transpose/Flatten).
func findLogits(g *onnxpb.GraphProto) (string, error) {
	prod := onnx.Producers(g)
	if _, ok := prod[artifacts.Logits]; ok {
		return artifacts.Logits, nil
	}
	for _, n := range g.Node {
		if n.GetOpType() != "SoftmaxCrossEntropyLoss" || len(n.Input) == 0 {
			continue
		}
		v := n.Input[0]
		for {
			p := prod[v]
			if p == nil {
				break
			}
			switch p.GetOpType() {
			case "Reshape", "Transpose", "Flatten", "Identity":
				v = p.Input[0]
				continue
			}
			break
		}
		return v, nil
	}
	return "", errors.New("no value named logits and no SoftmaxCrossEntropyLoss to trace it from; name the forward output with --logits")
}

func attrFloat(n *onnxpb.NodeProto, name string, def float64) float64 {
	return float64(onnx.AttrFloatOr(n, name, float32(def)))
}

// readOptimizer reads the optimizer model's attributes; a missing file is
// allowed (an eval-only export).
func readOptimizer(path string) (Optimizer, error) {
	var o Optimizer
	if _, err := os.Stat(path); err != nil {
		return o, nil
	}
	m, err := onnx.Load(path)
	if err != nil {
		return o, inputErr("%v", err)
	}
	for _, n := range m.GetGraph().GetNode() {
		switch n.GetOpType() {
		case "AdamWOptimizer":
			// Defaults are the kernel's when an attribute is omitted.
			o.Type = "adamw"
			o.Beta1 = attrFloat(n, "alpha", 0.9)
			o.Beta2 = attrFloat(n, "beta", 0.999)
			o.Epsilon = attrFloat(n, "epsilon", 1e-8)
			o.WeightDecay = attrFloat(n, "weight_decay", 0)
			o.AdamMode = onnx.AttrIntOr(n, "adam_mode", 0)
			o.CorrectBias = onnx.AttrIntOr(n, "correct_bias", 1)
		case "SGDOptimizerV2":
			o.Type = "sgd"
		case "InplaceClipGradNorm":
			o.MaxGradNorm = attrFloat(n, "max_norm", 1)
		}
	}
	if o.Type == "" {
		return o, inputErr("%s has no AdamWOptimizer or SGDOptimizerV2 node", path)
	}
	return o, nil
}

// writeOptimizerState stores the checkpoint's AdamW moments and step in
// ortrain's optimizer-state format (what artifacts.Trainer.LoadOptimizerState
// reads).
func writeOptimizerState(out string, ckpt *ortckpt.Checkpoint, man *artifacts.Manifest, rep *Report) error {
	if len(ckpt.Groups) == 0 {
		return nil
	}
	if len(ckpt.Groups) > 1 {
		return inputErr("the checkpoint has %d optimizer groups; ONNX Runtime writes one", len(ckpt.Groups))
	}
	g := ckpt.Groups[0]
	rep.Step, rep.InitialLR = g.Step, g.InitialLR
	states := map[string]ortckpt.ParamState{}
	for _, s := range g.States {
		states[s.Param] = s
	}
	tensors := map[string]safetensors.Tensor{}
	for _, p := range man.Trainable() {
		s, ok := states[p.Name]
		if !ok {
			return inputErr("the checkpoint's optimizer state lacks parameter %q", p.Name)
		}
		var m0, m1 *ortckpt.Tensor
		for i := range s.Momentums {
			switch s.Momentums[i].Name {
			case "momentum0":
				m0 = &s.Momentums[i]
			case "momentum1":
				m1 = &s.Momentums[i]
			}
		}
		if m0 == nil || m1 == nil {
			return inputErr("parameter %q: the checkpoint's optimizer state has no momentum0/momentum1 (AdamW moments)", p.Name)
		}
		for name, t := range map[string]*ortckpt.Tensor{optim.ExpAvgName(p.Name): m0, optim.ExpAvgSqName(p.Name): m1} {
			if t.DataType != 1 {
				return inputErr("parameter %q: moments of type %d; only float32 is imported", p.Name, t.DataType)
			}
			tensors[name] = safetensors.FromFloat32(p.TorchShape(), floats(t.Raw))
		}
	}
	rep.MomentsImported = true
	return safetensors.WriteFile(filepath.Join(out, OptimizerStateFile), tensors,
		map[string]string{"step": strconv.FormatInt(g.Step, 10), "optimizer": "adamw", "format": "ortrain-optimizer"})
}

func floats(raw []byte) []float32 {
	out := make([]float32, len(raw)/4)
	for i := range out {
		out[i] = math.Float32frombits(uint32(raw[4*i]) | uint32(raw[4*i+1])<<8 | uint32(raw[4*i+2])<<16 | uint32(raw[4*i+3])<<24)
	}
	return out
}

func semantics(o Optimizer, rep *Report) string {
	carried := "parameters carried over"
	if rep.MomentsImported {
		carried = fmt.Sprintf("parameters, AdamW moments and step %d carried over (%s)", rep.Step, OptimizerStateFile)
	}
	switch {
	case o.Type == "":
		return carried + "; no optimizer model, so ortrain's torch.optim.AdamW applies with the training arguments given"
	case o.Type == "sgd":
		return carried + "; the source used SGD: ortrain train defaults to optim sgd"
	}
	name := "adamw_torch (torch.optim.AdamW)"
	if o.AdamMode == 1 {
		name = "adamw_hf (transformers' legacy AdamW: epsilon added to sqrt(v) before the bias correction, decay after the update)"
	}
	return fmt.Sprintf("%s; the source used ONNX Runtime's AdamW adam_mode %d with betas %g/%g, epsilon %g, weight decay %g, max_grad_norm %g. "+
		"`ortrain train --artifacts` continues with the same update by default: optim %s and those hyperparameters (flags or --config override them; see %s). "+
		"One difference remains: ONNX Runtime decays every parameter, ortrain keeps HF's no-decay set (biases and norms), which matters only with weight decay > 0",
		carried, o.AdamMode, float32(o.Beta1), float32(o.Beta2), float32(o.Epsilon), float32(o.WeightDecay), float32(o.MaxGradNorm), name, ReportFile)
}

// TrainingDefaults returns, for an artifact folder imported from ONNX
// Runtime, the TrainingArguments (by HF name) that continue its optimizer
// as it was: optim, betas, epsilon, weight decay and clipping. It returns
// nil for other folders. Callers apply them before the user's own settings.
func TrainingDefaults(dir string) (map[string]string, error) {
	b, err := os.ReadFile(filepath.Join(dir, ReportFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fault.Mark(fault.Input, err)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fault.Inputf("%s: %w", filepath.Join(dir, ReportFile), err)
	}
	o := rep.Optimizer
	f := func(v float64) string { return strconv.FormatFloat(float64(float32(v)), 'g', -1, 32) }
	switch o.Type {
	case "adamw":
		optim := "adamw_torch"
		if o.AdamMode == 1 {
			optim = "adamw_hf"
		}
		return map[string]string{"optim": optim, "adam_beta1": f(o.Beta1), "adam_beta2": f(o.Beta2),
			"adam_epsilon": f(o.Epsilon), "weight_decay": f(o.WeightDecay), "max_grad_norm": f(o.MaxGradNorm)}, nil
	case "sgd":
		return map[string]string{"optim": "sgd", "max_grad_norm": f(o.MaxGradNorm)}, nil
	}
	return nil, nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}

// sortedNames lists the keys of a map in order.
func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
