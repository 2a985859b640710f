// Package tokenize turns text into token ids and back exactly as the
// model's Hugging Face tokenizer does: tokenizer.json files (Unigram with
// the Precompiled normalizer, byte-level BPE, BPE, WordPiece), Marian
// models (two SentencePiece files plus vocab.json) and the multilingual
// classes whose templates depend on language codes (M2M100: SentencePiece
// plus vocab.json; mBART, mBART-50, NLLB: tokenizer.json or, for mBART,
// the SentencePiece model alone; see Pair.WithLanguages). SentencePiece
// models may be Unigram or BPE.
//
// The WordPiece model comes from github.com/sugarme/tokenizer; everything
// else (added tokens, normalizers, pre-tokenizers, the BPE merge loop, the
// Unigram / SentencePiece models, post-processing, decoding, batching) is
// ours, because sugarme v0.3.0 gets those wrong in ways that change ids or
// stop the program (see defects_test.go). Nothing here panics on bad input
// or exits the process; every error names the file and field at fault.
//
// Load reproduces transformers 5's tokenizer classes, LoadFile the
// tokenizers library reading a tokenizer.json. They differ for T5:
// transformers 5 rebuilds T5's pipeline (WhitespaceSplit + Metaspace, no
// Replace normalizer), so for example a trailing space gives no "▁" token,
// whereas the file's own pipeline (and transformers 4) gives one.
package tokenize

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/ortrain/ortrain/internal/fault"
)

// model turns one pre-tokenized piece into ids.
type model interface {
	tokenize(piece string, out []int) ([]int, error)
	idToToken(id int) (string, bool)
	tokenToID(tok string) (int, bool)
	vocabSize() int
}

// Tokenizer encodes and decodes text. It is safe for concurrent use.
type Tokenizer struct {
	source  string // file or folder it was loaded from, for messages
	added   addedVocab
	norm    normalizer // nil: none
	pre     preTokenizer
	model   model
	post    postProcessor // nil: no special tokens added
	dec     decoder       // nil: tokens joined with spaces
	special map[string]bool
	tokens  SpecialTokens
}

// SpecialTokens holds the ids of the tokens a seq2seq trainer needs; -1
// where the tokenizer has none.
type SpecialTokens struct {
	Pad, EOS, BOS, UNK int
}

// Special returns the special token ids.
func (t *Tokenizer) Special() SpecialTokens { return t.tokens }

// VocabSize is the number of ids the tokenizer can produce, added tokens
// included.
func (t *Tokenizer) VocabSize() int {
	n := t.model.vocabSize()
	for _, a := range t.added.tokens {
		n = max(n, a.id+1)
	}
	return n
}

// Source is the path the tokenizer was loaded from.
func (t *Tokenizer) Source() string { return t.source }

// TokenToID returns the id of a token (added tokens included).
func (t *Tokenizer) TokenToID(tok string) (int, bool) {
	for _, a := range t.added.tokens {
		if a.content == tok {
			return a.id, true
		}
	}
	return t.model.tokenToID(tok)
}

// IDToToken returns the token string of an id (added tokens included).
func (t *Tokenizer) IDToToken(id int) (string, bool) {
	if a, ok := t.added.byID[id]; ok {
		return a.content, true
	}
	return t.model.idToToken(id)
}

// EncodeOptions control one encoding. The zero value adds the model's
// special tokens and does not truncate.
type EncodeOptions struct {
	// NoSpecialTokens leaves out what the post-processor adds (HF's
	// add_special_tokens=False).
	NoSpecialTokens bool
	// MaxLength > 0 truncates like HF's truncation=True, max_length=N:
	// content tokens are cut from the right so that the result, special
	// tokens included, has at most MaxLength ids.
	MaxLength int
}

// Encode returns the ids of text with the model's special tokens, as HF's
// tokenizer(text)["input_ids"] does.
func (t *Tokenizer) Encode(text string) ([]int, error) {
	return t.EncodeWith(text, EncodeOptions{})
}

// EncodeWith encodes text with options.
func (t *Tokenizer) EncodeWith(text string, opt EncodeOptions) ([]int, error) {
	ids, _, err := t.EncodeTruncating(text, opt)
	return ids, err
}

// EncodeTruncating is EncodeWith that also reports whether MaxLength cut
// the text's tokens. With MaxLength set, only the first TextBound(MaxLength)
// bytes of a longer text are tokenized (see CutText), so the cost of a
// huge line is bounded by the tokens kept, not by the line.
func (t *Tokenizer) EncodeTruncating(text string, opt EncodeOptions) (ids []int, truncated bool, err error) {
	if opt.MaxLength > 0 {
		var cut bool
		text, cut = CutText(text, opt.MaxLength)
		truncated = cut
	}
	if err := checkUTF8(text); err != nil {
		return nil, false, err
	}
	ids, err = t.encodeContent(text)
	if err != nil {
		return nil, false, err
	}
	addSpecial := !opt.NoSpecialTokens && t.post != nil
	if opt.MaxLength > 0 {
		room := opt.MaxLength
		if addSpecial {
			room -= t.post.added()
		}
		if room < 0 {
			return nil, false, fmt.Errorf("max length %d is shorter than the %d special tokens the tokenizer adds", opt.MaxLength, t.post.added())
		}
		if len(ids) > room {
			ids = ids[:room]
			truncated = true
		}
	}
	if addSpecial {
		ids = t.post.process(ids)
	}
	return ids, truncated, nil
}

