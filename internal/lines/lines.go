// Package lines reads text a line at a time without ever holding more of
// a line than the reader asks for: a line is ended by "\n" (a "\r" before
// it is dropped, as is a lone "\r" at the very end) or by the end of the
// input; the rest of a line longer than the limit is passed over unkept.
package lines

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// Reader reads lines from an io.Reader.
type Reader struct {
	name string
	br   *bufio.Reader
	buf  []byte
	// N is the number of lines read.
	N int
}

// NewReader reads r; name labels errors.
func NewReader(r io.Reader, name string) *Reader {
	return &Reader{name: name, br: bufio.NewReaderSize(r, 1<<16)}
}

// Next returns the next line's first limit bytes (limit <= 0: all of it)
// and whether the line was longer; ok is false at the end of the input.
// visit, when set, sees every chunk read (the line ending included). The
// line stays valid until the next call.
func (r *Reader) Next(limit int, visit func(chunk []byte)) (line []byte, longer, ok bool, err error) {
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
			if need := len(r.buf) + keep; need > cap(r.buf) {
				grown := make([]byte, len(r.buf), max(2*cap(r.buf), need)) // doubling, not append's gentler growth
				copy(grown, r.buf)
				r.buf = grown
			}
			r.buf = append(r.buf, chunk[:keep]...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, false, false, fmt.Errorf("reading %s: %w", r.name, err)
		}
		if seen == 0 {
			return nil, false, false, nil
		}
		r.N++
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
