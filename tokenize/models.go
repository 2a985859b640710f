package tokenize

import (
	"encoding/json"
	"fmt"
	"strings"

	"math"
	"sync"

	sgmodel "github.com/sugarme/tokenizer/model"
	"github.com/sugarme/tokenizer/model/wordpiece"
)

// bpeModel is HF's BPE model. sugarme's BPE (model/bpe) is not used: it
// merges overlapping occurrences of a pair out of HF's order (for
// "aaaaaaaa" it yields aaa|aaaa|a instead of aaaa|aaaa, see
// TestSugarmeBPEMergeOrder), panics on a character missing from the
// vocabulary when there is no unk token (HF drops it), maps an unk token
// that is not in the vocabulary to id 0 (HF refuses the file), and puts
// continuing_subword_prefix on the wrong characters.
type bpeModel struct {
	vocab   map[string]int
	rev     []string
	merges  map[[2]int32]mergeRule
	unkID   int // -1: none
	fuseUnk bool

	mu    sync.RWMutex
	cache map[string][]int32 // word -> ids, capped like HF's cache
}

type mergeRule struct{ rank, id int32 }

const bpeCacheWords = 10000

func (l *loader) bpe(m *modelJSON) (model, error) {
	vocab, rev, err := l.vocabMap(m)
	if err != nil {
		return nil, err
	}
	if m.Dropout != nil && *m.Dropout > 0 {
		return nil, l.errf("model.dropout", "BPE dropout is for training tokenizers; set it to null")
	}
	if m.ByteFallback {
		return nil, l.errf("model.byte_fallback", "byte-fallback BPE models are not supported")
	}
	if p := strOr(m.ContinuingSubwordPrefix, ""); p != "" {
		return nil, l.errf("model.continuing_subword_prefix", "%q: BPE with a subword prefix is not supported", p)
	}
	if s := strOr(m.EndOfWordSuffix, ""); s != "" {
		return nil, l.errf("model.end_of_word_suffix", "%q: BPE with an end-of-word suffix is not supported", s)
	}
	merges, err := l.merges(m.Merges)
	if err != nil {
		return nil, err
	}
	b := &bpeModel{vocab: vocab, rev: rev, unkID: -1, fuseUnk: m.FuseUnk, merges: make(map[[2]int32]mergeRule, len(merges)),
		cache: make(map[string][]int32)}
	for i, mg := range merges {
		a, c, ok := strings.Cut(mg, " ")
		if !ok {
			return nil, l.errf(fmt.Sprintf("model.merges[%d]", i), "%q is not two tokens separated by a space", mg)
		}
		ia, oka := vocab[a]
		ic, okc := vocab[c]
		id, okn := vocab[a+c]
		if !oka || !okc || !okn {
			return nil, l.errf(fmt.Sprintf("model.merges[%d]", i), "%q: a token of the merge or its result is not in model.vocab", mg)
		}
		key := [2]int32{int32(ia), int32(ic)}
		if _, dup := b.merges[key]; !dup {
			b.merges[key] = mergeRule{rank: int32(i), id: int32(id)}
		}
	}
	if m.UnkToken != nil {
		id, ok := vocab[*m.UnkToken]
		if !ok {
			return nil, l.errf("model.unk_token", "%q is not in model.vocab", *m.UnkToken)
		}
		b.unkID = id
	}
	return b, nil
}

func (l *loader) merges(raw []byte) ([]string, error) {
	if isNull(raw) {
		return nil, l.errf("model.merges", "missing")
	}
	var asStrings []string
	if err := json.Unmarshal(raw, &asStrings); err == nil {
		return asStrings, nil
	}
	var pairs [][]string
	if err := json.Unmarshal(raw, &pairs); err != nil {
		return nil, l.errf("model.merges", "want [\"a b\", ...] or [[\"a\", \"b\"], ...]: %v", err)
	}
	out := make([]string, len(pairs))
	for i, p := range pairs {
		if len(p) != 2 {
			return nil, l.errf(fmt.Sprintf("model.merges[%d]", i), "want two tokens, got %d", len(p))
		}
		if strings.Contains(p[0], " ") || strings.Contains(p[1], " ") {
			return nil, l.errf(fmt.Sprintf("model.merges[%d]", i), "tokens with spaces are not supported")
		}
		out[i] = p[0] + " " + p[1]
	}
	return out, nil
}

func (b *bpeModel) tokenize(piece string, out []int) ([]int, error) {
	if piece == "" {
		return out, nil
	}
	b.mu.RLock()
	ids, hit := b.cache[piece]
	b.mu.RUnlock()
	if !hit {
		ids = b.mergeWord(piece)
		b.mu.Lock()
		if len(b.cache) < bpeCacheWords {
			b.cache[piece] = ids
		}
		b.mu.Unlock()
	}
	for _, id := range ids {
		out = append(out, int(id))
	}
	return out, nil
}

