package tokenize

import (
	"math"
	"os"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/ortrain/ortrain/internal/testenv"
)

// fuzzTexts are encoded with every tokenizer that parses.
var fuzzTexts = []string{"Hello world, this is a test.", "  ünïcödé  ", "a\tb\nc", ""}

// FuzzTokenizerJSON parses arbitrary bytes as a tokenizer.json and, when
// they parse, encodes and decodes a few texts: nothing may panic, hang or
// allocate what the file merely claims. Run by scripts/fuzz.sh.
func FuzzTokenizerJSON(f *testing.F) {
	for _, p := range [][]string{{"generate", "predict", "tokenizer.json"}} {
		b, err := os.ReadFile(testenv.Testdata(f, p...))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"model": {"type": "WordLevel", "vocab": {"<unk>": 0, "a": 1}, "unk_token": "<unk>"}}`))
	f.Add([]byte(`{"normalizer": {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Lowercase"}]},
		"pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"}, {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true}]},
		"post_processor": {"type": "TemplateProcessing", "single": [{"Sequence": {"id": "A"}}, {"SpecialToken": {"id": "</s>"}}], "special_tokens": {"</s>": {"id": "</s>", "ids": [1]}}},
		"decoder": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always"},
		"model": {"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0], ["</s>", 0], ["▁a", -1], ["a", -2], ["▁", -3]]}}`))
	f.Add([]byte(`{"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false}, "decoder": {"type": "ByteLevel"},
		"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := parseFile("fuzz.json", data)
		if err != nil {
			return
		}
		for _, s := range fuzzTexts {
			ids, err := tok.EncodeWith(s, EncodeOptions{MaxLength: 16})
			if err == nil {
				tok.Decode(ids, false)
			}
		}
	})
}

// spmBytes is a SentencePiece model with the given pieces (the first is
// <unk>) and options, in the wire format.
func spmBytes(pieces []string, addDummy bool) []byte {
	var b []byte
	for i, p := range pieces {
		var sp []byte
		sp = protowire.AppendTag(sp, 1, protowire.BytesType)
		sp = protowire.AppendString(sp, p)
		sp = protowire.AppendTag(sp, 2, protowire.Fixed32Type)
		sp = protowire.AppendFixed32(sp, math.Float32bits(-float32(i)))
		typ := uint64(1)
		if i == 0 {
			typ = 2 // UNKNOWN
		}
		sp = protowire.AppendTag(sp, 3, protowire.VarintType)
		sp = protowire.AppendVarint(sp, typ)
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, sp)
	}
	var ns []byte
	ns = protowire.AppendTag(ns, 3, protowire.VarintType)
	ns = protowire.AppendVarint(ns, map[bool]uint64{true: 1}[addDummy])
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	return protowire.AppendBytes(b, ns)
}

// FuzzSPM parses arbitrary bytes as a SentencePiece .spm / .model file and,
// when they parse, segments a few texts. Run by scripts/fuzz.sh.
func FuzzSPM(f *testing.F) {
	f.Add(spmBytes([]string{"<unk>", "▁a", "a", "▁", "b", "▁ab"}, true))
	f.Add(spmBytes([]string{"<unk>", "x"}, false))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseSPM(data)
		if err != nil {
			return
		}
		for _, s := range fuzzTexts {
			m.decodePieces(m.encodePieces(s))
		}
	})
}
