package lora

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/modelfile"
	"github.com/ortrain/ortrain/internal/safetensors"
)

// Files of a PEFT adapter folder.
const (
	ConfigFile  = "adapter_config.json"
	WeightsFile = "adapter_model.safetensors"
)

// keyPrefix is what PeftModel puts before the base model's own names in
// the state dict it saves (PeftModel.base_model is the LoraModel, whose
// .model is the base model).
const keyPrefix = "base_model.model."

// Adapter is what an artifact folder trains: the config and the modules it
// resolved to in this model.
type Adapter struct {
	Config Config `json:"config"`
	// Modules are the targeted linear layers, by module name.
	Modules []Module `json:"modules"`
	// Saved are further parameters of the model that train and that the
	// adapter file carries (biases under bias all / lora_only, the
	// parameters of modules_to_save), by the model's own names.
	Saved []Saved `json:"saved,omitempty"`
	// BaseModel is what adapter_config.json's base_model_name_or_path says.
	BaseModel string `json:"base_model,omitempty"`
}

// Saved is a parameter of the model that trains in full and is saved in
// the adapter.
type Saved struct {
	Name  string  `json:"name"`
	Shape []int64 `json:"shape"` // PyTorch shape
	// InModuleToSave: a parameter of a module of modules_to_save, which
	// PEFT trains as a copy beside the original.
	InModuleToSave bool `json:"in_module_to_save,omitempty"`
}

// Module is one adapted linear layer.
type Module struct {
	Name string `json:"name"` // module name (encoder.block.0.layer.0.SelfAttention.q)
	// Weight is the linear layer's weight (the model's own name).
	Weight string `json:"weight"`
	// Bias is its bias, when it has one.
	Bias string `json:"bias,omitempty"`
	In   int64  `json:"in_features"`
	Out  int64  `json:"out_features"`
}

// AName and BName are the names ortrain gives a module's lora_A and lora_B
// weights (PEFT's state-dict names without the adapter name).
func AName(module string) string { return module + ".lora_A.weight" }
func BName(module string) string { return module + ".lora_B.weight" }

// Key is the key PEFT's adapter_model.safetensors stores a trained tensor
// under: base_model.model.<name>, with a targeted layer's bias under
// <module>.base_layer.bias (LoRA wraps the layer as base_layer).
func (a *Adapter) Key(name string) string {
	for _, m := range a.Modules {
		if m.Bias != "" && name == m.Bias {
			return keyPrefix + m.Name + ".base_layer." + strings.TrimPrefix(name, m.Name+".")
		}
	}
	return keyPrefix + name
}

// Trained lists every tensor the adapter file holds, by ortrain's names:
// each module's A and B, then the saved parameters.
func (a *Adapter) Trained() []string {
	var out []string
	for _, m := range a.Modules {
		out = append(out, AName(m.Name), BName(m.Name))
	}
	for _, s := range a.Saved {
		out = append(out, s.Name)
	}
	return out
}

// TorchShape is the PyTorch shape of a module's A ([r, in]) or B ([out, r]).
func (m Module) AShape(r int) []int64 { return []int64{int64(r), m.In} }
func (m Module) BShape(r int) []int64 { return []int64{m.Out, int64(r)} }

// peftConfig is adapter_config.json as PEFT 0.21.2 writes it for LoRA.
func peftConfig(c Config, baseModel string) map[string]any {
	var save any
	if len(c.ModulesToSave) > 0 {
		save = c.ModulesToSave
	}
	return map[string]any{
		"alora_invocation_tokens": nil, "alpha_pattern": map[string]any{}, "arrow_config": nil, "auto_mapping": nil,
		"base_model_name_or_path": baseModel, "bias": c.Bias, "corda_config": nil, "ensure_weight_tying": false,
		"eva_config": nil, "exclude_modules": nil, "fan_in_fan_out": false, "inference_mode": true,
		"init_lora_weights": true, "kasa_config": nil, "layer_replication": nil, "layers_pattern": nil,
		"layers_to_transform": nil, "loftq_config": map[string]any{}, "lora_alpha": c.Alpha, "lora_bias": false,
		"lora_dropout": c.Dropout, "lora_ga_config": nil, "megatron_config": nil, "megatron_core": "megatron.core",
		"modules_to_save": save, "monteclora_config": nil, "peft_type": "LORA", "peft_version": PEFTVersion,
		"qalora_group_size": 16, "r": c.R, "rank_pattern": map[string]any{}, "revision": nil,
		"target_modules": c.marshalTargets(), "target_parameters": nil, "task_type": "SEQ_2_SEQ_LM",
		"trainable_token_indices": nil, "use_bdlora": nil, "use_dora": false, "use_qalora": false,
		"use_rslora": c.UseRSLoRA, "velora_config": nil,
	}
}

