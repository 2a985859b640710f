// Package artifacts makes and runs ortrain's training artifacts: from a
// seq2seq forward graph exported to ONNX it writes a folder with the
// training graph (loss and gradients), the eval graph, torch-exact
// optimizer graphs, generation graphs that take the parameters as inputs,
// the initial parameters as safetensors and a manifest; Open runs them.
//
// Gradient accumulation happens inside the training graph: it takes the
// running sum of gradients grad_accum.<p> and returns new.grad_accum.<p> =
// accumulate * grad_accum.<p> + loss_scale * d(loss)/d(p), so the buffers
// never leave the device. accumulate is 0 on the first micro-batch after an
// optimizer step and 1 after; the sums must start finite (the Trainer
// zeroes them), since 0 * NaN is NaN. loss_scale is HF's per-micro-batch
// factor (1/micro-batches in the window, or tokens/window tokens for models
// whose loss takes num_items_in_batch; see Semantics for transformers 5.24).
package artifacts

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/amp"
	"github.com/ortrain/ortrain/internal/arch"
	"github.com/ortrain/ortrain/internal/autodiff"
	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/lora"
	"github.com/ortrain/ortrain/internal/modelfile"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/optim"
	"github.com/ortrain/ortrain/internal/safetensors"
)

// Input and output names of the training and eval graphs besides the batch
// and the parameters.
const (
	LossScale = "loss_scale" // FLOAT scalar: seed of the backward pass
	// Accumulate is a FLOAT scalar, 1 to add to grad_accum.<p>, 0 to start
	// new sums. A multiply rather than a select: ONNX Runtime's Where with a
	// broadcast condition is several times slower than Mul on large tensors.
	Accumulate = "accumulate"
	Logits     = "logits"
)

// GradAccumName is the training-graph input carrying p's gradient sum so
// far; its updated value is output under optim.UpdatedName.
func GradAccumName(p string) string { return "grad_accum." + p }

// Batch input roles, by the names HF exports use.
var batchRoles = []string{"input_ids", "attention_mask", "decoder_input_ids", "decoder_attention_mask"}

// Config says what Build reads and writes.
type Config struct {
	// Model is the forward graph: batch inputs -> logits. Without it, the
	// forward graph is composed from Encoder and Decoder (or the no-past
	// branch of DecoderMerged), as Optimum exports them.
	Model string
	Out   string // artifact folder (created; existing artifact files are replaced)
	// Weights is the model's safetensors (default: model.safetensors beside
	// Model, when present); it names parameters after the PyTorch model.
	Weights         string
	Encoder         string
	Decoder         string
	DecoderWithPast string
	// DecoderMerged is Optimum's merged decoder (decoder_model_merged.onnx);
	// it stands in for Decoder and DecoderWithPast when those are not given.
	DecoderMerged string
	// ParamNames names initializers by hand (ONNX name -> the model's
	// tensor name), for those ortrain cannot identify.
	ParamNames map[string]string
	Freeze     []string // regular expressions over parameter names
	// Roles renames forward-graph inputs to the batch roles ortrain uses
	// (graph input name -> input_ids, attention_mask, decoder_input_ids or
	// decoder_attention_mask), for exports with other names.
	Roles map[string]string
	// LogitsOutput names the forward graph's logits output when it is not
	// "logits".
	LogitsOutput   string
	LabelSmoothing float64
	// DisableDropout trains without dropout even when the graph has Dropout
	// nodes (exports in eval mode have none, so they train without it anyway).
	DisableDropout bool
	// OptimizerOpset is the standard opset of the optimizer graphs (0: optim.Opset).
	OptimizerOpset int64
	Version        string // ortrain version recorded in the manifest
	// AssumeArchitecture names the row of the architecture table
	// (internal/arch) to train the model with, instead of the one
	// config.json's model_type selects (--assume_architecture).
	AssumeArchitecture string
	// RequireArchitecture refuses a model whose folder has no config.json
	// model_type unless AssumeArchitecture is set. Without it such a model
	// builds with no architecture semantics: every float initializer
	// trainable, classic 1/n gradient accumulation.
	RequireArchitecture bool
	// Precisions lists lower-precision variants of the graphs to write
	// beside the float32 ones (Manifest.Variants): mixed precision
	// (autocast: training, eval and generation graphs) and half-precision
	// models (eval and generation graphs).
	Precisions []Precision
	// LoRA trains LoRA adapters (PEFT's LoraConfig) instead of the model's
	// weights: the base weights are frozen and every targeted linear layer
	// gets lora_A and lora_B beside it.
	LoRA *lora.Config
	// GradientCheckpointing recomputes each transformer layer's activations
	// in the backward pass instead of keeping them (HF's
	// gradient_checkpointing); the gradients are the same.
	GradientCheckpointing bool
	// Adapter is a PEFT adapter folder (adapter_config.json,
	// adapter_model.safetensors) whose config and weights the adapters
	// start from; LoRA, when also set, must describe the same adapter.
	Adapter string
}

// Precision is a lower-precision variant of the artifact graphs.
type Precision struct {
	amp.Options
	// Emulate writes the variant as float32 graphs that round through the
	// low precision wherever the real graphs round (amp.Emulate): how a
	// CPU, which has no bfloat16 kernels, checks bfloat16 numerics.
	Emulate bool
}

// Name names the variant (and its files): amp.Options.Name, with
// "emulated-" in front for an emulation.
func (p Precision) Name() string {
	if p.Emulate {
		return "emulated-" + p.Options.Name()
	}
	return p.Options.Name()
}

