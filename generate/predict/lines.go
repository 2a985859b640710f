package predict

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/modelfile"
)

// ParseShard parses the "i/N" form of a shard (0 <= i < N); "" is the whole
// input, shard 0 of 1.
func ParseShard(s string) (shard, shards int, err error) {
	if s == "" {
		return 0, 1, nil
	}
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return 0, 0, fault.Settingsf("--shard %q: want i/N with 0 <= i < N (e.g. 0/4 ... 3/4)", s)
	}
	return i, n, nil
}

// ShardRange is shard i's slice [lo, hi) of n lines: contiguous, in order,
// sizes differing by at most one, so the shards' outputs concatenate to the
// whole run's.
func ShardRange(n, i, shards int) (lo, hi int) { return i * n / shards, (i + 1) * n / shards }

// Files are read a line at a time, never whole: a line is ended by "\n"
// (a "\r" before it is dropped) or by the end of a file that does not end
// in "\n". A line holds at most the bytes a reader asks for; the rest of a
// longer line is passed over without being kept.

// lineReader reads a text file line by line.
type lineReader struct {
	path string
	f    *modelfile.File
	br   *bufio.Reader
	buf  []byte
	n    int // lines read
}

func openLines(path string) (*lineReader, error) {
	f, err := modelfile.Open(path)
	if err != nil {
		return nil, err
	}
	return &lineReader{path: path, f: f, br: bufio.NewReaderSize(f, 1<<16)}, nil
}

func (r *lineReader) Close() error { return r.f.Close() }

// next returns the next line's first limit bytes (limit <= 0: all of it)
// and whether the line was longer; ok is false at the end of the file.
// visit, when set, sees every chunk read (the line ending included). The
// line stays valid until the next call.
func (r *lineReader) next(limit int, visit func(chunk []byte)) (line []byte, longer, ok bool, err error) {
	r.buf = r.buf[:0]
	seen := 0
	var last2 [2]byte
	for {
		chunk, err := r.br.ReadSlice('\n')
		if n := len(chunk); n > 0 {
			if visit != nil {
				visit(chunk)
			}
			seen += n
			if n >= 2 {
				last2 = [2]byte{chunk[n-2], chunk[n-1]}
			} else {
				last2 = [2]byte{last2[1], chunk[0]}
			}
			keep := n
			if limit > 0 {
				keep = max(0, min(n, limit+2-len(r.buf))) // 2 more: the line ending
			}
			r.buf = append(r.buf, chunk[:keep]...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, false, false, fault.Inputf("reading %s: %w", r.path, err)
		}
		if seen == 0 {
			return nil, false, false, nil
		}
		r.n++
		content := seen
		if last2[1] == '\n' {
			content--
			if seen >= 2 && last2[0] == '\r' {
				content--
			}
		} else if last2[1] == '\r' { // a last line ending in "\r" alone
			content--
		}
		if limit > 0 && content > limit {
			return r.buf[:limit], true, true, nil
		}
		return r.buf[:content], false, true, nil
	}
}

// text returns the next whole line as a string.
func (r *lineReader) text() (string, bool, error) {
	line, _, ok, err := r.next(0, nil)
	return string(line), ok, err
}

// skip passes over n lines without keeping them.
func (r *lineReader) skip(n int) error {
	for i := 0; i < n; i++ {
		if _, _, ok, err := r.next(1, nil); err != nil || !ok {
			if err == nil {
				err = fault.Inputf("%s ended after %d lines (it changed while it was read?)", r.path, r.n)
			}
			return err
		}
	}
	return nil
}

// lineScan is what one pass over a file found.
type lineScan struct {
	lines int
	hash  [32]byte
}

// scanLines reads a file once, holding one chunk at a time: it counts the
// lines, checks they are UTF-8 (and, for sources, that none is blank) and
// hashes the content.
func scanLines(path string, source bool) (lineScan, error) {
	r, err := openLines(path)
	if err != nil {
		return lineScan{}, err
	}
	defer r.Close()
	h := sha256.New()
	var carry []byte // an incomplete rune at a chunk's end
	valid, blank := true, true
	visit := func(chunk []byte) {
		h.Write(chunk)
		if valid {
			b := append(carry, chunk...)
			cut := len(b)
			for i := max(0, len(b)-utf8.UTFMax+1); i < len(b); i++ {
				if utf8.RuneStart(b[i]) && !utf8.FullRune(b[i:]) {
					cut = i
					break
				}
			}
			valid = utf8.Valid(b[:cut])
			carry = append(carry[:0], b[cut:]...)
		}
		if blank && strings.TrimSpace(string(chunk)) != "" {
			blank = false
		}
	}
	var s lineScan
	for {
		_, _, ok, err := r.next(1, visit)
		if err != nil {
			return s, err
		}
		if !ok {
			break
		}
		if !valid || len(carry) > 0 {
			return s, fault.Inputf("%s is not valid UTF-8 (line %d); convert it to UTF-8", path, r.n)
		}
		if source && blank {
			return s, fault.Inputf("%s:%d: empty line; every line must hold one source text (remove empty lines, keeping the references aligned)", path, r.n)
		}
		blank = true
		s.lines++
	}
	copy(s.hash[:], h.Sum(nil))
	if source && s.lines == 0 {
		return s, fault.Inputf("%s has no lines to predict", path)
	}
	return s, nil
}

// checkRefLines checks that a reference file has one line per input line.
func checkRefLines(path string, want int) error {
	s, err := scanLines(path, false)
	if err != nil {
		return err
	}
	if s.lines != want {
		return fault.Inputf("%s has %d lines, the input has %d: references must be aligned line by line", path, s.lines, want)
	}
	return nil
}

// oneLine is a prediction as written: a newline inside a prediction would
// break the line alignment with the input, so it becomes a space.
func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// errLinesChanged is a file that changed between the passes over it.
func errLinesChanged(path string) error {
	return fault.Inputf("%s changed while predict ran; run it again", path)
}
