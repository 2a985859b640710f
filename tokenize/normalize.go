package tokenize

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// normalizer rewrites text before pre-tokenization.
type normalizer interface {
	normalize(s string) string
}

type normFunc func(string) string

func (f normFunc) normalize(s string) string { return f(s) }

type normSequence []normalizer

func (q normSequence) normalize(s string) string {
	for _, n := range q {
		s = n.normalize(s)
	}
	return s
}

// precompiledNorm is HF's Precompiled normalizer.
type precompiledNorm struct{ cm *charsmap }

func (p precompiledNorm) normalize(s string) string { return p.cm.normalizeHF(s) }

// replaceNorm is HF's Replace normalizer. sugarme reads a Regex pattern as
// a literal string (defect); here a Regex pattern is a regular expression.
type replaceNorm struct {
	literal string
	re      *regexp.Regexp
	content string
}

func (r replaceNorm) normalize(s string) string {
	if r.re != nil {
		return r.re.ReplaceAllLiteralString(s, r.content)
	}
	if r.literal == "" {
		return s
	}
	return strings.ReplaceAll(s, r.literal, r.content)
}

func newReplacePattern(field string, p patternJSON) (literal string, re *regexp.Regexp, err error) {
	switch {
	case p.String != nil:
		return *p.String, nil, nil
	case p.Regex != nil:
		re, err := compileHFRegex(*p.Regex)
		if err != nil {
			return "", nil, fmt.Errorf("%s.pattern.Regex %q: not a regular expression Go can run (lookaround and backreferences are unsupported): %v", field, *p.Regex, err)
		}
		return "", re, nil
	}
	return "", nil, fmt.Errorf("%s.pattern: needs \"String\" or \"Regex\"", field)
}

func stripNorm(left, right bool) normFunc {
	return func(s string) string {
		if left {
			s = strings.TrimLeftFunc(s, unicode.IsSpace)
		}
		if right {
			s = strings.TrimRightFunc(s, unicode.IsSpace)
		}
		return s
	}
}

// stripAccents is HF's StripAccents normalizer: drops combining marks
// (General_Category M). It does not decompose; HF pipelines put NFD first.
func stripAccents(s string) string { return dropRunes(s, unicode.M) }

// dropRunes removes the runes of a Unicode category.
func dropRunes(s string, cat *unicode.RangeTable) string {
	return strings.Map(func(r rune) rune {
		if unicode.Is(cat, r) {
			return -1
		}
		return r
	}, s)
}

// nmtNorm is HF's Nmt normalizer: drops control characters and maps
// unusual spaces to a plain space.
func nmtNorm(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 0x0001 && r <= 0x0008, r == 0x000B, r >= 0x000E && r <= 0x001F, r == 0x007F, r == 0x008F, r == 0x009F:
			return -1
		case r == 0x0009, r == 0x000A, r == 0x000C, r == 0x000D, r == 0x1680, r >= 0x200B && r <= 0x200F,
			r == 0x2028, r == 0x2029, r == 0x2581, r == 0xFEFF, r == 0xFFFD:
			return ' '
		}
		return r
	}, s)
}

// bertNorm is HF's BertNormalizer.
func bertNorm(cleanText, chinese, stripAcc, lower bool) normFunc {
	return func(s string) string {
		var b strings.Builder
		for _, r := range s {
			if cleanText {
				if r == 0 || r == 0xFFFD || (unicode.In(r, unicode.C) && r != '\t' && r != '\n' && r != '\r') {
					continue
				}
				if r == '\t' || r == '\n' || r == '\r' || unicode.IsSpace(r) {
					r = ' '
				}
			}
			if chinese && isCJK(r) {
				b.WriteByte(' ')
				b.WriteRune(r)
				b.WriteByte(' ')
				continue
			}
			b.WriteRune(r)
		}
		out := b.String()
		if stripAcc {
			out = dropRunes(norm.NFD.String(out), unicode.Mn) // BertNormalizer drops nonspacing marks only
		}
		if lower {
			out = strings.ToLower(out)
		}
		return out
	}
}

func isCJK(r rune) bool {
	return (r >= 0x4E00 && r <= 0x9FFF) || (r >= 0x3400 && r <= 0x4DBF) || (r >= 0x20000 && r <= 0x2A6DF) ||
		(r >= 0x2A700 && r <= 0x2B73F) || (r >= 0x2B740 && r <= 0x2B81F) || (r >= 0x2B820 && r <= 0x2CEAF) ||
		(r >= 0xF900 && r <= 0xFAFF) || (r >= 0x2F800 && r <= 0x2FA1F)
}
