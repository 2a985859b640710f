package tokenize

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/testenv"
)

// The references come from scripts/refs/tokenizer_multilingual_refs.py
// (transformers' M2M100Tokenizer, MBartTokenizer, MBart50Tokenizer and
// NllbTokenizer on the folders of testdata/tokenizers/multilingual).

type mlCases struct {
	Texts                    []string `json:"texts"`
	Source                   [][]int  `json:"source"`
	Target                   [][]int  `json:"target"`
	Decoded                  []string `json:"decoded"`
	DecodedWithSpecial       []string `json:"decoded_with_special"`
	TargetDecodedWithSpecial []string `json:"target_decoded_with_special"`
	Truncation               struct {
		MaxLength int      `json:"max_length"`
		Texts     []string `json:"texts"`
		Source    [][]int  `json:"source"`
		Target    [][]int  `json:"target"`
	} `json:"truncation"`
	Pairs []struct {
		SourceLang string   `json:"source_lang"`
		TargetLang string   `json:"target_lang"`
		Texts      []string `json:"texts"`
		Source     [][]int  `json:"source"`
		Target     [][]int  `json:"target"`
	} `json:"pairs"`
}

type mlKind struct {
	Class           string          `json:"class"`
	Folders         []string        `json:"folders"`
	SourceLang      string          `json:"source_lang"`
	TargetLang      string          `json:"target_lang"`
	ConfigOverrides map[string]any  `json:"config_overrides"`
	SpecialIDs      map[string]*int `json:"special_ids"`
	VocabSize       int             `json:"vocab_size"`
	Cases           mlCases         `json:"cases"`
	Corpora         map[string]struct {
		Count      int    `json:"count"`
		TextSHA256 string `json:"text_sha256"`
		Digest     string `json:"digest"`
		Sums       string `json:"sums"`
		Sample     map[string]struct {
			Source  []int  `json:"source"`
			Target  []int  `json:"target"`
			Decoded string `json:"decoded"`
		} `json:"sample"`
	} `json:"corpora"`
}

