// Package data reads seq2seq training and evaluation sets (JSONL, CSV,
// TSV), tokenizes them as the model's Hugging Face tokenizer does, and
// yields padded batches with the semantics of HF's DataCollatorForSeq2Seq:
// inputs padded with the pad id, labels padded with -100, decoder inputs
// made by shifting the labels right behind decoder_start_token_id (behind a
// label token for mBART, whose shift_tokens_right does so).
//
// Data order is a pure function of (seed, epoch): a resumed run that asks
// for epoch e and skips the batches it already trained on sees exactly the
// batches it would have seen.
package data

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/modelfile"
	"github.com/ortrain/ortrain/tokenize"
)

// Example is one record of a dataset.
type Example struct {
	Index   int      // position among the dataset's good records
	Source  string   // model input text, before the source prefix
	Targets []string // Targets[0] is the training target; all are references
	Line    int      // 1-based line (JSONL, TSV) or record number (CSV) in File
}

// Format says how records map to source and target text.
type Format struct {
	// Kind is "jsonl", "csv", "tsv", "parquet", "arrow" (a
	// datasets.save_to_disk folder or one Arrow IPC file) or "text"
	// (parallel text files); empty: from the path (.jsonl/.json, .csv,
	// .tsv/.tab, .parquet, .arrow, a save_to_disk folder, or parallel text
	// files named by the languages: see ParallelFiles).
	Kind string
	// SourceLang and TargetLang select the texts of HF translation records
	// {"translation": {"en": ..., "ro": ...}} (JSONL, and the struct column
	// "translation" of Parquet and Arrow files), and name the files of
	// parallel text. As in HF's run_translation, only the part before the
	// first "_" is the key: a language code such as en_XX reads the "en"
	// texts.
	SourceLang, TargetLang string
	// SourceField and TargetField name the fields (JSONL), header columns
	// (CSV, TSV) or columns (Parquet, Arrow) of flat records; defaults
	// "source" and "target". In JSONL, Parquet and Arrow a field may hold
	// a list of strings: a list source is joined with spaces, a list target
	// gives several references.
	SourceField, TargetField string
	// AllowEmptyTarget accepts records without target text (prediction
	// sets); otherwise an empty target is a bad record.
	AllowEmptyTarget bool
}

// KindOf is the format of the file at path: Format.Kind, else the one its
// extension names.
func (f Format) KindOf(path string) (string, error) { return f.kind(path) }

func (f Format) kind(path string) (string, error) {
	if f.Kind != "" {
		switch f.Kind {
		case "jsonl", "csv", "tsv", "parquet", "arrow", "text":
			return f.Kind, nil
		}
		return "", fmt.Errorf("data format %q: want jsonl, csv, tsv, parquet, arrow or text", f.Kind)
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".jsonl", ".json":
		return "jsonl", nil
	case ".csv":
		return "csv", nil
	case ".tsv", ".tab":
		return "tsv", nil
	case ".parquet":
		return "parquet", nil
	case ".arrow":
		return "arrow", nil
	}
	if isSaveToDisk(path) {
		return "arrow", nil
	}
	if _, _, ok := f.ParallelFiles(path); ok {
		return "text", nil
	}
	return "", fileError(fmt.Errorf("%s: cannot tell the format from the name; name it .jsonl, .csv, .tsv, .parquet or .arrow, give a datasets.save_to_disk folder, or parallel text files PREFIX.SRC and PREFIX.TGT with the source and target languages", path))
}

func (f Format) fields() (string, string) {
	s, t := f.SourceField, f.TargetField
	if s == "" {
		s = "source"
	}
	if t == "" {
		t = "target"
	}
	return s, t
}

// RecordError is a bad record: where it is and what is wrong.
type RecordError struct {
	File  string
	Line  int
	Field string // empty when the record as a whole is bad
	Msg   string
}

// Is makes a bad record bad input (fault.Input).
func (e *RecordError) Is(target error) bool { return target == fault.Input }

