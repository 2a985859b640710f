package tokenize

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/testenv"
)

// A long text pre-tokenized in parts cut before a space gives exactly the
// ids of the whole text, for every real tokenizer (T5's Unigram, BART's
// byte-level BPE, Marian's SentencePiece, WordPiece): the parts make a huge
// line cost its pieces one part at a time.
func TestChunkedEncodingIsExact(t *testing.T) {
	b, err := os.ReadFile(testenv.RealData(t, "summarization", "scitldr-a", "train.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	// corpus text with its punctuation and odd spacing kept: runs of spaces,
	// tabs and newlines turned into spaces, non-ASCII letters
	text := strings.NewReplacer("\\n", "  \t ", "\",", "\" ,", "  ", "   ").Replace(string(b[:min(len(b), 300<<10)])) + " ünï   côdé "
	tokenizers := map[string]*Tokenizer{}
	for _, name := range []string{"flan-t5-small", "distilbart-cnn-6-6", "opus-mt-en-mg"} {
		p, err := Load(testenv.RealData(t, "tokenizers", name))
		if err != nil {
			t.Fatal(err)
		}
		tokenizers[name] = p.Source
	}
	wp, err := LoadFile(testenv.Testdata(t, "tokenizers", "wordpiece-tatoeba.json"))
	if err != nil {
		t.Fatal(err)
	}
	tokenizers["wordpiece"] = wp
	for name, tok := range tokenizers {
		whole, err := tok.encodeChunked(text, len(text)+1)
		if err != nil {
			t.Fatal(err)
		}
		for _, chunk := range []int{16, 100, 4096} {
			got, err := tok.encodeChunked(text, chunk)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, whole) {
				i := 0
				for i < min(len(got), len(whole)) && got[i] == whole[i] {
					i++
				}
				t.Errorf("%s, parts of %d bytes: ids differ from id %d on (%d vs %d ids)", name, chunk, i, len(got), len(whole))
			}
		}
	}
}