// WriteConfig writes adapter_config.json into dir as PEFT writes it.
func WriteConfig(dir string, c Config, baseModel string) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(peftConfig(c, baseModel)); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, ConfigFile), b.Bytes(), 0o644)
}

// WriteWeights writes adapter_model.safetensors: tensors by ortrain's
// names (PyTorch layout) stored under PEFT's keys.
func (a *Adapter) WriteWeights(dir string, tensors map[string]safetensors.Tensor) error {
	out := make(map[string]safetensors.Tensor, len(tensors))
	for _, name := range a.Trained() {
		t, ok := tensors[name]
		if !ok {
			return fmt.Errorf("adapter: no value for %s", name)
		}
		out[a.Key(name)] = t
	}
	return safetensors.WriteFile(filepath.Join(dir, WeightsFile), out, map[string]string{"format": "pt"})
}

// Unsupported LoraConfig features: what a value other than the default
// means, for the error that refuses an adapter using it.
var unsupported = []struct {
	key  string
	why  string
	zero func(json.RawMessage) bool
}{
	{"use_dora", "DoRA (weight-decomposed LoRA)", isFalse},
	{"lora_bias", "a bias on lora_B", isFalse},
	{"fan_in_fan_out", "fan_in_fan_out (GPT-2's Conv1D layers)", isFalse},
	{"rank_pattern", "per-module ranks (rank_pattern)", isEmpty},
	{"alpha_pattern", "per-module alphas (alpha_pattern)", isEmpty},
	{"layers_to_transform", "layers_to_transform", isEmpty},
	{"layers_pattern", "layers_pattern", isEmpty},
	{"exclude_modules", "exclude_modules", isEmpty},
	{"target_parameters", "target_parameters (LoRA on parameters, not modules)", isEmpty},
	{"trainable_token_indices", "trainable_token_indices", isEmpty},
	{"layer_replication", "layer_replication", isEmpty},
	{"alora_invocation_tokens", "activated LoRA (alora_invocation_tokens)", isEmpty},
	{"use_qalora", "QALoRA", isFalse},
	{"use_bdlora", "BD-LoRA", isEmpty},
}

func isFalse(r json.RawMessage) bool {
	s := strings.TrimSpace(string(r))
	return s == "false" || s == "null"
}

func isEmpty(r json.RawMessage) bool {
	s := strings.TrimSpace(string(r))
	return s == "null" || s == "{}" || s == "[]" || s == `""`
}

