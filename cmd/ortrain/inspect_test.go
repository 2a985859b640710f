package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/demo"
	"github.com/ortrain/ortrain/internal/onnx"
)

// runCLI runs the CLI in-process and returns exit code, stdout and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), append([]string{"ortrain"}, args...), strings.NewReader(""), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestInspectExternalData(t *testing.T) {
	m, err := demo.Build(demo.DefaultConfig(60))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "model.onnx")
	if err := onnx.Save(m.Forward, path, onnx.SaveOptions{ExternalData: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".data"); err != nil {
		t.Fatalf("no external data file: %v", err)
	}
	code, out, errOut := runCLI(t, "inspect", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"model.onnx.data", "input_ids", "decoder_input_ids", "logits", "MatMul", "LayerNormalization"} {
		if !strings.Contains(out, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}
	n := 0
	for _, w := range m.Weights {
		n += len(w.Data)
	}
	code, js, _ := runCLI(t, "inspect", "--json", path)
	if code != 0 || !strings.Contains(js, `"parameters": `+itoa(n)) {
		t.Fatalf("json (exit %d) lacks the parameter count %d:\n%s", code, n, js)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestInspectBadInput(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.onnx")
	os.WriteFile(junk, []byte("this is not protobuf \xff\xfe"), 0o644)
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"inspect", filepath.Join(dir, "missing.onnx")}, exitData, "missing.onnx"},
		{[]string{"inspect", junk}, exitData, "not an ONNX model"},
		{[]string{"inspect"}, exitUsage, "one model file"},
		{[]string{"no-such-command"}, exitUsage, "unknown command"},
	} {
		code, _, errOut := runCLI(t, c.args...)
		if code != c.code || !strings.Contains(errOut, c.msg) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d mentioning %q", c.args, code, errOut, c.code, c.msg)
		}
	}
}
