package pyjson

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/ortrain/ortrain/internal/testenv"
)

// TestMatchesPython compares with Python's repr(float) and
// json.dumps(indent=..., sort_keys=True) (scripts/refs/trainer_basic_refs.py).
func TestMatchesPython(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "testdata", "trainer", "basic_refs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Pyjson struct {
			Floats        [][2]string    `json:"floats"`
			Object        map[string]any `json:"object"`
			ObjectIndent2 string         `json:"object_indent2"`
			ObjectIndent4 string         `json:"object_indent4"`
		} `json:"pyjson"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	p := doc.Pyjson
	if len(p.Floats) < 20 {
		t.Fatal("too few float references")
	}
	for _, c := range p.Floats {
		f, err := strconv.ParseFloat(c[1], 64) // hex float from float.hex()
		if err != nil {
			t.Fatalf("parse %q: %v", c[1], err)
		}
		want := c[0]
		switch want {
		case "nan":
			want = "NaN"
		case "inf":
			want = "Infinity"
		case "-inf":
			want = "-Infinity"
		}
		if got := FormatFloat(f); got != want {
			t.Errorf("FormatFloat(%s) = %s, Python %s", c[1], got, want)
		}
	}
	// encoding/json decodes numbers as float64; the reference object holds
	// 1 (int) and 2.0 (float), so restore the int where Python had one.
	obj := p.Object
	obj["b"].([]any)[0] = 1
	got, err := Marshal(obj, 2)
	if err != nil {
		t.Fatal(err)
	}
	if string(got)+"\n" != p.ObjectIndent2 {
		t.Errorf("indent 2:\n%s\nPython:\n%s", got, p.ObjectIndent2)
	}
	got, _ = Marshal(obj, 4)
	if string(got) != p.ObjectIndent4 {
		t.Errorf("indent 4:\n%s\nPython:\n%s", got, p.ObjectIndent4)
	}
}
