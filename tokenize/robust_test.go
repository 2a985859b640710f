package tokenize

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// randomText mixes scripts, combining marks, controls, odd spaces, emoji
// and fragments of special tokens.
func randomText(r *rand.Rand) string {
	parts := []string{"a", "Z", " ", "  ", "\t", "\n", "\u00a0", "\u200b", "\u0301", "\u0000", "\u001f", "é", "ß", "ﬁ",
		"中", "ア", "한", "😀", "👍🏽", "<s>", "</s>", "<pad>", "<unk>", "<extra_id_0>", ">>fr<<", "▁", "Ġ", "'s", "\uFFFD",
		"\U0010FFFF", "١٢", "ǅ", "Ω", ".", "!!", "-", "\r\n", "<mask>", "[UNK]"}
	var b strings.Builder
	for n := r.IntN(30); n > 0; n-- {
		b.WriteString(parts[r.IntN(len(parts))])
	}
	return b.String()
}

// TestNoPanicOnRandomInput encodes and decodes random text and random ids
// with every tokenizer; nothing may panic and encoding valid UTF-8 may not
// fail.
func TestNoPanicOnRandomInput(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, pt := range parityTokenizers {
		tok := loadParity(t, pt.dir, pt.target, pt.file)
		for i := 0; i < 300; i++ {
			text := randomText(r)
			ids, err := tok.Encode(text)
			if err != nil {
				t.Fatalf("%s: %q: %v", pt.ref, text, err)
			}
			tok.Decode(ids, true)
			if _, err := tok.EncodeWith(text, EncodeOptions{MaxLength: 2 + r.IntN(5)}); err != nil {
				t.Fatalf("%s: %q truncated: %v", pt.ref, text, err)
			}
			junk := make([]int, r.IntN(10))
			for k := range junk {
				junk[k] = r.IntN(tok.VocabSize()+200) - 100
			}
			tok.Decode(junk, r.IntN(2) == 0)
		}
	}
}

func FuzzEncodeT5(f *testing.F) {
	tok := loadParity(f, "flan-t5-small", false, false)
	for _, s := range []string{"Hello world", "ﬁ\u0301", "</s>x", "\xff", "  "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ids, err := tok.Encode(s)
		if err == nil {
			tok.Decode(ids, true)
		}
	})
}

// TestLowercaseLikeRust checks the two places where Rust's to_lowercase
// (HF's Lowercase normalizer) differs from strings.ToLower.
func TestLowercaseLikeRust(t *testing.T) {
	for in, want := range map[string]string{
		"ΟΔΟΣ":        "οδος",
		"ΟΔΟΣ ΜΑΣ.":   "οδος μας.",
		"Σ":           "σ",
		"ΑΣΑ":         "ασα",
		"İstanbul":    "i\u0307stanbul",
		"Hello WORLD": "hello world",
	} {
		if got := lowercase(in); got != want {
			t.Errorf("lowercase(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHFRegexClasses(t *testing.T) {
	for _, c := range []struct{ pattern, in, want string }{
		{`\s+`, "a\u2028\u3000b\u00a0 c", "a_b_c"},
		{`[\s,]+`, "a,\u3000b", "a_b"},
		{`\S+`, "ab\u3000cd", "_\u3000_"},
		{`\d`, "1١", "__"},
		{`\w+`, "é́x_1 -", "_ -"},
		{`\\s`, `a\sb`, "a_b"},
		{`[]a]`, "]a", "__"},
	} {
		re, err := compileHFRegex(c.pattern)
		if err != nil {
			t.Fatalf("%s: %v", c.pattern, err)
		}
		if got := re.ReplaceAllString(c.in, "_"); got != c.want {
			t.Errorf("%s on %q = %q, want %q", c.pattern, c.in, got, c.want)
		}
	}
	if _, err := compileHFRegex(`[\S]`); err == nil {
		t.Error(`[\S] accepted`)
	}
}
