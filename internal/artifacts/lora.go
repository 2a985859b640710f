package artifacts

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/lora"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/optim"
)

// ByLoRA marks the parameters the LoRA rewrite adds (Parameter.MatchedBy).
const ByLoRA = "lora"

// notTrainedByHF starts FrozenBy of what the architecture does not train.
const notTrainedByHF = "not trained by HF: "

// frozenByLoRA is Parameter.FrozenBy of a base weight an adapter freezes.
const frozenByLoRA = "lora: base weights stay frozen (PEFT)"

// applyLoRA turns the resolved forward graph g into the adapted one: it
// resolves the config's target modules over the model's parameters, adds
// lora_A and lora_B of every targeted linear layer as trainable parameters
// (with their initial values as initializers of g, and as candidates for
// the parameter file), freezes every other parameter but the biases and
// modules the config trains, and adds the adapter branches to g. initial,
// when not nil, holds the initial values (PyTorch layout) of an adapter
// folder, by ortrain's names.
func applyLoRA(g *onnxpb.GraphProto, man *Manifest, cfg lora.Config, strict bool, initial func(*lora.Adapter) (map[string][]float32, error), opset int64) ([]candidate, error) {
	byName := map[string]int{}
	var names []string
	for i, p := range man.Parameters {
		byName[p.Name] = i
		names = append(names, p.Name)
	}
	modules := lora.ModuleNames(names)
	dims := map[string][2]int64{}
	linear := func(m string) bool {
		if _, ok := dims[m]; ok {
			return true
		}
		i, ok := byName[m+".weight"]
		if !ok || len(man.Parameters[i].Shape) != 2 {
			return false
		}
		in, out, ok, err := lora.Dims(g, m+".weight", man.Parameters[i].Shape)
		if err != nil || !ok {
			return false
		}
		dims[m] = [2]int64{in, out}
		return true
	}
	targets, err := cfg.Targets(modules, linear, strict)
	if err != nil {
		return nil, err
	}
	hasParams := func(m string) bool {
		for _, n := range names {
			if strings.HasPrefix(n, m+".") {
				return true
			}
		}
		return false
	}
	savedModules, err := cfg.SavedModules(modules, hasParams)
	if err != nil {
		return nil, err
	}
	ad := &lora.Adapter{Config: cfg}
	for _, m := range targets {
		mod := lora.Module{Name: m, Weight: m + ".weight", In: dims[m][0], Out: dims[m][1]}
		if _, ok := byName[m+".bias"]; ok {
			mod.Bias = m + ".bias"
		}
		ad.Modules = append(ad.Modules, mod)
	}
	// What trains besides the adapters: PEFT's bias="all" sets
	// requires_grad on every parameter named bias or ending in ".bias"
	// (T5's relative_attention_bias.weight is none);
	// lora_only on the targeted layers' biases; modules_to_save trains
	// every parameter of those modules.
	trains, copied := map[string]bool{}, map[string]bool{}
	for _, n := range names {
		switch {
		case slices.ContainsFunc(savedModules, func(m string) bool { return strings.HasPrefix(n, m+".") }):
			trains[n], copied[n] = true, true
		case cfg.Bias == lora.BiasAll && (n == "bias" || strings.HasSuffix(n, ".bias")):
			trains[n] = true
		}
	}
	if cfg.Bias == lora.BiasLoRAOnly {
		for _, m := range ad.Modules {
			if m.Bias != "" {
				trains[m.Bias] = true
			}
		}
	}
	for i := range man.Parameters {
		p := &man.Parameters[i]
		if trains[p.Name] && p.Trainable {
			ad.Saved = append(ad.Saved, lora.Saved{Name: p.Name, Shape: p.TorchShape(), InModuleToSave: copied[p.Name]})
			continue
		}
		if p.Trainable {
			p.Trainable, p.FrozenBy, p.SharedInput = false, frozenByLoRA, true
		}
	}
	var values map[string][]float32
	if initial != nil {
		if values, err = initial(ad); err != nil {
			return nil, err
		}
	}
	r := int64(cfg.R)
	var cands []candidate
	weights := map[string][]int64{}
	for _, m := range ad.Modules {
		weights[m.Weight] = man.Parameters[byName[m.Weight]].Shape
		for _, t := range []struct {
			name  string
			shape []int64 // graph layout: the transpose of PyTorch's
			init  func() []float32
		}{
			{lora.AName(m.Name), []int64{m.In, r}, func() []float32 { return lora.InitA(cfg.Seed, m.Name, cfg.R, m.In) }},
			{lora.BName(m.Name), []int64{r, m.Out}, func() []float32 { return lora.InitB(cfg.R, m.Out) }},
		} {
			p := Parameter{Name: t.name, Shape: t.shape, DType: "float32", Transposed: true, MatchedBy: ByLoRA, Trainable: true, Decay: optim.Decays(t.name)}
			v, ok := values[t.name]
			if !ok {
				v = t.init()
			}
			raw := float32Bytes(p.ToGraph(v))
			tp, err := onnx.NewTensorRaw(t.name, onnx.Float32, t.shape, raw)
			if err != nil {
				return nil, err
			}
			g.Initializer = append(g.Initializer, tp)
			cands = append(cands, candidate{onnxName: t.name, shape: t.shape, raw: raw})
			man.Parameters = append(man.Parameters, p)
		}
	}
	// Saved parameters start from the adapter's values.
	for _, s := range ad.Saved {
		v, ok := values[s.Name]
		if !ok {
			continue
		}
		p := man.Parameters[byName[s.Name]]
		raw := float32Bytes(p.ToGraph(v))
		replaced := false
		for i, t := range g.Initializer {
			if t.GetName() == p.Name {
				nt, err := onnx.NewTensorRaw(p.Name, onnx.Float32, p.Shape, raw)
				if err != nil {
					return nil, err
				}
				g.Initializer[i] = nt
				replaced = true
			}
		}
		if !replaced {
			return nil, fmt.Errorf("lora: %s has no initializer in the forward graph", p.Name)
		}
		src := p.Name
		if p.ONNXName != "" {
			src = p.ONNXName
		}
		cands = append(cands, candidate{onnxName: src, shape: p.Shape, raw: raw})
	}
	count, err := lora.Apply(g, ad.Modules, weights, lora.ApplyOptions{Scaling: cfg.Scaling(), Dropout: cfg.Dropout, Opset: opset})
	if err != nil {
		return nil, badModel("LoRA: %v", err)
	}
	for _, m := range ad.Modules {
		if count[m.Name] == 0 {
			return nil, badModel("LoRA: the forward graph never multiplies by %s", m.Weight)
		}
	}
	man.LoRA = ad
	return cands, nil
}

