package tokenize

import (
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// decoder turns tokens back into text pieces (HF's Decoder::decode_chain);
// the pieces are concatenated.
type decoder interface {
	decode(tokens []string) []string
}

type decoderSequence []decoder

func (q decoderSequence) decode(toks []string) []string {
	for _, d := range q {
		toks = d.decode(toks)
	}
	return toks
}

// metaspaceDecoder is HF's Metaspace decoder. The replacement character in
// the first token is dropped unless prepend_scheme is "never" (sugarme
// ignores prepend_scheme and always drops it: defect).
type metaspaceDecoder struct {
	repl    rune
	prepend string
}

func (m metaspaceDecoder) decode(toks []string) []string {
	out := make([]string, len(toks))
	for i, t := range toks {
		var b strings.Builder
		for _, r := range t {
			if r == m.repl {
				if i == 0 && m.prepend != prependNever {
					continue
				}
				r = ' '
			}
			b.WriteRune(r)
		}
		out[i] = b.String()
	}
	return out
}

// byteLevelDecoder maps GPT-2 byte characters back to bytes; the result is
// decoded as UTF-8 the way Rust's String::from_utf8_lossy does.
type byteLevelDecoder struct{}

func (byteLevelDecoder) decode(toks []string) []string {
	var buf []byte
	for _, t := range toks {
		start := len(buf)
		ok := true
		for _, r := range t {
			b, found := runeToByte[r]
			if !found {
				ok = false
				break
			}
			buf = append(buf, b)
		}
		if !ok {
			buf = append(buf[:start], t...)
		}
	}
	return []string{lossyUTF8(buf)}
}

// lossyUTF8 replaces each maximal invalid subsequence with U+FFFD, as
// Rust's from_utf8_lossy (and Python's errors="replace") do.
func lossyUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r != utf8.RuneError || n > 1 {
			sb.Write(b[:n])
			b = b[n:]
			continue
		}
		sb.WriteRune(utf8.RuneError)
		b = b[maximalSubpart(b):]
	}
	return sb.String()
}

// maximalSubpart is the length of the longest prefix of b that starts a
// well-formed UTF-8 sequence (at least 1).
func maximalSubpart(b []byte) int {
	c := b[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF)
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		need = 2
	case c == 0xED:
		need, hi = 2, 0x9F
	case c == 0xF0:
		need, lo = 3, 0x90
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	case c == 0xF4:
		need, hi = 3, 0x8F
	default:
		return 1
	}
	n := 1
	for k := 0; k < need && n < len(b); k++ {
		x := b[n]
		if k == 0 && (x < lo || x > hi) || k > 0 && (x < 0x80 || x > 0xBF) {
			break
		}
		n++
	}
	return n
}

// wordPieceDecoder is HF's WordPiece decoder.
type wordPieceDecoder struct {
	prefix  string
	cleanup bool
}

func (w wordPieceDecoder) decode(toks []string) []string {
	out := make([]string, len(toks))
	for i, t := range toks {
		if i != 0 {
			if strings.HasPrefix(t, w.prefix) {
				t = t[len(w.prefix):]
			} else {
				t = " " + t
			}
		}
		if w.cleanup {
			t = cleanUpSpaces(t)
		}
		out[i] = t
	}
	return out
}

// cleanUpSpaces is HF's clean_up_tokenization.
func cleanUpSpaces(s string) string {
	return strings.NewReplacer(" .", ".", " ?", "?", " !", "!", " ,", ",", " ' ", "'", " n't", "n't",
		" 'm", "'m", " 's", "'s", " 've", "'ve", " 're", "'re").Replace(s)
}

// replaceDecoder is HF's Replace decoder (per token).
type replaceDecoder struct {
	literal string
	re      *regexp.Regexp
	content string
}

func (r replaceDecoder) decode(toks []string) []string {
	out := make([]string, len(toks))
	for i, t := range toks {
		out[i] = replaceNorm(r).normalize(t)
	}
	return out
}

// byteFallbackDecoder turns <0xNN> tokens back into bytes.
type byteFallbackDecoder struct{}

func (byteFallbackDecoder) decode(toks []string) []string {
	var out []string
	var pending []byte
	flush := func() {
		if pending == nil {
			return
		}
		if utf8.Valid(pending) {
			out = append(out, string(pending))
		} else {
			for range pending {
				out = append(out, "\uFFFD")
			}
		}
		pending = nil
	}
	for _, t := range toks {
		if len(t) == 6 && strings.HasPrefix(t, "<0x") && t[5] == '>' {
			if v, err := strconv.ParseUint(t[3:5], 16, 8); err == nil {
				pending = append(pending, byte(v))
				continue
			}
		}
		flush()
		out = append(out, t)
	}
	flush()
	return out
}

// fuseDecoder joins all tokens into one.
type fuseDecoder struct{}

func (fuseDecoder) decode(toks []string) []string { return []string{strings.Join(toks, "")} }

// stripDecoder removes up to start leading and stop trailing content
// characters from each token.
type stripDecoder struct {
	content     rune
	start, stop int
}

func (s stripDecoder) decode(toks []string) []string {
	out := make([]string, len(toks))
	for i, t := range toks {
		r := []rune(t)
		a, z := 0, len(r)
		for k := 0; k < s.start && a < z && r[a] == s.content; k++ {
			a++
		}
		for k := 0; k < s.stop && z > a && r[z-1] == s.content; k++ {
			z--
		}
		out[i] = string(r[a:z])
	}
	return out
}
