package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/testenv"
	"github.com/ortrain/ortrain/ortrain/ortckpt"
)

func TestArtifactsFromORTAndBack(t *testing.T) {
	testenv.ORTLibrary(t)
	src := testenv.Testdata(t, "ort-artifacts", "t5-tiny")
	out := t.TempDir()
	code, stdout, stderr := runCLI(t, "artifacts", "--from-ort", src, "--out", out)
	if code != 0 || !strings.Contains(stdout, "47 trainable") || !strings.Contains(stdout, "adam_mode 1") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	ck := filepath.Join(t.TempDir(), "checkpoint")
	if code, _, stderr := runCLI(t, "export-ort", "--artifacts", out, "--out", ck); code != 0 {
		t.Fatalf("export-ort: exit %d: %s", code, stderr)
	}
	back, err := ortckpt.ReadFile(ck)
	if err != nil || len(back.Trainable) != 47 {
		t.Fatalf("exported checkpoint: %v", err)
	}
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"artifacts", "--from-ort", t.TempDir(), "--out", t.TempDir()}, exitData, "has no checkpoint"},
		{[]string{"artifacts", "--from-ort", src, "--model", "x.onnx", "--out", t.TempDir()}, exitUsage, "not both"},
		{[]string{"artifacts", "--out", t.TempDir()}, exitUsage, "--from-ort"},
	} {
		code, _, stderr := runCLI(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.msg) {
			t.Errorf("%v: exit %d, %q; want %d mentioning %q", c.args, code, stderr, c.code, c.msg)
		}
	}
}