// badModel reports a problem with the user's model files (wrong inputs,
// missing logits, not ONNX, missing gradient rules): bad input.
func badModel(format string, args ...any) error {
	return fault.Inputf("unusable model: %s", fmt.Sprintf(format, args...))
}

// Build writes the artifact folder for cfg and returns its manifest.
func Build(cfg Config) (*Manifest, error) {
	if (cfg.Model == "" && (cfg.Encoder == "" || cfg.Decoder == "" && cfg.DecoderMerged == "")) || cfg.Out == "" {
		return nil, errors.New("artifacts: a model (or an encoder and a decoder graph) and an output folder are required")
	}
	if cfg.LabelSmoothing < 0 || cfg.LabelSmoothing >= 1 {
		return nil, fmt.Errorf("label smoothing %v must be in [0, 1)", cfg.LabelSmoothing)
	}
	fwd, comp, source, err := loadForward(cfg)
	if err != nil {
		return nil, err
	}
	g := fwd.Graph
	if err := renameRoles(cfg, source, g); err != nil {
		return nil, err
	}
	roles, err := checkForward(source, g)
	if err != nil {
		return nil, err
	}
	modelDir := filepath.Dir(cfg.Model)
	if comp != nil {
		modelDir = filepath.Dir(cfg.Encoder)
	}
	modelType, special := readConfigs(modelDir)

	cands, err := candidates(g)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	var semantic *arch.Arch
	if modelType != "" || cfg.AssumeArchitecture != "" || cfg.RequireArchitecture {
		names := make([]string, len(cands))
		for i, c := range cands {
			names[i] = c.onnxName
		}
		a, err := arch.Resolve(modelType, names, cfg.AssumeArchitecture)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(modelDir, "config.json"), err)
		}
		semantic = &a
	}
	weights := cfg.Weights
	if weights == "" {
		if p := filepath.Join(modelDir, "model.safetensors"); fileExists(p) {
			if err := modelfile.CheckIn(modelDir, "model.safetensors", cfg.Model); err != nil {
				return nil, fmt.Errorf("weights: %w", err)
			}
			weights = p
		}
	}
	man := &Manifest{
		Format: Format, FormatVersion: FormatVersion, OrtrainVersion: cfg.Version,
		Source: Source{Model: filepath.Base(source)}, ModelType: modelType,
		LabelSmoothing: cfg.LabelSmoothing, SpecialTokens: special, Freeze: cfg.Freeze,
		Semantics: semantics(), Composition: comp,
	}
	if comp != nil {
		man.Source.Model = source
		for _, s := range comp.Shared {
			man.Notes = append(man.Notes, "encoder and decoder graphs share "+s+" (same values): one parameter")
		}
	}
	if semantic != nil {
		man.Architecture = ArchitectureRecord(*semantic)
		man.Architecture.Differences = layerdropDifferences(*semantic, readConfigJSON(modelDir))
	} else {
		man.Notes = append(man.Notes, "no config.json model_type: no architecture semantics (every float initializer trains; gradient accumulation divides by the window's micro-batches)")
	}
	var hf *safetensors.File
	if weights != "" {
		hf, err = safetensors.ReadFile(weights)
		if err != nil {
			return nil, fmt.Errorf("weights: %w", err)
		}
		man.Source.Weights = filepath.Base(weights)
	}
	id, err := identify(g, cands, hf, weights, cfg.ParamNames)
	if err != nil {
		return nil, err
	}
	man.Parameters, man.Unmatched = id.params, id.unmatched
	man.Notes = append(man.Notes, id.notes...)
	for _, p := range man.Parameters {
		if p.MatchedBy == ByContent {
			man.MatchedByContent++
		}
	}
	if len(man.Parameters) == 0 {
		if hf != nil {
			return nil, badModel("no initializer of %s matches a tensor of %s (by name, by module path or by value): are they the same model?", source, weights)
		}
		return nil, badModel("%s has no float initializer that names a parameter of the model (by its name or the module path of the nodes reading it): export it with torch.onnx or optimum, or give the weights with --weights", source)
	}
	if hf == nil {
		man.Notes = append(man.Notes, "no weights file: parameters are named by the graph (initializer names and the module paths in node names); with the model's model.safetensors beside it (or --weights) ortrain also checks names and values against it")
	}
	if err := applyFreeze(man.Parameters, cfg.Freeze, semantic); err != nil {
		return nil, err
	}
	for i := range man.Parameters {
		p := &man.Parameters[i]
		if !p.NotInWeights || !p.Trainable {
			continue
		}
		if trainedNotSaved(semantic, p.Name) {
			man.Notes = append(man.Notes, fmt.Sprintf("%s: not in the weights file (save_pretrained leaves it out) but trained by HF after from_pretrained; trained here too", p.Name))
			continue
		}
		p.Trainable, p.FrozenBy = false, "not in "+filepath.Base(weights)
	}

	// Name every parameter initializer after the PyTorch tensor, in place,
	// and make aliases read the parameter.
	if err := resolveParameters(g, man.Parameters, source); err != nil {
		return nil, err
	}
	if cfg.LoRA != nil || cfg.Adapter != "" {
		added, err := buildLoRA(cfg, g, man, onnx.Opset(fwd, ""))
		if err != nil {
			return nil, err
		}
		cands = append(cands, added...)
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, err
	}
	man.Files = Files{Training: TrainingFile, Eval: EvalFile, AdamW: AdamWFile, SGD: SGDFile, AdamWLegacy: AdamWLegacyFile, Adafactor: AdafactorFile, Parameters: ParametersFile, Forward: ForwardFile}

	// Forward graph with the parameters as inputs: recomputing generation
	// and exported inference graphs.
	forward := proto.Clone(fwd).(*onnxpb.ModelProto)
	inferenceDropout(forward.Graph)
	paramsToInputs(forward.Graph, man.Parameters)

	// Eval graph: parameters in, loss and logits out.
	eval := proto.Clone(fwd).(*onnxpb.ModelProto)
	inferenceDropout(eval.Graph)
	paramsToInputs(eval.Graph, man.Parameters)
	if err := optim.AppendLoss(eval.Graph, Logits, optim.LossOptions{LabelSmoothing: cfg.LabelSmoothing}); err != nil {
		return nil, badModel("%s: %v", source, err)
	}
	man.Opsets = onnx.Opsets(eval)

	// Training graph: the loss's gradients, accumulated in-graph.
	train := proto.Clone(fwd).(*onnxpb.ModelProto)
	if cfg.GradientCheckpointing {
		man.GradientCheckpointing = &Checkpointing{}
	}
	if man.DropoutNodes, err = buildTraining(train, man, cfg.DisableDropout, nil, semantic); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	man.Opsets = onnx.Opsets(train) // Backward may have raised the opset
	for _, dom := range slices.Sorted(maps.Keys(man.Opsets)) {
		if dom == "" || dom == "ai.onnx" {
			onnx.SetOpset(eval, dom, man.Opsets[dom])
			onnx.SetOpset(forward, dom, man.Opsets[dom])
		}
	}

	for _, r := range roles {
		man.Inputs = append(man.Inputs, Input{Name: r, Role: r, DType: "int64", Shape: []string{"batch", "sequence"}, Graphs: []string{"training", "eval"}})
	}
	man.Inputs = append(man.Inputs,
		Input{Name: optim.Labels, Role: "labels", DType: "int64", Shape: []string{"batch", "target"}, Graphs: []string{"training", "eval"}},
		Input{Name: LossScale, Role: "loss_scale", DType: "float32", Shape: []string{}, Graphs: []string{"training"}},
		Input{Name: Accumulate, Role: "accumulate", DType: "float32", Shape: []string{}, Graphs: []string{"training"}})
	if man.DropoutNodes > 0 {
		man.Inputs = append(man.Inputs, Input{Name: DropoutSeed, Role: "dropout_seed", DType: "int64", Shape: []string{}, Graphs: []string{"training"}})
		man.Semantics.Dropout = fmt.Sprintf("%d Dropout nodes in training mode: the mask of element e of node k is a hash of (dropout_seed, k, e) (autodiff.EnableTrainingDropout), so a seed reproduces a step; eval and generation graphs run without dropout", man.DropoutNodes)
	} else if cfg.DisableDropout {
		man.Semantics.Dropout = "disabled (--no-dropout): Dropout nodes run in inference mode"
	}

	// Optimizer graphs over the trainable parameters.
	var ops []optim.Param
	for _, p := range man.Trainable() {
		ops = append(ops, optim.Param{Name: p.Name, Shape: p.Shape, Decay: p.Decay, Transposed: p.Transposed})
	}
	adamw, err := optim.BuildAdamW(ops)
	if err != nil {
		return nil, err
	}
	sgd, err := optim.BuildSGD(ops)
	if err != nil {
		return nil, err
	}
	adamwLegacy, err := optim.BuildAdamWLegacy(ops)
	if err != nil {
		return nil, err
	}
	adafactor, err := optim.BuildAdafactor(ops)
	if err != nil {
		return nil, err
	}
	man.OptimizerOpset = optim.Opset
	if cfg.OptimizerOpset != 0 {
		if cfg.OptimizerOpset < 13 {
			return nil, fmt.Errorf("--opset %d: the optimizer graphs need opset 13 or newer", cfg.OptimizerOpset)
		}
		for _, m := range []*onnxpb.ModelProto{adamw, sgd, adamwLegacy, adafactor} {
			onnx.SetOpset(m, "", cfg.OptimizerOpset)
			m.IrVersion = proto.Int64(onnx.IRVersionFor(cfg.OptimizerOpset))
		}
		man.OptimizerOpset = cfg.OptimizerOpset
	}

	// Generation graphs with the same parameters as inputs.
	gens, err := generationGraphs(cfg)
	if err != nil {
		return nil, err
	}
	prefixes := []string{""}
	if comp != nil && comp.EncoderPrefix != "" {
		prefixes = append(prefixes, comp.EncoderPrefix)
	}
	for _, gen := range gens {
		gm := gen.model
		inferenceDropout(gm.Graph)
		var used []string
		if man.LoRA != nil {
			used, err = loraGeneration(gm.Graph, man, cands, prefixes, onnx.Opset(gm, ""))
		} else {
			used, err = bindGenerationParams(gm.Graph, man.Parameters, cands, prefixes)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", gen.source, err)
		}
		if err := onnx.Save(gm, filepath.Join(cfg.Out, gen.file), onnx.SaveOptions{}); err != nil {
			return nil, err
		}
		man.Generation = append(man.Generation, Generation{Role: gen.role, File: gen.file, Parameters: used, Source: gen.source})
		switch gen.role {
		case "encoder":
			man.Files.Encoder = gen.file
		case "decoder":
			man.Files.Decoder = gen.file
		default:
			man.Files.DecoderWithPast = gen.file
		}
	}

	for _, p := range cfg.Precisions {
		v, err := buildVariant(cfg, p, fwd, man, cands, prefixes, semantic)
		if err != nil {
			return nil, fmt.Errorf("%s: %s graphs: %w", source, p.Name(), err)
		}
		man.Variants = append(man.Variants, v)
	}

	for file, m := range map[string]*onnxpb.ModelProto{TrainingFile: train, EvalFile: eval, AdamWFile: adamw, SGDFile: sgd, AdamWLegacyFile: adamwLegacy, AdafactorFile: adafactor, ForwardFile: forward} {
		if err := onnx.Save(m, filepath.Join(cfg.Out, file), onnx.SaveOptions{}); err != nil {
			return nil, err
		}
	}
	if err := writeInitialParameters(filepath.Join(cfg.Out, ParametersFile), man.Parameters, cands); err != nil {
		return nil, err
	}
	if err := writeManifest(cfg.Out, man); err != nil {
		return nil, err
	}
	return man, nil
}

