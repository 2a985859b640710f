// Package porter is the Porter stemmer exactly as NLTK 3.x's
// nltk.stem.porter.PorterStemmer runs it in its default NLTK_EXTENSIONS mode,
// which rouge-score 0.1.2 uses for use_stemmer=True. It is written for the
// lowercase ASCII tokens rouge-score produces ([a-z0-9]+); other bytes are
// treated as consonants, as NLTK treats any non-vowel.
package porter

import "strings"

// irregular are NLTK_EXTENSIONS' irregular forms (form -> stem).
var irregular = map[string]string{
	"sky": "sky", "skies": "sky", "dying": "die", "lying": "lie", "tying": "tie",
	"news": "news", "innings": "inning", "inning": "inning", "outings": "outing",
	"outing": "outing", "cannings": "canning", "canning": "canning", "howe": "howe",
	"proceed": "proceed", "exceed": "exceed", "succeed": "succeed",
}

func isVowel(c byte) bool { return c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u' }

// isConsonant is PorterStemmer._is_consonant, including its backward walk
// over a run of y's.
func isConsonant(w string, i int) bool {
	if isVowel(w[i]) {
		return false
	}
	if w[i] == 'y' {
		negate := false
		for i > 0 && w[i] == 'y' {
			negate = !negate
			i--
		}
		return !isVowel(w[i]) != negate
	}
	return true
}

// consonantFlags is PorterStemmer._consonant_flags.
func consonantFlags(w string, flags []bool) []bool {
	flags = flags[:0]
	for i := 0; i < len(w); i++ {
		c := w[i]
		switch {
		case isVowel(c):
			flags = append(flags, false)
		case c == 'y':
			flags = append(flags, i == 0 || !flags[i-1])
		default:
			flags = append(flags, true)
		}
	}
	return flags
}

// measure counts "vc" in the consonant/vowel pattern of stem.
func measure(stem string) int {
	var buf [32]bool
	f := consonantFlags(stem, buf[:0])
	m := 0
	for i := 1; i < len(f); i++ {
		if !f[i-1] && f[i] {
			m++
		}
	}
	return m
}

func containsVowel(stem string) bool {
	var buf [32]bool
	for _, c := range consonantFlags(stem, buf[:0]) {
		if !c {
			return true
		}
	}
	return false
}

func endsDoubleConsonant(w string) bool {
	return len(w) >= 2 && w[len(w)-1] == w[len(w)-2] && isConsonant(w, len(w)-1)
}

// endsCVC is condition *o, with NLTK's extension for two-letter words.
func endsCVC(w string) bool {
	n := len(w)
	if n >= 3 && isConsonant(w, n-3) && !isConsonant(w, n-2) && isConsonant(w, n-1) &&
		w[n-1] != 'w' && w[n-1] != 'x' && w[n-1] != 'y' {
		return true
	}
	return n == 2 && !isConsonant(w, 0) && isConsonant(w, 1)
}

type rule struct {
	suffix, repl string
	cond         func(stem string) bool
}

// applyRules is _apply_rule_list: the first rule whose suffix matches
// decides, whether or not its condition holds. The special suffix "*d"
// (double consonant) is handled by step 1b itself.
func applyRules(w string, rules []rule) string {
	for _, r := range rules {
		if strings.HasSuffix(w, r.suffix) {
			stem := w[:len(w)-len(r.suffix)]
			if r.cond == nil || r.cond(stem) {
				return stem + r.repl
			}
			return w
		}
	}
	return w
}

func positive(stem string) bool { return measure(stem) > 0 }
func gt1(stem string) bool      { return measure(stem) > 1 }

func step1a(w string) string {
	if strings.HasSuffix(w, "ies") && len(w) == 4 {
		return w[:len(w)-3] + "ie"
	}
	return applyRules(w, []rule{{"sses", "ss", nil}, {"ies", "i", nil}, {"ss", "ss", nil}, {"s", "", nil}})
}

func step1b(w string) string {
	if strings.HasSuffix(w, "ied") {
		if len(w) == 4 {
			return w[:len(w)-3] + "ie"
		}
		return w[:len(w)-3] + "i"
	}
	if strings.HasSuffix(w, "eed") {
		stem := w[:len(w)-3]
		if measure(stem) > 0 {
			return stem + "ee"
		}
		return w
	}
	var inter string
	ok := false
	for _, suf := range []string{"ed", "ing"} {
		if strings.HasSuffix(w, suf) {
			inter = w[:len(w)-len(suf)]
			if containsVowel(inter) {
				ok = true
				break
			}
		}
	}
	if !ok {
		return w
	}
	for _, r := range []rule{{"at", "ate", nil}, {"bl", "ble", nil}, {"iz", "ize", nil}} {
		if strings.HasSuffix(inter, r.suffix) {
			return inter[:len(inter)-len(r.suffix)] + r.repl
		}
	}
	if endsDoubleConsonant(inter) {
		last := inter[len(inter)-1]
		if last != 'l' && last != 's' && last != 'z' {
			return inter[:len(inter)-2] + string(last)
		}
		return inter
	}
	if measure(inter) == 1 && endsCVC(inter) {
		return inter + "e"
	}
	return inter
}

func step1c(w string) string {
	if strings.HasSuffix(w, "y") {
		stem := w[:len(w)-1]
		if len(stem) > 1 && isConsonant(stem, len(stem)-1) {
			return stem + "i"
		}
	}
	return w
}

var step2Rules = []rule{
	{"ational", "ate", positive}, {"tional", "tion", positive}, {"enci", "ence", positive},
	{"anci", "ance", positive}, {"izer", "ize", positive}, {"bli", "ble", positive},
	{"alli", "al", positive}, {"entli", "ent", positive}, {"eli", "e", positive},
	{"ousli", "ous", positive}, {"ization", "ize", positive}, {"ation", "ate", positive},
	{"ator", "ate", positive}, {"alism", "al", positive}, {"iveness", "ive", positive},
	{"fulness", "ful", positive}, {"ousness", "ous", positive}, {"aliti", "al", positive},
	{"iviti", "ive", positive}, {"biliti", "ble", positive}, {"fulli", "ful", positive},
}

func step2(w string) string {
	if strings.HasSuffix(w, "alli") && positive(w[:len(w)-4]) {
		return step2(w[:len(w)-4] + "al")
	}
	for _, r := range step2Rules {
		if strings.HasSuffix(w, r.suffix) {
			if positive(w[:len(w)-len(r.suffix)]) {
				return w[:len(w)-len(r.suffix)] + r.repl
			}
			return w
		}
	}
	// ("logi", "log") with the condition on word[:-3], as NLTK writes it.
	if strings.HasSuffix(w, "logi") {
		if positive(w[:len(w)-3]) {
			return w[:len(w)-4] + "log"
		}
		return w
	}
	return w
}

var step3Rules = []rule{
	{"icate", "ic", positive}, {"ative", "", positive}, {"alize", "al", positive},
	{"iciti", "ic", positive}, {"ical", "ic", positive}, {"ful", "", positive}, {"ness", "", positive},
}

var step4Rules = []rule{
	{"al", "", gt1}, {"ance", "", gt1}, {"ence", "", gt1}, {"er", "", gt1}, {"ic", "", gt1},
	{"able", "", gt1}, {"ible", "", gt1}, {"ant", "", gt1}, {"ement", "", gt1}, {"ment", "", gt1},
	{"ent", "", gt1},
	{"ion", "", func(stem string) bool {
		return measure(stem) > 1 && len(stem) > 0 && (stem[len(stem)-1] == 's' || stem[len(stem)-1] == 't')
	}},
	{"ou", "", gt1}, {"ism", "", gt1}, {"ate", "", gt1}, {"iti", "", gt1}, {"ous", "", gt1},
	{"ive", "", gt1}, {"ize", "", gt1},
}

func step5a(w string) string {
	if strings.HasSuffix(w, "e") {
		stem := w[:len(w)-1]
		m := measure(stem)
		if m > 1 || (m == 1 && !endsCVC(stem)) {
			return stem
		}
	}
	return w
}

func step5b(w string) string {
	if strings.HasSuffix(w, "ll") {
		if measure(w[:len(w)-1]) > 1 {
			return w[:len(w)-1]
		}
	}
	return w
}

// Stem returns NLTK's PorterStemmer().stem(word) for a lowercase word.
func Stem(word string) string {
	if s, ok := irregular[word]; ok {
		return s
	}
	if len(word) <= 2 {
		return word
	}
	w := step1a(word)
	w = step1b(w)
	w = step1c(w)
	w = step2(w)
	w = applyRules(w, step3Rules)
	w = applyRules(w, step4Rules)
	w = step5a(w)
	return step5b(w)
}
