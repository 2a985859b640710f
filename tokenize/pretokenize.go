package tokenize

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// preTokenizer splits a normalized segment into the pieces the model sees.
// first says the segment starts at offset 0 of the input (Metaspace's
// prepend_scheme "first" depends on it).
type preTokenizer interface {
	split(s string, first bool) []string
}

type piece struct {
	text  string
	first bool
}

// splitter is one stage of a pre-tokenizer sequence.
type splitter interface {
	splitPieces(in []piece) []piece
}

// pipeline runs splitters in order (HF's pre_tokenizers.Sequence, or a
// single pre-tokenizer).
type pipeline []splitter

// spaceBounded reports whether the pipeline may split a text at an ASCII
// space and split the parts apart, the part after the cut starting with
// that space and not being first: true when its first stage never makes a
// piece that spans whitespace and treats a leading space as it does inside
// the text (the later stages act on each piece alone).
func (p pipeline) spaceBounded() bool {
	if len(p) == 0 {
		return false
	}
	switch s := p[0].(type) {
	case whitespaceSplit, whitespacePre, bertPre:
		return true
	case metaspace:
		return s.split
	case byteLevel:
		return s.useRegex
	}
	return false
}

func (p pipeline) split(s string, first bool) []string {
	if s == "" {
		return nil
	}
	ps := []piece{{s, first}}
	for _, st := range p {
		ps = st.splitPieces(ps)
	}
	out := make([]string, 0, len(ps))
	for _, x := range ps {
		if x.text != "" {
			out = append(out, x.text)
		}
	}
	return out
}

// Prepend schemes of Metaspace.
const (
	prependAlways = "always"
	prependFirst  = "first"
	prependNever  = "never"
)

// metaspace is HF's Metaspace pre-tokenizer: spaces become the replacement
// character, which is prepended per prepend_scheme, and with split=true
// each replacement character starts a new piece.
type metaspace struct {
	repl    string
	prepend string
	split   bool
}

func (m metaspace) splitPieces(in []piece) []piece {
	var out []piece
	for _, p := range in {
		s := strings.ReplaceAll(p.text, " ", m.repl)
		if !strings.HasPrefix(s, m.repl) && (m.prepend == prependAlways || (m.prepend == prependFirst && p.first)) {
			s = m.repl + s
		}
		if !m.split {
			out = append(out, piece{s, p.first})
			continue
		}
		start := 0
		for i := 0; i < len(s); {
			if i > start && strings.HasPrefix(s[i:], m.repl) {
				out = append(out, piece{s[start:i], p.first && start == 0})
				start = i
			}
			_, n := utf8.DecodeRuneInString(s[i:])
			i += n
		}
		out = append(out, piece{s[start:], p.first && start == 0})
	}
	return out
}

// whitespaceSplit is HF's WhitespaceSplit.
type whitespaceSplit struct{}

func (whitespaceSplit) splitPieces(in []piece) []piece {
	var out []piece
	for _, p := range in {
		offset := 0
		rest := p.text
		for rest != "" {
			i := strings.IndexFunc(rest, func(r rune) bool { return !unicode.IsSpace(r) })
			if i < 0 {
				break
			}
			rest, offset = rest[i:], offset+i
			j := strings.IndexFunc(rest, unicode.IsSpace)
			if j < 0 {
				j = len(rest)
			}
			out = append(out, piece{rest[:j], p.first && offset == 0})
			rest, offset = rest[j:], offset+j
		}
	}
	return out
}

// whitespacePre is HF's Whitespace pre-tokenizer: \w+|[^\w\s]+.
type whitespacePre struct{}

func (whitespacePre) splitPieces(in []piece) []piece {
	var out []piece
	for _, p := range in {
		runs(p, func(r rune) int {
			switch {
			case unicode.IsSpace(r):
				return 0
			case isWordChar(r):
				return 1
			}
			return 2
		}, func(s string, first bool) { out = append(out, piece{s, first}) }, false)
	}
	return out
}