// ReadConfig reads dir/adapter_config.json (PEFT's LoraConfig). What
// ortrain cannot train or apply is refused by name; the file's problems
// are bad input naming the file and the key.
func ReadConfig(dir string) (Config, string, error) {
	path := filepath.Join(dir, ConfigFile)
	b, err := modelfile.ReadIn(dir, ConfigFile, 4<<20)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Config{}, "", fault.Inputf("%s: no %s: --adapter names a folder that PEFT's save_pretrained wrote (adapter_config.json and adapter_model.safetensors)", dir, ConfigFile)
		}
		return Config{}, "", fault.Mark(fault.Input, err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return Config{}, "", fault.Inputf("%s: not a JSON object: %v", path, err)
	}
	str := func(key string) (string, error) {
		var s *string
		if v, ok := raw[key]; ok {
			if err := json.Unmarshal(v, &s); err != nil {
				return "", fault.Inputf("%s: %s: want a string, got %s", path, key, v)
			}
		}
		if s == nil {
			return "", nil
		}
		return *s, nil
	}
	if t, err := str("peft_type"); err != nil {
		return Config{}, "", err
	} else if t != "LORA" {
		return Config{}, "", fault.Inputf("%s: peft_type %q: ortrain applies LoRA adapters only (peft_type LORA)", path, t)
	}
	if t, err := str("task_type"); err != nil {
		return Config{}, "", err
	} else if t != "" && t != "SEQ_2_SEQ_LM" {
		return Config{}, "", fault.Inputf("%s: task_type %q: the adapter was made for another kind of model; ortrain trains sequence-to-sequence models (task_type SEQ_2_SEQ_LM)", path, t)
	}
	for _, u := range unsupported {
		if v, ok := raw[u.key]; ok && !u.zero(v) {
			return Config{}, "", fault.Inputf("%s: %s %s: ortrain does not support %s; use an adapter without it", path, u.key, v, u.why)
		}
	}
	c := Defaults()
	for _, key := range []string{"r", "lora_alpha", "lora_dropout", "target_modules", "bias", "modules_to_save", "use_rslora"} {
		v, ok := raw[key]
		if !ok {
			continue
		}
		var val any
		if err := json.Unmarshal(v, &val); err != nil {
			return Config{}, "", fault.Inputf("%s: %s: %v", path, key, err)
		}
		if val == nil && key != "modules_to_save" {
			continue
		}
		if err := c.Set(key, val); err != nil {
			return Config{}, "", fault.Inputf("%s: %v", path, err)
		}
	}
	// A string target_modules is a regular expression in PEFT, whatever it
	// looks like ("q" matches only a module named q).
	if v, ok := raw["target_modules"]; ok {
		var s string
		if json.Unmarshal(v, &s) == nil {
			c.TargetModules, c.TargetRegex = nil, s
		}
	}
	if err := c.Validate(path); err != nil {
		return Config{}, "", fault.Mark(fault.Input, err)
	}
	base, err := str("base_model_name_or_path")
	if err != nil {
		return Config{}, "", err
	}
	return c, base, nil
}

// ReadWeights reads dir/adapter_model.safetensors and returns the tensors
// of a, by ortrain's names, in PyTorch layout. Every tensor a trains must
// be there with its shape (r is the rank); a key the adapter does not
// train means the file was made for another model or config.
func (a *Adapter) ReadWeights(dir string) (map[string][]float32, error) {
	path := filepath.Join(dir, WeightsFile)
	if err := modelfile.CheckIn(dir, WeightsFile); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fault.Inputf("%s: no %s (PEFT's save_pretrained writes it beside adapter_config.json; adapter_model.bin is not read)", dir, WeightsFile)
		}
		return nil, fault.Mark(fault.Input, err)
	}
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, fault.Inputf("%s: %v", path, err)
	}
	shapes := a.shapes()
	byKey := map[string]string{}
	for _, name := range a.Trained() {
		byKey[a.Key(name)] = name
	}
	for _, k := range f.Names() {
		if _, ok := byKey[k]; !ok {
			return nil, fault.Inputf("%s: tensor %s is no tensor this adapter trains on this model (it trains %s): the adapter was made for another base model or with another LoRA config", path, k, describeKeys(byKey))
		}
	}
	out := map[string][]float32{}
	for _, name := range a.Trained() {
		k := a.Key(name)
		t, ok := f.Tensors[k]
		if !ok {
			return nil, fault.Inputf("%s: tensor %s is missing: the adapter was made for another base model or with another LoRA config (target_modules, bias, modules_to_save)", path, k)
		}
		if !slices.Equal(t.Shape, shapes[name]) {
			return nil, fault.Inputf("%s: tensor %s has shape %v, this model needs %v: the adapter was made for another base model (or another rank)", path, k, t.Shape, shapes[name])
		}
		v, err := t.Float32s()
		if err != nil {
			return nil, fault.Inputf("%s: tensor %s: %v", path, k, err)
		}
		for _, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return nil, fault.Inputf("%s: tensor %s holds non-finite values", path, k)
			}
		}
		out[name] = v
	}
	return out, nil
}

// shapes are the PyTorch shapes of the tensors the adapter trains.
func (a *Adapter) shapes() map[string][]int64 {
	out := map[string][]int64{}
	for _, m := range a.Modules {
		out[AName(m.Name)] = m.AShape(a.Config.R)
		out[BName(m.Name)] = m.BShape(a.Config.R)
	}
	for _, s := range a.Saved {
		out[s.Name] = s.Shape
	}
	return out
}

func describeKeys(byKey map[string]string) string {
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if len(keys) > 3 {
		return fmt.Sprintf("%s, ... (%d tensors)", strings.Join(keys[:3], ", "), len(keys))
	}
	return strings.Join(keys, ", ")
}
