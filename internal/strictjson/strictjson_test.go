package strictjson

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for doc, want := range map[string]string{
		`{"a": 1, "b": {"a": 2}, "c": [{"a": 1}, {"a": 2}]}`: "",
		`{"a": 1, "a": 2}`: `key "a" appears twice`,
		"{\n\"d\": {\"x\": [1, {\"k\": 1, \"k\": 2}]}}":     `line 2: key "d"."x".[1]."k" appears twice`,
		`[{"a": "a", "b": "a"}]`:                            "",
		`{"a": "b", "b": "a"}`:                              "",
		strings.Repeat("[", 129) + strings.Repeat("]", 129): "nesting deeper than 128",
		strings.Repeat("[", 128) + strings.Repeat("]", 128): "",
		`{"a": 1,`: "", // syntax errors are the decoder's to report
	} {
		err := Check([]byte(doc))
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("%.40s: %v, want %q", doc, err, want)
		}
	}
}

func TestDepth(t *testing.T) {
	for doc, want := range map[string]int{`{}`: 1, `[[{"a": "[[[["}]]]`: 3, `"\\"[`: 1, `{"a\\"[": [1]}`: 2, ``: 0} {
		if got := Depth([]byte(doc)); got != want {
			t.Errorf("%s: depth %d, want %d", doc, got, want)
		}
	}
}
