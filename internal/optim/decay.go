package optim

import (
	"regexp"
	"strings"
)

// noDecayPatterns are Hugging Face Trainer's exclusions from weight decay
// (Trainer.get_decay_parameter_names, transformers ≥4.5x), searched in the
// lower-cased dotted PyTorch parameter name.
var noDecayPatterns = []*regexp.Regexp{
	regexp.MustCompile(`bias`),
	regexp.MustCompile(`layernorm`),
	regexp.MustCompile(`rmsnorm`),
	regexp.MustCompile(`(?:^|\.)norm(?:$|\.)`),
	regexp.MustCompile(`_norm(?:$|\.)`),
}

// Decays reports whether HF's Trainer applies weight decay to the parameter
// with this PyTorch name. Names must be the model's own (state_dict) names:
// an exporter's synthetic name such as "onnx::MatMul_12" would decay.
func Decays(name string) bool {
	lower := strings.ToLower(name)
	for _, re := range noDecayPatterns {
		if re.MatchString(lower) {
			return false
		}
	}
	return true
}
