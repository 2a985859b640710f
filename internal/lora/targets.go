package lora

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/ortrain/ortrain/internal/fault"
)

// ModuleNames lists the modules that own the named parameters: every
// dotted prefix of a parameter name (encoder.block.0.layer.0.SelfAttention.q
// and its parents own encoder.block.0.layer.0.SelfAttention.q.weight), as
// PyTorch's named_modules() lists them, in first-seen order.
func ModuleNames(params []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range params {
		parts := strings.Split(p, ".")
		for i := 1; i < len(parts); i++ {
			m := strings.Join(parts[:i], ".")
			if !seen[m] {
				seen[m] = true
				out = append(out, m)
			}
		}
	}
	return out
}

// savedBy reports whether modules_to_save names the module: PEFT wraps
// every module whose name ends with an entry (a plain string suffix).
func (c Config) savedBy(module string) bool {
	for _, m := range c.ModulesToSave {
		if strings.HasSuffix(module, m) {
			return true
		}
	}
	return false
}

// excludedBySave is PEFT's rule that an adapter never targets a module of
// modules_to_save or inside one.
func (c Config) excludedBySave(module string) bool {
	for _, m := range c.ModulesToSave {
		if regexp.MustCompile(`(^|.*\.)` + regexp.QuoteMeta(m) + `($|\..*)`).MatchString(module) {
			return true
		}
	}
	return false
}

// matches is PEFT's check_target_module_exists for one entry: a list entry
// matches the module of that name or a name ending in "." + entry; a
// string target_modules is a regular expression over the whole name.
func (c Config) matches(entry, module string, linear func(string) bool) bool {
	if c.TargetRegex != "" {
		if strings.EqualFold(c.TargetRegex, AllLinear) {
			// PEFT leaves out the output layer (get_output_embeddings).
			return linear(module) && module != "lm_head"
		}
		return regexp.MustCompile(`^(?:` + c.TargetRegex + `)$`).MatchString(module)
	}
	return module == entry || strings.HasSuffix(module, "."+entry)
}

// Targets resolves target_modules over the model's modules: the modules it
// adapts, in the order given. linear tells whether a module is a linear
// layer ortrain can adapt (its weight multiplies the layer's input).
// A match that is no linear layer is an error, as in PEFT. strict makes
// every list entry that matches nothing an error (the flags of a new run);
// otherwise only a config that matches nothing at all is refused (PEFT's
// rule, for adapters PEFT made).
func (c Config) Targets(modules []string, linear func(string) bool, strict bool) ([]string, error) {
	entries := c.TargetModules
	if c.TargetRegex != "" {
		entries = []string{c.TargetRegex}
	}
	hits := make([]int, len(entries))
	var out []string
	for _, m := range modules {
		hit := false
		for i, e := range entries {
			if c.matches(e, m, linear) {
				hits[i]++
				hit = true
			}
		}
		if !hit || c.excludedBySave(m) {
			continue
		}
		if !linear(m) {
			return nil, fault.Settingsf("lora_target_modules: module %s is no linear layer ortrain can adapt (LoRA applies to linear layers: %s)", m, linearHint(modules, linear))
		}
		out = append(out, m)
	}
	if strict {
		for i, n := range hits {
			if n == 0 {
				return nil, fault.Settingsf("lora_target_modules: %q matches no module of the model (PEFT matches the end of a module name; this model's linear layers are named %s)", entries[i], linearHint(modules, linear))
			}
		}
	}
	if len(out) == 0 {
		return nil, fault.Settingsf("lora_target_modules %s match no linear layer of the model (this model's linear layers are named %s)", describeTargets(c), linearHint(modules, linear))
	}
	return out, nil
}

// SavedModules resolves modules_to_save: the modules whose parameters
// train in full. Every entry must name a module with parameters.
func (c Config) SavedModules(modules []string, hasParams func(string) bool) ([]string, error) {
	var out []string
	for _, e := range c.ModulesToSave {
		n := 0
		for _, m := range modules {
			if strings.HasSuffix(m, e) && hasParams(m) {
				n++
			}
		}
		if n == 0 {
			return nil, fault.Settingsf("modules_to_save: %q matches no module with parameters (PEFT matches the end of a module name, e.g. final_layer_norm)", e)
		}
	}
	for _, m := range modules {
		if c.savedBy(m) && hasParams(m) {
			out = append(out, m)
		}
	}
	return out, nil
}

func describeTargets(c Config) string {
	if c.TargetRegex != "" {
		return fmt.Sprintf("%q", c.TargetRegex)
	}
	return fmt.Sprintf("%q", c.TargetModules)
}

// linearHint lists the distinct last components of the linear layers'
// names (q, k, v, o, wi, wo).
func linearHint(modules []string, linear func(string) bool) string {
	var names []string
	for _, m := range modules {
		if !linear(m) {
			continue
		}
		leaf := m[strings.LastIndex(m, ".")+1:]
		if !slices.Contains(names, leaf) {
			names = append(names, leaf)
		}
	}
	if len(names) == 0 {
		return "(none found)"
	}
	return strings.Join(names, ", ")
}
