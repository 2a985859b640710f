package tokenize

import (
	"fmt"
	"regexp"
	"strings"
)

// Unicode classes of Oniguruma (which HF tokenizers uses) that Go's RE2
// reads as ASCII-only: \s is White_Space, \d is Nd, \w is L, M, Nd, Pc.
const (
	uniSpace = `\t\n\x{0B}\f\r\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}`
	uniWord  = `\p{L}\p{M}\p{Nd}\p{Pc}`
)

// compileHFRegex compiles a tokenizer.json regular expression with
// Oniguruma's Unicode meanings of \s, \S, \d, \D, \w and \W.
func compileHFRegex(pattern string) (*regexp.Regexp, error) {
	var b strings.Builder
	inClass := false
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		switch {
		case c == '\\' && i+1 < len(pattern):
			e := pattern[i+1]
			i++
			var in, out string
			switch e {
			case 's':
				in, out = uniSpace, "["+uniSpace+"]"
			case 'S':
				out = "[^" + uniSpace + "]"
			case 'd':
				in, out = `\p{Nd}`, `\p{Nd}`
			case 'D':
				in, out = `\P{Nd}`, `\P{Nd}`
			case 'w':
				in, out = uniWord, "["+uniWord+"]"
			case 'W':
				out = "[^" + uniWord + "]"
			default:
				b.WriteByte('\\')
				b.WriteByte(e)
				continue
			}
			if inClass {
				if in == "" {
					return nil, fmt.Errorf(`\%c inside a character class is not supported`, e)
				}
				b.WriteString(in)
			} else {
				b.WriteString(out)
			}
		case c == '[' && !inClass:
			inClass = true
			b.WriteByte(c)
			// A ']' right after '[' or '[^' is a literal.
			if i+1 < len(pattern) && pattern[i+1] == '^' {
				b.WriteByte('^')
				i++
			}
			if i+1 < len(pattern) && pattern[i+1] == ']' {
				b.WriteString(`\]`)
				i++
			}
		case c == ']' && inClass:
			inClass = false
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return regexp.Compile(b.String())
}
