package artifacts

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/lora"
	"github.com/ortrain/ortrain/internal/modelfile"
)

// Format names the artifact folder layout; FormatVersion changes whenever a
// reader of an older layout would misread a newer one.
const (
	Format        = "ortrain-artifacts"
	FormatVersion = 1
	ManifestFile  = "manifest.json"
)

// Files of an artifact folder.
const (
	TrainingFile        = "training_model.onnx"
	EvalFile            = "eval_model.onnx"
	AdamWFile           = "optimizer_model.onnx"
	SGDFile             = "optimizer_sgd_model.onnx"
	AdamWLegacyFile     = "optimizer_adamw_legacy_model.onnx"
	AdafactorFile       = "optimizer_adafactor_model.onnx"
	EncoderFile         = "encoder_model.onnx"
	DecoderFile         = "decoder_model.onnx"
	DecoderWithPastFile = "decoder_with_past_model.onnx"
	ParametersFile      = "model.safetensors"
	ForwardFile         = "forward_model.onnx"
)

// DropoutSeed is the training-graph input that seeds dropout masks, when the
// graph has dropout (a seed per step makes a step reproducible).
const DropoutSeed = "dropout_seed"

// Manifest describes an artifact folder (manifest.json).
type Manifest struct {
	Format        string `json:"format"`
	FormatVersion int    `json:"format_version"`
	// OrtrainVersion is the version of the tool that wrote the folder.
	OrtrainVersion string `json:"ortrain_version"`
	Source         Source `json:"source"`
	// ModelType is config.json's model_type beside the source model, if any.
	ModelType string `json:"model_type,omitempty"`
	// Architecture is the row of the architecture table the model trains
	// by (nil: no config.json and no --assume_architecture).
	Architecture *Architecture `json:"architecture,omitempty"`
	// Opsets of the training and eval graphs (domain "" is the standard one).
	Opsets         map[string]int64 `json:"opsets"`
	OptimizerOpset int64            `json:"optimizer_opset"`
	LabelSmoothing float64          `json:"label_smoothing"`
	// DropoutNodes is the number of Dropout nodes trained with seeded masks.
	DropoutNodes int         `json:"dropout_nodes"`
	Files        Files       `json:"files"`
	Inputs       []Input     `json:"inputs"`
	Parameters   []Parameter `json:"parameters"`
	// Unmatched are the float initializers that are no parameter ortrain
	// could identify: constants of the graphs, reported before training.
	Unmatched        []Unmatched      `json:"unmatched,omitempty"`
	SpecialTokens    map[string]int64 `json:"special_tokens,omitempty"`
	Freeze           []string         `json:"freeze,omitempty"`
	Semantics        Semantics        `json:"semantics"`
	Generation       []Generation     `json:"generation,omitempty"`
	Notes            []string         `json:"notes,omitempty"`
	MatchedByContent int              `json:"matched_by_content"`
	// Composition is set when the forward graph was composed from
	// Optimum's encoder and decoder graphs.
	Composition *Composition `json:"composition,omitempty"`
	// Variants are the graphs of lower precisions (mixed precision,
	// half-precision models) beside the float32 ones.
	Variants []Variant `json:"variants,omitempty"`
	// LoRA is set when the folder trains LoRA adapters: the config, the
	// adapted modules and the base parameters that train beside them.
	LoRA *lora.Adapter `json:"lora,omitempty"`
	// GradientCheckpointing is set when the training graph recomputes
	// each layer's activations in the backward pass.
	GradientCheckpointing *Checkpointing `json:"gradient_checkpointing,omitempty"`
}

// Source records what the artifacts were made from.
type Source struct {
	// Model is the forward graph's file, or "encoder_model.onnx + decoder_model.onnx" when composed.
	Model   string `json:"model"`
	Weights string `json:"weights,omitempty"`
}

