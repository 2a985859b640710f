package tokenize

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/ortrain/ortrain/internal/fault"
)

// rawJSON is a json.RawMessage that refers to the bytes being decoded
// instead of copying them: nested components (Sequence in Sequence ...)
// would otherwise copy their subtree once per level. Decoding with
// json.Unmarshal or one Decoder.Decode, the input outlives every use.
type rawJSON []byte

func (r *rawJSON) UnmarshalJSON(b []byte) error {
	*r = b
	return nil
}

// The tokenizer.json schema, only the fields used. Components are decoded
// by "type" in a second step so that each error can name its field.

type fileJSON struct {
	AddedTokens   []addedTokenJSON `json:"added_tokens"`
	Normalizer    rawJSON          `json:"normalizer"`
	PreTokenizer  rawJSON          `json:"pre_tokenizer"`
	PostProcessor rawJSON          `json:"post_processor"`
	Decoder       rawJSON          `json:"decoder"`
	Model         rawJSON          `json:"model"`
}

type addedTokenJSON struct {
	ID         *int    `json:"id"`
	Content    *string `json:"content"`
	SingleWord bool    `json:"single_word"`
	LStrip     bool    `json:"lstrip"`
	RStrip     bool    `json:"rstrip"`
	Normalized *bool   `json:"normalized"`
	Special    bool    `json:"special"`
}

type patternJSON struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

// component is every field any normalizer, pre-tokenizer, post-processor or
// decoder of tokenizer.json may carry.
type component struct {
	Type *string `json:"type"`
	// Sequence
	Normalizers   []rawJSON `json:"normalizers"`
	PreTokenizers []rawJSON `json:"pretokenizers"`
	Processors    []rawJSON `json:"processors"`
	Decoders      []rawJSON `json:"decoders"`
	// Precompiled
	PrecompiledCharsmap *string `json:"precompiled_charsmap"`
	// Replace
	Pattern *patternJSON `json:"pattern"`
	Content *string      `json:"content"`
	// Strip (normalizer) / Strip (decoder)
	StripLeft  bool `json:"strip_left"`
	StripRight bool `json:"strip_right"`
	Start      int  `json:"start"`
	Stop       int  `json:"stop"`
	// Prepend
	Prepend *string `json:"prepend"`
	// BertNormalizer
	CleanText          *bool `json:"clean_text"`
	HandleChineseChars *bool `json:"handle_chinese_chars"`
	StripAccents       *bool `json:"strip_accents"`
	Lowercase          *bool `json:"lowercase"`
	// Metaspace
	Replacement    *string `json:"replacement"`
	AddPrefixSpace *bool   `json:"add_prefix_space"`
	PrependScheme  *string `json:"prepend_scheme"`
	Split          *bool   `json:"split"`
	// ByteLevel
	UseRegex *bool `json:"use_regex"`
	// TemplateProcessing
	Single        []map[string]templatePart  `json:"single"`
	SpecialTokens map[string]templateSpecial `json:"special_tokens"`
	// RobertaProcessing / BertProcessing: [token, id]
	Sep []json.RawMessage `json:"sep"`
	Cls []json.RawMessage `json:"cls"`
	// WordPiece decoder
	Prefix  *string `json:"prefix"`
	Cleanup *bool   `json:"cleanup"`
}

type templatePart struct {
	ID string `json:"id"`
}

type templateSpecial struct {
	ID  string `json:"id"`
	IDs []int  `json:"ids"`
}

