package ortckpt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// A minimal FlatBuffers reader and writer for the checkpoint schema. The
// format: a buffer starts with a uoffset to the root table; a table starts
// with an soffset back to its vtable (field offsets, 0 for absent fields);
// references (tables, vectors, strings) are uoffsets relative to where they
// are stored and always point forward; vectors and strings are prefixed by
// their uint32 length.

var le = binary.LittleEndian

var errTruncated = errors.New("flatbuffer truncated or corrupt")

type reader struct{ buf []byte }

func (r reader) u32(at int) (uint32, error) {
	if at < 0 || at+4 > len(r.buf) {
		return 0, errTruncated
	}
	return le.Uint32(r.buf[at:]), nil
}

// table is a table position in the buffer.
type table struct {
	r      reader
	pos    int
	vtable int
	vlen   int
}

func (r reader) table(pos int) (table, error) {
	if pos < 0 || pos+4 > len(r.buf) {
		return table{}, errTruncated
	}
	soff := int32(le.Uint32(r.buf[pos:]))
	vt := pos - int(soff)
	if vt < 0 || vt+4 > len(r.buf) {
		return table{}, errTruncated
	}
	vlen := int(le.Uint16(r.buf[vt:]))
	if vlen < 4 || vt+vlen > len(r.buf) {
		return table{}, errTruncated
	}
	return table{r: r, pos: pos, vtable: vt, vlen: vlen}, nil
}

// field returns the absolute position of field i, or -1 when absent.
func (t table) field(i int) int {
	o := 4 + 2*i
	if o+2 > t.vlen {
		return -1
	}
	off := int(le.Uint16(t.r.buf[t.vtable+o:]))
	if off == 0 {
		return -1
	}
	return t.pos + off
}

func (t table) scalar(i, size int) ([]byte, bool, error) {
	p := t.field(i)
	if p < 0 {
		return nil, false, nil
	}
	if p+size > len(t.r.buf) {
		return nil, false, errTruncated
	}
	return t.r.buf[p : p+size], true, nil
}

func (t table) int64(i int, def int64) (int64, error) {
	b, ok, err := t.scalar(i, 8)
	if err != nil || !ok {
		return def, err
	}
	return int64(le.Uint64(b)), nil
}

func (t table) int32(i int, def int32) (int32, error) {
	b, ok, err := t.scalar(i, 4)
	if err != nil || !ok {
		return def, err
	}
	return int32(le.Uint32(b)), nil
}

func (t table) float32(i int, def float32) (float32, error) {
	b, ok, err := t.scalar(i, 4)
	if err != nil || !ok {
		return def, err
	}
	return math.Float32frombits(le.Uint32(b)), nil
}

func (t table) bool(i int) (bool, error) {
	b, ok, err := t.scalar(i, 1)
	if err != nil || !ok {
		return false, err
	}
	return b[0] != 0, nil
}

// ref follows the uoffset stored in field i; -1 when absent.
func (t table) ref(i int) (int, error) {
	p := t.field(i)
	if p < 0 {
		return -1, nil
	}
	off, err := t.r.u32(p)
	if err != nil {
		return -1, err
	}
	target := p + int(off)
	if target >= len(t.r.buf) {
		return -1, errTruncated
	}
	return target, nil
}

func (t table) subtable(i int) (table, bool, error) {
	p, err := t.ref(i)
	if err != nil || p < 0 {
		return table{}, false, err
	}
	st, err := t.r.table(p)
	return st, err == nil, err
}

// vector returns the element count and the position of the first element.
func (t table) vector(i int) (int, int, error) {
	p, err := t.ref(i)
	if err != nil || p < 0 {
		return 0, -1, err
	}
	n, err := t.r.u32(p)
	if err != nil {
		return 0, -1, err
	}
	// Every element takes at least a byte: a count the buffer cannot hold
	// is refused before anything of that count is allocated.
	if int(n) > len(t.r.buf)-(p+4) {
		return 0, -1, errTruncated
	}
	return int(n), p + 4, nil
}