func (e *RecordError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s:%d: field %q: %s", e.File, e.Line, e.Field, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// RecordReader reads examples one by one from a file, without loading it
// whole (streaming). Bad records stop it with a *RecordError unless
// SkipBad is set, in which case they are collected in Skipped.
type RecordReader struct {
	file    string
	kind    string
	format  Format
	skipBad bool
	f       *os.File
	br      *bufio.Reader
	csv     *csv.Reader
	header  map[string]int
	// columnar reads Parquet and Arrow files; tgt the target file of
	// parallel text.
	columnar *columnar
	tgt      *lineReader
	line     int
	index    int
	ex       Example
	err      error
	buf      []byte // the current line (JSONL, TSV), reused
	// cutSource and cutTarget are token limits: texts are cut while read
	// to what that many tokens can come from (tokenize.CutText).
	cutSource, cutTarget int
	// Skipped lists the bad records passed over (SkipBad only).
	Skipped []*RecordError
}

// fileError marks a data file that cannot be used as given (missing,
// unreadable, of unknown format, without examples): the user's to fix
// (fault.Input). Bad records are *RecordError instead.
func fileError(err error) error { return fault.Mark(fault.Input, err) }

// OpenRecords opens path for reading records.
func OpenRecords(path string, format Format, skipBad bool) (*RecordReader, error) {
	kind, err := format.kind(path)
	if err != nil {
		return nil, err
	}
	if (kind == "csv" || kind == "tsv") && (format.SourceLang != "" || format.TargetLang != "") {
		return nil, fmt.Errorf("%s: source/target languages select translation records, which CSV and TSV files do not have; name the columns instead", path)
	}
	if (format.SourceLang == "") != (format.TargetLang == "") {
		return nil, fmt.Errorf("translation records need both a source and a target language")
	}
	switch kind {
	case "parquet", "arrow":
		return openColumnar(path, kind, format, skipBad)
	case "text":
		return openParallel(path, format, skipBad)
	}
	f, err := modelfile.Open(path) // a regular file: a FIFO would block
	if err != nil {
		return nil, fileError(err)
	}
	r := &RecordReader{file: path, kind: kind, format: format, skipBad: skipBad, f: f.File, br: bufio.NewReaderSize(f, 1<<16)}
	if kind == "csv" {
		r.csv = csv.NewReader(r.br)
		r.csv.FieldsPerRecord = -1
		r.csv.ReuseRecord = true
	}
	if kind != "jsonl" {
		if err := r.readHeader(); err != nil {
			f.Close()
			return nil, err
		}
	}
	return r, nil
}

func (r *RecordReader) readHeader() error {
	var cols []string
	if r.kind == "csv" {
		rec, err := r.csv.Read()
		if err != nil {
			return fmt.Errorf("%s: reading the header row: %w", r.file, err)
		}
		cols = append(cols, rec...)
		r.line, _ = r.csv.FieldPos(0)
	} else {
		line, err := r.readLine()
		if err != nil && !(errors.Is(err, io.EOF) && line != "") {
			return fmt.Errorf("%s: reading the header row: %w", r.file, err)
		}
		cols = strings.Split(line, "\t")
	}
	r.header = map[string]int{}
	for i, c := range cols {
		c = strings.TrimPrefix(c, "\uFEFF")
		r.header[strings.TrimSpace(c)] = i
	}
	src, tgt := r.format.fields()
	for _, want := range []string{src, tgt} {
		if _, ok := r.header[want]; !ok && !(want == tgt && r.format.AllowEmptyTarget) {
			return &RecordError{File: r.file, Line: 1, Field: want, Msg: fmt.Sprintf("no such column in the header %q; set the source/target column names", cols)}
		}
	}
	return nil
}

// readLine returns the next line without its newline (and without a \r).
func (r *RecordReader) readLine() (string, error) {
	b, err := r.readLineBytes()
	return string(b), err
}

// readLineBytes returns the next line, without its newline (and \r), in a
// buffer that the next call reuses: a line costs its own size once.
func (r *RecordReader) readLineBytes() ([]byte, error) {
	r.buf = r.buf[:0]
	for {
		chunk, err := r.br.ReadSlice('\n')
		if need := len(r.buf) + len(chunk); need > cap(r.buf) {
			// double: append's gentler growth would allocate five times
			// a huge line on the way
			grown := make([]byte, len(r.buf), max(2*cap(r.buf), need))
			copy(grown, r.buf)
			r.buf = grown
		}
		r.buf = append(r.buf, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err == nil || (errors.Is(err, io.EOF) && len(r.buf) > 0) {
			r.line++
			line := bytes.TrimSuffix(bytes.TrimSuffix(r.buf, []byte("\n")), []byte("\r"))
			return line, nil
		}
		return nil, err
	}
}

// Next reads the next good example; false at the end or on error.
func (r *RecordReader) Next() bool {
	for r.err == nil {
		ex, bad, err := r.read()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				r.err = err
			}
			return false
		}
		if bad != nil {
			if !r.skipBad {
				r.err = bad
				return false
			}
			r.Skipped = append(r.Skipped, bad)
			continue
		}
		ex.Index = r.index
		r.index++
		r.ex = ex
		return true
	}
	return false
}

// Example is the example read by the last Next.
func (r *RecordReader) Example() Example { return r.ex }

// Err is the first error, nil at a clean end.
func (r *RecordReader) Err() error { return r.err }

