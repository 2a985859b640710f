package metrics

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"unicode/utf8"
)

// InputError is bad input data: which file, which line (0: the whole file)
// and what is wrong.
type InputError struct {
	File string
	Line int
	Msg  string
}

func (e *InputError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Segments are the lines of one hypothesis or reference file.
type Segments struct {
	Name  string
	Lines []string
	// Absent marks JSON-lines null entries: no reference for that segment
	// (nil when there are none).
	Absent []bool
}

// ReadSegments reads one segment per line, as the sacrebleu command line
// does: the file must be UTF-8; lines end at "\n"; trailing whitespace is
// stripped from every line (Python's str.rstrip(), so "\r" of CRLF files
// goes too); a final newline does not start another segment; empty lines
// are empty segments. An empty file is an error.
//
// With jsonl, each line is instead a JSON string, used verbatim (it may hold
// newlines, for rougeLsum), or null for "no reference here"; blank lines are
// errors.
func ReadSegments(r io.Reader, name string, jsonl bool) (Segments, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return Segments{}, &InputError{File: name, Msg: err.Error()}
	}
	if len(data) == 0 {
		return Segments{}, &InputError{File: name, Msg: "file is empty; give one segment per line"}
	}
	s := Segments{Name: name}
	lineNo := 0
	for len(data) > 0 {
		lineNo++
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if !utf8.Valid(line) {
			return Segments{}, &InputError{File: name, Line: lineNo, Msg: fmt.Sprintf("invalid UTF-8 at byte %d of the line; convert the file to UTF-8", invalidAt(line))}
		}
		if !jsonl {
			s.Lines = append(s.Lines, pyRstrip(string(line)))
			continue
		}
		trimmed := bytes.TrimSpace(line)
		if len(trimmed) == 0 {
			return Segments{}, &InputError{File: name, Line: lineNo, Msg: `blank line in a JSON-lines file; write "" for an empty segment`}
		}
		if string(trimmed) == "null" {
			if s.Absent == nil {
				s.Absent = make([]bool, len(s.Lines), len(s.Lines)+1)
			}
			s.Lines = append(s.Lines, "")
			s.Absent = append(s.Absent, true)
			continue
		}
		var str string
		if err := json.Unmarshal(trimmed, &str); err != nil {
			return Segments{}, &InputError{File: name, Line: lineNo, Msg: "not a JSON string (with --jsonl each line is one JSON string, or null): " + err.Error()}
		}
		s.Lines = append(s.Lines, str)
		if s.Absent != nil {
			s.Absent = append(s.Absent, false)
		}
	}
	return s, nil
}

func invalidAt(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			return i + 1
		}
		i += size
	}
	return 0
}

// PairSegments checks that every file has as many segments as the
// hypotheses and returns, per segment, the references present.
func PairSegments(hyp Segments, refs []Segments) ([][]string, error) {
	if len(refs) == 0 {
		return nil, &InputError{File: hyp.Name, Msg: "no reference file"}
	}
	for i, a := range hyp.Absent {
		if a {
			return nil, &InputError{File: hyp.Name, Line: i + 1, Msg: "null hypothesis; every hypothesis must be a string"}
		}
	}
	for _, r := range refs {
		if len(r.Lines) != len(hyp.Lines) {
			return nil, &InputError{File: r.Name, Msg: fmt.Sprintf("%d segments, but the hypotheses (%s) have %d; files must align line by line", len(r.Lines), hyp.Name, len(hyp.Lines))}
		}
	}
	out := make([][]string, len(hyp.Lines))
	for i := range out {
		seg := make([]string, 0, len(refs))
		for _, r := range refs {
			if r.Absent != nil && r.Absent[i] {
				continue
			}
			seg = append(seg, r.Lines[i])
		}
		if len(seg) == 0 {
			return nil, &InputError{File: refs[0].Name, Line: i + 1, Msg: "every reference file has null here; each segment needs a reference"}
		}
		out[i] = seg
	}
	return out, nil
}
