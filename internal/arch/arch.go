// Package arch says how Hugging Face transformers trains each
// encoder-decoder architecture, by config.json's model_type: the
// gradient-accumulation rule its Trainer applies, which tensors its
// optimizer updates, how labels become decoder inputs, its tokenizer's
// target template and language codes, and whether ortrain trains it (with
// the reason when not).
//
// The facts come from transformers' own source, not from a list kept by
// hand: scripts/gen_arch_table.py builds a tiny model of every
// encoder-decoder architecture of the installed transformers, probes it
// (the Trainer's model_accepts_loss_kwargs test, the loss with and without
// num_items_in_batch, requires_grad after from_pretrained, save_pretrained's
// keys, the decoder inputs the model makes from labels, the tokenizer's
// special-token templates) and writes table_gen.go. An architecture counts
// as supported only when its fixture under testdata/arch/ exists, which the
// Go tests compare with PyTorch and HF.
package arch

//go:generate sh -c "${PYTHON:-python3} ../../scripts/gen_arch_table.py"

import (
	"fmt"
	"sort"
	"strings"

	"github.com/ortrain/ortrain/internal/fault"
)

// Arch is one architecture's row of the table.
type Arch struct {
	// ModelType is config.json's model_type.
	ModelType string
	// Class is transformers' AutoModelForSeq2SeqLM class for it ("" when
	// it has none: speech, vision and time-series encoder-decoders).
	Class string
	// Supported: ortrain trains it as HF does (checked by its fixture).
	Supported bool
	// Refusal says why ortrain does not train it, when not Supported.
	Refusal string
	// Nearest is the supported architecture with the most similar
	// parameter names.
	Nearest string

	// LossKwargs is HF Trainer's model_accepts_loss_kwargs: the model's
	// forward takes **kwargs (or sets accepts_loss_kwargs), so the Trainer
	// passes num_items_in_batch and does not divide the loss by the
	// gradient-accumulation steps.
	LossKwargs bool
	// LossUsesNumItems: the model's loss divides its token sum by
	// num_items_in_batch when given one (otherwise it is the micro-batch
	// mean whatever the Trainer passes).
	LossUsesNumItems bool

	// NotTrained lists the state-dict tensors HF's optimizer never updates
	// (buffers, parameters with requires_grad false after from_pretrained).
	NotTrained []Tensor
	// TrainedNotSaved lists parameters HF trains that save_pretrained
	// leaves out (from_pretrained rebuilds them).
	TrainedNotSaved []string
	// TrainedAfterLoading lists parameters that a freshly constructed model
	// keeps frozen but from_pretrained makes trainable, so HF fine-tuning
	// trains them.
	TrainedAfterLoading []string
	// PaddingIdx lists the embedding weights built with
	// nn.Embedding(padding_idx=pad): lookups of the pad id send their row
	// no gradient.
	PaddingIdx []string

	// DecoderStart says how HF makes decoder_input_ids from labels.
	DecoderStart DecoderStart
	// DecoderStartKey is the config key of the start token under
	// StartToken: decoder_start_token_id, or bos_token_id for models whose
	// config has none (T5Gemma).
	DecoderStartKey string
	// LabelsPaddedWithPad: the model's prepare_decoder_input_ids_from_labels
	// overwrites the -100 of the labels HF's collator hands it with the pad
	// id (FSMT), so HF's loss also counts the padded target positions (the
	// model is taught to predict pad there).
	LabelsPaddedWithPad bool
	// DecoderMasksPad: given no decoder_attention_mask (HF's collator gives
	// none), the decoder masks the positions holding the pad id (FSMT)
	// instead of attending to every position.
	DecoderMasksPad bool

	// LayerdropKeys are the config keys of LayerDrop: in training HF skips
	// each layer with that probability. ortrain trains every layer.
	LayerdropKeys []string

	// Tokenizer is the tokenizer class transformers maps the model type to
	// (a checkpoint's tokenizer_config.json may name another).
	Tokenizer string

	// Parameters are the parameter names of the architecture's model with
	// layer indices written "*", without the base-model prefix.
	Parameters []string
	// AssumedFor is set when the row was chosen by --assume_architecture:
	// the model's own model_type.
	AssumedFor string
}

