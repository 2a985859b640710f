package metrics

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// The peers are Python programs: their notion of whitespace (str.split,
// str.strip) and of lowercasing (str.lower) differs from Go's in a few code
// points, and those differences change scores. The helpers below follow
// CPython 3.11 (Unicode 14.0); testdata/metrics/pyunicode.json pins them.

// isPySpace reports whether r is whitespace for Python's str.split() and
// str.strip(): Go's unicode.IsSpace plus the ASCII separators U+001C..U+001F.
func isPySpace(r rune) bool {
	switch {
	case r == ' ' || (r >= '\t' && r <= '\r') || (r >= 0x1c && r <= 0x1f):
		return true
	case r < 0x80:
		return false
	case r == 0x85 || r == 0xa0 || r == 0x1680 || (r >= 0x2000 && r <= 0x200a) ||
		r == 0x2028 || r == 0x2029 || r == 0x202f || r == 0x205f || r == 0x3000:
		return true
	}
	return false
}

// pyFields appends to dst the substrings of s separated by Python whitespace,
// as Python's s.split() returns them. The substrings share s's memory.
func pyFields(dst []string, s string) []string {
	pyFieldsEach(s, func(f string) { dst = append(dst, f) })
	return dst
}

// pyFieldsEach calls fn with each field of s, as pyFields returns them,
// holding none (a huge segment's fields never exist all at once).
func pyFieldsEach(s string, fn func(string)) {
	start := -1
	for i := 0; i < len(s); {
		c := s[i]
		var r rune
		size := 1
		if c < utf8.RuneSelf {
			r = rune(c)
		} else {
			r, size = utf8.DecodeRuneInString(s[i:])
		}
		if isPySpace(r) {
			if start >= 0 {
				fn(s[start:i])
				start = -1
			}
		} else if start < 0 {
			start = i
		}
		i += size
	}
	if start >= 0 {
		fn(s[start:])
	}
}

// pyRstrip is Python's s.rstrip().
func pyRstrip(s string) string {
	return strings.TrimRightFunc(s, isPySpace)
}

// pyStrip is Python's s.strip().
func pyStrip(s string) string {
	return strings.TrimFunc(s, isPySpace)
}

// pyLower is Python's str.lower(): the full lowercase mapping, which differs
// from Go's simple mapping for U+0130 (two code points) and for capital sigma
// in final position (U+03C2 instead of U+03C3).
func pyLower(s string) string {
	ascii := true
	upper := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
		if 'A' <= c && c <= 'Z' {
			upper = true
		}
	}
	if ascii {
		if !upper {
			return s
		}
		b := []byte(s)
		for i, c := range b {
			if 'A' <= c && c <= 'Z' {
				b[i] = c + 'a' - 'A'
			}
		}
		return string(b)
	}
	rs := []rune(s)
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i, r := range rs {
		switch r {
		case 0x130:
			b.WriteString("i\u0307")
		case 0x3a3:
			b.WriteRune(lowerSigma(rs, i))
		default:
			b.WriteRune(pyLowerRune(r))
		}
	}
	return b.String()
}

// pyLowerRune is the single-code-point lowercase mapping of Python 3.11;
// apart from U+0130 it equals Go's (checked over all code points by a test).
func pyLowerRune(r rune) rune {
	if r < utf8.RuneSelf {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}
	return unicode.ToLower(r)
}

// lowerSigma implements CPython's Final_Sigma rule for U+03A3 at rs[i]:
// final when preceded by a cased letter and not followed by one, skipping
// case-ignorable code points on both sides.
func lowerSigma(rs []rune, i int) rune {
	j := i - 1
	for j >= 0 && isCaseIgnorable(rs[j]) {
		j--
	}
	final := j >= 0 && isCased(rs[j])
	if final && i+1 < len(rs) {
		j = i + 1
		for j < len(rs) && isCaseIgnorable(rs[j]) {
			j++
		}
		final = j == len(rs) || !isCased(rs[j])
	}
	if final {
		return 0x3c2
	}
	return 0x3c3
}

func isCased(r rune) bool {
	return unicode.In(r, unicode.Lu, unicode.Ll, unicode.Lt, unicode.Other_Lowercase, unicode.Other_Uppercase)
}

func isCaseIgnorable(r rune) bool {
	switch r {
	// Word_Break MidLetter, MidNumLet and Single_Quote.
	case 0x27, 0x2e, 0x3a, 0xb7, 0x387, 0x55f, 0x5f4, 0x2018, 0x2019, 0x2024, 0x2027,
		0xfe13, 0xfe52, 0xfe55, 0xff07, 0xff0e, 0xff1a:
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}
