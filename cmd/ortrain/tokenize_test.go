package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/testenv"
)

func runTokenizeCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), append([]string{"ortrain", "tokenize"}, args...), strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// The expected ids are HF's (testdata/tokenizers/cases.json).
func TestTokenizeCommand(t *testing.T) {
	t5 := testenv.RealData(t, "tokenizers", "flan-t5-small")
	marian := testenv.RealData(t, "tokenizers", "opus-mt-en-mg")
	code, out, errOut := runTokenizeCLI(t, "Hello world\n  Hello   world  \n", "--tokenizer", t5)
	if code != 0 || out != "8774 296 1\n8774 296 1\n" {
		t.Fatalf("encode: code %d out %q err %q", code, out, errOut)
	}
	code, out, _ = runTokenizeCLI(t, "Hello world\n", "--tokenizer", marian, "--target", "--json")
	if code != 0 || out != `{"ids":[448,17531,28,13946,0],"tokens":["▁H","ello","▁","world","</s>"]}`+"\n" {
		t.Fatalf("marian target json: code %d out %q", code, out)
	}
	// Decoding accepts the JSON output, JSON arrays and plain ids.
	code, out, _ = runTokenizeCLI(t, `{"ids":[8774,296,1]}`+"\n[8774, 296, 1]\n8774 296 1\n", "--tokenizer", t5, "--decode", "--skip-special")
	if code != 0 || out != "Hello world\nHello world\nHello world\n" {
		t.Fatalf("decode: code %d out %q", code, out)
	}
	code, out, _ = runTokenizeCLI(t, "8774 296 1\n", "--tokenizer", t5, "--decode", "--json")
	if code != 0 || out != `{"text":"Hello world</s>"}`+"\n" {
		t.Fatalf("decode json: code %d out %q", code, out)
	}
	// From a file, truncated.
	f := filepath.Join(t.TempDir(), "in.txt")
	os.WriteFile(f, []byte("Hello world again and again\n"), 0o644)
	code, out, _ = runTokenizeCLI(t, "", "--tokenizer", t5, "--max-length", "3", f)
	if code != 0 || out != "8774 296 1\n" {
		t.Fatalf("file + max-length: code %d out %q", code, out)
	}
}

func TestTokenizeCommandErrors(t *testing.T) {
	t5 := testenv.RealData(t, "tokenizers", "flan-t5-small")
	bad := filepath.Join(t.TempDir(), "tokenizer.json")
	os.WriteFile(bad, []byte(`{"model": {"type": "Foo", "vocab": {}}}`), 0o644)
	cases := []struct {
		name  string
		stdin string
		args  []string
		code  int
		msg   string
	}{
		{"invalid utf-8", "ok\n\xff\xfe\n", []string{"--tokenizer", t5}, exitData, "<stdin>:2: not valid UTF-8"},
		{"bad ids", "1 x 3\n", []string{"--tokenizer", t5, "--decode"}, exitData, `<stdin>:1: "x" is not a token id`},
		{"ids field missing", `{"text": "a"}` + "\n", []string{"--tokenizer", t5, "--decode"}, exitData, `field "ids": missing`},
		{"unknown model type", "", []string{"--tokenizer", bad}, exitData, `model.type: unknown model type "Foo"`},
		{"no tokenizer there", "", []string{"--tokenizer", t.TempDir()}, exitData, "neither tokenizer.json nor a Marian"},
		{"no flag", "", nil, exitUsage, "tokenizer"},
		{"two files", "", []string{"--tokenizer", t5, "a", "b"}, exitUsage, "at most one input file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, errOut := runTokenizeCLI(t, c.stdin, c.args...)
			if code != c.code || !strings.Contains(errOut, c.msg) {
				t.Errorf("code %d (want %d), stderr %q (want %q)", code, c.code, errOut, c.msg)
			}
		})
	}
}
