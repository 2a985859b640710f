// Package lora is LoRA (low-rank adaptation) as Hugging Face PEFT does it:
// its LoraConfig (the subset ortrain trains), which modules a config
// targets (PEFT's target_modules rules over the model's module names), the
// graph rewrite that adds B·A·x·scaling beside each targeted linear layer,
// PEFT's initialisation, and the adapter folder PEFT reads and writes
// (adapter_config.json and adapter_model.safetensors under PEFT's key
// names).
//
// The package knows graphs and tensors, not artifact folders:
// internal/artifacts applies it while it builds the training graphs, and
// ortrain/engine reads and writes adapters with it.
package lora

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"

	"github.com/ortrain/ortrain/internal/fault"
)

// PEFTVersion is the PEFT release whose behaviour this package follows and
// whose adapter files it writes.
const PEFTVersion = "0.21.2"

// Bias choices of LoraConfig.bias.
const (
	BiasNone     = "none"
	BiasAll      = "all"
	BiasLoRAOnly = "lora_only"
)

// AllLinear is PEFT's shorthand target_modules="all-linear": every linear
// layer but the output layer (lm_head).
const AllLinear = "all-linear"

// Config is PEFT's LoraConfig, the fields ortrain trains with (named as
// PEFT names them in adapter_config.json).
type Config struct {
	R       int     `json:"r"`
	Alpha   float64 `json:"lora_alpha"`
	Dropout float64 `json:"lora_dropout"`
	// TargetModules are module-name suffixes: a module is targeted when its
	// name is an entry or ends with "." + an entry (PEFT's rule for a list).
	TargetModules []string `json:"target_modules,omitempty"`
	// TargetRegex is target_modules given as one string: a regular
	// expression the whole module name must match (PEFT's re.fullmatch),
	// or "all-linear".
	TargetRegex string `json:"target_regex,omitempty"`
	// Bias is none, all (every bias of the model trains) or lora_only
	// (the biases of the targeted layers).
	Bias string `json:"bias"`
	// ModulesToSave are module-name suffixes whose parameters train in full
	// and are saved in the adapter (PEFT's modules_to_save).
	ModulesToSave []string `json:"modules_to_save,omitempty"`
	// UseRSLoRA scales by alpha/sqrt(r) instead of alpha/r.
	UseRSLoRA bool `json:"use_rslora,omitempty"`
	// Seed draws the initial A matrices (PEFT draws them from torch's
	// generator, which cannot be reproduced outside torch).
	Seed uint64 `json:"seed"`
}

// Scaling is the factor of the adapter's output (PEFT's lora_alpha / r, or
// lora_alpha / sqrt(r) with use_rslora).
func (c Config) Scaling() float64 {
	if c.UseRSLoRA {
		return c.Alpha / math.Sqrt(float64(c.R))
	}
	return c.Alpha / float64(c.R)
}

// Validate checks the values on their own; what names modules is checked
// against the model (Targets). what names the source in messages (the
// flags, or an adapter_config.json).
func (c Config) Validate(what string) error {
	if c.R <= 0 {
		return fault.Settingsf("%s: lora_r %d: the rank must be a positive integer (PEFT's r; 8 or 16 are usual)", what, c.R)
	}
	if math.IsNaN(c.Alpha) || math.IsInf(c.Alpha, 0) || c.Alpha <= 0 {
		return fault.Settingsf("%s: lora_alpha %v: must be a positive number (the adapter's output is scaled by lora_alpha/r)", what, c.Alpha)
	}
	if !(c.Dropout >= 0 && c.Dropout < 1) {
		return fault.Settingsf("%s: lora_dropout %v: must be in [0, 1)", what, c.Dropout)
	}
	switch c.Bias {
	case BiasNone, BiasAll, BiasLoRAOnly:
	default:
		return fault.Settingsf("%s: lora_bias %q: want none, all or lora_only (PEFT's bias)", what, c.Bias)
	}
	if c.Bias == BiasAll && len(c.ModulesToSave) > 0 {
		// PEFT then saves the biases of its copies of those modules under
		// further keys (original_module, modules_to_save) as well.
		return fault.Settingsf("%s: lora_bias all with modules_to_save is not supported (PEFT's file layout for it differs); train the biases of those modules through modules_to_save and use lora_bias none or lora_only", what)
	}
	if len(c.TargetModules) == 0 && c.TargetRegex == "" {
		return fault.Settingsf("%s: lora_target_modules is empty: name the linear layers to adapt, as PEFT names them (e.g. q,v for T5, q_proj,v_proj for BART and Marian), or all-linear", what)
	}
	for _, t := range c.TargetModules {
		if strings.TrimSpace(t) == "" {
			return fault.Settingsf("%s: lora_target_modules has an empty entry", what)
		}
	}
	for _, m := range c.ModulesToSave {
		if strings.TrimSpace(m) == "" {
			return fault.Settingsf("%s: modules_to_save has an empty entry", what)
		}
	}
	if c.TargetRegex != "" && !strings.EqualFold(c.TargetRegex, AllLinear) {
		if _, err := regexp.Compile(c.TargetRegex); err != nil {
			return fault.Settingsf("%s: lora_target_modules %q is not a valid regular expression: %v", what, c.TargetRegex, err)
		}
	}
	return nil
}

