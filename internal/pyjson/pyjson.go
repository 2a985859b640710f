// Package pyjson writes JSON byte-for-byte as Python's json.dumps(obj,
// indent=N, sort_keys=True) does, so files that Hugging Face tools write
// (trainer_state.json, all_results.json) come out identical: floats in
// Python's repr form (2.0, 1e-05), NaN/Infinity literals, ASCII escapes.
package pyjson

import (
	"bytes"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Marshal encodes v with the given indent (0 means Python's compact
// separators ", " and ": "). Supported values: nil, bool, string, int,
// int64, float64, float32, map[string]any, []any, []string, []float64,
// []int, []map[string]any and Object (ordered keys are sorted anyway).
func Marshal(v any, indent int) ([]byte, error) {
	var b bytes.Buffer
	if err := encode(&b, v, indent, 0); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// FormatFloat formats f as Python's repr(float) does.
func FormatFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	if f == 0 {
		if math.Signbit(f) {
			return "-0.0"
		}
		return "0.0"
	}
	// Shortest round-trip digits and the decimal exponent.
	s := strconv.FormatFloat(f, 'e', -1, 64) // e.g. -1.2345e-05
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	mant, expStr, _ := strings.Cut(s, "e")
	exp, _ := strconv.Atoi(expStr)
	digits := strings.Replace(mant, ".", "", 1)
	decpt := exp + 1
	var out string
	if decpt <= -4 || decpt > 16 {
		// scientific: d[.ddd]e[+-]XX (at least two exponent digits)
		m := digits[:1]
		if len(digits) > 1 {
			m += "." + digits[1:]
		}
		sign := "+"
		if exp < 0 {
			sign = "-"
			exp = -exp
		}
		out = fmt.Sprintf("%se%s%02d", m, sign, exp)
	} else if decpt <= 0 {
		out = "0." + strings.Repeat("0", -decpt) + digits
	} else if decpt >= len(digits) {
		out = digits + strings.Repeat("0", decpt-len(digits)) + ".0"
	} else {
		out = digits[:decpt] + "." + digits[decpt:]
	}
	if neg {
		out = "-" + out
	}
	return out
}

func encode(b *bytes.Buffer, v any, indent, depth int) error {
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		if x {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case string:
		writeString(b, x)
	case int:
		b.WriteString(strconv.Itoa(x))
	case int64:
		b.WriteString(strconv.FormatInt(x, 10))
	case float64:
		b.WriteString(FormatFloat(x))
	case float32:
		b.WriteString(FormatFloat(float64(x)))
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if len(keys) == 0 {
			b.WriteString("{}")
			return nil
		}
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
				if indent == 0 {
					b.WriteByte(' ')
				}
			}
			newline(b, indent, depth+1)
			writeString(b, k)
			b.WriteString(": ")
			if err := encode(b, x[k], indent, depth+1); err != nil {
				return err
			}
		}
		newline(b, indent, depth)
		b.WriteByte('}')
	case []any:
		if len(x) == 0 {
			b.WriteString("[]")
			return nil
		}
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
				if indent == 0 {
					b.WriteByte(' ')
				}
			}
			newline(b, indent, depth+1)
			if err := encode(b, e, indent, depth+1); err != nil {
				return err
			}
		}
		newline(b, indent, depth)
		b.WriteByte(']')
	case []string:
		return encode(b, toAny(x), indent, depth)
	case []float64:
		return encode(b, toAny(x), indent, depth)
	case []int:
		return encode(b, toAny(x), indent, depth)
	case []map[string]any:
		return encode(b, toAny(x), indent, depth)
	default:
		return fmt.Errorf("pyjson: unsupported type %T", v)
	}
	return nil
}

func toAny[T any](xs []T) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

func newline(b *bytes.Buffer, indent, depth int) {
	if indent <= 0 {
		return
	}
	b.WriteByte('\n')
	b.WriteString(strings.Repeat(" ", indent*depth))
}

// writeString escapes like Python's json with ensure_ascii=True.
func writeString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			switch {
			case r < 0x20 || r == utf8.RuneError:
				fmt.Fprintf(b, `\u%04x`, r)
			case r < 0x7f:
				b.WriteRune(r)
			case r <= 0xffff:
				fmt.Fprintf(b, `\u%04x`, r)
			default:
				r -= 0x10000
				fmt.Fprintf(b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
			}
		}
	}
	b.WriteByte('"')
}