// Close closes the file.
func (r *RecordReader) Close() error {
	if r.columnar != nil {
		if r.columnar.pq != nil {
			return r.columnar.pq.close()
		}
		return r.columnar.src.close()
	}
	if r.tgt != nil {
		r.tgt.f.Close()
	}
	return r.f.Close()
}

func (r *RecordReader) bad(field, format string, args ...any) *RecordError {
	return &RecordError{File: r.file, Line: r.line, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// read returns an example, or a bad record, or an I/O error (io.EOF at the end).
func (r *RecordReader) read() (Example, *RecordError, error) {
	switch r.kind {
	case "parquet", "arrow":
		return r.readColumnar()
	case "text":
		return r.readParallel()
	case "jsonl":
		for {
			line, err := r.readLineBytes()
			if err != nil {
				return Example{}, nil, err
			}
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			ex, bad := r.parseJSON(line)
			return ex, bad, nil
		}
	case "tsv":
		for {
			line, err := r.readLineBytes()
			if err != nil {
				return Example{}, nil, err
			}
			if len(line) == 0 {
				continue
			}
			if !utf8.Valid(line) {
				return Example{}, r.bad("", "not valid UTF-8; convert the file to UTF-8"), nil
			}
			ex, bad := r.fromColumns(r.tsvColumns(line), "")
			return ex, bad, nil
		}
	}
	rec, err := r.csv.Read()
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			r.line = pe.StartLine
			return Example{}, r.bad("", "malformed CSV: %v", pe.Err), nil
		}
		return Example{}, nil, err
	}
	r.line, _ = r.csv.FieldPos(0)
	ex, bad := r.fromColumns(rec, strings.Join(rec, ","))
	return ex, bad, nil
}

func (r *RecordReader) fromColumns(cols []string, raw string) (Example, *RecordError) {
	if !utf8.ValidString(raw) {
		return Example{}, r.bad("", "not valid UTF-8; convert the file to UTF-8")
	}
	srcName, tgtName := r.format.fields()
	get := func(name string) (string, bool) {
		i, ok := r.header[name]
		if !ok || i >= len(cols) {
			return "", false
		}
		return cols[i], true
	}
	src, ok := get(srcName)
	if !ok {
		return Example{}, r.bad(srcName, "missing (the row has %d columns)", len(cols))
	}
	tgt, ok := get(tgtName)
	if !ok && !r.format.AllowEmptyTarget {
		return Example{}, r.bad(tgtName, "missing (the row has %d columns)", len(cols))
	}
	return r.check(src, []string{tgt}, srcName, tgtName)
}

func (r *RecordReader) check(src string, tgts []string, srcName, tgtName string) (Example, *RecordError) {
	if strings.TrimSpace(src) == "" {
		return Example{}, r.bad(srcName, "empty source text")
	}
	if !r.format.AllowEmptyTarget {
		if len(tgts) == 0 || strings.TrimSpace(tgts[0]) == "" {
			return Example{}, r.bad(tgtName, "empty target text; remove the record or allow empty targets for prediction sets")
		}
	}
	if len(tgts) == 1 && tgts[0] == "" {
		tgts = nil
	}
	// Cut (and copy out of the line) what no token limit lets through.
	if cut, ok := tokenize.CutText(src, r.cutSource); ok {
		src = strings.Clone(cut)
	}
	if len(tgts) > 0 {
		if cut, ok := tokenize.CutText(tgts[0], r.cutTarget); ok {
			tgts[0] = strings.Clone(cut)
		}
	}
	return Example{Source: src, Targets: tgts, Line: r.line}, nil
}

func (r *RecordReader) parseJSON(line []byte) (Example, *RecordError) {
	if !utf8.Valid(line) {
		return Example{}, r.bad("", "not valid UTF-8; convert the file to UTF-8")
	}
	// Fields alias the line (no copy of a huge record per level); only the
	// texts are copied out, and cut when a token limit is set.
	var obj map[string]rawJSON
	if err := json.Unmarshal(line, &obj); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) && strings.Contains(err.Error(), "after top-level value") {
			return Example{}, r.bad("", "more than one JSON value on the line")
		}
		return Example{}, r.bad("", "malformed JSON: %v", err)
	}
	srcName, tgtName := r.format.fields()
	if r.format.SourceLang != "" {
		raw, ok := obj["translation"]
		if !ok {
			return Example{}, r.bad("translation", "missing")
		}
		var tr map[string]rawJSON
		if err := json.Unmarshal(raw, &tr); err != nil {
			return Example{}, r.bad("translation", "want an object of language: text")
		}
		obj, srcName, tgtName = tr, recordKey(r.format.SourceLang), recordKey(r.format.TargetLang)
		if srcName == tgtName {
			return Example{}, r.bad("translation", "source and target language (%q, %q) both read the %q texts", r.format.SourceLang, r.format.TargetLang, srcName)
		}
	}
	srcs, bad := r.texts(obj, srcName, false, r.cutSource)
	if bad != nil {
		return Example{}, bad
	}
	tgts, bad := r.texts(obj, tgtName, r.format.AllowEmptyTarget, r.cutTarget)
	if bad != nil {
		return Example{}, bad
	}
	return r.check(strings.Join(srcs, " "), tgts, srcName, tgtName)
}

