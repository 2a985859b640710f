package metrics

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// BLEU tokenizers, as sacrebleu 2.6.0 names them.
const (
	TokenizeNone = "none"
	Tokenize13a  = "13a"
	TokenizeIntl = "intl"
	TokenizeChar = "char"
	TokenizeZh   = "zh"
)

// bleuTokenizer splits a segment into tokens the way sacrebleu's tokenizer
// followed by str.split() does. It owns scratch buffers, so one value must
// not be used by two goroutines at once.
type bleuTokenizer struct {
	kind   string
	b1, b2 []byte
	r1, r2 []rune
}

func newBLEUTokenizer(kind string) (*bleuTokenizer, error) {
	switch kind {
	case TokenizeNone, Tokenize13a, TokenizeIntl, TokenizeChar, TokenizeZh:
		return &bleuTokenizer{kind: kind}, nil
	}
	return nil, fmt.Errorf("unknown BLEU tokenizer %q (want none, 13a, intl, char or zh)", kind)
}

// tokens appends the tokens of line to dst. line has already been lowercased
// (when asked) and right-stripped, as sacrebleu's BLEU._preprocess_segment does.
func (t *bleuTokenizer) tokens(dst []string, line string) []string {
	t.eachToken(line, func(tok string) { dst = append(dst, tok) })
	return dst
}

// eachToken calls fn with each token of line, in order, as tokens lists
// them, without holding them.
func (t *bleuTokenizer) eachToken(line string, fn func(string)) {
	switch t.kind {
	case TokenizeNone:
		pyFieldsEach(line, fn)
	case TokenizeChar:
		// " ".join(line).split(): every non-space code point is a token.
		for i, r := range line {
			if !isPySpace(r) {
				fn(line[i : i+utf8.RuneLen(r)])
			}
		}
	case Tokenize13a:
		pyFieldsEach(t.tok13a(line), fn)
	case TokenizeZh:
		pyFieldsEach(t.tokZh(line), fn)
	case TokenizeIntl:
		pyFieldsEach(t.tokIntl(line), fn)
	}
}

// tok13a is sacrebleu's Tokenizer13a: mteval-v13a's replacements, then the
// regular-expression passes of TokenizerRegexp on the space-padded line.
func (t *bleuTokenizer) tok13a(line string) string {
	line = strings.ReplaceAll(line, "<skipped>", "")
	line = strings.ReplaceAll(line, "-\n", "")
	line = strings.ReplaceAll(line, "\n", " ")
	if strings.IndexByte(line, '&') >= 0 {
		line = strings.ReplaceAll(line, "&quot;", "\"")
		line = strings.ReplaceAll(line, "&amp;", "&")
		line = strings.ReplaceAll(line, "&lt;", "<")
		line = strings.ReplaceAll(line, "&gt;", ">")
	}
	t.b1 = append(t.b1[:0], ' ')
	t.b1 = append(t.b1, line...)
	t.b1 = append(t.b1, ' ')
	return t.regexpPasses()
}

