package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/testenv"
)

var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// jsonKeys collects the object keys of a JSON document (recursively),
// except those of the objects named in free (whose keys are data, such as
// ROUGE's type names).
func jsonKeys(v any, path string, free map[string]bool, out map[string]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if !free[path] {
				out[k] = path
			}
			jsonKeys(e, k, free, out)
		}
	case []any:
		for _, e := range x {
			jsonKeys(e, path, free, out)
		}
	}
}

// TestJSONOutputsUseSnakeCase: every --json output (inspect, score, env,
// tokenize; predict's --report is checked in predict_report_test.go) has
// snake_case keys, and inspect names element types as people do
// ("int64", "float32"), never by ONNX's enum numbers.
func TestJSONOutputsUseSnakeCase(t *testing.T) {
	dir := t.TempDir()
	hyp := writeFile(t, filepath.Join(dir, "hyp.txt"), []byte("the cat sat on the mat\na dog\n"))
	ref := writeFile(t, filepath.Join(dir, "ref.txt"), []byte("the cat sat on a mat\nthe dog\n"))
	model := testenv.Testdata(t, "models", "t5-tiny", "model.onnx")
	runs := map[string][]string{
		"inspect":      {"inspect", "--json", model},
		"score bleu":   {"score", "--json", "--metric", "bleu", "--hyp", hyp, "--ref", ref},
		"score rouge":  {"score", "--json", "--metric", "rouge", "--hyp", hyp, "--ref", ref},
		"score chrf":   {"score", "--json", "--metric", "chrf", "--hyp", hyp, "--ref", ref},
		"score (segs)": {"score", "--json", "--metric", "bleu", "--sentence", "--hyp", hyp, "--ref", ref},
		"env":          {"--ort-lib", testenv.ORTLibrary(t), "env", "--json"},
		"tokenize":     {"tokenize", "--json", "--tokenizer", testenv.RealData(t, "tokenizers", "flan-t5-small"), hyp},
	}
	for name, args := range runs {
		t.Run(name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			keys := map[string]string{}
			dec := json.NewDecoder(strings.NewReader(stdout))
			for dec.More() {
				var v any
				if err := dec.Decode(&v); err != nil {
					t.Fatalf("not JSON: %v\n%s", err, stdout)
				}
				// ROUGE's type names (rouge1, rougeL, ...) are data: the
				// names rouge-score and HF give them.
				jsonKeys(v, "", map[string]bool{"rouge": true, "": name == "score rouge"}, keys)
			}
			if len(keys) == 0 {
				t.Fatalf("no keys in %s", stdout)
			}
			for k, in := range keys {
				if !snakeCase.MatchString(k) {
					t.Errorf("key %q (in %q) is not snake_case", k, in)
				}
			}
		})
	}
	_, js, _ := runCLI(t, "inspect", "--json", model)
	var s struct {
		Inputs []struct {
			Name string `json:"name"`
			Type struct {
				DType string `json:"dtype"`
				Shape []any  `json:"shape"`
			} `json:"type"`
		} `json:"inputs"`
		Outputs []struct {
			Type struct {
				DType string `json:"dtype"`
			} `json:"type"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal([]byte(js), &s); err != nil {
		t.Fatal(err)
	}
	if len(s.Inputs) == 0 || s.Inputs[0].Type.DType != "int64" || len(s.Inputs[0].Type.Shape) != 2 || s.Outputs[0].Type.DType != "float32" {
		t.Errorf("inspect types: %s", fmt.Sprint(s))
	}
}
