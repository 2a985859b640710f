package data

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/ortrain/ortrain/internal/modelfile"
)

// ParallelFiles names the two files of parallel text (one sentence per
// line, line i of one the translation of line i of the other), as machine
// translation corpora come: PREFIX.SRC and PREFIX.TGT, where SRC and TGT
// are the source and target languages (the full code, e.g. en_XX, or its
// part before "_"). path is either PREFIX (train → train.en, train.ro) or
// the source file itself (train.en → train.ro). ok is false when path
// names no such pair.
func (f Format) ParallelFiles(path string) (src, tgt string, ok bool) {
	if f.SourceLang == "" || f.TargetLang == "" {
		return "", "", false
	}
	isFile := func(p string) bool {
		st, err := os.Stat(p)
		return err == nil && !st.IsDir()
	}
	for _, pair := range [][2]string{{f.SourceLang, f.TargetLang}, {recordKey(f.SourceLang), recordKey(f.TargetLang)}} {
		s, t := pair[0], pair[1]
		if s == t {
			continue
		}
		if isFile(path+"."+s) && isFile(path+"."+t) {
			return path + "." + s, path + "." + t, true
		}
		if prefix, found := strings.CutSuffix(path, "."+s); found && isFile(path) && isFile(prefix+"."+t) {
			return path, prefix + "." + t, true
		}
	}
	return "", "", false
}

// lineReader reads lines of a file one by one, reusing its buffer.
type lineReader struct {
	f    *modelfile.File
	br   *bufio.Reader
	buf  []byte
	line int
}

func (l *lineReader) next() ([]byte, error) {
	l.buf = l.buf[:0]
	for {
		chunk, err := l.br.ReadSlice('\n')
		l.buf = append(l.buf, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err == nil || (errors.Is(err, io.EOF) && len(l.buf) > 0) {
			l.line++
			return bytes.TrimSuffix(bytes.TrimSuffix(l.buf, []byte("\n")), []byte("\r")), nil
		}
		return nil, err
	}
}

func openParallel(path string, format Format, skipBad bool) (*RecordReader, error) {
	src, tgt, ok := format.ParallelFiles(path)
	if !ok {
		return nil, fileError(fmt.Errorf("%s: no parallel text files %s.%s and %s.%s (or %s beside it)", path, path,
			recordKey(format.SourceLang), path, recordKey(format.TargetLang), filepath.Base(path)+"'s target language file"))
	}
	sf, err := modelfile.Open(src)
	if err != nil {
		return nil, fileError(err)
	}
	tf, err := modelfile.Open(tgt)
	if err != nil {
		sf.Close()
		return nil, fileError(err)
	}
	return &RecordReader{file: src, kind: "text", format: format, skipBad: skipBad, f: sf.File,
		br: bufio.NewReaderSize(sf, 1<<16), tgt: &lineReader{f: tf, br: bufio.NewReaderSize(tf, 1<<16)}}, nil
}

// readParallel reads line i of both files as one example.
func (r *RecordReader) readParallel() (Example, *RecordError, error) {
	src, serr := r.readLineBytes()
	tgt, terr := r.tgt.next()
	switch {
	case errors.Is(serr, io.EOF) && errors.Is(terr, io.EOF):
		return Example{}, nil, io.EOF
	case errors.Is(serr, io.EOF) && terr == nil:
		return Example{}, nil, fileError(fmt.Errorf("%s has %d lines but %s has more; parallel text files need one line per sentence pair", r.file, r.line, r.tgt.f.Name))
	case errors.Is(terr, io.EOF) && serr == nil:
		return Example{}, nil, fileError(fmt.Errorf("%s has %d lines but %s has more; parallel text files need one line per sentence pair", r.tgt.f.Name, r.tgt.line, r.file))
	case serr != nil:
		return Example{}, nil, serr
	case terr != nil:
		return Example{}, nil, terr
	}
	srcName, tgtName := "source ("+filepath.Base(r.file)+")", "target ("+filepath.Base(r.tgt.f.Name)+")"
	if !utf8.Valid(src) {
		return Example{}, r.bad(srcName, "not valid UTF-8; convert the file to UTF-8"), nil
	}
	if !utf8.Valid(tgt) {
		return Example{}, r.bad(tgtName, "not valid UTF-8; convert the file to UTF-8"), nil
	}
	ex, bad := r.check(boundedString(src, r.cutSource), []string{boundedString(tgt, r.cutTarget)}, srcName, tgtName)
	return ex, bad, nil
}

// openColumnar opens a Parquet file or an Arrow file or save_to_disk
// folder.
func openColumnar(path, kind string, format Format, skipBad bool) (*RecordReader, error) {
	sel := selectionFor(format)
	c := &columnar{sel: sel}
	var err error
	if kind == "parquet" {
		c.pq, err = openParquet(path, sel, format.AllowEmptyTarget)
	} else {
		c.src, err = openArrow(path, sel, format.AllowEmptyTarget)
	}
	if err != nil {
		return nil, err
	}
	return &RecordReader{file: path, kind: kind, format: format, skipBad: skipBad, columnar: c}, nil
}

// DataFiles are the files a data path reads, in order: the path itself, the
// two files of parallel text, or the Arrow files of a save_to_disk folder.
func DataFiles(path string, format Format) ([]string, error) {
	kind, err := format.kind(path)
	if err != nil {
		return nil, err
	}
	switch kind {
	case "text":
		src, tgt, ok := format.ParallelFiles(path)
		if !ok {
			return nil, fileError(fmt.Errorf("%s: no parallel text files", path))
		}
		return []string{src, tgt}, nil
	case "arrow":
		names, folder, err := arrowFiles(path)
		if err != nil {
			return nil, err
		}
		if folder == nil {
			return []string{path}, nil
		}
		out := make([]string, len(names))
		for i, n := range names {
			out[i] = filepath.Join(path, n)
		}
		return out, nil
	}
	return []string{path}, nil
}