// loraGeneration adds the adapter branches to a generation graph: the
// base weights are bound as inputs as bindGenerationParams binds trainable
// parameters (one value on the device serves every graph), and the
// branches read lora_A and lora_B as inputs. It returns the parameter
// inputs of the graph.
func loraGeneration(g *onnxpb.GraphProto, man *Manifest, cands []candidate, prefixes []string, opset int64) ([]string, error) {
	ad := man.LoRA
	// The shared base weights are bound as the trainable ones are: graph
	// inputs under the model's names.
	params := slices.Clone(man.Parameters)
	shapes := map[string][]int64{}
	for i := range params {
		if params[i].SharedInput {
			params[i].Trainable = true
		}
		shapes[params[i].Name] = params[i].Shape
	}
	inputs, err := bindGenerationParams(g, params, cands, prefixes)
	if err != nil {
		return nil, err
	}
	var mods []lora.Module
	for _, m := range ad.Modules {
		if slices.Contains(inputs, m.Weight) {
			mods = append(mods, m)
		}
	}
	if len(mods) == 0 {
		return inputs, nil
	}
	if _, err := lora.Apply(g, mods, shapes, lora.ApplyOptions{Scaling: ad.Config.Scaling(), Opset: opset}); err != nil {
		return nil, badModel("LoRA: %v", err)
	}
	for _, m := range mods {
		for _, n := range []string{lora.AName(m.Name), lora.BName(m.Name)} {
			g.Input = append(g.Input, onnx.ValueInfo(n, onnx.Float32, onnx.Dims(shapes[n]...)...))
			inputs = append(inputs, n)
		}
	}
	slices.Sort(inputs)
	return inputs, nil
}

func float32Bytes(v []float32) []byte {
	out := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(x))
	}
	return out
}

// loraPrecisionError refuses mixed precision with LoRA, which the
// autocast rewrite has not been checked on.
func loraPrecisionError() error {
	return fault.Settingsf("LoRA with --fp16, --bf16 or half-precision evaluation is not supported yet; train the adapters in float32")
}

// buildLoRA applies cfg.LoRA or the adapter folder cfg.Adapter to the
// resolved forward graph g (see applyLoRA).
func buildLoRA(cfg Config, g *onnxpb.GraphProto, man *Manifest, opset int64) ([]candidate, error) {
	if len(cfg.Precisions) > 0 {
		return nil, loraPrecisionError()
	}
	var c lora.Config
	strict, base := true, ""
	var initial func(*lora.Adapter) (map[string][]float32, error)
	if cfg.Adapter != "" {
		ac, b, err := lora.ReadConfig(cfg.Adapter)
		if err != nil {
			return nil, err
		}
		if cfg.LoRA != nil && !cfg.LoRA.Equal(ac) {
			return nil, fault.Settingsf("--adapter %s holds an adapter with %s, but the LoRA settings say %s: drop the LoRA settings to continue the adapter as it is", cfg.Adapter, ac, cfg.LoRA)
		}
		c, strict, base = ac, false, b
		initial = func(a *lora.Adapter) (map[string][]float32, error) { return a.ReadWeights(cfg.Adapter) }
	} else {
		c = *cfg.LoRA
		if err := c.Validate("LoRA"); err != nil {
			return nil, err
		}
	}
	cands, err := applyLoRA(g, man, c, strict, initial, opset)
	if err != nil && cfg.Adapter != "" && errors.Is(err, fault.Settings) {
		// Targets of an adapter file that this model lacks: the file's fault.
		return nil, fault.Inputf("%s: %v: the adapter was made for another base model", filepath.Join(cfg.Adapter, lora.ConfigFile), err)
	}
	if err != nil {
		return nil, err
	}
	man.LoRA.BaseModel = base
	return cands, nil
}

// LoRACounts are PEFT's print_trainable_parameters figures: the elements
// that train (adapters, biases and modules_to_save) and all elements
// (the base parameters, the adapters, and PEFT's copies of the modules
// to save).
func (m *Manifest) LoRACounts() (trainable, all int64) {
	for _, p := range m.Parameters {
		n := onnx.NumElements(p.Shape)
		if strings.HasPrefix(p.FrozenBy, notTrainedByHF+"buffer") {
			continue // a buffer (final_logits_bias) is no parameter to PEFT
		}
		all += n
		if p.Trainable {
			trainable += n
		}
	}
	if m.LoRA != nil {
		for _, s := range m.LoRA.Saved {
			if s.InModuleToSave {
				all += onnx.NumElements(s.Shape) // PEFT's trained copy beside the original
			}
		}
	}
	return trainable, all
}