// Defaults are PEFT's LoraConfig defaults (r 8, lora_alpha 8, dropout 0,
// bias none); targets have no default for seq2seq models here.
func Defaults() Config {
	return Config{R: 8, Alpha: 8, Bias: BiasNone}
}

// SetTargets sets target_modules from a flag value: "all-linear", a
// comma-separated list of suffixes, or (starting with "re:") a regular
// expression the whole module name must match.
func (c *Config) SetTargets(v string) {
	c.TargetModules, c.TargetRegex = nil, ""
	v = strings.TrimSpace(v)
	switch {
	case strings.EqualFold(v, AllLinear):
		c.TargetRegex = AllLinear
	case strings.HasPrefix(v, "re:"):
		c.TargetRegex = strings.TrimPrefix(v, "re:")
	default:
		c.TargetModules = splitList(v)
	}
}

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Set assigns one LoraConfig key (PEFT's names, or ortrain's flag names
// lora_r, lora_target_modules, lora_bias) from a flag string or a decoded
// JSON/YAML value.
func (c *Config) Set(key string, v any) error {
	key = strings.ReplaceAll(strings.TrimLeft(key, "-"), "-", "_")
	switch key {
	case "r", "lora_r":
		n, err := number(v)
		if err != nil || n != math.Trunc(n) || math.Abs(n) > 1<<31 {
			return fmt.Errorf("%s: want an integer, got %v", key, v)
		}
		c.R = int(n)
	case "lora_alpha", "alpha":
		n, err := number(v)
		if err != nil {
			return fmt.Errorf("%s: %v", key, err)
		}
		c.Alpha = n
	case "lora_dropout", "dropout":
		n, err := number(v)
		if err != nil {
			return fmt.Errorf("%s: %v", key, err)
		}
		c.Dropout = n
	case "target_modules", "lora_target_modules":
		switch x := v.(type) {
		case string:
			c.SetTargets(x)
		case []any:
			c.TargetModules, c.TargetRegex = nil, ""
			for _, e := range x {
				s, ok := e.(string)
				if !ok {
					return fmt.Errorf("%s: want a list of module names, got %v", key, v)
				}
				c.TargetModules = append(c.TargetModules, s)
			}
		default:
			return fmt.Errorf("%s: want a list of module names, got %v", key, v)
		}
	case "bias", "lora_bias":
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("%s: want none, all or lora_only, got %v", key, v)
		}
		c.Bias = s
	case "modules_to_save", "lora_modules_to_save":
		switch x := v.(type) {
		case nil:
			c.ModulesToSave = nil
		case string:
			c.ModulesToSave = splitList(x)
		case []any:
			c.ModulesToSave = nil
			for _, e := range x {
				s, ok := e.(string)
				if !ok {
					return fmt.Errorf("%s: want a list of module names, got %v", key, v)
				}
				c.ModulesToSave = append(c.ModulesToSave, s)
			}
		default:
			return fmt.Errorf("%s: want a list of module names, got %v", key, v)
		}
	case "use_rslora":
		switch x := v.(type) {
		case bool:
			c.UseRSLoRA = x
		case string:
			c.UseRSLoRA = strings.EqualFold(x, "true")
		default:
			return fmt.Errorf("%s: want true or false, got %v", key, v)
		}
	default:
		return fmt.Errorf("unknown LoRA setting %q (known: r, lora_alpha, lora_dropout, target_modules, bias, modules_to_save, use_rslora)", key)
	}
	return nil
}

func number(v any) (float64, error) {
	switch x := v.(type) {
	case int:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case uint64:
		return float64(x), nil
	case float64:
		return x, nil
	case string:
		var f float64
		if _, err := fmt.Sscan(strings.TrimSpace(x), &f); err != nil {
			return 0, fmt.Errorf("want a number, got %q", x)
		}
		return f, nil
	}
	return 0, fmt.Errorf("want a number, got %v", v)
}

// Equal reports whether two configs describe the same adapter shape and
// scaling (the seed aside).
func (c Config) Equal(o Config) bool {
	return c.R == o.R && c.Alpha == o.Alpha && c.Dropout == o.Dropout && c.Bias == o.Bias && c.UseRSLoRA == o.UseRSLoRA &&
		slices.Equal(sorted(c.TargetModules), sorted(o.TargetModules)) && c.TargetRegex == o.TargetRegex &&
		slices.Equal(sorted(c.ModulesToSave), sorted(o.ModulesToSave))
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// String describes the config in PEFT's terms.
func (c Config) String() string {
	t := strings.Join(c.TargetModules, ",")
	if c.TargetRegex != "" {
		t = c.TargetRegex
	}
	s := fmt.Sprintf("r=%d lora_alpha=%v lora_dropout=%v target_modules=%s bias=%s", c.R, c.Alpha, c.Dropout, t, c.Bias)
	if len(c.ModulesToSave) > 0 {
		s += " modules_to_save=" + strings.Join(c.ModulesToSave, ",")
	}
	if c.UseRSLoRA {
		s += " use_rslora"
	}
	return s
}

// MarshalTargets is target_modules as PEFT writes it: a list, or the
// one string of a regular expression.
func (c Config) marshalTargets() any {
	if c.TargetRegex != "" {
		return c.TargetRegex
	}
	return c.TargetModules
}