// Tensor names state-dict tensors by pattern (see Match) and why.
type Tensor struct {
	Pattern string
	Why     string
}

// DecoderStart is HF's rule for the first decoder input.
type DecoderStart string

const (
	// StartToken: labels shifted right behind config.decoder_start_token_id.
	StartToken DecoderStart = "decoder_start_token_id"
	// LastLabelToken: labels shifted right behind the last non-pad label
	// token (mBART, PLBart, FSMT: the language code or </s> that ends the
	// target moves to the front).
	LastLabelToken DecoderStart = "last_label_token"
)

// Accumulation is HF's loss scaling under gradient accumulation.
type Accumulation string

const (
	// SumOfMeans: the Trainer passes num_items_in_batch and does not
	// divide, the model ignores it: a window's loss is the sum of its
	// micro-batch means (with label smoothing the LabelSmoother uses
	// num_items_in_batch, which makes it TokenWeighted).
	SumOfMeans Accumulation = "sum_of_means"
	// TokenWeighted: each micro-batch's token sum over the window's label
	// tokens.
	TokenWeighted Accumulation = "token_weighted"
	// Mean: each micro-batch mean divided by the window's micro-batches.
	Mean Accumulation = "mean"
)

// Accumulation is the architecture's gradient-accumulation rule.
func (a Arch) Accumulation() Accumulation {
	switch {
	case !a.LossKwargs:
		return Mean
	case a.LossUsesNumItems:
		return TokenWeighted
	}
	return SumOfMeans
}

// NotTrainedWhy says why HF does not train the tensor called name.
func (a Arch) NotTrainedWhy(name string) (string, bool) {
	for _, t := range a.NotTrained {
		if Match(t.Pattern, name) {
			return t.Why, true
		}
	}
	return "", false
}

// HasPaddingIdx reports whether name is an embedding weight whose padding
// row gets no gradient from lookups.
func (a Arch) HasPaddingIdx(name string) bool {
	for _, p := range a.PaddingIdx {
		if Match(p, name) {
			return true
		}
	}
	return false
}

// Match reports whether the dotted name ends with pattern, aligned at a
// dot, where a "*" part of the pattern stands for one layer index.
func Match(pattern, name string) bool {
	pp, np := strings.Split(pattern, "."), strings.Split(name, ".")
	if len(pp) > len(np) {
		return false
	}
	np = np[len(np)-len(pp):]
	for i, p := range pp {
		if p == "*" {
			if !isIndex(np[i]) {
				return false
			}
		} else if p != np[i] {
			return false
		}
	}
	return true
}

