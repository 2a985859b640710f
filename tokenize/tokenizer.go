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
	if err := checkUTF8(text); err != nil {
		return nil, err
	}
	ids, err := t.encodeContent(text)
	if err != nil {
		return nil, err
	}
	addSpecial := !opt.NoSpecialTokens && t.post != nil
	if opt.MaxLength > 0 {
		room := opt.MaxLength
		if addSpecial {
			room -= t.post.added()
		}
		if room < 0 {
			return nil, fmt.Errorf("max length %d is shorter than the %d special tokens the tokenizer adds", opt.MaxLength, t.post.added())
		}
		if len(ids) > room {
			ids = ids[:room]
		}
	}
	if addSpecial {
		ids = t.post.process(ids)
	}
	return ids, nil
}

func (t *Tokenizer) encodeContent(text string) ([]int, error) {
	ids := make([]int, 0, len(text)/3+2)
	var err error
	for _, seg := range t.added.split(text, t.norm) {
		if seg.id >= 0 {
			ids = append(ids, seg.id)
			continue
		}
		for _, piece := range t.pre.split(seg.text, seg.first) {
			if ids, err = t.model.tokenize(piece, ids); err != nil {
				return nil, err
			}
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