func (t table) bytes(i int) ([]byte, error) {
	n, p, err := t.vector(i)
	if err != nil || p < 0 {
		return nil, err
	}
	if p+n > len(t.r.buf) {
		return nil, errTruncated
	}
	return t.r.buf[p : p+n], nil
}

func (t table) string(i int) (string, error) {
	b, err := t.bytes(i)
	return string(b), err
}

func (t table) int64s(i int) ([]int64, error) {
	n, p, err := t.vector(i)
	if err != nil || p < 0 {
		return nil, err
	}
	if p+8*n > len(t.r.buf) {
		return nil, errTruncated
	}
	out := make([]int64, n)
	for k := range out {
		out[k] = int64(le.Uint64(t.r.buf[p+8*k:]))
	}
	return out, nil
}

// tables returns the tables of a vector of tables.
func (t table) tables(i int) ([]table, error) {
	n, p, err := t.vector(i)
	if err != nil || p < 0 {
		return nil, err
	}
	if p+4*n > len(t.r.buf) {
		return nil, errTruncated
	}
	out := make([]table, 0, n)
	for k := 0; k < n; k++ {
		at := p + 4*k
		off, err := t.r.u32(at)
		if err != nil {
			return nil, err
		}
		st, err := t.r.table(at + int(off))
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

func (t table) strings(i int) ([]string, error) {
	n, p, err := t.vector(i)
	if err != nil || p < 0 {
		return nil, err
	}
	if p+4*n > len(t.r.buf) {
		return nil, errTruncated
	}
	out := make([]string, 0, n)
	for k := 0; k < n; k++ {
		at := p + 4*k
		off, err := t.r.u32(at)
		if err != nil {
			return nil, err
		}
		s := at + int(off)
		l, err := t.r.u32(s)
		if err != nil || s+4+int(l) > len(t.r.buf) {
			return nil, errTruncated
		}
		out = append(out, string(t.r.buf[s+4:s+4+int(l)]))
	}
	return out, nil
}

// writer lays objects out front to back: a table is written first and the
// objects it references are appended after it (so every uoffset points
// forward), with the reference patched once the target's position is known.
type writer struct{ buf []byte }

func (w *writer) align(n int) {
	for len(w.buf)%n != 0 {
		w.buf = append(w.buf, 0)
	}
}

// fieldKind says how a table field is stored.
type fieldKind int

const (
	kScalar fieldKind = iota // fixed-size little-endian bytes
	kRef                     // a reference, written later by a callback
)

// field of a table under construction.
type field struct {
	kind  fieldKind
	bytes []byte            // for scalars
	write func(*writer) int // for refs: appends the target, returns its position
}

func i64(v int64) field {
	b := make([]byte, 8)
	le.PutUint64(b, uint64(v))
	return field{kind: kScalar, bytes: b}
}

func i32(v int32) field {
	b := make([]byte, 4)
	le.PutUint32(b, uint32(v))
	return field{kind: kScalar, bytes: b}
}

func f32(v float32) field {
	b := make([]byte, 4)
	le.PutUint32(b, math.Float32bits(v))
	return field{kind: kScalar, bytes: b}
}

func boolean(v bool) field {
	if v {
		return field{kind: kScalar, bytes: []byte{1}}
	}
	return field{kind: kScalar, bytes: []byte{0}}
}

func ref(write func(*writer) int) field { return field{kind: kRef, write: write} }

// table writes a table whose fields are given by index (nil = absent):
// vtable first, then the table (fields largest first, each naturally
// aligned), then the referenced objects.
func (w *writer) table(fields []*field) int {
	// Field layout inside the table, after the 4-byte soffset.
	type placed struct{ idx, off int }
	var order []int
	for _, size := range []int{8, 4, 1} {
		for i, f := range fields {
			if f == nil {
				continue
			}
			s := 4
			if f.kind == kScalar {
				s = len(f.bytes)
			}
			if s == size {
				order = append(order, i)
			}
		}
	}
	// vtable: [vlen, tlen, offsets...]
	vlen := 4 + 2*len(fields)
	w.align(2)
	vt := len(w.buf)
	w.buf = append(w.buf, make([]byte, vlen)...)
	// The table start must allow 8-byte fields to be aligned: the table
	// start is 8-aligned minus 4 when there are 8-byte fields, so that the
	// first field (right after the soffset) is 8-aligned.
	has8 := len(order) > 0 && fields[order[0]].kind == kScalar && len(fields[order[0]].bytes) == 8
	if has8 {
		for (len(w.buf)+4)%8 != 0 {
			w.buf = append(w.buf, 0)
		}
	} else {
		w.align(4)
	}
	start := len(w.buf)
	w.buf = append(w.buf, 0, 0, 0, 0) // soffset
	offs := make([]int, len(fields))
	refs := []placed{}
	for _, i := range order {
		f := fields[i]
		size := 4
		if f.kind == kScalar {
			size = len(f.bytes)
		}
		// Scalars must be aligned in the buffer (the verifier checks absolute
		// alignment), not just within the table.
		for len(w.buf)%size != 0 {
			w.buf = append(w.buf, 0)
		}
		offs[i] = len(w.buf) - start
		if f.kind == kScalar {
			w.buf = append(w.buf, f.bytes...)
		} else {
			w.buf = append(w.buf, 0, 0, 0, 0)
			refs = append(refs, placed{i, offs[i]})
		}
	}
	w.align(4)
	tlen := len(w.buf) - start
	le.PutUint16(w.buf[vt:], uint16(vlen))
	le.PutUint16(w.buf[vt+2:], uint16(tlen))
	for i := range fields {
		le.PutUint16(w.buf[vt+4+2*i:], uint16(offs[i]))
	}
	le.PutUint32(w.buf[start:], uint32(int32(start-vt)))
	for _, p := range refs {
		target := fields[p.idx].write(w)
		at := start + p.off
		le.PutUint32(w.buf[at:], uint32(target-at))
	}
	return start
}

// vec writes a vector of n elements of elemSize bytes each (b holds them),
// aligning the elements to align bytes; strings add a terminating zero.
func (w *writer) vec(b []byte, n, align int, terminate bool) int {
	for (len(w.buf)+4)%maxInt(align, 4) != 0 {
		w.buf = append(w.buf, 0)
	}
	pos := len(w.buf)
	w.buf = le.AppendUint32(w.buf, uint32(n))
	w.buf = append(w.buf, b...)
	if terminate {
		w.buf = append(w.buf, 0)
	}
	return pos
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

// bytesVec writes a byte vector whose data starts align-aligned.
func (w *writer) bytesVec(b []byte, align int) int { return w.vec(b, len(b), align, false) }

func (w *writer) str(s string) int { return w.vec([]byte(s), len(s), 4, true) }

func (w *writer) int64Vec(v []int64) int {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		le.PutUint64(b[8*i:], uint64(x))
	}
	return w.vec(b, len(v), 8, false)
}

// tableVec writes a vector of tables: the offsets first, then each table.
func (w *writer) tableVec(n int, write func(i int, w *writer) int) int {
	w.align(4)
	pos := len(w.buf)
	w.buf = le.AppendUint32(w.buf, uint32(n))
	slots := len(w.buf)
	w.buf = append(w.buf, make([]byte, 4*n)...)
	for i := 0; i < n; i++ {
		t := write(i, w)
		at := slots + 4*i
		le.PutUint32(w.buf[at:], uint32(t-at))
	}
	return pos
}

func errorf(format string, args ...any) error { return fmt.Errorf("ORT checkpoint: "+format, args...) }