type modelJSON struct {
	Type *string `json:"type"`
	// Unigram
	UnkID        *int    `json:"unk_id"`
	ByteFallback bool    `json:"byte_fallback"`
	Vocab        rawJSON `json:"vocab"`
	// BPE
	Merges                  rawJSON  `json:"merges"`
	UnkToken                *string  `json:"unk_token"`
	ContinuingSubwordPrefix *string  `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string  `json:"end_of_word_suffix"`
	FuseUnk                 bool     `json:"fuse_unk"`
	Dropout                 *float64 `json:"dropout"`
	// WordPiece
	MaxInputCharsPerWord *int `json:"max_input_chars_per_word"`
}

// checkID refuses an id that is negative or far beyond the entries that
// define ids (a vocabulary of entries ids, plus added tokens): ids index
// arrays, so a crafted id near 2^31 would claim gigabytes. Holes of up to
// 65536 ids beyond twice the entries are accepted.
func checkID(id, entries int) error {
	if limit := 2*entries + 65536; id < 0 || id > limit {
		return fmt.Errorf("id %d is outside 0..%d, the ids %d vocabulary entries can use", id, limit, entries)
	}
	return nil
}

// FieldError says which field of a tokenizer file is missing or wrong.
type FieldError struct {
	File  string
	Field string // JSON path, e.g. "model.vocab"
	Msg   string
}

// Is makes a FieldError bad input (fault.Input).
func (e *FieldError) Is(target error) bool { return target == fault.Input }

func (e *FieldError) Error() string {
	return fmt.Sprintf("%s: %s: %s", e.File, e.Field, e.Msg)
}

type loader struct {
	file string
}

func (l *loader) errf(field, format string, args ...any) error {
	return &FieldError{File: l.file, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// LoadFile reads a Hugging Face tokenizer.json and builds the pipeline it
// describes, as tokenizers' Tokenizer.from_file does. Every error it
// returns is of kind ortrain.ErrInput (the user's file).
func LoadFile(path string) (*Tokenizer, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, fault.Mark(fault.Input, fmt.Errorf("read tokenizer: %w", err))
	}
	t, err := parseFile(path, data)
	return t, fault.Mark(fault.Input, err)
}

func parseFile(path string, data []byte) (*Tokenizer, error) {
	l := &loader{file: path}
	if !utf8.Valid(data) {
		return nil, l.errf("(file)", "not valid UTF-8; a tokenizer.json is UTF-8 JSON")
	}
	if err := checkJSONDepth(data); err != nil {
		return nil, l.errf("(file)", "%v", err)
	}
	var f fileJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&f); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line := 1 + bytes.Count(data[:min(int(se.Offset), len(data))], []byte("\n"))
			return nil, l.errf("(file)", "malformed JSON at line %d: %v", line, err)
		}
		return nil, l.errf("(file)", "not a tokenizer.json: %v", err)
	}
	if len(f.Model) == 0 || string(f.Model) == "null" {
		return nil, l.errf("model", "missing; a tokenizer.json needs a model (Unigram, BPE, WordPiece or WordLevel)")
	}
	t := &Tokenizer{source: path, special: map[string]bool{}}
	var err error
	if t.model, err = l.model(f.Model); err != nil {
		return nil, err
	}
	added := make([]addedToken, 0, len(f.AddedTokens))
	for i, a := range f.AddedTokens {
		field := fmt.Sprintf("added_tokens[%d]", i)
		if a.ID == nil {
			return nil, l.errf(field+".id", "missing")
		}
		if a.Content == nil {
			return nil, l.errf(field+".content", "missing")
		}
		if err := checkID(*a.ID, t.model.vocabSize()+len(f.AddedTokens)); err != nil {
			return nil, l.errf(field+".id", "%v", err)
		}
		norm := !a.Special // tokenizers' default: special tokens are not normalized
		if a.Normalized != nil {
			norm = *a.Normalized
		}
		added = append(added, addedToken{content: *a.Content, id: *a.ID, special: a.Special, lstrip: a.LStrip,
			rstrip: a.RStrip, normalized: norm, singleWord: a.SingleWord})
		if a.Special {
			t.special[*a.Content] = true
		}
	}
	t.added = newAddedVocab(added)
	if t.norm, err = l.normalizer("normalizer", f.Normalizer); err != nil {
		return nil, err
	}
	pre, err := l.preTokenizer("pre_tokenizer", f.PreTokenizer)
	if err != nil {
		return nil, err
	}
	t.pre = pipeline(pre)
	if t.post, err = l.postProcessor("post_processor", f.PostProcessor, t); err != nil {
		return nil, err
	}
	if t.dec, err = l.decoder("decoder", f.Decoder); err != nil {
		return nil, err
	}
	t.tokens = guessSpecial(t)
	return t, nil
}

func isNull(raw []byte) bool { return len(raw) == 0 || string(raw) == "null" }

func (l *loader) component(field string, raw []byte) (*component, string, error) {
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, "", l.errf(field, "malformed: %v", err)
	}
	if c.Type == nil {
		return nil, "", l.errf(field+".type", "missing")
	}
	return &c, *c.Type, nil
}

func (l *loader) normalizer(field string, raw []byte) (normalizer, error) {
	if isNull(raw) {
		return nil, nil
	}
	c, typ, err := l.component(field, raw)
	if err != nil {
		return nil, err
	}
	switch typ {
	case "Sequence":
		if c.Normalizers == nil {
			return nil, l.errf(field+".normalizers", "missing")
		}
		var seq normSequence
		for i, r := range c.Normalizers {
			n, err := l.normalizer(fmt.Sprintf("%s.normalizers[%d]", field, i), r)
			if err != nil {
				return nil, err
			}
			if n != nil {
				seq = append(seq, n)
			}
		}
		return seq, nil
	case "Precompiled":
		if c.PrecompiledCharsmap == nil {
			return nil, l.errf(field+".precompiled_charsmap", "missing")
		}
		if *c.PrecompiledCharsmap == "" { // tokenizers treats an empty map as identity
			return nil, nil
		}
		blob, err := base64.StdEncoding.DecodeString(*c.PrecompiledCharsmap)
		if err != nil {
			return nil, l.errf(field+".precompiled_charsmap", "not base64: %v", err)
		}
		cm, err := parseCharsmap(blob)
		if err != nil {
			return nil, l.errf(field+".precompiled_charsmap", "%v", err)
		}
		return precompiledNorm{cm}, nil
	case "Replace":
		if c.Pattern == nil {
			return nil, l.errf(field+".pattern", "missing")
		}
		if c.Content == nil {
			return nil, l.errf(field+".content", "missing")
		}
		lit, re, err := newReplacePattern(field, *c.Pattern)
		if err != nil {
			return nil, &FieldError{File: l.file, Field: field + ".pattern", Msg: err.Error()}
		}
		return replaceNorm{literal: lit, re: re, content: *c.Content}, nil
	case "NFC":
		return normFunc(normNFC), nil
	case "NFD":
		return normFunc(normNFD), nil
	case "NFKC":
		return normFunc(normNFKC), nil
	case "NFKD":
		return normFunc(normNFKD), nil
	case "Lowercase":
		return normFunc(lowercase), nil
	case "Strip":
		return stripNorm(c.StripLeft, c.StripRight), nil
	case "StripAccents":
		return normFunc(stripAccents), nil
	case "Nmt":
		return normFunc(nmtNorm), nil
	case "Prepend":
		if c.Prepend == nil {
			return nil, l.errf(field+".prepend", "missing")
		}
		p := *c.Prepend
		return normFunc(func(s string) string {
			if s == "" {
				return s
			}
			return p + s
		}), nil
	case "BertNormalizer":
		lower := boolOr(c.Lowercase, true)
		return bertNorm(boolOr(c.CleanText, true), boolOr(c.HandleChineseChars, true), boolOr(c.StripAccents, lower), lower), nil
	}
	return nil, l.errf(field+".type", "unknown normalizer type %q", typ)
}

func boolOr(p *bool, def bool) bool {
	if p == nil {
		return def
	}
	return *p
}

func (l *loader) preTokenizer(field string, raw []byte) ([]splitter, error) {
	if isNull(raw) {
		return nil, nil
	}
	c, typ, err := l.component(field, raw)
	if err != nil {
		return nil, err
	}
	switch typ {
	case "Sequence":
		if c.PreTokenizers == nil {
			return nil, l.errf(field+".pretokenizers", "missing")
		}
		var seq []splitter
		for i, r := range c.PreTokenizers {
			s, err := l.preTokenizer(fmt.Sprintf("%s.pretokenizers[%d]", field, i), r)
			if err != nil {
				return nil, err
			}
			seq = append(seq, s...)
		}
		return seq, nil
	case "Metaspace":
		m, err := l.metaspace(field, c)
		if err != nil {
			return nil, err
		}
		return []splitter{m}, nil
	case "ByteLevel":
		return []splitter{byteLevel{addPrefixSpace: boolOr(c.AddPrefixSpace, true), useRegex: boolOr(c.UseRegex, true)}}, nil
	case "WhitespaceSplit":
		return []splitter{whitespaceSplit{}}, nil
	case "Whitespace":
		return []splitter{whitespacePre{}}, nil
	case "BertPreTokenizer":
		return []splitter{bertPre{}}, nil
	}
	return nil, l.errf(field+".type", "unknown or unsupported pre-tokenizer type %q", typ)
}

func (l *loader) metaspace(field string, c *component) (metaspace, error) {
	if c.Replacement == nil {
		return metaspace{}, l.errf(field+".replacement", "missing")
	}
	r := *c.Replacement
	if utf8.RuneCountInString(r) != 1 {
		return metaspace{}, l.errf(field+".replacement", "%q is not one character", r)
	}
	m := metaspace{repl: r, prepend: prependAlways, split: boolOr(c.Split, true)}
	switch {
	case c.PrependScheme != nil:
		switch *c.PrependScheme {
		case prependAlways, prependFirst, prependNever:
			m.prepend = *c.PrependScheme
		default:
			return metaspace{}, l.errf(field+".prepend_scheme", "%q: want \"always\", \"first\" or \"never\"", *c.PrependScheme)
		}
	case c.AddPrefixSpace != nil && !*c.AddPrefixSpace: // legacy files
		m.prepend = prependNever
	}
	return m, nil
}

func (l *loader) postProcessor(field string, raw []byte, t *Tokenizer) (postProcessor, error) {
	if isNull(raw) {
		return nil, nil
	}
	c, typ, err := l.component(field, raw)
	if err != nil {
		return nil, err
	}
	switch typ {
	case "Sequence":
		var seq postSequence
		for i, r := range c.Processors {
			p, err := l.postProcessor(fmt.Sprintf("%s.processors[%d]", field, i), r, t)
			if err != nil {
				return nil, err
			}
			if p != nil {
				seq = append(seq, p)
			}
		}
		return seq, nil
	case "ByteLevel":
		return nil, nil // offsets only
	case "TemplateProcessing":
		if c.Single == nil {
			return nil, l.errf(field+".single", "missing")
		}
		var tp template
		for i, part := range c.Single {
			if seq, ok := part["Sequence"]; ok {
				if seq.ID != "A" {
					return nil, l.errf(fmt.Sprintf("%s.single[%d].Sequence.id", field, i), "%q: a single-sequence template uses A", seq.ID)
				}
				tp.items = append(tp.items, nil)
				continue
			}
			sp, ok := part["SpecialToken"]
			if !ok {
				return nil, l.errf(fmt.Sprintf("%s.single[%d]", field, i), "needs Sequence or SpecialToken")
			}
			st, ok := c.SpecialTokens[sp.ID]
			if !ok || len(st.IDs) == 0 {
				return nil, l.errf(field+".special_tokens", "no ids for %q used in the template", sp.ID)
			}
			for _, id := range st.IDs {
				if err := checkID(id, t.VocabSize()); err != nil {
					return nil, l.errf(fmt.Sprintf("%s.special_tokens[%q].ids", field, sp.ID), "%v", err)
				}
			}
			tp.items = append(tp.items, st.IDs)
		}
		return tp, nil
	case "RobertaProcessing", "BertProcessing":
		cls, err := l.tokenPair(field+".cls", c.Cls)
		if err != nil {
			return nil, err
		}
		sep, err := l.tokenPair(field+".sep", c.Sep)
		if err != nil {
			return nil, err
		}
		for _, id := range []int{cls, sep} {
			if err := checkID(id, t.VocabSize()); err != nil {
				return nil, l.errf(field, "%v", err)
			}
		}
		return wrapProcessor(cls, sep), nil
	}
	return nil, l.errf(field+".type", "unknown post-processor type %q", typ)
}

func (l *loader) tokenPair(field string, raw []json.RawMessage) (int, error) {
	if len(raw) != 2 {
		return 0, l.errf(field, "missing or not a [token, id] pair")
	}
	var id int
	if err := json.Unmarshal(raw[1], &id); err != nil {
		return 0, l.errf(field, "id: %v", err)
	}
	return id, nil
}

func (l *loader) decoder(field string, raw []byte) (decoder, error) {
	if isNull(raw) {
		return nil, nil
	}
	c, typ, err := l.component(field, raw)
	if err != nil {
		return nil, err
	}
	switch typ {
	case "Sequence":
		if c.Decoders == nil {
			return nil, l.errf(field+".decoders", "missing")
		}
		var seq decoderSequence
		for i, r := range c.Decoders {
			d, err := l.decoder(fmt.Sprintf("%s.decoders[%d]", field, i), r)
			if err != nil {
				return nil, err
			}
			if d != nil {
				seq = append(seq, d)
			}
		}
		return seq, nil
	case "Metaspace":
		m, err := l.metaspace(field, c)
		if err != nil {
			return nil, err
		}
		r, _ := utf8.DecodeRuneInString(m.repl)
		return metaspaceDecoder{repl: r, prepend: m.prepend}, nil
	case "ByteLevel":
		return byteLevelDecoder{}, nil
	case "WordPiece":
		return wordPieceDecoder{prefix: strOr(c.Prefix, "##"), cleanup: boolOr(c.Cleanup, true)}, nil
	case "Replace":
		if c.Pattern == nil || c.Content == nil {
			return nil, l.errf(field, "Replace needs pattern and content")
		}
		lit, re, err := newReplacePattern(field, *c.Pattern)
		if err != nil {
			return nil, &FieldError{File: l.file, Field: field + ".pattern", Msg: err.Error()}
		}
		return replaceDecoder{literal: lit, re: re, content: *c.Content}, nil
	case "ByteFallback":
		return byteFallbackDecoder{}, nil
	case "Fuse":
		return fuseDecoder{}, nil
	case "Strip":
		if c.Content == nil || utf8.RuneCountInString(*c.Content) != 1 {
			return nil, l.errf(field+".content", "missing or not one character")
		}
		r, _ := utf8.DecodeRuneInString(*c.Content)
		return stripDecoder{content: r, start: c.Start, stop: c.Stop}, nil
	}
	return nil, l.errf(field+".type", "unknown decoder type %q", typ)
}

func strOr(p *string, def string) string {
	if p == nil {
		return def
	}
	return *p
}

func (l *loader) model(raw []byte) (model, error) {
	var m modelJSON
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, l.errf("model", "malformed: %v", err)
	}
	if isNull(m.Vocab) {
		return nil, l.errf("model.vocab", "missing")
	}
	typ := ""
	if m.Type != nil {
		typ = *m.Type
	} else {
		// Older files omit the type; tell the models apart by their fields.
		switch {
		case !isNull(m.Merges):
			typ = "BPE"
		case m.UnkID != nil || bytes.HasPrefix(bytes.TrimSpace(m.Vocab), []byte("[")):
			typ = "Unigram"
		default:
			return nil, l.errf("model.type", "missing, and the other fields do not say which model this is")
		}
	}
	switch typ {
	case "Unigram":
		return l.unigram(&m)
	case "BPE":
		return l.bpe(&m)
	case "WordPiece":
		return l.wordPiece(&m)
	case "WordLevel":
		return l.wordLevel(&m)
	}
	return nil, l.errf("model.type", "unknown model type %q (supported: Unigram, BPE, WordPiece, WordLevel)", typ)
}

func (l *loader) unigram(m *modelJSON) (model, error) {
	var entries [][2]json.RawMessage
	if err := json.Unmarshal(m.Vocab, &entries); err != nil {
		return nil, l.errf("model.vocab", "a Unigram vocab is a list of [piece, score] pairs: %v", err)
	}
	if m.ByteFallback {
		return nil, l.errf("model.byte_fallback", "byte-fallback Unigram models are not supported")
	}
	pieces := make([]string, len(entries))
	scores := make([]float64, len(entries))
	for i, e := range entries {
		if err := json.Unmarshal(e[0], &pieces[i]); err != nil {
			return nil, l.errf(fmt.Sprintf("model.vocab[%d][0]", i), "piece: %v", err)
		}
		if err := json.Unmarshal(e[1], &scores[i]); err != nil {
			return nil, l.errf(fmt.Sprintf("model.vocab[%d][1]", i), "score: %v", err)
		}
	}
	unk, hasUnk := 0, m.UnkID != nil
	if hasUnk {
		unk = *m.UnkID
		if unk < 0 || unk >= len(pieces) {
			return nil, l.errf("model.unk_id", "%d is outside the vocabulary of %d pieces", unk, len(pieces))
		}
	}
	return newUnigram(pieces, scores, unk, hasUnk, func(int) bool { return true }, false), nil
}

func (l *loader) vocabMap(m *modelJSON) (map[string]int, []string, error) {
	var vocab map[string]int
	if err := json.Unmarshal(m.Vocab, &vocab); err != nil {
		return nil, nil, l.errf("model.vocab", "want an object of token: id: %v", err)
	}
	maxID := -1
	for tok, id := range vocab {
		if err := checkID(id, len(vocab)); err != nil {
			return nil, nil, l.errf(fmt.Sprintf("model.vocab[%q]", tok), "%v", err)
		}
		maxID = max(maxID, id)
	}
	rev := make([]string, maxID+1)
	for tok, id := range vocab {
		rev[id] = tok
	}
	return vocab, rev, nil
}
