package fixturecheck_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/testenv"
)

// tolerance is the largest absolute difference allowed between ONNX
// Runtime's outputs and PyTorch's.
const tolerance = 1e-4

type floatTensor struct {
	Shape []int64   `json:"shape"`
	Data  []float32 `json:"data"`
}

type intTensor struct {
	Shape []int64 `json:"shape"`
	Data  []int64 `json:"data"`
}

type refs struct {
	Model string `json:"model"`
	Batch struct {
		InputIDs             intTensor `json:"input_ids"`
		AttentionMask        intTensor `json:"attention_mask"`
		DecoderInputIDs      intTensor `json:"decoder_input_ids"`
		DecoderAttentionMask intTensor `json:"decoder_attention_mask"`
		Labels               intTensor `json:"labels"`
	} `json:"batch"`
	Forward struct {
		Graph  string      `json:"graph"`
		Logits floatTensor `json:"logits"`
	} `json:"forward"`
	Encoder struct {
		Graph           string      `json:"graph"`
		LastHiddenState floatTensor `json:"last_hidden_state"`
	} `json:"encoder"`
	Decoder struct {
		Graph  string `json:"graph"`
		Inputs struct {
			InputIDs intTensor `json:"input_ids"`
		} `json:"inputs"`
		Outputs map[string]floatTensor `json:"outputs"`
	} `json:"decoder"`
	DecoderWithPast struct {
		Graph  string `json:"graph"`
		Inputs struct {
			InputIDs intTensor `json:"input_ids"`
		} `json:"inputs"`
		Outputs map[string]floatTensor `json:"outputs"`
	} `json:"decoder_with_past"`
	DynamoExport struct {
		OK       bool `json:"ok"`
		FileKept bool `json:"file_kept"`
	} `json:"dynamo_export"`
	Files map[string]struct {
		Bytes  int64  `json:"bytes"`
		SHA256 string `json:"sha256"`
	} `json:"files"`
}

// fixtures lists the folders under testdata/models that hold a refs.json.
func fixtures(t *testing.T) []string {
	t.Helper()
	matches, err := filepath.Glob(testenv.Testdata(t, "models", "*", "refs.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(matches) < 4 {
		t.Fatalf("expected at least 4 model fixtures under testdata/models, found %d; run scripts/fixtures/make_tiny_models.py", len(matches))
	}
	var dirs []string
	for _, m := range matches {
		dirs = append(dirs, filepath.Dir(m))
	}
	sort.Strings(dirs)
	return dirs
}

func loadRefs(t *testing.T, dir string) *refs {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "refs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r refs
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s/refs.json: %v", dir, err)
	}
	return &r
}

func ints(t *testing.T, x intTensor) *onnxrt.Value {
	t.Helper()
	v, err := onnxrt.NewTensor(x.Shape, x.Data)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

func floats(t *testing.T, x floatTensor) *onnxrt.Value {
	t.Helper()
	v, err := onnxrt.NewTensor(x.Shape, x.Data)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v
}

// run executes one graph and returns its named outputs as host float32 slices.
func run(t *testing.T, env *onnxrt.Env, path string, in map[string]*onnxrt.Value, names []string) map[string]*onnxrt.Value {
	t.Helper()
	sess, err := env.NewSession(path, onnxrt.SessionOptions{})
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	defer sess.Close()
	out, err := sess.Run(in, names)
	if err != nil {
		t.Fatalf("run %s: %v", path, err)
	}
	for _, v := range out {
		t.Cleanup(func() { v.Close() })
	}
	return out
}

// compare checks shape and values of got against the PyTorch reference and
// returns the largest absolute difference.
func compare(t *testing.T, what string, got *onnxrt.Value, want floatTensor) float64 {
	t.Helper()
	if fmt.Sprint(got.Shape()) != fmt.Sprint(want.Shape) {
		t.Errorf("%s: shape %v, PyTorch %v", what, got.Shape(), want.Shape)
		return math.Inf(1)
	}
	data, err := got.Float32s()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	worst, at := 0.0, 0
	for i := range data {
		if d := math.Abs(float64(data[i]) - float64(want.Data[i])); d > worst || math.IsNaN(d) {
			worst, at = d, i
		}
	}
	if !(worst <= tolerance) {
		t.Errorf("%s: max |ORT - PyTorch| = %.3g at flat index %d (ORT %g, PyTorch %g), tolerance %g",
			what, worst, at, data[at], want.Data[at], tolerance)
	}
	return worst
}

func TestFixtureFilesMatchRefs(t *testing.T) {
	for _, dir := range fixtures(t) {
		r := loadRefs(t, dir)
		for name, f := range r.Files {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Errorf("%s: %v", r.Model, err)
				continue
			}
			sum := sha256.Sum256(b)
			if got := hex.EncodeToString(sum[:]); got != f.SHA256 || int64(len(b)) != f.Bytes {
				t.Errorf("%s/%s: %d bytes sha256 %s, refs.json says %d bytes %s (regenerate with scripts/fixtures/make_tiny_models.py)",
					r.Model, name, len(b), got, f.Bytes, f.SHA256)
			}
		}
		onnxFiles, _ := filepath.Glob(filepath.Join(dir, "*.onnx"))
		for _, p := range onnxFiles {
			if _, ok := r.Files[filepath.Base(p)]; !ok {
				t.Errorf("%s: %s is not listed in refs.json", r.Model, filepath.Base(p))
			}
		}
	}
}