// rawJSON is a json.RawMessage that refers to the line being decoded
// instead of copying it (json.Unmarshal's input outlives its use here).
type rawJSON []byte

func (r *rawJSON) UnmarshalJSON(b []byte) error {
	*r = b
	return nil
}

// texts reads a field holding a string or a list of strings.
func (r *RecordReader) texts(obj map[string]rawJSON, name string, optional bool, limit int) ([]string, *RecordError) {
	raw, ok := obj[name]
	if !ok || bytes.Equal(raw, []byte("null")) {
		if optional {
			return nil, nil
		}
		return nil, r.bad(name, "missing")
	}
	if s, ok := plainString(raw, limit); ok {
		return []string{s}, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return []string{s}, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, r.bad(name, "want a string or a list of strings")
	}
	return list, nil
}

// recordKey is run_translation's key of a language in translation
// records: the code up to its first "_" (en_XX -> en).
func recordKey(lang string) string {
	k, _, _ := strings.Cut(lang, "_")
	return k
}

// tsvColumns splits a TSV line, copying out of the line only the source
// and target columns, and of those no more than their token limits can
// use.
func (r *RecordReader) tsvColumns(line []byte) []string {
	srcName, tgtName := r.format.fields()
	src, hasSrc := r.header[srcName]
	tgt, hasTgt := r.header[tgtName]
	parts := bytes.Split(line, []byte("\t"))
	cols := make([]string, len(parts))
	for i, p := range parts {
		switch {
		case hasSrc && i == src:
			cols[i] = boundedString(p, r.cutSource)
		case hasTgt && i == tgt:
			cols[i] = boundedString(p, r.cutTarget)
		}
	}
	return cols
}

// boundedString is b as a string, of which a token limit keeps only what
// its tokens can come from (tokenize.CutText).
func boundedString(b []byte, limit int) string {
	if limit > 0 {
		if bound := tokenize.TextBound(limit); len(b) > bound {
			cut, _ := tokenize.CutText(string(b[:bound+1]), limit)
			return strings.Clone(cut)
		}
	}
	return string(b)
}

// plainString is the text of a JSON string without escapes (the line was
// validated by json.Unmarshal and utf8.Valid), copying no more of a long
// one than a token limit can use (tokenize.TextBound): a huge record costs
// the line once, not twice. ok is false for strings with escapes.
func plainString(raw []byte, limit int) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' || bytes.IndexByte(raw, '\\') >= 0 {
		return "", false
	}
	// bound+1 bytes cut exactly as the whole text would be
	return boundedString(raw[1:len(raw)-1], limit), true
}

// ReadAll reads every example of a file into memory.
func ReadAll(path string, format Format, skipBad bool) ([]Example, []*RecordError, error) {
	return readAll(path, format, skipBad, 0, 0)
}

// readAll is ReadAll cutting sources and targets to what token limits of
// cutSource and cutTarget (0: none) can use.
func readAll(path string, format Format, skipBad bool, cutSource, cutTarget int) ([]Example, []*RecordError, error) {
	return readFirst(path, format, skipBad, cutSource, cutTarget, 0)
}

// readFirst is readAll stopping after limit examples (0: none).
func readFirst(path string, format Format, skipBad bool, cutSource, cutTarget, limit int) ([]Example, []*RecordError, error) {
	r, err := OpenRecords(path, format, skipBad)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	r.cutSource, r.cutTarget = cutSource, cutTarget
	var out []Example
	for (limit <= 0 || len(out) < limit) && r.Next() {
		out = append(out, r.Example())
	}
	return out, r.Skipped, r.Err()
}

// SkippedReport summarizes skipped records: how many and where (the first
// few locations).
func SkippedReport(skipped []*RecordError) string {
	if len(skipped) == 0 {
		return "no bad records"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "skipped %d bad record(s):", len(skipped))
	for i, s := range skipped {
		if i == 10 {
			fmt.Fprintf(&b, "\n  ... and %d more", len(skipped)-10)
			break
		}
		fmt.Fprintf(&b, "\n  %v", s)
	}
	return b.String()
}