func isIndex(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// All returns every row, sorted by model type.
func All() []Arch {
	t := append(table(), own()...)
	sort.Slice(t, func(i, j int) bool { return t[i].ModelType < t[j].ModelType })
	return t
}

// Lookup returns the row of a model type.
func Lookup(modelType string) (Arch, bool) {
	for _, a := range All() {
		if a.ModelType == modelType {
			return a, true
		}
	}
	return Arch{}, false
}

// SupportedTypes lists the transformers model types ortrain trains
// (ortrain's own demo model aside).
func SupportedTypes() []string {
	var out []string
	for _, a := range table() {
		if a.Supported {
			out = append(out, a.ModelType)
		}
	}
	sort.Strings(out)
	return out
}

// AssumeFlag is the command-line flag that picks a row by hand.
const AssumeFlag = "--assume_architecture"

// Resolve picks the row for a model whose config.json says modelType ("" when
// there is none) and whose parameters are called params. assume, when not
// empty, is the model type the user told ortrain to assume
// (--assume_architecture): its row is returned with AssumedFor set.
// A model type that is unknown or unsupported is refused with the nearest
// supported architecture (fault.Input); a bad assumption is fault.Settings.
func Resolve(modelType string, params []string, assume string) (Arch, error) {
	if assume != "" {
		a, ok := Lookup(assume)
		if !ok || !a.Supported {
			return Arch{}, fault.Settingsf("%s %q: not an architecture ortrain supports; use one of %s", AssumeFlag, assume, strings.Join(SupportedTypes(), ", "))
		}
		a.AssumedFor = modelType
		if a.AssumedFor == "" {
			a.AssumedFor = "(no model_type)"
		}
		return a, nil
	}
	if modelType == "" {
		hint := ""
		if near := NearestByParameters(params); near != "" {
			hint = fmt.Sprintf(" (its parameter names are nearest to %q)", near)
		}
		return Arch{}, fault.Inputf("the model has no config.json with a model_type, and ortrain takes how HF trains a model (gradient accumulation, which tensors train, decoder inputs) from it; "+
			"put the checkpoint's config.json beside the model, or pass %s with the architecture it follows%s", AssumeFlag, hint)
	}
	a, ok := Lookup(modelType)
	if ok && a.Supported {
		return a, nil
	}
	if ok {
		return Arch{}, fault.Inputf("model_type %q (%s) is not supported: %s; the nearest supported architecture is %q — to train it with %s's semantics anyway, pass %s %s",
			modelType, classOr(a), a.Refusal, a.Nearest, a.Nearest, AssumeFlag, a.Nearest)
	}
	near := NearestByParameters(params)
	if near == "" {
		near = NearestByName(modelType)
	}
	return Arch{}, fault.Inputf("model_type %q is not an encoder-decoder architecture of transformers %s, so ortrain does not know how HF trains it; the nearest supported architecture is %q — if it trains like %s, pass %s %s",
		modelType, Transformers, near, near, AssumeFlag, near)
}

func classOr(a Arch) string {
	if a.Class != "" {
		return a.Class
	}
	return "no AutoModelForSeq2SeqLM class"
}

// NearestByParameters returns the supported architecture whose parameter
// names (layer indices and base-model prefix aside) overlap most with
// params, or "" when params share none.
func NearestByParameters(params []string) string {
	if len(params) == 0 {
		return ""
	}
	best, bestScore := "", 0.0
	for _, a := range table() {
		if !a.Supported || len(a.Parameters) == 0 {
			continue
		}
		if s := similarity(a.Parameters, params); s > bestScore {
			best, bestScore = a.ModelType, s
		}
	}
	return best
}

// similarity is the Jaccard index of the two sets of names, each reduced to
// its last three parts with layer indices as "*".
func similarity(patterns, names []string) float64 {
	norm := func(s string) string {
		parts := strings.Split(s, ".")
		for i, p := range parts {
			if isIndex(p) {
				parts[i] = "*"
			}
		}
		if len(parts) > 3 {
			parts = parts[len(parts)-3:]
		}
		return strings.Join(parts, ".")
	}
	a, b := map[string]bool{}, map[string]bool{}
	for _, p := range patterns {
		a[norm(p)] = true
	}
	for _, n := range names {
		b[norm(n)] = true
	}
	inter := 0
	for k := range a {
		if b[k] {
			inter++
		}
	}
	union := len(a) + len(b) - inter
	if union == 0 || inter == 0 {
		return 0
	}
	return float64(inter) / float64(union)
}

// NearestByName returns the supported model type closest to name in edit
// distance.
func NearestByName(name string) string {
	best, bestD := "", -1
	for _, t := range SupportedTypes() {
		if d := editDistance(strings.ToLower(name), t); bestD < 0 || d < bestD {
			best, bestD = t, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Describe is a one-line account of the row, for logs and --help.
func (a Arch) Describe() string {
	s := fmt.Sprintf("%s: gradient accumulation %s, decoder start %s", a.ModelType, a.Accumulation(), a.DecoderStart)
	if a.AssumedFor != "" {
		s = fmt.Sprintf("%s (assumed for model_type %s by %s)", s, a.AssumedFor, AssumeFlag)
	}
	return s
}