// TextBound is how many bytes of a text can matter when at most maxTokens
// tokens of it are kept: a token covers far less than 1 KiB of text, so
// they come from its first maxTokens KiB (64 KiB at least).
func TextBound(maxTokens int) int { return max(64<<10, maxTokens<<10) }

// CutText returns the part of text that the first maxTokens tokens can come
// from, and whether anything was cut: text itself when it is within
// TextBound(maxTokens) bytes, else its prefix up to the last whitespace
// within the bound (no word is split, so the words kept tokenize as they do
// in the whole text), or, when a single word is longer than the bound, the
// bound itself (at a UTF-8 boundary). Readers cut records with it while
// reading, so that a huge line costs the tokens kept, not the line.
func CutText(text string, maxTokens int) (string, bool) {
	bound := TextBound(maxTokens)
	if maxTokens <= 0 || len(text) <= bound {
		return text, false
	}
	cut := bound
	for cut > 0 && !utf8.RuneStart(text[cut]) {
		cut--
	}
	if sp := strings.LastIndexAny(text[:cut], " \t\n\r"); sp > 0 {
		cut = sp
	}
	return text[:cut], true
}

func (t *Tokenizer) encodeContent(text string) ([]int, error) {
	return t.encodeChunked(text, 1<<20)
}

// encodeChunked is encodeContent pre-tokenizing a long segment in parts of
// about chunk bytes, cut before an ASCII space, when the pre-tokenizer
// allows it (pipeline.spaceBounded): the ids are the same, and a huge line
// no longer holds all its pieces at once.
func (t *Tokenizer) encodeChunked(text string, chunk int) ([]int, error) {
	ids := make([]int, 0, min(len(text)/3+2, 1<<20))
	var err error
	pl, chunkable := t.pre.(pipeline)
	chunkable = chunkable && pl.spaceBounded()
	for _, seg := range t.added.split(text, t.norm) {
		if seg.id >= 0 {
			ids = append(ids, seg.id)
			continue
		}
		rest, first := seg.text, seg.first
		for rest != "" {
			part := rest
			if chunkable && len(rest) > chunk {
				if cut := strings.LastIndexByte(rest[:chunk], ' '); cut > 0 {
					part = rest[:cut]
				}
			}
			rest = rest[len(part):]
			for _, piece := range t.pre.split(part, first) {
				if ids, err = t.model.tokenize(piece, ids); err != nil {
					return nil, err
				}
			}
			first = false
		}
	}
	return ids, nil
}

// Decode turns ids back into text as HF's tokenizer.decode(ids,
// skip_special_tokens=skipSpecial) does. Like HF, ids outside the
// vocabulary are dropped.
func (t *Tokenizer) Decode(ids []int, skipSpecial bool) string {
	toks := make([]string, 0, len(ids))
	for _, id := range ids {
		tok, ok := t.IDToToken(id)
		if !ok || (skipSpecial && t.special[tok]) {
			continue
		}
		toks = append(toks, tok)
	}
	if t.dec == nil {
		return strings.Join(toks, " ")
	}
	return strings.Join(t.dec.decode(toks), "")
}

// Tokens returns the token strings of ids (for debugging output).
func (t *Tokenizer) Tokens(ids []int) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		tok, ok := t.IDToToken(id)
		if !ok {
			tok = fmt.Sprintf("<id %d not in vocabulary>", id)
		}
		out[i] = tok
	}
	return out
}

func errNoUnk(piece string) error {
	return fmt.Errorf("piece %q is not in the vocabulary and the model has no unk token", piece)
}

// InvalidUTF8Error reports text that is not valid UTF-8.
type InvalidUTF8Error struct {
	Offset int // byte offset of the first invalid byte
}

// Is makes text that is not UTF-8 bad input (fault.Input).
func (e *InvalidUTF8Error) Is(target error) bool { return target == fault.Input }

func (e *InvalidUTF8Error) Error() string {
	return fmt.Sprintf("text is not valid UTF-8 (first invalid byte at offset %d); convert the input to UTF-8", e.Offset)
}

func checkUTF8(s string) error {
	for i, r := range s {
		if r == '\uFFFD' && !strings.HasPrefix(s[i:], "\uFFFD") {
			return &InvalidUTF8Error{Offset: i}
		}
	}
	return nil
}
