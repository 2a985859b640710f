package tokenize

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ortrain/ortrain/internal/testenv"
)

// The references come from scripts/refs/tokenizer_refs.py (HF transformers'
// tokenizer classes); readCorpora mirrors its corpus_texts() exactly.

type refCorpus struct {
	Count      int    `json:"count"`
	TextSHA256 string `json:"text_sha256"`
	Sums       string `json:"sums"`
	Sample     map[string]struct {
		IDs     []int  `json:"ids"`
		Decoded string `json:"decoded"`
	} `json:"sample"`
}

type refFile struct {
	Meta    json.RawMessage      `json:"meta"`
	Corpora map[string]refCorpus `json:"corpora"`
}

func readLines(t testing.TB, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// A namedCorpus is one corpus of tokenizer_refs.py's corpus_texts, whole or
// sampled. count and sha256 describe the full corpus the references were made
// from; index[i] is the position of texts[i] in it (nil: texts is the full
// corpus).
type namedCorpus struct {
	name   string
	texts  []string
	index  []int
	count  int
	sha256 string
}

// at is the position in the full corpus of the i-th text, which selects the
// reference digests and full-id sample of that sentence.
func (c namedCorpus) at(i int) int {
	if c.index == nil {
		return i
	}
	return c.index[i]
}

func corpusTexts(t testing.TB) []namedCorpus {
	root, full := testenv.CorpusRoot(t)
	out := readCorpora(t, root)
	if full {
		for i, c := range out {
			h := sha256.Sum256([]byte(strings.Join(c.texts, "\n")))
			out[i].count, out[i].sha256 = len(c.texts), hex.EncodeToString(h[:])
		}
		return out
	}
	// The committed sample: sample-index.json (scripts/fixtures/make_realdata.py)
	// gives each corpus's full count and hash and the position of each sampled
	// sentence.
	data, err := os.ReadFile(filepath.Join(root, "sample-index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var index map[string]struct {
		Count        int    `json:"count"`
		TextSHA256   string `json:"text_sha256"`
		SampleSHA256 string `json:"sample_sha256"`
		Indices      []int  `json:"indices"`
	}
	if err := json.Unmarshal(data, &index); err != nil {
		t.Fatalf("sample-index.json: %v", err)
	}
	for i, c := range out {
		e, ok := index[c.name]
		h := sha256.Sum256([]byte(strings.Join(c.texts, "\n")))
		if !ok || len(e.Indices) != len(c.texts) || hex.EncodeToString(h[:]) != e.SampleSHA256 ||
			!slices.IsSorted(e.Indices) || len(e.Indices) > 0 && (e.Indices[0] < 0 || e.Indices[len(e.Indices)-1] >= e.Count) {
			t.Fatalf("%s: the sample differs from sample-index.json; rerun scripts/fixtures/make_realdata.py", c.name)
		}
		out[i].index, out[i].count, out[i].sha256 = e.Indices, e.Count, e.TextSHA256
	}
	return out
}

// readCorpora mirrors tokenizer_refs.py's corpus_texts exactly.
func readCorpora(t testing.TB, root string) []namedCorpus {
	tr := filepath.Join(root, "translation")
	var out []namedCorpus
	for _, split := range []string{"train", "dev", "test"} {
		for _, lang := range []string{"en", "ro"} {
			out = append(out, namedCorpus{name: "tatoeba-en-ro." + split + "." + lang, texts: readLines(t, filepath.Join(tr, "tatoeba-en-ro", split+"."+lang))})
		}
	}
	for _, lang := range []string{"eng", "deu", "fra", "ron"} {
		out = append(out, namedCorpus{name: "flores200." + lang, texts: readLines(t, filepath.Join(tr, "flores200-devtest", lang+"_Latn.devtest"))})
	}
	for _, lang := range []string{"en", "fr"} {
		out = append(out, namedCorpus{name: "tico19." + lang, texts: readLines(t, filepath.Join(tr, "tico19-test-en-fr", "tico19-test."+lang))})
	}
	for _, split := range []string{"train", "dev", "test"} {
		var src, doc, tgt []string
		for i, line := range readLines(t, filepath.Join(root, "summarization", "scitldr-a", split+".jsonl")) {
			var r struct{ Source, Target []string }
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("scitldr %s line %d: %v", split, i+1, err)
			}
			src = append(src, r.Source...)
			doc = append(doc, strings.Join(r.Source, " "))
			tgt = append(tgt, r.Target...)
		}
		out = append(out, namedCorpus{name: "scitldr." + split + ".source", texts: src}, namedCorpus{name: "scitldr." + split + ".document", texts: doc},
			namedCorpus{name: "scitldr." + split + ".target", texts: tgt})
	}
	return out
}

func readRef(t testing.TB, name string) refFile {
	t.Helper()
	f, err := os.Open(testenv.Testdata(t, "tokenizers", name+".json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var r refFile
	if err := json.NewDecoder(zr).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r
}

func idsDigest(ids []int) []byte {
	var b []byte
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(id), 10)
	}
	s := sha256.Sum256(b)
	return s[:4]
}

func textDigest(s string) []byte {
	d := sha256.Sum256([]byte(s))
	return d[:4]
}

// parityTokenizers are the model tokenizers compared with HF.
var parityTokenizers = []struct {
	ref, dir string
	target   bool
	file     bool // LoadFile(dir/tokenizer.json): the tokenizers library's reading
}{
	{"flan-t5-small", "flan-t5-small", false, false},
	{"distilbart-cnn-6-6", "distilbart-cnn-6-6", false, false},
	{"opus-mt-en-mg.source", "opus-mt-en-mg", false, false},
	{"opus-mt-en-mg.target", "opus-mt-en-mg", true, false},
	{"flan-t5-small.tokenizer-json", "flan-t5-small", false, true},
}

func loadParity(t testing.TB, dir string, target, file bool) *Tokenizer {
	t.Helper()
	if file {
		tok, err := LoadFile(testenv.RealData(t, "tokenizers", dir, "tokenizer.json"))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	p, err := Load(testenv.RealData(t, "tokenizers", dir))
	if err != nil {
		t.Fatal(err)
	}
	if target {
		return p.Target
	}
	return p.Source
}

// TestParityWithHF encodes and decodes every sentence of every corpus (of its
// committed sample without ../shared/data) and compares with HF, sentence by
// sentence.
func TestParityWithHF(t *testing.T) {
	corpora := corpusTexts(t)
	for _, pt := range parityTokenizers {
		t.Run(pt.ref, func(t *testing.T) {
			tok := loadParity(t, pt.dir, pt.target, pt.file)
			ref := readRef(t, pt.ref)
			var total, idMiss, decMiss, roundTrip int
			for _, c := range corpora {
				rc, ok := ref.Corpora[c.name]
				if !ok {
					t.Fatalf("reference has no corpus %s; rerun scripts/refs/tokenizer_refs.py", c.name)
				}
				if rc.Count != c.count || c.sha256 != rc.TextSHA256 {
					t.Fatalf("%s: corpus differs from the one the reference was made from (%d vs %d sentences)", c.name, c.count, rc.Count)
				}
				sums, err := base64.StdEncoding.DecodeString(rc.Sums)
				if err != nil || len(sums) != 8*c.count {
					t.Fatalf("%s: bad sums in reference", c.name)
				}
				ids, errs := tok.EncodeBatch(t.Context(), c.texts, 0)
				for i, text := range c.texts {
					total++
					k := c.at(i)
					if errs[i] != nil {
						t.Errorf("%s[%d]: %v", c.name, k, errs[i])
						idMiss++
						continue
					}
					dec := tok.Decode(ids[i], true)
					sample, hasSample := rc.Sample[strconv.Itoa(k)]
					if !bytes.Equal(idsDigest(ids[i]), sums[8*k:8*k+4]) {
						idMiss++
						if idMiss <= 10 {
							detail := ""
							if hasSample {
								detail = fmt.Sprintf("\n  HF: %v\n  Go: %v", sample.IDs, ids[i])
							} else {
								detail = fmt.Sprintf("\n  Go: %v %q", ids[i], tok.Tokens(ids[i]))
							}
							t.Errorf("%s[%d] ids differ from HF for %q%s", c.name, k, text, detail)
						}
					} else if !bytes.Equal(textDigest(dec), sums[8*k+4:8*k+8]) {
						decMiss++
						if decMiss <= 10 {
							detail := ""
							if hasSample {
								detail = fmt.Sprintf("\n  HF: %q", sample.Decoded)
							}
							t.Errorf("%s[%d] decode differs from HF for %q:\n  Go: %q%s", c.name, k, text, dec, detail)
						}
					}
					if hasSample && !slices.Equal(sample.IDs, ids[i]) {
						t.Errorf("%s[%d]: sample ids differ", c.name, k)
					}
					if dec == text || strings.Join(strings.Fields(dec), " ") == strings.Join(strings.Fields(text), " ") {
						roundTrip++
					}
				}
			}
			t.Logf("%s: %d sentences, %d with ids differing from HF, %d with decoded text differing from HF; decode(encode(s)) == s up to whitespace for %d (%.1f%%)",
				pt.ref, total, idMiss, decMiss, roundTrip, 100*float64(roundTrip)/float64(total))
		})
	}
}

type casesFile struct {
	Tokenizers map[string]struct {
		Texts              []string `json:"texts"`
		IDs                [][]int  `json:"ids"`
		Decoded            []string `json:"decoded"`
		DecodedWithSpecial []string `json:"decoded_with_special"`
		Truncation         struct {
			MaxLength int      `json:"max_length"`
			Texts     []string `json:"texts"`
			IDs       [][]int  `json:"ids"`
		} `json:"truncation"`
	} `json:"tokenizers"`
}

// TestEdgeCasesWithHF covers whitespace, Unicode normalization, emoji,
// special tokens in the text, and truncation.
func TestEdgeCasesWithHF(t *testing.T) {
	data, err := os.ReadFile(testenv.Testdata(t, "tokenizers", "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cf casesFile
	if err := json.Unmarshal(data, &cf); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	for _, pt := range parityTokenizers {
		t.Run(pt.ref, func(t *testing.T) {
			once.Do(func() {})
			c, ok := cf.Tokenizers[pt.ref]
			if !ok {
				t.Fatalf("no cases for %s", pt.ref)
			}
			tok := loadParity(t, pt.dir, pt.target, pt.file)
			for i, text := range c.Texts {
				ids, err := tok.Encode(text)
				if err != nil {
					t.Errorf("%q: %v", text, err)
					continue
				}
				if !slices.Equal(ids, c.IDs[i]) {
					t.Errorf("%q:\n  HF: %v\n  Go: %v %q", text, c.IDs[i], ids, tok.Tokens(ids))
				}
				if got := tok.Decode(c.IDs[i], true); got != c.Decoded[i] {
					t.Errorf("decode %v skip special:\n  HF: %q\n  Go: %q", c.IDs[i], c.Decoded[i], got)
				}
				if got := tok.Decode(c.IDs[i], false); got != c.DecodedWithSpecial[i] {
					t.Errorf("decode %v with special:\n  HF: %q\n  Go: %q", c.IDs[i], c.DecodedWithSpecial[i], got)
				}
			}
			for i, text := range c.Truncation.Texts {
				ids, err := tok.EncodeWith(text, EncodeOptions{MaxLength: c.Truncation.MaxLength})
				if err != nil {
					t.Errorf("%q: %v", text, err)
					continue
				}
				if !slices.Equal(ids, c.Truncation.IDs[i]) {
					t.Errorf("truncated to %d: %q:\n  HF: %v\n  Go: %v", c.Truncation.MaxLength, text, c.Truncation.IDs[i], ids)
				}
			}
		})
	}
}