func loadModel(path string) (*onnxpb.ModelProto, error) {
	m, err := onnx.Load(path)
	if err != nil {
		if errors.Is(err, onnx.ErrNotModel) {
			return nil, badModel("%s is not an ONNX model (%v); export the model with torch.onnx or optimum first", path, err)
		}
		return nil, badModel("%v", err)
	}
	return m, nil
}

// renameRoles applies Config.Roles and Config.LogitsOutput to the forward graph.
func renameRoles(cfg Config, source string, g *onnxpb.GraphProto) error {
	known := map[string]bool{}
	for _, r := range batchRoles {
		known[r] = true
	}
	inputs := map[string]bool{}
	for _, in := range g.GetInput() {
		inputs[in.GetName()] = true
	}
	for _, from := range slices.Sorted(maps.Keys(cfg.Roles)) {
		to := cfg.Roles[from]
		if !known[to] {
			return fmt.Errorf("input role %q for %q: roles are %s", to, from, strings.Join(batchRoles, ", "))
		}
		if !inputs[from] {
			return badModel("%s: no graph input %q to give the role %q", source, from, to)
		}
		if from != to {
			if hasValue(g, to) || onnx.Producers(g)[to] != nil {
				return badModel("%s: cannot rename input %q to %q: the graph already has a value of that name", source, from, to)
			}
			onnx.RenameValue(g, from, to)
		}
	}
	if o := cfg.LogitsOutput; o != "" && o != Logits {
		found := false
		for _, out := range g.GetOutput() {
			found = found || out.GetName() == o
		}
		if !found {
			return badModel("%s: no graph output %q to use as logits", source, o)
		}
		if onnx.Producers(g)[Logits] != nil || hasValue(g, Logits) {
			return badModel("%s: cannot rename output %q to %q: the name is taken", source, o, Logits)
		}
		onnx.RenameValue(g, o, Logits)
	}
	return nil
}