// mergeWord is HF's Word::merge_all: start from characters, repeatedly
// merge the pair with the lowest rank, leftmost first.
func (b *bpeModel) mergeWord(w string) []int32 {
	syms := make([]int32, 0, len(w))
	for _, r := range w {
		if id, ok := b.vocab[string(r)]; ok {
			syms = append(syms, int32(id))
		} else if b.unkID >= 0 {
			if b.fuseUnk && len(syms) > 0 && syms[len(syms)-1] == int32(b.unkID) {
				continue
			}
			syms = append(syms, int32(b.unkID))
		} // else: HF drops the character
	}
	for len(syms) > 1 {
		best, bestRule := -1, mergeRule{rank: math.MaxInt32}
		for i := 0; i+1 < len(syms); i++ {
			if r, ok := b.merges[[2]int32{syms[i], syms[i+1]}]; ok && r.rank < bestRule.rank {
				best, bestRule = i, r
			}
		}
		if best < 0 {
			break
		}
		syms[best] = bestRule.id
		syms = append(syms[:best+1], syms[best+2:]...)
	}
	return syms
}

func (b *bpeModel) idToToken(id int) (string, bool) {
	if id < 0 || id >= len(b.rev) {
		return "", false
	}
	tok := b.rev[id]
	if _, ok := b.vocab[tok]; !ok || b.vocab[tok] != id {
		return "", false
	}
	return tok, true
}

func (b *bpeModel) tokenToID(tok string) (int, bool) { id, ok := b.vocab[tok]; return id, ok }
func (b *bpeModel) vocabSize() int                   { return len(b.vocab) }

// wordPieceModel wraps sugarme's WordPiece. Its constructor New ignores
// continuing_subword_prefix (looks up the wrong key), so we use the builder.
type wordPieceModel struct {
	m     wordpiece.WordPiece
	vocab map[string]int
	rev   []string
}

func (l *loader) wordPiece(m *modelJSON) (model, error) {
	vocab, rev, err := l.vocabMap(m)
	if err != nil {
		return nil, err
	}
	unk := strOr(m.UnkToken, "[UNK]")
	if _, ok := vocab[unk]; !ok {
		return nil, l.errf("model.unk_token", "%q is not in model.vocab", unk)
	}
	maxChars := 100
	if m.MaxInputCharsPerWord != nil {
		maxChars = *m.MaxInputCharsPerWord
	}
	v := sgmodel.Vocab(vocab)
	wp := wordpiece.NewWordPieceBuilder().Vocab(&v).UnkToken(unk).
		ContinuingSubwordPrefix(strOr(m.ContinuingSubwordPrefix, "##")).MaxInputCharsPerWord(maxChars).Build()
	return &wordPieceModel{m: wp, vocab: vocab, rev: rev}, nil
}

func (w *wordPieceModel) tokenize(piece string, out []int) ([]int, error) {
	toks, err := w.m.Tokenize(piece)
	if err != nil {
		return out, err
	}
	for _, t := range toks {
		out = append(out, t.Id)
	}
	return out, nil
}

func (w *wordPieceModel) idToToken(id int) (string, bool) {
	if id < 0 || id >= len(w.rev) || w.vocab[w.rev[id]] != id {
		return "", false
	}
	return w.rev[id], true
}
func (w *wordPieceModel) tokenToID(tok string) (int, bool) { id, ok := w.vocab[tok]; return id, ok }
func (w *wordPieceModel) vocabSize() int                   { return len(w.vocab) }

// wordLevelModel maps whole pieces to ids.
type wordLevelModel struct {
	vocab map[string]int
	rev   []string
	unkID int
}

func (l *loader) wordLevel(m *modelJSON) (model, error) {
	vocab, rev, err := l.vocabMap(m)
	if err != nil {
		return nil, err
	}
	unk := strOr(m.UnkToken, "<unk>")
	id, ok := vocab[unk]
	if !ok {
		return nil, l.errf("model.unk_token", "%q is not in model.vocab", unk)
	}
	return &wordLevelModel{vocab: vocab, rev: rev, unkID: id}, nil
}

func (w *wordLevelModel) tokenize(piece string, out []int) ([]int, error) {
	if id, ok := w.vocab[piece]; ok {
		return append(out, id), nil
	}
	return append(out, w.unkID), nil
}
func (w *wordLevelModel) idToToken(id int) (string, bool) {
	if id < 0 || id >= len(w.rev) || w.vocab[w.rev[id]] != id {
		return "", false
	}
	return w.rev[id], true
}
func (w *wordLevelModel) tokenToID(tok string) (int, bool) { id, ok := w.vocab[tok]; return id, ok }
func (w *wordLevelModel) vocabSize() int                   { return len(w.vocab) }

// guessSpecial finds the usual special tokens by their conventional names.
func guessSpecial(t *Tokenizer) SpecialTokens {
	find := func(names ...string) int {
		for _, n := range names {
			if id, ok := t.TokenToID(n); ok {
				return id
			}
		}
		return -1
	}
	return SpecialTokens{
		Pad: find("<pad>", "[PAD]", "<|padding|>"),
		EOS: find("</s>", "[SEP]", "<|endoftext|>", "<eos>"),
		BOS: find("<s>", "[CLS]", "<bos>"),
		UNK: find("<unk>", "[UNK]"),
	}
}
