package tokenize

import (
	"unicode"
	"unicode/utf8"
)

// addedToken is an entry of tokenizer.json's added_tokens.
type addedToken struct {
	content                             string
	id                                  int
	special, lstrip, rstrip, normalized bool
	singleWord                          bool
}

// addedVocab splits text around added tokens before the model sees it, as
// HF tokenizers' AddedVocabulary does: tokens with normalized=false match
// the raw text, the others match the normalized text, leftmost-longest.
type addedVocab struct {
	tokens []addedToken
	byID   map[int]addedToken
	raw    *matcher
	norm   *matcher
}

func newAddedVocab(tokens []addedToken) addedVocab {
	v := addedVocab{tokens: tokens, byID: make(map[int]addedToken, len(tokens))}
	var raw, norm []addedToken
	for _, t := range tokens {
		v.byID[t.id] = t
		if t.content == "" {
			continue
		}
		if t.normalized {
			norm = append(norm, t)
		} else {
			raw = append(raw, t)
		}
	}
	v.raw, v.norm = newMatcher(raw), newMatcher(norm)
	return v
}

// segment is a part of the input: an added token (id >= 0) or text.
type segment struct {
	text  string
	id    int
	first bool // text starts at offset 0 of the input
}

func (v *addedVocab) split(text string, norm normalizer) []segment {
	var out []segment
	for _, s := range v.raw.split(text, true) {
		if s.id >= 0 {
			out = append(out, s)
			continue
		}
		if norm != nil {
			s.text = norm.normalize(s.text)
		}
		for _, t := range v.norm.split(s.text, s.first) {
			if t.id >= 0 || t.text != "" {
				out = append(out, t)
			}
		}
	}
	return out
}

// matcher finds added tokens in text, leftmost first and longest at a
// position, with their lstrip/rstrip/single_word rules.
type matcher struct {
	byFirst map[byte][]addedToken
}

func newMatcher(tokens []addedToken) *matcher {
	m := &matcher{byFirst: map[byte][]addedToken{}}
	for _, t := range tokens {
		m.byFirst[t.content[0]] = append(m.byFirst[t.content[0]], t)
	}
	return m
}

func isWordChar(r rune) bool {
	return r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.Is(unicode.M, r)
}

func (m *matcher) split(text string, first bool) []segment {
	if len(m.byFirst) == 0 {
		return []segment{{text: text, id: -1, first: first}}
	}
	var out []segment
	prevEnd := 0 // end of the previous split (text consumed so far)
	for i := 0; i < len(text); i++ {
		cands := m.byFirst[text[i]]
		if cands == nil {
			continue
		}
		best := -1
		for k, c := range cands {
			if len(text)-i >= len(c.content) && text[i:i+len(c.content)] == c.content {
				if best < 0 || len(c.content) > len(cands[best].content) {
					best = k
				}
			}
		}
		if best < 0 {
			continue
		}
		tok := cands[best]
		start, end := i, i+len(tok.content)
		if tok.singleWord {
			before, _ := utf8.DecodeLastRuneInString(text[:start])
			after, _ := utf8.DecodeRuneInString(text[end:])
			if (start > 0 && isWordChar(before)) || (end < len(text) && isWordChar(after)) {
				continue
			}
		}
		if tok.lstrip {
			for start > prevEnd {
				r, n := utf8.DecodeLastRuneInString(text[:start])
				if !unicode.IsSpace(r) {
					break
				}
				start -= n
			}
		}
		if tok.rstrip {
			for end < len(text) {
				r, n := utf8.DecodeRuneInString(text[end:])
				if !unicode.IsSpace(r) {
					break
				}
				end += n
			}
		}
		if start > prevEnd {
			out = append(out, segment{text: text[prevEnd:start], id: -1, first: first && prevEnd == 0})
		}
		out = append(out, segment{id: tok.id})
		prevEnd = end
		i = end - 1
	}
	if prevEnd < len(text) || len(out) == 0 {
		out = append(out, segment{text: text[prevEnd:], id: -1, first: first && prevEnd == 0})
	}
	return out
}
