package onnx

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/testenv"
)

func TestSummarizeExternal(t *testing.T) {
	m := smallModel(t)
	path := filepath.Join(t.TempDir(), "m.onnx")
	if err := Save(m, path, SaveOptions{ExternalData: true, SizeThreshold: 40}); err != nil {
		t.Fatal(err)
	}
	lazy, err := LoadWith(path, LoadOptions{KeepExternal: true})
	if err != nil {
		t.Fatal(err)
	}
	s := Summarize(lazy)
	// W is 3x4 float32 = 48 bytes (external); bias 16 bytes stays inline.
	if s.Parameters != 16 || s.ParameterBytes != 64 || s.Initializers != 2 {
		t.Errorf("parameters %d bytes %d initializers %d", s.Parameters, s.ParameterBytes, s.Initializers)
	}
	if len(s.ExternalFiles) != 1 || s.ExternalFiles[0] != "m.onnx.data" || s.ExternalBytes != 48 {
		t.Errorf("external %v %d", s.ExternalFiles, s.ExternalBytes)
	}
	if len(s.Inputs) != 1 || s.Inputs[0].Type.String() != "FLOAT[batch,3]" {
		t.Errorf("inputs %v", s.Inputs)
	}
	if s.Nodes != 4 || len(s.Ops) != 4 {
		t.Errorf("nodes %d ops %v", s.Nodes, s.Ops)
	}
	var buf bytes.Buffer
	if err := s.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ai.onnx 17", "m.onnx.data (48 B)", "FLOAT[batch,4]", "MatMul"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("summary text lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestSummarizeExport(t *testing.T) {
	m, err := Load(testenv.Testdata(t, "onnx", "t5_ts17.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	s := Summarize(m)
	if len(s.Inputs) != 3 || s.Inputs[0].Name != "input_ids" || s.Inputs[0].Type.String() != "INT64[batch,enc]" {
		t.Errorf("inputs %v", s.Inputs)
	}
	if s.Outputs[0].Name != "logits" || s.Ops[0].Count < s.Ops[len(s.Ops)-1].Count {
		t.Errorf("outputs %v ops %v", s.Outputs, s.Ops)
	}
	if s.Parameters == 0 {
		t.Error("no parameters counted")
	}
	if HumanBytes(1536) != "1.5 KiB" || HumanBytes(3<<30) != "3.0 GiB" {
		t.Errorf("HumanBytes %s %s", HumanBytes(1536), HumanBytes(3<<30))
	}
}
