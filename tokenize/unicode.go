package tokenize

import (
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

func normNFC(s string) string  { return norm.NFC.String(s) }
func normNFD(s string) string  { return norm.NFD.String(s) }
func normNFKC(s string) string { return norm.NFKC.String(s) }
func normNFKD(s string) string { return norm.NFKD.String(s) }

// lowercase is Rust's str::to_lowercase, which HF's Lowercase uses. It
// differs from strings.ToLower in two places: U+0130 becomes "i̇" (i plus
// combining dot above) and a word-final Σ becomes ς.
func lowercase(s string) string {
	if !strings.ContainsAny(s, "\u0130\u03a3") {
		return strings.ToLower(s)
	}
	rs := []rune(s)
	var b strings.Builder
	for i, r := range rs {
		switch r {
		case '\u0130':
			b.WriteString("i\u0307")
		case '\u03a3':
			if casedBefore(rs, i) && !casedAfter(rs, i) {
				b.WriteRune('ς')
			} else {
				b.WriteRune('σ')
			}
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

func caseIgnorable(r rune) bool {
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk) || r == '\'' || r == '.' || r == ':' || r == '\u00b7' || r == '\u2019'
}

func cased(r rune) bool { return unicode.IsUpper(r) || unicode.IsLower(r) || unicode.IsTitle(r) }

func casedBefore(rs []rune, i int) bool {
	for j := i - 1; j >= 0; j-- {
		if !caseIgnorable(rs[j]) {
			return cased(rs[j])
		}
	}
	return false
}

func casedAfter(rs []rune, i int) bool {
	for j := i + 1; j < len(rs); j++ {
		if !caseIgnorable(rs[j]) {
			return cased(rs[j])
		}
	}
	return false
}