// checkForward verifies the batch inputs and the logits output and returns
// the batch roles present, in canonical order.
func checkForward(path string, g *onnxpb.GraphProto) ([]string, error) {
	known := map[string]bool{}
	for _, r := range batchRoles {
		known[r] = true
	}
	present := map[string]bool{}
	var unexpected []string
	for _, in := range g.GetInput() {
		n := in.GetName()
		if isInitializer(g, n) {
			continue // old exporters list initializers as inputs too
		}
		if !known[n] {
			unexpected = append(unexpected, n)
			continue
		}
		present[n] = true
	}
	if len(unexpected) > 0 {
		return nil, badModel("%s: unexpected graph inputs %s; a seq2seq forward graph takes %s (export the model without past key values and without labels)", path, strings.Join(unexpected, ", "), strings.Join(batchRoles, ", "))
	}
	for _, r := range []string{"input_ids", "decoder_input_ids"} {
		if !present[r] {
			return nil, badModel("%s: input %q is missing; a seq2seq forward graph takes %s", path, r, strings.Join(batchRoles, ", "))
		}
	}
	hasLogits := false
	var outs []string
	for _, o := range g.GetOutput() {
		outs = append(outs, o.GetName())
		if o.GetName() == Logits {
			hasLogits = true
		}
	}
	if !hasLogits {
		return nil, badModel("%s: no output named %q (outputs: %s); export the forward graph with its logits output named %q", path, Logits, strings.Join(outs, ", "), Logits)
	}
	var roles []string
	for _, r := range batchRoles {
		if present[r] {
			roles = append(roles, r)
		}
	}
	return roles, nil
}

func isInitializer(g *onnxpb.GraphProto, name string) bool {
	for _, t := range g.GetInitializer() {
		if t.GetName() == name {
			return true
		}
	}
	return false
}

