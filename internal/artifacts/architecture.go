package artifacts

import (
	"fmt"

	"github.com/ortrain/ortrain/internal/arch"
)

// Architecture records the row of the architecture table (internal/arch)
// that decides how the model trains.
type Architecture struct {
	// ModelType is the row used: config.json's model_type, or the one
	// --assume_architecture named (then AssumedFor holds the model's own).
	ModelType  string `json:"model_type"`
	AssumedFor string `json:"assumed_for,omitempty"`
	// GradientAccumulation is arch.Accumulation: sum_of_means,
	// token_weighted or mean.
	GradientAccumulation arch.Accumulation `json:"gradient_accumulation"`
	// DecoderStart is how labels become decoder inputs:
	// decoder_start_token_id or last_label_token.
	DecoderStart arch.DecoderStart `json:"decoder_start"`
	// DecoderStartKey names the special token that starts decoder inputs
	// under decoder_start_token_id: decoder_start_token_id or bos_token_id.
	DecoderStartKey string `json:"decoder_start_key,omitempty"`
	// LabelsPaddedWithPad: HF's collator hands the loss labels whose
	// padding is the pad id, not -100 (FSMT).
	LabelsPaddedWithPad bool `json:"labels_padded_with_pad,omitempty"`
	// DecoderMasksPad: the decoder masks positions holding the pad id when
	// given no decoder_attention_mask (FSMT).
	DecoderMasksPad bool `json:"decoder_masks_pad,omitempty"`
	// Transformers is the version the table was generated from.
	Transformers string `json:"transformers"`
	// Differences lists what ortrain does differently from HF for this
	// model (a LayerDrop the config sets); train prints them.
	Differences []string `json:"differences,omitempty"`
}

// ArchitectureRecord is the manifest's record of a table row.
func ArchitectureRecord(a arch.Arch) *Architecture {
	return &Architecture{ModelType: a.ModelType, AssumedFor: a.AssumedFor, GradientAccumulation: a.Accumulation(),
		DecoderStart: a.DecoderStart, DecoderStartKey: a.DecoderStartKey, LabelsPaddedWithPad: a.LabelsPaddedWithPad,
		DecoderMasksPad: a.DecoderMasksPad, Transformers: arch.Transformers}
}

// ArchitectureOf returns the manifest's architecture record; folders made
// before it was recorded fall back to the table row of their model type.
// It is nil when neither is known.
func (m *Manifest) ArchitectureOf() *Architecture {
	if m.Architecture != nil {
		return m.Architecture
	}
	if a, ok := arch.Lookup(m.ModelType); ok && a.Supported {
		return ArchitectureRecord(a)
	}
	return nil
}

// layerdropDifferences reports the LayerDrop probabilities config.json sets
// above 0: HF skips whole layers at random in training, ortrain does not.
func layerdropDifferences(a arch.Arch, config map[string]any) []string {
	var out []string
	for _, k := range a.LayerdropKeys {
		if v, ok := config[k].(float64); ok && v > 0 {
			out = append(out, fmt.Sprintf("config.json sets %s %v: in training HF skips each layer with that probability (LayerDrop); ortrain trains every layer", k, v))
		}
	}
	return out
}

// DecoderStartID is the id that starts decoder inputs under
// arch.StartToken: the special token the architecture takes it from, else
// decoder_start_token_id, else bos_token_id (HF generate's fallback), else
// pad.
func (m *Manifest) DecoderStartID(pad int) int {
	keys := []string{"decoder_start_token_id", "bos_token_id"}
	if a := m.ArchitectureOf(); a != nil && a.DecoderStartKey != "" {
		keys = append([]string{a.DecoderStartKey}, keys...)
	}
	for _, k := range keys {
		if v, ok := m.SpecialTokens[k]; ok {
			return int(v)
		}
	}
	return pad
}

// trainedNotSaved says whether HF trains the parameter called name although
// save_pretrained leaves it out of the weights file (Marian's sinusoidal
// position tables, rebuilt by from_pretrained and then trainable).
func trainedNotSaved(a *arch.Arch, name string) bool {
	if a == nil {
		return false
	}
	for _, pat := range a.TrainedNotSaved {
		if arch.Match(pat, name) {
			return true
		}
	}
	return false
}
