package main

import (
	"bytes"
	"context"
	"encoding/json"
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

// TestInspectProviderCUDA: --provider cuda lists the nodes ONNX Runtime
// 1.29.0's CUDA provider has no kernel for (ReduceMean has no bfloat16
// kernel, BitShift none at all) and none for a float16 ReduceMean; the
// JSON carries the same list.
func TestInspectProviderCUDA(t *testing.T) {
	dir := t.TempDir()
	save := func(name string, dt onnx.DType, shift bool) string {
		b := onnx.NewGraphBuilder(nil)
		x := b.AddInput("x", dt, onnx.D(2), onnx.D(3))
		y := b.Op("ReduceMean", []string{x, b.ConstInt64Vec(-1)})
		b.AddOutput(y, dt, onnx.D(2), onnx.D(1))
		if shift {
			u := b.AddInput("u", onnx.Uint64, onnx.D(4))
			b.AddOutput(b.Op("BitShift", []string{u, u}, onnx.AttrString("direction", "LEFT")), onnx.Uint64, onnx.D(4))
		}
		path := filepath.Join(dir, name)
		if err := onnx.Save(onnx.NewModel(b.Graph(), 18), path, onnx.SaveOptions{}); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good, bad := save("fp16.onnx", onnx.Float16, false), save("bf16.onnx", onnx.BFloat16, true)

	code, out, errOut := runCLI(t, "inspect", "--provider", "cuda", good)
	if code != 0 || !strings.Contains(out, "CUDAExecutionProvider kernels (ONNX Runtime 1.29.0): 1 nodes checked, 0 without a kernel") {
		t.Fatalf("float16 ReduceMean: exit %d, stderr %q, output:\n%s", code, errOut, out)
	}
	code, out, errOut = runCLI(t, "inspect", "--provider", "cuda", bad)
	if code != 0 || !strings.Contains(out, "2 nodes checked, 2 without a kernel") ||
		!strings.Contains(out, "(ReduceMean, T=bfloat16): no CUDA kernel of version 18 takes these types") ||
		!strings.Contains(out, "(BitShift): no CUDA kernel for this operator at opset 18") {
		t.Fatalf("bfloat16 ReduceMean and BitShift: exit %d, stderr %q, output:\n%s", code, errOut, out)
	}
	code, js, _ := runCLI(t, "inspect", "--json", "--provider", "cuda", bad)
	var rep struct {
		Kernels struct {
			Nodes     int
			Uncovered []struct{ Op string }
		}
	}
	if err := json.Unmarshal([]byte(js), &rep); code != 0 || err != nil || rep.Kernels.Nodes != 2 || len(rep.Kernels.Uncovered) != 2 ||
		rep.Kernels.Uncovered[0].Op != "ReduceMean" || rep.Kernels.Uncovered[1].Op != "BitShift" {
		t.Fatalf("json (exit %d, %v): %+v\n%s", code, err, rep, js)
	}
	if code, js, _ := runCLI(t, "inspect", "--json", good); code != 0 || strings.Contains(js, "Kernels") {
		t.Errorf("without --provider the JSON has no kernel report (exit %d):\n%s", code, js)
	}
	code, _, errOut = runCLI(t, "inspect", "--provider", "rocm", good)
	if code != exitUsage || !strings.Contains(errOut, "only cuda") {
		t.Errorf("--provider rocm: exit %d, stderr %q; want a usage error", code, errOut)
	}
}