// Files names the graphs and the parameter file, relative to the folder.
type Files struct {
	Training string `json:"training"`
	Eval     string `json:"eval"`
	AdamW    string `json:"optimizer_adamw"`
	SGD      string `json:"optimizer_sgd"`
	// AdamWLegacy is transformers' legacy AdamW (optim "adamw_hf"; ONNX
	// Runtime training's adam_mode 1); absent in folders made before it.
	AdamWLegacy string `json:"optimizer_adamw_legacy,omitempty"`
	// Adafactor is transformers' Adafactor as the Trainer builds it (optim
	// "adafactor"); absent in folders made before it.
	Adafactor       string `json:"optimizer_adafactor,omitempty"`
	Encoder         string `json:"encoder,omitempty"`
	Decoder         string `json:"decoder,omitempty"`
	DecoderWithPast string `json:"decoder_with_past,omitempty"`
	Parameters      string `json:"parameters"`
	// Forward is the forward graph (batch inputs -> logits) with the
	// trainable parameters as inputs: generation by recomputation and
	// exported model.onnx files come from it. Absent in older folders.
	Forward string `json:"forward,omitempty"`
}

// Input is a batch or control input of the training and eval graphs.
type Input struct {
	Name  string   `json:"name"`
	Role  string   `json:"role"`
	DType string   `json:"dtype"`
	Shape []string `json:"shape"`
	// Graphs lists the graphs that take it ("training", "eval").
	Graphs []string `json:"graphs"`
}

// Parameter is one float initializer of the source model that ortrain
// manages: trainable ones are graph inputs, frozen ones stay constants.
type Parameter struct {
	// Name is the model's own (PyTorch state_dict) name, used in the graphs,
	// in safetensors files and for HF's weight-decay rule.
	Name string `json:"name"`
	// ONNXName is the initializer's name in the source model when it differs.
	ONNXName string  `json:"onnx_name,omitempty"`
	Shape    []int64 `json:"shape"` // shape in the graphs
	DType    string  `json:"dtype"`
	// Transposed: the graphs hold the transpose of the PyTorch tensor
	// (TorchScript exports Linear weights that way); safetensors files hold
	// the PyTorch layout.
	Transposed bool `json:"transposed,omitempty"`
	// Aliases are further initializers of the source graph holding this
	// tensor (tied weights, folded transposes); the graphs read the
	// parameter in their place.
	Aliases []Alias `json:"aliases,omitempty"`
	// MatchedBy says how the parameter was identified: name, module path,
	// content or --param-name.
	MatchedBy string `json:"matched_by,omitempty"`
	// NotInWeights: named by the graph, but absent from the weights file;
	// kept frozen.
	NotInWeights bool `json:"not_in_weights,omitempty"`
	Trainable    bool `json:"trainable"`
	// SharedInput: a frozen parameter that the graphs take as an input,
	// like a trainable one, so that one value on the device serves the
	// training, eval and generation sessions (LoRA's base weights) instead
	// of a constant copy in each.
	SharedInput bool   `json:"shared_input,omitempty"`
	FrozenBy    string `json:"frozen_by,omitempty"`
	Decay       bool   `json:"decay"`
}

// TorchShape is the parameter's shape in PyTorch (and in safetensors files).
func (p Parameter) TorchShape() []int64 {
	if p.Transposed && len(p.Shape) == 2 {
		return []int64{p.Shape[1], p.Shape[0]}
	}
	return append([]int64(nil), p.Shape...)
}

// ToGraph converts values of p from the PyTorch layout to the graphs'.
func (p Parameter) ToGraph(v []float32) []float32 {
	if !p.Transposed {
		return v
	}
	return Transpose(v, p.Shape[1], p.Shape[0])
}

// ToTorch converts values of p from the graphs' layout to PyTorch's.
func (p Parameter) ToTorch(v []float32) []float32 {
	if !p.Transposed {
		return v
	}
	return Transpose(v, p.Shape[0], p.Shape[1])
}

// Transpose transposes a row-major [rows, cols] matrix.
func Transpose(v []float32, rows, cols int64) []float32 {
	out := make([]float32, len(v))
	for r := int64(0); r < rows; r++ {
		for c := int64(0); c < cols; c++ {
			out[c*rows+r] = v[r*cols+c]
		}
	}
	return out
}

// Generation describes a rewritten generation graph.
type Generation struct {
	Role string `json:"role"` // encoder, decoder, decoder_with_past
	File string `json:"file"`
	// Parameters lists the parameter inputs the graph takes.
	Parameters []string `json:"parameters"`
	Source     string   `json:"source"`
}