// regexpPasses runs TokenizerRegexp's four substitutions over t.b1. Each is
// re.sub with a one- or two-character pattern: matches are found left to
// right without overlap, which the pair loops below reproduce. Working on
// bytes is exact: every pattern has an ASCII side, and a UTF-8 continuation
// byte can neither be ASCII nor end a match differently from its code point.
func (t *bleuTokenizer) regexpPasses() string {
	// ([\{-\~\[-\` -\&\(-\+\:-\@\/]) -> " \1 "
	t.b2 = t.b2[:0]
	for _, c := range t.b1 {
		if isRegexpPunct(c) {
			t.b2 = append(t.b2, ' ', c, ' ')
		} else {
			t.b2 = append(t.b2, c)
		}
	}
	// ([^0-9])([\.,]) -> "\1 \2 "
	t.b1 = digitDotPass(t.b1[:0], t.b2)
	// ([\.,])([^0-9]) -> " \1 \2"
	t.b2 = dotDigitPass(t.b2[:0], t.b1)
	// ([0-9])(-) -> "\1 \2 "
	t.b1 = digitDashPass(t.b1[:0], t.b2)
	return string(t.b1)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isRegexpPunct(c byte) bool {
	return (c >= '{' && c <= '~') || (c >= '[' && c <= '`') || (c >= ' ' && c <= '&') ||
		(c >= '(' && c <= '+') || (c >= ':' && c <= '@') || c == '/'
}

// The three pair passes below are re.sub with two-character patterns:
// matches are taken left to right without overlap. Each jumps from one
// candidate ('.', ',' or '-') to the next and copies the bytes between.

func isDotComma(c byte) bool { return c == '.' || c == ',' }

// digitDotPass: ([^0-9])([\.,]) -> "\1 \2 ".
func digitDotPass(dst, src []byte) []byte {
	i := 0 // first byte not yet copied or consumed
	for j := 1; j < len(src); j++ {
		if !isDotComma(src[j]) || j-1 < i || isDigit(src[j-1]) {
			continue
		}
		dst = append(dst, src[i:j-1]...)
		dst = append(dst, src[j-1], ' ', src[j], ' ')
		i = j + 1
		j++ // the match consumed src[j]: it cannot start the next one
	}
	return append(dst, src[i:]...)
}

// dotDigitPass: ([\.,])([^0-9]) -> " \1 \2".
func dotDigitPass(dst, src []byte) []byte {
	i := 0
	for j := 0; j+1 < len(src); j++ {
		if !isDotComma(src[j]) || isDigit(src[j+1]) {
			continue
		}
		dst = append(dst, src[i:j]...)
		dst = append(dst, ' ', src[j], ' ', src[j+1])
		i = j + 2
		j++
	}
	return append(dst, src[i:]...)
}

// digitDashPass: ([0-9])(-) -> "\1 \2 ".
func digitDashPass(dst, src []byte) []byte {
	i := 0
	for j := 1; j < len(src); j++ {
		if src[j] != '-' || j-1 < i || !isDigit(src[j-1]) {
			continue
		}
		dst = append(dst, src[i:j-1]...)
		dst = append(dst, src[j-1], ' ', '-', ' ')
		i = j + 1
	}
	return append(dst, src[i:]...)
}

// tokZh is sacrebleu's TokenizerZh: strip, space out "Chinese" code points,
// then TokenizerRegexp (without 13a's replacements or padding).
func (t *bleuTokenizer) tokZh(line string) string {
	line = pyStrip(line)
	t.b1 = t.b1[:0]
	for _, r := range line {
		if isZhChar(r) {
			t.b1 = append(t.b1, ' ')
			t.b1 = utf8.AppendRune(t.b1, r)
			t.b1 = append(t.b1, ' ')
		} else {
			t.b1 = utf8.AppendRune(t.b1, r)
		}
	}
	return t.regexpPasses()
}

// zhRanges are sacrebleu's _UCODE_RANGES as its string comparisons really
// behave: the two entries written with five hex digits ('\u20000',
// '\u2f800', ...) are two-character strings in Python, so they select
// U+2001..U+2A6D and U+2F81..U+2FA1 instead of the CJK extension planes.
var zhRanges = [][2]rune{
	{0x3400, 0x4db5}, {0x4e00, 0x9fa5}, {0x9fa6, 0x9fbb}, {0xf900, 0xfa2d},
	{0xfa30, 0xfa6a}, {0xfa70, 0xfad9}, {0x2001, 0x2a6d}, {0x2f81, 0x2fa1},
	{0xff00, 0xffef}, {0x2e80, 0x2eff}, {0x3000, 0x303f}, {0x31c0, 0x31ef},
	{0x2f00, 0x2fdf}, {0x2ff0, 0x2fff}, {0x3100, 0x312f}, {0x31a0, 0x31bf},
	{0xfe10, 0xfe1f}, {0xfe30, 0xfe4f}, {0x2600, 0x26ff}, {0x2700, 0x27bf},
	{0x3200, 0x32ff}, {0x3300, 0x33ff},
}

func isZhChar(r rune) bool {
	if r < 0x2001 {
		return false
	}
	for _, rg := range zhRanges {
		if rg[0] <= r && r <= rg[1] {
			return true
		}
	}
	return false
}

// tokIntl is sacrebleu's TokenizerV14International: three substitutions with
// Unicode properties (regex module), on code points.
func (t *bleuTokenizer) tokIntl(line string) string {
	t.r1 = t.r1[:0]
	for _, r := range line {
		t.r1 = append(t.r1, r)
	}
	// (\P{N})(\p{P}) -> "\1 \2 "
	t.r2 = t.r2[:0]
	i := 0
	for i+1 < len(t.r1) {
		a, b := t.r1[i], t.r1[i+1]
		if !isUniN(a) && isUniP(b) {
			t.r2 = append(t.r2, a, ' ', b, ' ')
			i += 2
			continue
		}
		t.r2 = append(t.r2, a)
		i++
	}
	t.r2 = append(t.r2, t.r1[i:]...)
	// (\p{P})(\P{N}) -> " \1 \2"
	t.r1 = t.r1[:0]
	i = 0
	for i+1 < len(t.r2) {
		a, b := t.r2[i], t.r2[i+1]
		if isUniP(a) && !isUniN(b) {
			t.r1 = append(t.r1, ' ', a, ' ', b)
			i += 2
			continue
		}
		t.r1 = append(t.r1, a)
		i++
	}
	t.r1 = append(t.r1, t.r2[i:]...)
	// (\p{S}) -> " \1 "
	t.b1 = t.b1[:0]
	for _, r := range t.r1 {
		if isUniS(r) {
			t.b1 = append(t.b1, ' ')
			t.b1 = utf8.AppendRune(t.b1, r)
			t.b1 = append(t.b1, ' ')
		} else {
			t.b1 = utf8.AppendRune(t.b1, r)
		}
	}
	return string(t.b1)
}

// The intl tokenizer's Unicode classes. Go's tables are Unicode 15.0; the
// regex module sacrebleu uses may know newer code points, listed in the
// ranges of unicode_newer.go (checked by the test against pyunicode.json).
func isUniN(r rune) bool {
	if r < 0x80 {
		return '0' <= r && r <= '9'
	}
	return unicode.IsNumber(r) || inRanges(r, uniNNewer)
}

func isUniP(r rune) bool {
	return unicode.IsPunct(r) || inRanges(r, uniPNewer)
}

func isUniS(r rune) bool {
	return unicode.IsSymbol(r) || inRanges(r, uniSNewer)
}
