package tokenize

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
)

// loadMarian builds MarianTokenizer (transformers 5, slow, SentencePiece):
// source.spm segments inputs, target.spm segments labels, pieces map to
// ids through the shared vocab.json (pieces not in it become <unk>), "</s>"
// is appended. Decoding, like HF's default (use_source_tokenizer for a
// shared vocabulary), joins pieces with source.spm.
func loadMarian(dir string) (*Pair, error) {
	vocabPath := filepath.Join(dir, "vocab.json")
	data, err := readFile(vocabPath)
	if err != nil {
		return nil, fmt.Errorf("marian tokenizer: %w", err)
	}
	var vocab map[string]int
	if err := json.Unmarshal(data, &vocab); err != nil {
		return nil, &FieldError{File: vocabPath, Field: "(file)", Msg: fmt.Sprintf("want an object of piece: id: %v", err)}
	}
	tc, err := readConfig(filepath.Join(dir, "tokenizer_config.json"))
	if err != nil {
		return nil, err
	}
	names := map[string]string{"unk": "<unk>", "eos": "</s>", "pad": "<pad>"}
	for k, raw := range map[string][]byte{"unk": tc.UNKToken, "eos": tc.EOSToken, "pad": tc.PadToken} {
		if n := tokenName(raw); n != "" {
			names[k] = n
		}
	}
	ids := map[string]int{}
	for k, n := range names {
		id, ok := vocab[n]
		if !ok {
			return nil, &FieldError{File: vocabPath, Field: fmt.Sprintf("%q", n), Msg: fmt.Sprintf("the %s token is missing from the vocabulary", k)}
		}
		ids[k] = id
	}
	maxID := -1
	for p, id := range vocab {
		if err := checkID(id, len(vocab)); err != nil {
			return nil, &FieldError{File: vocabPath, Field: fmt.Sprintf("%q", p), Msg: err.Error()}
		}
		maxID = max(maxID, id)
	}
	rev := make([]string, maxID+1)
	for p, id := range vocab {
		if id < 0 {
			return nil, &FieldError{File: vocabPath, Field: fmt.Sprintf("%q", p), Msg: "negative id"}
		}
		rev[id] = p
	}
	src, err := loadSPM(filepath.Join(dir, "source.spm"))
	if err != nil {
		return nil, fmt.Errorf("marian tokenizer: %w", err)
	}
	tgt, err := loadSPM(filepath.Join(dir, "target.spm"))
	if err != nil {
		return nil, fmt.Errorf("marian tokenizer: %w", err)
	}
	special := map[string]bool{names["unk"]: true, names["eos"]: true, names["pad"]: true}
	var added []addedToken
	for _, k := range []string{"eos", "unk", "pad"} {
		added = append(added, addedToken{content: names[k], id: ids[k], special: true})
	}
	mk := func(side *spmModel, path string) *Tokenizer {
		m := &marianModel{spm: side, vocab: vocab, rev: rev, unkID: ids["unk"], languagePrefix: true}
		return &Tokenizer{
			source:  path,
			added:   newAddedVocab(added),
			pre:     pipeline{},
			model:   m,
			post:    template{items: [][]int{nil, {ids["eos"]}}},
			dec:     marianDecoder{spm: src, special: special},
			special: special,
			tokens:  SpecialTokens{Pad: ids["pad"], EOS: ids["eos"], BOS: -1, UNK: ids["unk"]},
		}
	}
	return &Pair{Source: mk(src, filepath.Join(dir, "source.spm")), Target: mk(tgt, filepath.Join(dir, "target.spm")), Family: "marian"}, nil
}

// marianModel segments with SentencePiece and maps pieces through a
// vocab.json (MarianTokenizer, M2M100Tokenizer).
type marianModel struct {
	spm   *spmModel
	vocab map[string]int
	rev   []string
	unkID int
	// languagePrefix: a leading ">>xx<<" is its own token (Marian).
	languagePrefix bool
}

func (m *marianModel) tokenize(text string, out []int) ([]int, error) {
	// MarianTokenizer.remove_language_code: a leading ">>xx<<" is its own token.
	if m.languagePrefix && strings.HasPrefix(text, ">>") {
		if end := strings.Index(text, "<<"); end >= 0 {
			out = m.lookup(text[:end+2], out)
			text = text[end+2:]
		}
	}
	for _, p := range m.spm.encodePieces(text) {
		out = m.lookup(p, out)
	}
	return out, nil
}

func (m *marianModel) lookup(piece string, out []int) []int {
	if id, ok := m.vocab[piece]; ok {
		return append(out, id)
	}
	return append(out, m.unkID)
}

func (m *marianModel) idToToken(id int) (string, bool) {
	if id < 0 || id >= len(m.rev) || m.vocab[m.rev[id]] != id {
		return "", false
	}
	return m.rev[id], true
}
func (m *marianModel) tokenToID(tok string) (int, bool) { id, ok := m.vocab[tok]; return id, ok }
func (m *marianModel) vocabSize() int                   { return len(m.vocab) }

// marianDecoder is MarianTokenizer.convert_tokens_to_string: runs of
// ordinary pieces are decoded with SentencePiece, special tokens are copied
// followed by a space, "▁" becomes a space and the ends are stripped.
type marianDecoder struct {
	spm     *spmModel
	special map[string]bool
}

func (d marianDecoder) decode(toks []string) []string {
	var b strings.Builder
	start := 0
	for i, t := range toks {
		if d.special[t] {
			b.WriteString(d.spm.decodePieces(toks[start:i]))
			b.WriteString(t)
			b.WriteString(" ")
			start = i + 1
		}
	}
	b.WriteString(d.spm.decodePieces(toks[start:]))
	return []string{pyStrip(strings.ReplaceAll(b.String(), "\u2581", " "))}
}

// pyStrip is Python's str.strip() (its whitespace set differs from Go's).
func pyStrip(s string) string {
	return strings.TrimFunc(s, func(r rune) bool {
		switch r {
		case '\t', '\n', '\v', '\f', '\r', 0x1c, 0x1d, 0x1e, 0x1f, ' ', 0x85, 0xa0, 0x1680,
			0x2028, 0x2029, 0x202f, 0x205f, 0x3000:
			return true
		}
		return r >= 0x2000 && r <= 0x200a
	})
}
