package tokenize

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/fault"
)

const wordLevel = `"model": {"type": "WordLevel", "vocab": {"<unk>": 0, "a": 1}, "unk_token": "<unk>"}`

// A vocabulary id near 2^31 (tokenizer.json or Marian's vocab.json) is
// refused; it used to size an array of 2^31 strings (32 GB).
func TestVocabIDNear2To31Refused(t *testing.T) {
	for name, doc := range map[string]string{
		"model.vocab":          `{"model": {"type": "WordLevel", "vocab": {"<unk>": 0, "a": 2147483646}, "unk_token": "<unk>"}}`,
		"added_tokens[0].id":   `{"added_tokens": [{"id": 2147483647, "content": "<x>", "special": true}], ` + wordLevel + `}`,
		"post_processor":       `{"post_processor": {"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 4294967296]}, ` + wordLevel + `}`,
		"special_tokens":       `{"post_processor": {"type": "TemplateProcessing", "single": [{"Sequence": {"id": "A"}}, {"SpecialToken": {"id": "</s>"}}], "special_tokens": {"</s>": {"id": "</s>", "ids": [1099511627776]}}}, ` + wordLevel + `}`,
		"model.vocab negative": `{"model": {"type": "WordLevel", "vocab": {"<unk>": 0, "a": -3}, "unk_token": "<unk>"}}`,
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := parseFile("tok.json", []byte(doc))
		runtime.ReadMemStats(&after)
		var fe *FieldError
		if !errors.As(err, &fe) || !strings.Contains(fe.Field, strings.TrimSuffix(name, " negative")) {
			t.Errorf("%s: %v", name, err)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
			t.Errorf("%s: allocated %d MB", name, grew>>20)
		}
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "vocab.json"), []byte(`{"<unk>": 0, "</s>": 1, "<pad>": 2147483600}`), 0o644)
	os.WriteFile(filepath.Join(dir, "source.spm"), nil, 0o644)
	if _, err := Load(dir); !errors.Is(err, fault.Input) || !strings.Contains(err.Error(), "vocab.json") {
		t.Errorf("Marian vocab.json: %v", err)
	}
}

// nestedPreTokenizer is a pre_tokenizer of Sequences nested depth deep
// around one Split whose pattern is payload bytes long.
func nestedPreTokenizer(depth, payload int) []byte {
	var b strings.Builder
	b.WriteString(`{"pre_tokenizer": `)
	for range depth {
		b.WriteString(`{"type": "Sequence", "pretokenizers": [`)
	}
	fmt.Fprintf(&b, `{"type": "WhitespaceSplit", "comment": "%s"}`, strings.Repeat("x", payload))
	for range depth {
		b.WriteString(`]}`)
	}
	b.WriteString(`, ` + wordLevel + `}`)
	return []byte(b.String())
}

// Nested pre-tokenizer Sequences cost memory in proportion to the file,
// not to depth × file (each level copied its subtree, and depth 5000 cost
// gigabytes); nesting deeper than serde_json's 128 levels (64 Sequences:
// an object and a list each) is refused.
func TestNestedPreTokenizersLinearMemory(t *testing.T) {
	alloc := func(doc []byte) (uint64, error) {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := parseFile("tok.json", doc)
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc, err
	}
	doc := nestedPreTokenizer(60, 1<<20)
	n, err := alloc(doc)
	if err != nil {
		t.Fatal(err)
	}
	if n > 8*uint64(len(doc)) {
		t.Errorf("60 levels around a %d-byte file allocated %d MB (%.0f× the file)", len(doc), n>>20, float64(n)/float64(len(doc)))
	}
	_, err = alloc(nestedPreTokenizer(5000, 10))
	var fe *FieldError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "128") {
		t.Errorf("5000 levels: %v", err)
	}
}

// A tokenizer folder whose files are links out of it is refused; links
// within it, and a tokenizer file the user names directly, are read.
func TestTokenizerFolderLinksChecked(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "model")
	os.MkdirAll(dir, 0o755)
	doc := `{` + wordLevel + `}`
	os.WriteFile(filepath.Join(root, "outside.json"), []byte(doc), 0o644)
	os.Symlink(filepath.Join(root, "outside.json"), filepath.Join(dir, "tokenizer.json"))
	if _, err := Load(dir); !errors.Is(err, fault.Input) || !strings.Contains(err.Error(), "outside the model folder") {
		t.Fatalf("link out of the folder: %v", err)
	}
	if _, err := Load(filepath.Join(dir, "tokenizer.json")); err != nil {
		t.Fatalf("a tokenizer file named directly: %v", err)
	}
	os.Remove(filepath.Join(dir, "tokenizer.json"))
	os.WriteFile(filepath.Join(dir, "real.json"), []byte(doc), 0o644)
	os.Symlink("real.json", filepath.Join(dir, "tokenizer.json"))
	if _, err := Load(dir); err != nil {
		t.Fatalf("link inside the folder: %v", err)
	}
}