func TestFixturesMatchPyTorch(t *testing.T) {
	env, err := onnxrt.Open(testenv.ORTLibrary(t))
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()

	for _, dir := range fixtures(t) {
		r := loadRefs(t, dir)
		t.Run(r.Model, func(t *testing.T) {
			checked := map[string]bool{}
			b := r.Batch

			// Forward graph(s) used for training: both exporters where present.
			forwardGraphs := []string{r.Forward.Graph}
			if r.DynamoExport.OK && r.DynamoExport.FileKept {
				forwardGraphs = append(forwardGraphs, "model.dynamo.onnx")
			}
			for _, g := range forwardGraphs {
				out := run(t, env, filepath.Join(dir, g), map[string]*onnxrt.Value{
					"input_ids":              ints(t, b.InputIDs),
					"attention_mask":         ints(t, b.AttentionMask),
					"decoder_input_ids":      ints(t, b.DecoderInputIDs),
					"decoder_attention_mask": ints(t, b.DecoderAttentionMask),
				}, []string{"logits"})
				worst := compare(t, g+" logits", out["logits"], r.Forward.Logits)
				t.Logf("%s logits %v: max abs diff %.3g", g, r.Forward.Logits.Shape, worst)
				checked[g] = true
			}

			// Encoder.
			encOut := run(t, env, filepath.Join(dir, r.Encoder.Graph), map[string]*onnxrt.Value{
				"input_ids":      ints(t, b.InputIDs),
				"attention_mask": ints(t, b.AttentionMask),
			}, []string{"last_hidden_state"})
			worst := compare(t, r.Encoder.Graph+" last_hidden_state", encOut["last_hidden_state"], r.Encoder.LastHiddenState)
			t.Logf("%s: max abs diff %.3g", r.Encoder.Graph, worst)
			checked[r.Encoder.Graph] = true

			// Decoder without past, fed the reference encoder states.
			decNames := slices.Sorted(maps.Keys(r.Decoder.Outputs))
			decOut := run(t, env, filepath.Join(dir, r.Decoder.Graph), map[string]*onnxrt.Value{
				"encoder_attention_mask": ints(t, b.AttentionMask),
				"input_ids":              ints(t, r.Decoder.Inputs.InputIDs),
				"encoder_hidden_states":  floats(t, r.Encoder.LastHiddenState),
			}, decNames)
			worst = 0
			for _, n := range decNames {
				worst = math.Max(worst, compare(t, r.Decoder.Graph+" "+n, decOut[n], r.Decoder.Outputs[n]))
			}
			t.Logf("%s (%d outputs): max abs diff %.3g", r.Decoder.Graph, len(decNames), worst)
			checked[r.Decoder.Graph] = true

			// Decoder with past, fed the decoder's present states as past.
			in := map[string]*onnxrt.Value{
				"encoder_attention_mask": ints(t, b.AttentionMask),
				"input_ids":              ints(t, r.DecoderWithPast.Inputs.InputIDs),
			}
			for _, n := range decNames {
				if strings.HasPrefix(n, "present.") {
					in["past_key_values."+strings.TrimPrefix(n, "present.")] = floats(t, r.Decoder.Outputs[n])
				}
			}
			wpNames := slices.Sorted(maps.Keys(r.DecoderWithPast.Outputs))
			wpOut := run(t, env, filepath.Join(dir, r.DecoderWithPast.Graph), in, wpNames)
			worst = 0
			for _, n := range wpNames {
				worst = math.Max(worst, compare(t, r.DecoderWithPast.Graph+" "+n, wpOut[n], r.DecoderWithPast.Outputs[n]))
			}
			t.Logf("%s (%d outputs): max abs diff %.3g", r.DecoderWithPast.Graph, len(wpNames), worst)
			checked[r.DecoderWithPast.Graph] = true

			all, _ := filepath.Glob(filepath.Join(dir, "*.onnx"))
			for _, p := range all {
				if !checked[filepath.Base(p)] {
					t.Errorf("%s has no reference check", p)
				}
			}
		})
	}
}