func hasValue(g *onnxpb.GraphProto, name string) bool {
	if isInitializer(g, name) {
		return true
	}
	for _, in := range g.GetInput() {
		if in.GetName() == name {
			return true
		}
	}
	return false
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// paramsToInputs turns trainable (and shared frozen) parameter
// initializers into graph inputs of the same name, type and shape; other
// frozen ones stay constants.
func paramsToInputs(g *onnxpb.GraphProto, params []Parameter) {
	trainable := map[string]Parameter{}
	for _, p := range params {
		if p.Trainable || p.SharedInput {
			trainable[p.Name] = p
		}
	}
	kept := g.Initializer[:0]
	var inputs []*onnxpb.ValueInfoProto
	for _, t := range g.Initializer {
		if p, ok := trainable[t.GetName()]; ok {
			inputs = append(inputs, onnx.ValueInfo(p.Name, onnx.Float32, onnx.Dims(p.Shape...)...))
			continue
		}
		kept = append(kept, t)
	}
	g.Initializer = kept
	// Old exporters also list initializers as inputs; drop those entries.
	ins := g.Input[:0]
	for _, in := range g.Input {
		if _, ok := trainable[in.GetName()]; !ok {
			ins = append(ins, in)
		}
	}
	g.Input = append(ins, inputs...)
}

// inferenceDropout puts every Dropout node in inference mode (the identity)
// by dropping its ratio and training_mode inputs.
func inferenceDropout(g *onnxpb.GraphProto) {
	for _, n := range g.Node {
		if n.GetOpType() == "Dropout" && (n.GetDomain() == "" || n.GetDomain() == "ai.onnx") && len(n.Input) > 1 {
			n.Input = n.Input[:1]
		}
	}
}

// buildTraining turns a copy of the forward model into the training graph
// and returns the number of Dropout nodes that train with seeded masks;
// rewrite, when given, retypes the forward graph (mixed precision) before
// dropout and the loss are added; semantic is the architecture's row.
func buildTraining(m *onnxpb.ModelProto, man *Manifest, noDropout bool, rewrite func(*onnxpb.ModelProto) error, semantic *arch.Arch) (int, error) {
	g := m.Graph
	paramsToInputs(g, man.Parameters)
	if rewrite != nil {
		if err := rewrite(m); err != nil {
			return 0, err
		}
	}
	dropoutNodes := 0
	if noDropout {
		inferenceDropout(g)
	} else {
		n, err := autodiff.EnableTrainingDropout(g, DropoutSeed)
		if err != nil {
			return 0, badModel("%v", err)
		}
		dropoutNodes = n
	}
	// logits are consumed by the loss only; not an output, so ONNX Runtime
	// frees them as soon as the backward pass is done with them.
	outs := g.Output[:0]
	for _, o := range g.Output {
		if o.GetName() != Logits {
			outs = append(outs, o)
		}
	}
	g.Output = outs
	if err := optim.AppendLoss(g, Logits, optim.LossOptions{LabelSmoothing: man.LabelSmoothing}); err != nil {
		return 0, badModel("%v", err)
	}
	g.Input = append(g.Input, onnx.ValueInfo(LossScale, onnx.Float32), onnx.ValueInfo(Accumulate, onnx.Float32))
	var wrt []string
	for _, p := range man.Trainable() {
		wrt = append(wrt, p.Name)
	}
	if err := detachPaddingRows(g, man, semantic); err != nil {
		return 0, err
	}
	opsets := onnx.Opsets(m)
	opts := autodiff.Options{SeedGradient: LossScale, ZeroGradients: true}
	if man.GradientCheckpointing != nil {
		segs, weights := checkpointSegments(g, man.Parameters)
		if len(segs) == 0 {
			return 0, fault.Settingsf("gradient_checkpointing: no layers to recompute: no parameter name of the model lies in a list of modules (encoder.block.N, model.decoder.layers.N, ...); train without gradient_checkpointing")
		}
		opts.Checkpoint = &autodiff.Checkpoint{Segments: segs, Weights: weights}
	}
	grads, err := autodiff.Backward(g, opsets, optim.Loss, wrt, opts)
	if err != nil {
		if errors.Is(err, autodiff.ErrNoRule) {
			return 0, fault.Mark(fault.Input, fmt.Errorf("unusable model: %w (--freeze the parameters upstream of that node to train without it)", err))
		}
		return 0, err
	}
	if cp := opts.Checkpoint; cp != nil {
		rec := &Checkpointing{How: "each layer's forward nodes are run again in the backward pass, fed from the layer's inputs once the gradient of its output exists (autodiff.Checkpoint); dropout masks are functions of dropout_seed, so the recomputed masks and gradients are those of the forward pass"}
		for i, s := range cp.Segments {
			rec.Layers = append(rec.Layers, CheckpointedLayer{Module: s.Name, Recomputed: cp.Recomputed[i]})
		}
		man.GradientCheckpointing = rec
	}
	for dom, v := range opsets {
		onnx.SetOpset(m, dom, v)
	}
	if v := onnx.Opset(m, ""); v > 0 && m.GetIrVersion() < onnx.IRVersionFor(v) {
		m.IrVersion = proto.Int64(onnx.IRVersionFor(v))
	}
	b := onnx.NewGraphBuilder(g)
	b.Prefix = "accum/"
	for _, p := range man.Trainable() {
		gr, ok := grads[p.Name]
		if !ok {
			return 0, fmt.Errorf("autodiff returned no gradient for %q", p.Name)
		}
		acc := GradAccumName(p.Name)
		g.Input = append(g.Input, onnx.ValueInfo(acc, onnx.Float32, onnx.Dims(p.Shape...)...))
		kept := b.Op("Mul", []string{acc, Accumulate})
		out := optim.UpdatedName(acc)
		b.Node("Add", []string{kept, gr}, []string{out})
		g.Output = append(g.Output, onnx.ValueInfo(out, onnx.Float32, onnx.Dims(p.Shape...)...))
	}
	return dropoutNodes, nil
}

// NoGradName is the training-graph input that receives the same value as
// parameter p but carries no gradient (see detachPaddingRows).
func NoGradName(p string) string { return "nograd." + p }

// detachPaddingRows reproduces nn.Embedding(padding_idx): each lookup
// Gather(W, ids) of a token embedding becomes
// Where(ids == pad, Gather(nograd.W, ids), Gather(W, ids)), where nograd.W
// is a second input bound to the same value as W. The forward values are
// unchanged, and positions holding the pad id send no gradient to W.
func detachPaddingRows(g *onnxpb.GraphProto, man *Manifest, semantic *arch.Arch) error {
	pad, ok := man.SpecialTokens["pad_token_id"]
	if !ok || semantic == nil || len(semantic.PaddingIdx) == 0 {
		return nil
	}
	b := onnx.NewGraphBuilder(g)
	b.Prefix = "padding_idx/"
	var nodes []*onnxpb.NodeProto
	added := map[string]bool{}
	for _, n := range g.Node {
		if n.GetOpType() != "Gather" || n.GetDomain() != "" || len(n.Input) != 2 || onnx.AttrIntOr(n, "axis", 0) != 0 {
			nodes = append(nodes, n)
			continue
		}
		var p *Parameter
		for i := range man.Parameters {
			if q := &man.Parameters[i]; q.Trainable && q.Name == n.Input[0] && semantic.HasPaddingIdx(q.Name) && !q.Transposed {
				p = q
			}
		}
		if p == nil {
			nodes = append(nodes, n)
			continue
		}
		alias := NoGradName(p.Name)
		if !added[alias] {
			g.Input = append(g.Input, onnx.ValueInfo(alias, onnx.Float32, onnx.Dims(p.Shape...)...))
			added[alias] = true
			man.Notes = append(man.Notes, fmt.Sprintf("%s: lookups of padding id %d pass no gradient (nn.Embedding padding_idx); input %s takes the same value", p.Name, pad, alias))
		}
		ids, out := n.Input[1], n.Output[0]
		live := b.Name("live")
		const0 := b.Name("detached")
		nodes = append(nodes,
			&onnxpb.NodeProto{Name: proto.String(n.GetName()), OpType: proto.String("Gather"), Input: []string{p.Name, ids}, Output: []string{live}},
			&onnxpb.NodeProto{Name: proto.String(n.GetName() + "/detached"), OpType: proto.String("Gather"), Input: []string{alias, ids}, Output: []string{const0}})
		padC := b.Name("pad_id")
		g.Initializer = append(g.Initializer, onnx.MustTensor(padC, nil, []int64{pad}))
		isPad := b.Name("is_pad")
		axis := b.Name("axes")
		g.Initializer = append(g.Initializer, onnx.MustTensor(axis, []int64{1}, []int64{-1}))
		isPadU := b.Name("is_pad_unsqueezed")
		ids64 := b.Name("ids64")
		nodes = append(nodes,
			&onnxpb.NodeProto{OpType: proto.String("Cast"), Input: []string{ids}, Output: []string{ids64}, Attribute: []*onnxpb.AttributeProto{onnx.AttrInt("to", int64(onnx.Int64))}},
			&onnxpb.NodeProto{OpType: proto.String("Equal"), Input: []string{ids64, padC}, Output: []string{isPad}},
			&onnxpb.NodeProto{OpType: proto.String("Unsqueeze"), Input: []string{isPad, axis}, Output: []string{isPadU}},
			&onnxpb.NodeProto{OpType: proto.String("Where"), Input: []string{isPadU, const0, live}, Output: []string{out}})
	}
	g.Node = nodes
	return nil
}

// bindGenerationParams replaces, in a generation graph, every initializer
// that holds a trainable parameter by a graph input named after the
// parameter (a Transpose of it when the graph holds the other layout).
// Initializers are recognised by name (the parameter's, its source
// initializer's or an alias's, also with the encoder's state-dict prefix
// for an encoder exported alone), checked by value, or else by values that
// identify one parameter (not all equal, held by one parameter).
func bindGenerationParams(g *onnxpb.GraphProto, params []Parameter, cands []candidate, prefixes []string) ([]string, error) {
	rawOf := map[string][]byte{}
	for _, c := range cands {
		rawOf[c.onnxName] = c.raw
	}
	type target struct {
		p   Parameter
		raw []byte // graph layout of p
	}
	byName := map[string]target{}
	byValue := map[contentKey][]string{}
	trans := map[contentKey][]string{}
	trainable := map[string]target{}
	for _, p := range params {
		if !p.Trainable {
			continue
		}
		src := p.Name
		if p.ONNXName != "" {
			src = p.ONNXName
		}
		tg := target{p, rawOf[src]}
		trainable[p.Name] = tg
		for _, n := range []string{p.Name, p.ONNXName, stateDictName(p.ONNXName)} {
			if n != "" {
				byName[n] = tg
			}
		}
		for _, a := range p.Aliases {
			byName[a.ONNXName] = tg
		}
		if tg.raw == nil || constantFilled(tg.raw) {
			continue
		}
		byValue[keyOf(p.Shape, tg.raw)] = append(byValue[keyOf(p.Shape, tg.raw)], p.Name)
		if len(p.Shape) == 2 {
			k := keyOf([]int64{p.Shape[1], p.Shape[0]}, transpose2D(tg.raw, p.Shape[0], p.Shape[1]))
			trans[k] = append(trans[k], p.Name)
		}
	}
	used := map[string]bool{}
	kept := g.Initializer[:0]
	var transposes []*onnxpb.NodeProto
	renamed := map[string]string{}
	for _, t := range g.Initializer {
		if !isCandidate(t) {
			kept = append(kept, t)
			continue
		}
		raw, err := onnx.RawBytes(t)
		if err != nil {
			return nil, err
		}
		name, tr, found := "", false, false
		for _, pre := range prefixes {
			for _, n := range []string{t.GetName(), pre + stateDictName(t.GetName())} {
				if tg, ok := byName[n]; ok && !found && n != pre {
					if ttr, same := sameTensor(tg.p.Shape, tg.raw, t.GetDims(), raw); same {
						name, tr, found = tg.p.Name, ttr, true
					}
				}
			}
		}
		if !found && !constantFilled(raw) {
			k := keyOf(t.GetDims(), raw)
			if ns := byValue[k]; len(ns) == 1 && len(trans[k]) == 0 {
				name, found = ns[0], true
			} else if ns := trans[k]; len(ns) == 1 && len(byValue[k]) == 0 {
				name, tr, found = ns[0], true, true
			}
		}
		if !found {
			kept = append(kept, t)
			continue
		}
		old := t.GetName()
		if tr {
			transposes = append(transposes, &onnxpb.NodeProto{Name: proto.String("params/transpose_" + old), OpType: proto.String("Transpose"),
				Input: []string{name}, Output: []string{old}, Attribute: []*onnxpb.AttributeProto{onnx.AttrInts("perm", []int64{1, 0})}})
		} else if old != name {
			renamed[old] = name
		}
		used[name] = true
	}
	g.Initializer = kept
	onnx.RenameValues(g, renamed)
	g.Node = append(transposes, g.Node...)
	names := slices.Sorted(maps.Keys(used))
	var params2 []*onnxpb.ValueInfoProto
	for _, n := range names {
		p := trainable[n].p
		params2 = append(params2, onnx.ValueInfo(n, onnx.Float32, onnx.Dims(p.Shape...)...))
	}
	// Drop stale input entries of old exporters, then add the parameters.
	ins := g.Input[:0]
	for _, in := range g.Input {
		if !used[in.GetName()] && renamed[in.GetName()] == "" {
			ins = append(ins, in)
		}
	}
	g.Input = append(ins, params2...)
	return names, nil
}

// resolveParameters renames each parameter's initializer after the
// parameter and makes its aliases read it (renamed, or through a Transpose).
func resolveParameters(g *onnxpb.GraphProto, params []Parameter, source string) error {
	renamed := map[string]string{}
	drop := map[string]bool{}
	var transposes []*onnxpb.NodeProto
	for _, p := range params {
		if p.ONNXName != "" && p.ONNXName != p.Name {
			renamed[p.ONNXName] = p.Name
		}
		for _, a := range p.Aliases {
			drop[a.ONNXName] = true
			if a.Transposed {
				transposes = append(transposes, &onnxpb.NodeProto{Name: proto.String("params/transpose_" + a.ONNXName), OpType: proto.String("Transpose"),
					Input: []string{p.Name}, Output: []string{a.ONNXName}, Attribute: []*onnxpb.AttributeProto{onnx.AttrInts("perm", []int64{1, 0})}})
			} else {
				renamed[a.ONNXName] = p.Name
			}
		}
	}
	// A new name must not be a value the graph keeps.
	keeps := map[string]bool{}
	for _, t := range g.Initializer {
		if _, gone := renamed[t.GetName()]; !gone && !drop[t.GetName()] {
			keeps[t.GetName()] = true
		}
	}
	for _, in := range g.Input {
		keeps[in.GetName()] = keeps[in.GetName()] || !isInitializer(g, in.GetName())
	}
	for _, n := range g.Node {
		for _, o := range n.Output {
			keeps[o] = true
		}
	}
	for from, to := range renamed {
		if keeps[to] {
			return badModel("%s: cannot rename initializer %q to %q: the graph already uses that name", source, from, to)
		}
	}
	kept := g.Initializer[:0]
	for _, t := range g.Initializer {
		if !drop[t.GetName()] {
			kept = append(kept, t)
		}
	}
	g.Initializer = kept
	ins := g.Input[:0]
	for _, in := range g.Input {
		if !drop[in.GetName()] {
			ins = append(ins, in)
		}
	}
	g.Input = ins
	onnx.RenameValues(g, renamed)
	g.Node = append(transposes, g.Node...)
	return nil
}

// loadForward loads cfg.Model, or composes the forward graph from the
// encoder and decoder graphs; source names it in messages.
func loadForward(cfg Config) (*onnxpb.ModelProto, *Composition, string, error) {
	if cfg.Model != "" {
		m, err := loadModel(cfg.Model)
		return m, nil, cfg.Model, err
	}
	dec := cfg.Decoder
	if dec == "" {
		dec = cfg.DecoderMerged
	}
	m, comp, err := ComposeForward(cfg.Encoder, dec)
	if err != nil {
		return nil, nil, "", err
	}
	return m, comp, comp.Encoder + " + " + comp.Decoder, nil
}

type generationGraph struct {
	role, file, source string
	model              *onnxpb.ModelProto
}

// generationGraphs loads the generation graphs given: encoder, decoder and
// decoder-with-past, the decoders split from the merged one where only
// that is given.
func generationGraphs(cfg Config) ([]generationGraph, error) {
	noPast, withPast := false, true
	var out []generationGraph
	for _, d := range []struct {
		role, given, file string
		split             *bool
	}{{"encoder", cfg.Encoder, EncoderFile, nil}, {"decoder", cfg.Decoder, DecoderFile, &noPast}, {"decoder_with_past", cfg.DecoderWithPast, DecoderWithPastFile, &withPast}} {
		path, split := d.given, (*bool)(nil)
		if path == "" && d.split != nil {
			path, split = cfg.DecoderMerged, d.split
		}
		if path == "" {
			continue
		}
		m, err := loadModel(path)
		if err != nil {
			return nil, err
		}
		src := filepath.Base(path)
		if split != nil {
			if _, err := InlineDecoderBranch(m, *split, path); err != nil {
				return nil, err
			}
			src += map[bool]string{true: " (branch with past)", false: " (branch without past)"}[*split]
		}
		out = append(out, generationGraph{role: d.role, file: d.file, source: src, model: m})
	}
	return out, nil
}

// writeInitialParameters writes every parameter (frozen ones too) under its
// PyTorch name and layout, so the file loads into the PyTorch model.
func writeInitialParameters(path string, params []Parameter, cands []candidate) error {
	raw := map[string][]byte{}
	for _, c := range cands {
		raw[c.onnxName] = c.raw
	}
	tensors := map[string]safetensors.Tensor{}
	for _, p := range params {
		src := p.Name
		if p.ONNXName != "" {
			src = p.ONNXName
		}
		data := raw[src]
		if p.Transposed {
			data = transpose2D(data, p.Shape[0], p.Shape[1])
		}
		tensors[p.Name] = safetensors.Tensor{DType: safetensors.Float32, Shape: p.TorchShape(), Data: data}
	}
	return safetensors.WriteFile(path, tensors, map[string]string{"format": "pt"})
}

// readConfigJSON returns config.json beside the model as a map (nil when
// absent or malformed; readConfigs reports nothing either).
func readConfigJSON(dir string) map[string]any {
	b, err := modelfile.ReadIn(dir, "config.json", 16<<20)
	if err != nil {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	return m
}

// readConfigs reads model_type and the special token ids from config.json
// and generation_config.json beside the model (generation_config wins).
func readConfigs(dir string) (string, map[string]int64) {
	special := map[string]int64{}
	modelType := ""
	for _, f := range []string{"config.json", "generation_config.json"} {
		b, err := modelfile.ReadIn(dir, f, 16<<20)
		if err != nil {
			continue
		}
		var m map[string]any
		if json.Unmarshal(b, &m) != nil {
			continue
		}
		if t, ok := m["model_type"].(string); ok {
			modelType = t
		}
		for _, k := range []string{"pad_token_id", "eos_token_id", "bos_token_id", "decoder_start_token_id", "unk_token_id", "forced_bos_token_id", "forced_eos_token_id"} {
			if v, ok := m[k].(float64); ok {
				special[k] = int64(v)
			}
		}
	}
	if len(special) == 0 {
		special = nil
	}
	return modelType, special
}

func semantics() Semantics {
	return Semantics{
		Loss: "HF seq2seq loss on logits: mean over tokens whose label != -100 of -log_softmax at the label " +
			"(torch CrossEntropyLoss(ignore_index=-100)); with label_smoothing eps, transformers' LabelSmoother: " +
			"(1-eps)*nll + eps*sum(-log_softmax over vocab and active tokens)/(active tokens*vocab). " +
			"loss_sum = loss*token_count, token_count = labels != -100.",
		GradientAccumulation: "training graph: new.grad_accum.<p> = accumulate*grad_accum.<p> + loss_scale*d(loss)/d(p), accumulate 0 or 1 (buffers start at zero); " +
			"loss_scale is 1/(micro-batches in the accumulation window) for models whose forward takes no **kwargs, " +
			"(micro-batch tokens)/(window tokens) for a model whose loss uses num_items_in_batch (HF Trainer.training_step). " +
			"Note: in transformers 5.24 T5, BART and Marian forwards take **kwargs but return the micro-batch mean, so the Trainer " +
			"divides by neither: HF's effective loss_scale is then 1 for every micro-batch.",
		AdamW: "torch.nn.utils.clip_grad_norm_(max_grad_norm, skipped when 0; grad_norm is the pre-clip total L2 norm), then " +
			"torch.optim.AdamW single-tensor update: p *= 1-lr*wd (decay set only: HF get_decay_parameter_names), " +
			"m = lerp(m, g, 1-beta1), v = beta2*v + (1-beta2)*g*g, p -= lr/(1-beta1^step) * m/(sqrt(v)/sqrt(1-beta2^step)+eps). " +
			"Hyperparameters in float64 as Python, cast to float32 at the kernels; step is torch's state step after increment.",
		AdamWLegacy: "clip as AdamW, then transformers' legacy AdamW (optim adamw_hf; ONNX Runtime training's AdamWOptimizer " +
			"with adam_mode 1): m = beta1*m + (1-beta1)*g, v = beta2*v + (1-beta2)*g*g, " +
			"p -= lr*sqrt(1-beta2^step)/(1-beta1^step) * m/(sqrt(v)+eps), then p -= lr*wd*p (decay set only).",
		Adafactor: "clip as AdamW, then transformers' Adafactor as the Trainer builds it (optim adafactor: scale_parameter, " +
			"relative_step and warmup_init off, beta1 None, eps (1e-30, 1e-3), clip_threshold 1, decay_rate -0.8): " +
			"beta2t = 1-step^-0.8, u = g*g+1e-30; for 2+ dims row/col EMAs of u's means over torch's last / second-last dim, " +
			"u = rsqrt(row/mean(row)) x rsqrt(col) * g, else v = EMA of u, u = rsqrt(v)*g; u /= max(rms(u), 1); " +
			"p += (-wd*lr)*p (decay set only); p -= lr*u.",
		SGD: "clip as AdamW, then torch.optim.SGD (dampening 0, nesterov off): g += wd*p (decay set only), " +
			"buf = momentum*buf + g (buf starts at zero, equal to torch's clone on the first step), p -= lr*buf.",
		Dropout: "none: the forward graph has no Dropout nodes (exported in eval mode); training runs without dropout",
	}
}