// Semantics documents, for readers of the folder, what the graphs compute.
type Semantics struct {
	Loss                 string `json:"loss"`
	GradientAccumulation string `json:"gradient_accumulation"`
	AdamW                string `json:"optimizer_adamw"`
	SGD                  string `json:"optimizer_sgd"`
	AdamWLegacy          string `json:"optimizer_adamw_legacy"`
	Adafactor            string `json:"optimizer_adafactor,omitempty"`
	Dropout              string `json:"dropout"`
}

// ReadManifest reads dir/manifest.json and checks its format; a folder
// that is not a readable artifact folder is bad input (fault.Input).
func ReadManifest(dir string) (*Manifest, error) {
	m, err := readManifest(dir)
	if err != nil {
		return nil, fault.Mark(fault.Input, err)
	}
	return m, nil
}

func readManifest(dir string) (*Manifest, error) {
	path := filepath.Join(dir, ManifestFile)
	b, err := modelfile.ReadIn(dir, ManifestFile, 256<<20)
	if err != nil {
		return nil, fmt.Errorf("reading the artifact manifest: %w (make the folder with `ortrain artifacts`)", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: not a valid manifest: %v", path, err)
	}
	if m.Format != Format {
		return nil, fmt.Errorf("%s: format %q is not %q", path, m.Format, Format)
	}
	if m.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("%s: format version %d, this ortrain reads version %d; rebuild the folder with `ortrain artifacts`", path, m.FormatVersion, FormatVersion)
	}
	return &m, nil
}

func writeManifest(dir string, m *Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, ManifestFile), append(b, '\n'), 0o644)
}

// Trainable returns the trainable parameters in graph input order.
func (m *Manifest) Trainable() []Parameter {
	var out []Parameter
	for _, p := range m.Parameters {
		if p.Trainable {
			out = append(out, p)
		}
	}
	return out
}

// ParameterReport describes, one line each, how the parameters were
// identified, which are frozen and why, and every float initializer that
// is no parameter (kept as a constant) with what would change that; flag
// is how the caller spells the option that names initializers by hand.
func (m *Manifest) ParameterReport(flag string) []string {
	trainable, frozen, aliases := 0, 0, 0
	by := map[string]int{}
	for _, p := range m.Parameters {
		if p.Trainable {
			trainable++
		} else {
			frozen++
		}
		if p.MatchedBy != "" {
			by[p.MatchedBy]++
		}
		aliases += len(p.Aliases)
	}
	var how []string
	for _, k := range []string{ByName, ByModulePath, ByContent, ByHand} {
		if by[k] > 0 {
			how = append(how, fmt.Sprintf("%d by %s", by[k], k))
		}
	}
	line := fmt.Sprintf("parameters: %d trainable, %d frozen", trainable, frozen)
	if len(how) > 0 {
		line += "; identified " + strings.Join(how, ", ")
	}
	if aliases > 0 {
		line += fmt.Sprintf("; %d further initializer(s) are tied copies of them", aliases)
	}
	if m.Source.Weights != "" {
		line += " (checked against " + m.Source.Weights + ")"
	}
	out := []string{line}
	if m.LoRA != nil {
		// PEFT's print_trainable_parameters line; the base weights the
		// adapters freeze are counted, not listed.
		t, all := m.LoRACounts()
		out = append(out, fmt.Sprintf("LoRA %s: %d adapted modules; trainable params: %d || all params: %d || trainable%%: %.4f",
			m.LoRA.Config, len(m.LoRA.Modules), t, all, 100*float64(t)/float64(all)))
	}
	for _, p := range m.Parameters {
		if !p.Trainable && !(m.LoRA != nil && p.FrozenBy == frozenByLoRA) {
			out = append(out, fmt.Sprintf("frozen: %s %v (%s)", p.Name, p.TorchShape(), p.FrozenBy))
		}
	}
	for _, u := range m.Unmatched {
		fix := fmt.Sprintf("name it with %s %s=NAME", flag, u.ONNXName)
		if m.Source.Weights == "" {
			fix = "put the model's model.safetensors (save_pretrained) beside the graphs so that ortrain can identify it by value, or " + fix
		}
		used := ""
		if u.UsedBy != "" {
			used = ", read by " + u.UsedBy
		}
		out = append(out, fmt.Sprintf("unmatched: initializer %s %v (%s%s) is no parameter ortrain can identify: %s; it stays a constant, not trained and not written to checkpoints (to change that, %s)",
			u.ONNXName, u.Shape, byteSize(u.Bytes), used, u.Reason, fix))
	}
	return out
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}