func readMultilingualRefs(t testing.TB) map[string]mlKind {
	t.Helper()
	f, err := os.Open(testenv.Testdata(t, "tokenizers", "multilingual.json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Kinds map[string]mlKind `json:"kinds"`
	}
	if err := json.NewDecoder(zr).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	return doc.Kinds
}

// mlFolder is a tokenizer folder of testdata/tokenizers/multilingual, copied
// with tokenizer_config.json changed when the kind has overrides (as the
// reference script does).
func mlFolder(t testing.TB, name string, overrides map[string]any) string {
	t.Helper()
	src := testenv.Testdata(t, "tokenizers", "multilingual", name)
	if len(overrides) == 0 {
		return src
	}
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "tokenizer_config.json" {
			var cfg map[string]any
			if err := json.Unmarshal(b, &cfg); err != nil {
				t.Fatal(err)
			}
			for k, v := range overrides {
				cfg[k] = v
			}
			if b, err = json.Marshal(cfg); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func loadML(t testing.TB, dir, src, tgt string) *Pair {
	t.Helper()
	p, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if p.Languages() == nil {
		t.Fatalf("%s: not loaded as a multilingual tokenizer (family %s)", dir, p.Family)
	}
	q, err := p.WithLanguages(src, tgt)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func csvIDs(ids []int) string {
	s := make([]string, len(ids))
	for i, v := range ids {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, ",")
}

// TestMultilingualParityWithHF encodes every sentence of the committed
// corpus samples as source and as target with every folder of each
// multilingual kind and compares with the HF class, sentence by sentence.
func TestMultilingualParityWithHF(t *testing.T) {
	kinds := readMultilingualRefs(t)
	corpora := readCorpora(t, testenv.RealData(t))
	for _, kind := range []string{"m2m100", "mbart", "mbart50", "nllb"} {
		ref := kinds[kind]
		if len(ref.Corpora) == 0 {
			t.Fatalf("no corpus references for %s", kind)
		}
		for _, folder := range ref.Folders {
			t.Run(kind+"/"+folder, func(t *testing.T) {
				p := loadML(t, mlFolder(t, folder, ref.ConfigOverrides), ref.SourceLang, ref.TargetLang)
				if l := p.Languages(); l.Class != ref.Class {
					t.Errorf("class %s, HF %s", l.Class, ref.Class)
				}
				total, miss := 0, 0
				for _, c := range corpora {
					rc, ok := ref.Corpora[c.name]
					if !ok {
						t.Fatalf("reference has no corpus %s; rerun scripts/refs/tokenizer_multilingual_refs.py", c.name)
					}
					h := sha256.Sum256([]byte(strings.Join(c.texts, "\n")))
					if rc.Count != len(c.texts) || hex.EncodeToString(h[:]) != rc.TextSHA256 {
						t.Fatalf("%s: the committed sample differs from the one the reference was made from", c.name)
					}
					sums, err := base64.StdEncoding.DecodeString(rc.Sums)
					if err != nil || len(sums) != 3*rc.Count {
						t.Fatalf("%s: bad sums", c.name)
					}
					src, srcErrs := p.Source.EncodeBatch(t.Context(), c.texts, 0)
					tgt, tgtErrs := p.Target.EncodeBatch(t.Context(), c.texts, 0)
					lines := make([]string, len(c.texts))
					for i, text := range c.texts {
						total++
						if err := errors.Join(srcErrs[i], tgtErrs[i]); err != nil {
							t.Fatalf("%s[%d]: %v", c.name, i, err)
						}
						dec := p.Source.Decode(src[i], true)
						lines[i] = csvIDs(src[i]) + "|" + csvIDs(tgt[i]) + "|" + dec
						d := sha256.Sum256([]byte(lines[i]))
						if string(d[:3]) != string(sums[3*i:3*i+3]) {
							miss++
							if miss <= 8 {
								detail := ""
								if s, ok := rc.Sample[strconv.Itoa(i)]; ok {
									detail = fmt.Sprintf("\n  HF: %v | %v | %q", s.Source, s.Target, s.Decoded)
								}
								t.Errorf("%s[%d] %q:\n  Go: %v | %v | %q %q%s", c.name, i, text, src[i], tgt[i], dec, p.Source.Tokens(src[i]), detail)
							}
						}
					}
					if d := sha256.Sum256([]byte(strings.Join(lines, "\n"))); hex.EncodeToString(d[:]) != rc.Digest && miss == 0 {
						t.Errorf("%s: corpus digest differs from HF although every sentence's sum matches", c.name)
					}
				}
				t.Logf("%s (%s, %s→%s): %d sentences compared as source and target (ids and decoded text), %d differ from HF",
					folder, ref.Class, ref.SourceLang, ref.TargetLang, total, miss)
			})
		}
	}
}

// TestMultilingualCasesWithHF covers edge cases, decoding with special
// tokens, truncation, other language pairs and NLLB's legacy template.
func TestMultilingualCasesWithHF(t *testing.T) {
	kinds := readMultilingualRefs(t)
	for kind, ref := range kinds {
		for _, folder := range ref.Folders {
			t.Run(kind+"/"+folder, func(t *testing.T) {
				dir := mlFolder(t, folder, ref.ConfigOverrides)
				p := loadML(t, dir, ref.SourceLang, ref.TargetLang)
				c := ref.Cases
				// HF's len(M2M100Tokenizer) leaves out the language tokens its encoder produces.
				if n := p.Source.VocabSize(); n != ref.VocabSize && ref.Class != classM2M100 {
					t.Errorf("vocabulary of %d ids, HF len(tokenizer) %d", n, ref.VocabSize)
				}
				l := p.Languages()
				if want := ref.SpecialIDs; *want["source_lang"] != l.SourceID || *want["target_lang"] != l.TargetID ||
					*want["eos_token"] != p.Source.Special().EOS || *want["pad_token"] != p.Source.Special().Pad {
					t.Errorf("special ids: languages %s %d, %s %d, tokens %+v; HF source %d target %d eos %d pad %d", l.Source, l.SourceID, l.Target, l.TargetID, p.Source.Special(),
						*want["source_lang"], *want["target_lang"], *want["eos_token"], *want["pad_token"])
				}
				bad := 0
				check := func(what string, got, want any) {
					if fmt.Sprint(got) != fmt.Sprint(want) {
						bad++
						if bad <= 10 {
							t.Errorf("%s:\n  Go: %v\n  HF: %v", what, got, want)
						}
					}
				}
				for i, text := range c.Texts {
					s, err := p.Source.Encode(text)
					if err != nil {
						t.Fatalf("%q: %v", text, err)
					}
					g, err := p.Target.Encode(text)
					if err != nil {
						t.Fatalf("%q: %v", text, err)
					}
					check(fmt.Sprintf("source %q", text), s, c.Source[i])
					check(fmt.Sprintf("target %q", text), g, c.Target[i])
					check(fmt.Sprintf("decode %v", c.Source[i]), fmt.Sprintf("%q", p.Source.Decode(c.Source[i], true)), fmt.Sprintf("%q", c.Decoded[i]))
					check(fmt.Sprintf("decode with special %v", c.Source[i]), fmt.Sprintf("%q", p.Source.Decode(c.Source[i], false)), fmt.Sprintf("%q", c.DecodedWithSpecial[i]))
					check(fmt.Sprintf("decode target with special %v", c.Target[i]), fmt.Sprintf("%q", p.Target.Decode(c.Target[i], false)), fmt.Sprintf("%q", c.TargetDecodedWithSpecial[i]))
				}
				for i, text := range c.Truncation.Texts {
					opt := EncodeOptions{MaxLength: c.Truncation.MaxLength}
					s, err := p.Source.EncodeWith(text, opt)
					if err != nil {
						t.Fatal(err)
					}
					g, err := p.Target.EncodeWith(text, opt)
					if err != nil {
						t.Fatal(err)
					}
					check(fmt.Sprintf("truncated source %q", text), s, c.Truncation.Source[i])
					check(fmt.Sprintf("truncated target %q", text), g, c.Truncation.Target[i])
				}
				for _, pr := range c.Pairs {
					q := loadML(t, dir, pr.SourceLang, pr.TargetLang)
					for i, text := range pr.Texts {
						s, _ := q.Source.Encode(text)
						g, _ := q.Target.Encode(text)
						check(fmt.Sprintf("%s→%s source %q", pr.SourceLang, pr.TargetLang, text), s, pr.Source[i])
						check(fmt.Sprintf("%s→%s target %q", pr.SourceLang, pr.TargetLang, text), g, pr.Target[i])
					}
				}
				t.Logf("%s: %d edge cases, %d truncations, %d language pairs; %d mismatches", folder, len(c.Texts), len(c.Truncation.Texts), len(c.Pairs), bad)
			})
		}
	}
}

// TestMultilingualLanguageErrors: codes the tokenizer does not know, or a
// missing one, are settings errors that name the class and list codes.
func TestMultilingualLanguageErrors(t *testing.T) {
	p, err := Load(testenv.Testdata(t, "tokenizers", "multilingual", "mbart50"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ src, tgt, want string }{
		{"en", "ro_RO", `"en" is not a language code of this MBart50Tokenizer (did you mean en_XX?)`},
		{"en_XX", "", "needs both a source and a target language code"},
		{"en_XX", "xx_YY", "its codes: ar_AR cs_CZ"},
	} {
		_, err := p.WithLanguages(tc.src, tc.tgt)
		if !errors.Is(err, fault.Settings) || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("WithLanguages(%q, %q) = %v; want a settings error containing %q", tc.src, tc.tgt, err, tc.want)
		}
	}
	mono, err := Load(testenv.RealData(t, "tokenizers", "flan-t5-small"))
	if err != nil {
		t.Fatal(err)
	}
	if mono.Languages() != nil {
		t.Error("FLAN-T5's tokenizer reports language codes")
	}
	if _, err := mono.WithLanguages("en", "ro"); !errors.Is(err, fault.Settings) {
		t.Errorf("WithLanguages on T5: %v", err)
	}
	// Other languages change the fingerprint (the tokenized-data cache key).
	a, _ := p.WithLanguages("en_XX", "ro_RO")
	b, _ := p.WithLanguages("en_XX", "de_DE")
	if a.Fingerprint() == b.Fingerprint() || a.Fingerprint() == p.Fingerprint() {
		t.Error("fingerprint does not depend on the languages")
	}
	if !slices.Contains(a.Languages().Codes, "sl_SI") || a.Languages().TargetCodeFirst != true {
		t.Errorf("languages %+v", a.Languages())
	}
}

// TestMultilingualNoPanicOnRandomInput encodes and decodes random text and
// random ids with every multilingual folder, as sources and as targets.
func TestMultilingualNoPanicOnRandomInput(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, folder := range []string{"m2m100", "mbart", "mbart-spm", "mbart50", "mbart50-spm", "nllb"} {
		p, err := Load(testenv.Testdata(t, "tokenizers", "multilingual", folder))
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range []*Tokenizer{p.Source, p.Target} {
			for range 200 {
				text := randomText(r)
				ids, err := tok.Encode(text)
				if err != nil {
					t.Fatalf("%s: %q: %v", folder, text, err)
				}
				tok.Decode(ids, r.IntN(2) == 0)
				if _, err := tok.EncodeWith(text, EncodeOptions{MaxLength: 2 + r.IntN(5)}); err != nil {
					t.Fatalf("%s: %q truncated: %v", folder, text, err)
				}
				junk := make([]int, r.IntN(10))
				for k := range junk {
					junk[k] = r.IntN(tok.VocabSize()+200) - 100
				}
				tok.Decode(junk, r.IntN(2) == 0)
			}
		}
	}
}

// TestMultilingualBadFolders: broken or incomplete folders are input errors
// that name the file and what to do; nothing panics.
func TestMultilingualBadFolders(t *testing.T) {
	src := func(folder, file string) []byte {
		b, err := os.ReadFile(testenv.Testdata(t, "tokenizers", "multilingual", folder, file))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	m2mConfig := string(src("m2m100", "tokenizer_config.json"))
	for _, tc := range []struct {
		name  string
		files map[string][]byte
		want  string
	}{
		{"m2m100 without vocab.json", map[string][]byte{"tokenizer_config.json": []byte(m2mConfig),
			"sentencepiece.bpe.model": src("m2m100", "sentencepiece.bpe.model")}, "vocab.json"},
		{"m2m100 vocab.json not an object", map[string][]byte{"tokenizer_config.json": []byte(m2mConfig),
			"sentencepiece.bpe.model": src("m2m100", "sentencepiece.bpe.model"), "vocab.json": []byte(`[1, 2]`)}, "want an object of piece: id"},
		{"m2m100 vocab.json with a huge id", map[string][]byte{"tokenizer_config.json": []byte(m2mConfig),
			"sentencepiece.bpe.model": src("m2m100", "sentencepiece.bpe.model"),
			"vocab.json":              []byte(`{"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "x": 2000000000}`)}, "far beyond"},
		{"m2m100 unknown language_codes", map[string][]byte{"tokenizer_config.json": []byte(`{"tokenizer_class": "M2M100Tokenizer", "language_codes": "wmt99"}`),
			"sentencepiece.bpe.model": src("m2m100", "sentencepiece.bpe.model"), "vocab.json": src("m2m100", "vocab.json")}, `"wmt99" is not a language code set`},
		{"m2m100 truncated model", map[string][]byte{"tokenizer_config.json": []byte(m2mConfig),
			"sentencepiece.bpe.model": src("m2m100", "sentencepiece.bpe.model")[:100], "vocab.json": src("m2m100", "vocab.json")}, "sentencepiece.bpe.model"},
		{"nllb without tokenizer.json", map[string][]byte{"tokenizer_config.json": []byte(`{"tokenizer_class": "NllbTokenizer"}`),
			"sentencepiece.bpe.model": src("m2m100", "sentencepiece.bpe.model")}, "save the tokenizer with save_pretrained"},
		{"mbart without files", map[string][]byte{"tokenizer_config.json": []byte(`{"tokenizer_class": "MBartTokenizerFast"}`)},
			"needs tokenizer.json or sentencepiece.bpe.model"},
		{"mbart with a BPE tokenizer.json", map[string][]byte{"tokenizer_config.json": []byte(`{"tokenizer_class": "MBartTokenizer"}`),
			"tokenizer.json": src("nllb", "tokenizer.json")}, "BPE, but MBartTokenizer is a Unigram tokenizer"},
		{"mbart with an unknown src_lang", map[string][]byte{"tokenizer_config.json": []byte(`{"tokenizer_class": "MBartTokenizer", "src_lang": "xx_XX"}`),
			"tokenizer.json": src("mbart", "tokenizer.json")}, `"xx_XX" is not a language code`},
		{"malformed tokenizer_config.json", map[string][]byte{"tokenizer_config.json": []byte(`{"tokenizer_class": `),
			"tokenizer.json": src("mbart", "tokenizer.json")}, "tokenizer_config.json: malformed JSON"},
	} {
		dir := t.TempDir()
		for name, b := range tc.files {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		_, err := Load(dir)
		t.Logf("%s: %v", tc.name, err)
		if !errors.Is(err, fault.Input) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want an input error containing %q", tc.name, err, tc.want)
		}
	}
	// A model folder without tokenizer_config.json: config.json's model_type picks the class.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"model_type": "mbart"}`), 0o644)
	os.WriteFile(filepath.Join(dir, "tokenizer.json"), src("mbart", "tokenizer.json"), 0o644)
	if p, err := Load(dir); err != nil || p.Languages() == nil || p.Languages().Class != classMBart {
		t.Errorf("mBART folder without tokenizer_config.json: %v", err)
	}
}
