package metrics

import (
	"strconv"
	"testing"
	"unicode/utf8"
)

type pyUnicode struct {
	IsSpace    [][2]rune         `json:"isspace"`
	Lower      map[string]string `json:"lower"`
	RegexN     [][2]rune         `json:"regex_N"`
	RegexP     [][2]rune         `json:"regex_P"`
	RegexS     [][2]rune         `json:"regex_S"`
	ZhChar     [][2]rune         `json:"zh_chinese_char"`
	FinalSigma [][2]string       `json:"final_sigma"`
}

func inTable(r rune, rs [][2]rune) bool {
	for _, rg := range rs {
		if rg[0] <= r && r <= rg[1] {
			return true
		}
	}
	return false
}

// Every code point: Python's isspace and lower(), the regex module's \p{N},
// \p{P}, \p{S} and sacrebleu's zh "Chinese character" test.
func TestPythonUnicodeTables(t *testing.T) {
	var u pyUnicode
	loadRefs(t, "pyunicode.json", &u)
	bad := 0
	for r := rune(0); r <= utf8.MaxRune; r++ {
		if r >= 0xd800 && r <= 0xdfff {
			continue
		}
		want, ok := u.Lower[strconv.Itoa(int(r))]
		if !ok {
			want = string(r)
		}
		checks := []struct {
			name      string
			got, want bool
		}{
			{"isspace", isPySpace(r), inTable(r, u.IsSpace)},
			{"lower", pyLower(string(r)) == want, true},
			{`\p{N}`, isUniN(r), inTable(r, u.RegexN)},
			{`\p{P}`, isUniP(r), inTable(r, u.RegexP)},
			{`\p{S}`, isUniS(r), inTable(r, u.RegexS)},
			{"zh", isZhChar(r), inTable(r, u.ZhChar)},
		}
		for _, c := range checks {
			if c.got != c.want && bad < 20 {
				t.Errorf("U+%04X %s: got %v want %v", r, c.name, c.got, c.want)
				bad++
			}
		}
	}
	for _, fs := range u.FinalSigma {
		if got := pyLower(fs[0]); got != fs[1] {
			t.Errorf("lower(%q) = %q, want %q", fs[0], got, fs[1])
		}
	}
}

func TestPyFields(t *testing.T) {
	got := pyFields(nil, "\x1ca\u00a0b  c\u200bd\u3000")
	want := []string{"a", "b", "c\u200bd"}
	if len(got) != len(want) {
		t.Fatalf("got %q", got)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("got %q want %q", got, want)
		}
	}
}
