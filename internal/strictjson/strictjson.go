// Package strictjson checks JSON documents for what encoding/json lets
// pass silently: a key given twice in one object (the last one would win
// unseen) and nesting deeper than any configuration needs (serde_json, which
// Hugging Face's tokenizers use, stops at 128 levels too).
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// MaxDepth is the deepest nesting of objects and arrays accepted.
const MaxDepth = 128

// Check scans data for duplicate keys and excessive nesting. It reports
// the first problem with its JSON path (e.g. `"decoder"."max_length"`) and
// line; syntax errors are left to the decoder that follows.
func Check(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	type frame struct {
		object bool
		keys   map[string]bool
		key    string // the key whose value is being read (objects)
		index  int    // arrays: the element being read
		want   bool   // objects: the next string token is a key
	}
	var stack []*frame
	path := func() string {
		var parts []string
		for _, f := range stack {
			if f.object {
				parts = append(parts, fmt.Sprintf("%q", f.key))
			} else {
				parts = append(parts, fmt.Sprintf("[%d]", f.index))
			}
		}
		return strings.Join(parts, ".")
	}
	line := func() int { return 1 + bytes.Count(data[:min(int(dec.InputOffset()), len(data))], []byte("\n")) }
	valueDone := func() {
		if len(stack) == 0 {
			return
		}
		top := stack[len(stack)-1]
		if top.object {
			top.want = true
		} else {
			top.index++
		}
	}
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return nil // the real decoder reports syntax errors with its own words
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				if len(stack) >= MaxDepth {
					return fmt.Errorf("line %d: nesting deeper than %d levels at %s", line(), MaxDepth, path())
				}
				stack = append(stack, &frame{object: v == '{', keys: map[string]bool{}, want: v == '{'})
			case '}', ']':
				stack = stack[:len(stack)-1]
				valueDone()
			}
		case string:
			if top := len(stack) - 1; top >= 0 && stack[top].object && stack[top].want {
				f := stack[top]
				f.key, f.want = v, false
				if f.keys[v] {
					return fmt.Errorf("line %d: key %s appears twice in one object (JSON parsers differ on which one wins); keep one", line(), path())
				}
				f.keys[v] = true
				continue
			}
			valueDone()
		default:
			valueDone()
		}
	}
}

// Depth is the deepest nesting of objects and arrays in data, found by a
// scan that allocates nothing (strings are skipped; data need not be
// valid JSON).
func Depth(data []byte) int {
	depth, deepest := 0, 0
	inString, escaped := false, false
	for _, c := range data {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}

// CheckDepth refuses data nested deeper than MaxDepth.
func CheckDepth(data []byte) error {
	if d := Depth(data); d > MaxDepth {
		return fmt.Errorf("objects and arrays nest %d levels deep, more than the %d any configuration needs", d, MaxDepth)
	}
	return nil
}
