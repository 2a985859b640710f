package arch

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/fault"
)

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		pattern, name string
		want          bool
	}{
		{"final_logits_bias", "final_logits_bias", true},
		{"final_logits_bias", "model.final_logits_bias", true},
		{"model.encoder.embed_positions.weight", "model.encoder.embed_positions.weight", true},
		{"model.encoder.layers.*.fc1.weight", "model.encoder.layers.11.fc1.weight", true},
		{"model.encoder.layers.*.fc1.weight", "model.encoder.layers.x.fc1.weight", false},
		{"embed_positions.weight", "model.encoder.embed_positions.weight", true},
		{"positions.weight", "model.encoder.embed_positions.weight", false}, // aligned at dots
		{"model.encoder.embed_positions.weight", "embed_positions.weight", false},
	} {
		if got := Match(c.pattern, c.name); got != c.want {
			t.Errorf("Match(%q, %q) = %v", c.pattern, c.name, got)
		}
	}
}

// TestTableFacts pins facts of transformers 5.24 that ortrain's behaviour
// rests on, as the generated table states them.
func TestTableFacts(t *testing.T) {
	get := func(mt string) Arch {
		a, ok := Lookup(mt)
		if !ok {
			t.Fatalf("%s missing from the table", mt)
		}
		return a
	}
	// Every text encoder-decoder of 5.24 takes **kwargs, so HF's Trainer
	// skips the 1/accumulation division; most ignore num_items_in_batch.
	for _, mt := range []string{"t5", "mt5", "bart", "mbart", "marian", "pegasus", "m2m_100"} {
		if got := get(mt).Accumulation(); got != SumOfMeans {
			t.Errorf("%s: accumulation %s, want sum_of_means", mt, got)
		}
	}
	if got := get("t5gemma").Accumulation(); got != TokenWeighted {
		t.Errorf("t5gemma: accumulation %s, want token_weighted (its loss divides by num_items_in_batch)", got)
	}
	if got := get("ortrain-demo").Accumulation(); got != Mean {
		t.Errorf("demo: %s", got)
	}
	for _, mt := range []string{"mbart", "plbart", "fsmt"} {
		if get(mt).DecoderStart != LastLabelToken {
			t.Errorf("%s: decoder start %s", mt, get(mt).DecoderStart)
		}
	}
	if get("bart").DecoderStart != StartToken || get("t5").DecoderStart != StartToken {
		t.Error("bart/t5 start with decoder_start_token_id")
	}
	if why, ok := get("bart").NotTrainedWhy("final_logits_bias"); !ok || !strings.Contains(why, "buffer") {
		t.Errorf("bart final_logits_bias: %q %v", why, ok)
	}
	for _, mt := range []string{"marian", "pegasus"} {
		a := get(mt)
		if _, frozen := a.NotTrainedWhy("model.encoder.embed_positions.weight"); frozen {
			t.Errorf("%s: HF trains the sinusoidal positions after from_pretrained", mt)
		}
		if len(a.TrainedAfterLoading) != 2 {
			t.Errorf("%s: trained after loading %v", mt, a.TrainedAfterLoading)
		}
	}
	if m := get("marian"); len(m.TrainedNotSaved) != 2 || !Match(m.TrainedNotSaved[0], "model.decoder.embed_positions.weight") {
		t.Errorf("marian: trained but not saved %v", m.TrainedNotSaved)
	}
	if !get("bart").HasPaddingIdx("model.shared.weight") || get("t5").HasPaddingIdx("shared.weight") {
		t.Error("padding_idx: BART's embeddings have one, T5's not")
	}
}

// TestSupportedHaveFixtures: an architecture counts as supported only with
// its fixture (which ortrain/engine's TestArchitecturesMatchHF compares
// with PyTorch and HF), and every fixture belongs to a supported row.
func TestSupportedHaveFixtures(t *testing.T) {
	root := filepath.Join("..", "..", "testdata", "arch")
	for _, a := range All() {
		if !a.Supported || a.ModelType == "ortrain-demo" {
			if !a.Supported && a.Refusal == "" {
				t.Errorf("%s: refused without a reason", a.ModelType)
			}
			continue
		}
		if _, err := os.Stat(filepath.Join(root, a.ModelType, "refs.json")); err != nil {
			t.Errorf("%s is supported but has no fixture: %v", a.ModelType, err)
		}
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if a, ok := Lookup(e.Name()); !ok || !a.Supported {
			t.Errorf("fixture %s has no supported row", e.Name())
		}
	}
}

func TestResolve(t *testing.T) {
	a, err := Resolve("bart", nil, "")
	if err != nil || a.ModelType != "bart" || a.AssumedFor != "" {
		t.Fatalf("bart: %+v %v", a, err)
	}
	// unknown: the nearest by parameter names, else by name
	_, err = Resolve("my_t5", []string{"shared.weight", "encoder.block.0.layer.0.SelfAttention.q.weight",
		"encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", "encoder.block.0.layer.1.DenseReluDense.wi.weight"}, "")
	if !errors.Is(err, fault.Input) || !strings.Contains(err.Error(), `"my_t5"`) || !strings.Contains(err.Error(), "--assume_architecture") {
		t.Fatalf("unknown: %v", err)
	}
	if near := NearestByParameters([]string{"encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", "encoder.block.0.layer.0.SelfAttention.q.weight", "encoder.final_layer_norm.weight"}); !strings.Contains(near, "t5") {
		t.Errorf("nearest to T5 names: %q", near)
	}
	if near := NearestByName("barts"); near != "bart" {
		t.Errorf("nearest by name to barts: %q", near)
	}
	// refused: the reason and the nearest supported
	p, _ := Lookup("prophetnet")
	if p.Supported {
		t.Fatal("prophetnet supported")
	}
	_, err = Resolve("prophetnet", nil, "")
	if !errors.Is(err, fault.Input) || !strings.Contains(err.Error(), p.Refusal) || !strings.Contains(err.Error(), p.Nearest) {
		t.Errorf("prophetnet: %v", err)
	}
	// assumed
	a, err = Resolve("prophetnet", nil, "bart")
	if err != nil || a.ModelType != "bart" || a.AssumedFor != "prophetnet" || !strings.Contains(a.Describe(), "assumed") {
		t.Errorf("assumed: %+v %v", a, err)
	}
	if _, err := Resolve("bart", nil, "prophetnet"); !errors.Is(err, fault.Settings) {
		t.Errorf("assuming a refused type: %v", err)
	}
	if _, err := Resolve("", []string{"model.shared.weight"}, ""); !errors.Is(err, fault.Input) || !strings.Contains(err.Error(), "config.json") {
		t.Errorf("no model_type: %v", err)
	}
}