// runs groups consecutive runes of the same class (class 0 = dropped);
// with single, runes of class 2 stand alone.
func runs(p piece, class func(rune) int, emit func(string, bool), single bool) {
	s := p.text
	start, cur := 0, -1
	flush := func(end int) {
		if cur > 0 && end > start {
			emit(s[start:end], p.first && start == 0)
		}
	}
	for i, r := range s {
		c := class(r)
		if c != cur || (single && c == 2) {
			flush(i)
			start, cur = i, c
		}
	}
	flush(len(s))
}

// bertPre is HF's BertPreTokenizer: split on whitespace, punctuation alone.
type bertPre struct{}

func (bertPre) splitPieces(in []piece) []piece {
	var out []piece
	for _, p := range in {
		runs(p, func(r rune) int {
			switch {
			case unicode.IsSpace(r):
				return 0
			case isBertPunct(r):
				return 2
			}
			return 1
		}, func(s string, first bool) { out = append(out, piece{s, first}) }, true)
	}
	return out
}

func isBertPunct(r rune) bool {
	return (r >= 33 && r <= 47) || (r >= 58 && r <= 64) || (r >= 91 && r <= 96) || (r >= 123 && r <= 126) || unicode.IsPunct(r)
}

// byteLevel is HF's ByteLevel pre-tokenizer: GPT-2's split regex, then
// every byte mapped to a printable character.
type byteLevel struct {
	addPrefixSpace bool
	useRegex       bool
}

func (b byteLevel) splitPieces(in []piece) []piece {
	var out []piece
	for _, p := range in {
		s := p.text
		if b.addPrefixSpace && !strings.HasPrefix(s, " ") {
			s = " " + s
		}
		if !b.useRegex {
			out = append(out, piece{bytesToUnicode(s), p.first})
			continue
		}
		for i, w := range gpt2Split(s) {
			out = append(out, piece{bytesToUnicode(w), p.first && i == 0})
		}
	}
	return out
}

// gpt2Split matches GPT-2's pattern
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// by hand, since Go's regexp has no lookahead.
func gpt2Split(s string) []string {
	var out []string
	for i := 0; i < len(s); {
		n := gpt2Match(s[i:])
		out = append(out, s[i:i+n])
		i += n
	}
	return out
}

func gpt2Match(s string) int {
	if s[0] == '\'' {
		for _, c := range [...]string{"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"} {
			if strings.HasPrefix(s, c) {
				return len(c)
			}
		}
	}
	// ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`
	off := 0
	if s[0] == ' ' {
		off = 1
	}
	if off < len(s) {
		r, _ := utf8.DecodeRuneInString(s[off:])
		var class func(rune) bool
		switch {
		case unicode.IsLetter(r):
			class = unicode.IsLetter
		case unicode.IsNumber(r):
			class = unicode.IsNumber
		case !unicode.IsSpace(r):
			class = func(r rune) bool { return !unicode.IsSpace(r) && !unicode.IsLetter(r) && !unicode.IsNumber(r) }
		}
		if class != nil {
			n := off
			for n < len(s) {
				r, w := utf8.DecodeRuneInString(s[n:])
				if !class(r) {
					break
				}
				n += w
			}
			return n
		}
	}
	// `\s+(?!\S)|\s+`
	n, last := 0, 0
	for n < len(s) {
		r, w := utf8.DecodeRuneInString(s[n:])
		if !unicode.IsSpace(r) {
			break
		}
		last = n
		n += w
	}
	if n == 0 { // unreachable for valid input; consume one rune
		_, w := utf8.DecodeRuneInString(s)
		return w
	}
	if n < len(s) && last > 0 {
		return last // leave the last space to prefix the next word
	}
	return n
}

var byteToRune, runeToByte = buildByteMaps()

// buildByteMaps is GPT-2's bytes_to_unicode: printable bytes map to
// themselves, the others to 256+k in order.
func buildByteMaps() ([256]rune, map[rune]byte) {
	var b2r [256]rune
	r2b := make(map[rune]byte, 256)
	n := 0
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			b2r[b] = rune(b)
		} else {
			b2r[b] = rune(256 + n)
			n++
		}
		r2b[b2r[b]] = byte(b)
	}
	return b2r, r2b
}

func bytesToUnicode(s string) string {
	var b strings.Builder
	b.Grow(len(s) * 2)
	for i := 0; i < len(s); i++ {
		b.WriteRune(byteToRune[s[i]])
	}
	return b.String()
}
