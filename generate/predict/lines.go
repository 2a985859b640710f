package predict

import (
	"crypto/sha256"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/lines"
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

// lineReader reads a text file line by line (package lines), holding no
// more of a line than asked for.
type lineReader struct {
	path string
	f    *modelfile.File
	*lines.Reader
}

func openLines(path string) (*lineReader, error) {
	f, err := modelfile.Open(path)
	if err != nil {
		return nil, err
	}
	return &lineReader{path: path, f: f, Reader: lines.NewReader(f, path)}, nil
}

func (r *lineReader) Close() error { return r.f.Close() }

func (r *lineReader) next(limit int, visit func(chunk []byte)) ([]byte, bool, bool, error) {
	line, longer, ok, err := r.Next(limit, visit)
	return line, longer, ok, fault.Mark(fault.Input, err)
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
				err = fault.Inputf("%s ended after %d lines (it changed while it was read?)", r.path, r.N)
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
			return s, fault.Inputf("%s is not valid UTF-8 (line %d); convert it to UTF-8", path, r.N)
		}
		if source && blank {
			return s, fault.Inputf("%s:%d: empty line; every line must hold one source text (remove empty lines, keeping the references aligned)", path, r.N)
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
