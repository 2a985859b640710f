// Package safetensors reads and writes the safetensors format used by Hugging
// Face: an 8-byte little-endian header length, a JSON header naming each
// tensor's dtype, shape and byte range, then the raw little-endian data.
//
// Files written here are byte-identical to those of the python safetensors
// package (0.4–0.8): tensors laid out by descending dtype then by name, the
// header padded with spaces to a multiple of 8 bytes, "__metadata__" first.
package safetensors

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/modelfile"
)

// Every error about a malformed file is of kind fault.Input.

// DType is a safetensors element type as spelled in the header.
type DType string

// Supported element types.
const (
	Bool     DType = "BOOL"
	Uint8    DType = "U8"
	Int8     DType = "I8"
	Int16    DType = "I16"
	Float16  DType = "F16"
	BFloat16 DType = "BF16"
	Int32    DType = "I32"
	Float32  DType = "F32"
	Float64  DType = "F64"
	Int64    DType = "I64"
)

// rank orders dtypes as the reference writer does (its enum order); larger
// ranks are laid out first so that every tensor stays naturally aligned.
var rank = map[DType]int{Bool: 0, Uint8: 4, Int8: 5, Int16: 9, Float16: 11, BFloat16: 12, Int32: 13, Float32: 15, Float64: 16, Int64: 17}

var size = map[DType]int{Bool: 1, Uint8: 1, Int8: 1, Int16: 2, Float16: 2, BFloat16: 2, Int32: 4, Float32: 4, Float64: 8, Int64: 8}

// Size returns the byte size of one element, or 0 for an unknown dtype.
func (d DType) Size() int { return size[d] }

// Tensor is one named array: little-endian raw bytes in row-major order.
type Tensor struct {
	DType DType
	Shape []int64
	Data  []byte
}

// NumElements is the product of the shape (1 for a scalar); -1 when a
// dimension is negative or the product does not fit in an int64.
func (t Tensor) NumElements() int64 {
	for _, d := range t.Shape {
		if d < 0 {
			return -1
		}
		if d == 0 {
			return 0
		}
	}
	n := int64(1)
	for _, d := range t.Shape {
		if n > math.MaxInt64/d {
			return -1
		}
		n *= d
	}
	return n
}

func (t Tensor) check() error { return checkSize(t.DType, t.Shape, int64(len(t.Data))) }

// checkSize checks that a tensor of the dtype and shape has size bytes.
func checkSize(dt DType, shape []int64, size int64) error {
	t := Tensor{DType: dt, Shape: shape}
	es := dt.Size()
	if es == 0 {
		return fmt.Errorf("unsupported dtype %q", dt)
	}
	for _, d := range shape {
		if d < 0 {
			return fmt.Errorf("negative dimension in shape %v", shape)
		}
	}
	n := t.NumElements()
	if n < 0 || n > math.MaxInt64/int64(es) {
		return fmt.Errorf("shape %v holds more elements than any tensor can", shape)
	}
	if want := n * int64(es); want != size {
		return fmt.Errorf("shape %v of %s needs %d bytes, have %d", shape, dt, want, size)
	}
	return nil
}

// File is the content of a safetensors file.
type File struct {
	Metadata map[string]string
	Tensors  map[string]Tensor
}

// Names returns the tensor names, sorted.
func (f *File) Names() []string {
	names := make([]string, 0, len(f.Tensors))
	for n := range f.Tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// maxHeader bounds the JSON header so a corrupt length cannot make us
// allocate gigabytes (the reference reader uses the same 100 MB limit).
const maxHeader = 100 << 20

type headerEntry struct {
	DType       DType   `json:"dtype"`
	Shape       []int64 `json:"shape"`
	DataOffsets []int64 `json:"data_offsets"`
}

// ReadFile reads a whole safetensors file.
func ReadFile(path string) (*File, error) {
	b, err := modelfile.ReadFile(path, 0)
	if err != nil {
		return nil, err
	}
	f, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// Decode parses a safetensors file held in memory. Tensor data aliases b.
// Errors are of kind fault.Input.
func Decode(b []byte) (*File, error) {
	f, err := decode(b)
	if err != nil {
		return nil, fault.Mark(fault.Input, fmt.Errorf("malformed safetensors file: %w", err))
	}
	return f, nil
}

// Read reads a safetensors stream to its end.
func Read(r io.Reader) (*File, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	return Decode(b)
}

func decode(b []byte) (*File, error) {
	if len(b) < 8 {
		return nil, errors.New("not a safetensors file: shorter than the 8-byte header length")
	}
	n := binary.LittleEndian.Uint64(b[:8])
	if n > maxHeader || n > uint64(len(b)-8) {
		return nil, fmt.Errorf("not a safetensors file: header length %d exceeds the file (%d bytes) or the 100 MB limit", n, len(b))
	}
	data := b[8+n:]
	meta, entries, err := parseHeader(b[8:8+n], int64(len(data)))
	if err != nil {
		return nil, err
	}
	f := &File{Metadata: meta, Tensors: make(map[string]Tensor, len(entries))}
	for name, e := range entries {
		f.Tensors[name] = Tensor{DType: e.DType, Shape: e.Shape, Data: data[e.Offset : e.Offset+e.Size : e.Offset+e.Size]}
	}
	return f, nil
}

// parseHeader checks a JSON header against a data section of dataLen
// bytes; the entries' offsets are relative to the data section.
func parseHeader(hdr []byte, dataLen int64) (map[string]string, map[string]Entry, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hdr, &raw); err != nil {
		return nil, nil, fmt.Errorf("not a safetensors file: header is not a JSON object: %v", err)
	}
	var meta map[string]string
	entries := make(map[string]Entry, len(raw))
	type span struct {
		name       string
		begin, end int64
	}
	var spans []span
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &meta); err != nil {
				return nil, nil, fmt.Errorf("__metadata__ must map strings to strings: %v", err)
			}
			continue
		}
		var e headerEntry
		dec := json.NewDecoder(bytes.NewReader(msg))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return nil, nil, fmt.Errorf("tensor %q: bad header entry: %v", name, err)
		}
		if len(e.DataOffsets) != 2 || e.DataOffsets[0] < 0 || e.DataOffsets[1] < e.DataOffsets[0] || e.DataOffsets[1] > dataLen {
			return nil, nil, fmt.Errorf("tensor %q: data_offsets %v outside the %d data bytes", name, e.DataOffsets, dataLen)
		}
		if e.Shape == nil {
			e.Shape = []int64{}
		}
		if err := checkSize(e.DType, e.Shape, e.DataOffsets[1]-e.DataOffsets[0]); err != nil {
			return nil, nil, fmt.Errorf("tensor %q: %v", name, err)
		}
		entries[name] = Entry{DType: e.DType, Shape: e.Shape, Offset: e.DataOffsets[0], Size: e.DataOffsets[1] - e.DataOffsets[0]}
		spans = append(spans, span{name, e.DataOffsets[0], e.DataOffsets[1]})
	}
	// The format requires the tensors to tile the data section exactly.
	sort.Slice(spans, func(i, j int) bool {
		return spans[i].begin < spans[j].begin || spans[i].begin == spans[j].begin && spans[i].end < spans[j].end
	})
	var at int64
	for _, s := range spans {
		if s.begin != at {
			return nil, nil, fmt.Errorf("tensor %q: data starts at byte %d, expected %d (overlapping or gapped tensors)", s.name, s.begin, at)
		}
		at = s.end
	}
	if at != dataLen {
		return nil, nil, fmt.Errorf("data section has %d bytes but tensors cover %d", dataLen, at)
	}
	return meta, entries, nil
}

// Entry locates one tensor of an Index: Size bytes at Offset.
type Entry struct {
	DType        DType
	Shape        []int64
	Offset, Size int64
}

// Index is an open safetensors file whose header has been read and
// checked; tensors are read one at a time, where the caller wants them,
// so that a model's parameters never sit in memory twice. Close it.
type Index struct {
	Metadata map[string]string
	// Entries by tensor name; offsets are from the start of the file.
	Entries map[string]Entry
	file    *modelfile.File
}

// OpenIndex opens a safetensors file and reads its header only. Errors
// about the file's content are of kind fault.Input.
func OpenIndex(path string) (*Index, error) {
	f, err := modelfile.Open(path)
	if err != nil {
		return nil, err
	}
	x, err := index(f)
	if err != nil {
		f.Close()
		return nil, fault.Mark(fault.Input, fmt.Errorf("%s: malformed safetensors file: %w", path, err))
	}
	return x, nil
}

func index(f *modelfile.File) (*Index, error) {
	if f.Size < 8 {
		return nil, errors.New("not a safetensors file: shorter than the 8-byte header length")
	}
	var lenBytes [8]byte
	if _, err := f.ReadAt(lenBytes[:], 0); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint64(lenBytes[:])
	if n > maxHeader || n > uint64(f.Size-8) {
		return nil, fmt.Errorf("not a safetensors file: header length %d exceeds the file (%d bytes) or the 100 MB limit", n, f.Size)
	}
	hdr, err := f.Range(8, int64(n))
	if err != nil {
		return nil, err
	}
	start := 8 + int64(n)
	meta, entries, err := parseHeader(hdr, f.Size-start)
	if err != nil {
		return nil, err
	}
	for name, e := range entries {
		e.Offset += start
		entries[name] = e
	}
	return &Index{Metadata: meta, Entries: entries, file: f}, nil
}

// Reader reads the bytes of one entry of the index.
func (x *Index) Reader(e Entry) io.Reader { return io.NewSectionReader(x.file, e.Offset, e.Size) }

// Tensor reads one tensor whole; ok is false when the file has no tensor
// of that name.
func (x *Index) Tensor(name string) (t Tensor, ok bool, err error) {
	e, ok := x.Entries[name]
	if !ok {
		return Tensor{}, false, nil
	}
	b, err := x.file.Range(e.Offset, e.Size)
	if err != nil {
		return Tensor{}, true, err
	}
	return Tensor{DType: e.DType, Shape: e.Shape, Data: b}, true, nil
}

// Close closes the file.
func (x *Index) Close() error { return x.file.Close() }

// WriteFile writes tensors and metadata to path (via a temporary file, so a
// crash never leaves a truncated file under the final name).
func WriteFile(path string, tensors map[string]Tensor, metadata map[string]string) error {
	tmp := path + ".tmp"
	fh, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if err := Write(fh, tensors, metadata); err != nil {
		fh.Close()
		os.Remove(tmp)
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := fh.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// Write serialises tensors and metadata in the reference layout.
func Write(w io.Writer, tensors map[string]Tensor, metadata map[string]string) error {
	entries := make(map[string]Entry, len(tensors))
	for n, t := range tensors {
		if err := t.check(); err != nil {
			return fmt.Errorf("tensor %q: %v", n, err)
		}
		entries[n] = Entry{DType: t.DType, Shape: t.Shape, Size: int64(len(t.Data))}
	}
	return WriteStream(w, entries, metadata, func(name string, w io.Writer) error {
		_, err := w.Write(tensors[name].Data)
		return err
	})
}

// WriteFileStream is WriteFile with each tensor's bytes written by data
// when its turn comes (see WriteStream).
func WriteFileStream(path string, entries map[string]Entry, metadata map[string]string, data func(name string, w io.Writer) error) error {
	tmp := path + ".tmp"
	fh, err := os.Create(tmp)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(fh, 1<<20)
	err = WriteStream(bw, entries, metadata, data)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		fh.Close()
		os.Remove(tmp)
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := fh.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// WriteStream writes the file of the tensors entries describes (dtype and
// shape; Offset and Size are ignored) in the reference layout, asking data
// for each tensor's bytes in file order, so that the tensors never need to
// be in memory all at once. data must write exactly the tensor's size.
func WriteStream(w io.Writer, entries map[string]Entry, metadata map[string]string, data func(name string, w io.Writer) error) error {
	names := make([]string, 0, len(entries))
	sizes := make(map[string]int64, len(entries))
	for n, e := range entries {
		if n == "__metadata__" {
			return errors.New(`a tensor may not be named "__metadata__"`)
		}
		t := Tensor{DType: e.DType, Shape: e.Shape}
		n64 := t.NumElements()
		if n64 < 0 || e.DType.Size() == 0 || n64 > math.MaxInt64/int64(e.DType.Size()) {
			return fmt.Errorf("tensor %q: %v", n, checkSize(e.DType, e.Shape, -1))
		}
		sizes[n] = n64 * int64(e.DType.Size())
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int {
		ra, rb := rank[entries[a].DType], rank[entries[b].DType]
		if ra != rb {
			return rb - ra
		}
		if a < b {
			return -1
		} else if a > b {
			return 1
		}
		return 0
	})
	var h bytes.Buffer
	h.WriteByte('{')
	first := true
	if len(metadata) > 0 {
		h.WriteString(`"__metadata__":{`)
		keys := make([]string, 0, len(metadata))
		for k := range metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			if i > 0 {
				h.WriteByte(',')
			}
			writeJSONString(&h, k)
			h.WriteByte(':')
			writeJSONString(&h, metadata[k])
		}
		h.WriteByte('}')
		first = false
	}
	var off int64
	for _, n := range names {
		e := entries[n]
		if !first {
			h.WriteByte(',')
		}
		first = false
		writeJSONString(&h, n)
		h.WriteString(`:{"dtype":"`)
		h.WriteString(string(e.DType))
		h.WriteString(`","shape":[`)
		for i, d := range e.Shape {
			if i > 0 {
				h.WriteByte(',')
			}
			h.WriteString(strconv.FormatInt(d, 10))
		}
		end := off + sizes[n]
		fmt.Fprintf(&h, `],"data_offsets":[%d,%d]}`, off, end)
		off = end
	}
	h.WriteByte('}')
	for h.Len()%8 != 0 {
		h.WriteByte(' ')
	}
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(h.Len()))
	if _, err := w.Write(lenBuf[:]); err != nil {
		return err
	}
	if _, err := w.Write(h.Bytes()); err != nil {
		return err
	}
	for _, n := range names {
		cw := &countingWriter{w: w}
		if err := data(n, cw); err != nil {
			return fmt.Errorf("tensor %q: %w", n, err)
		}
		if cw.n != sizes[n] {
			return fmt.Errorf("tensor %q: %d bytes written, its shape %v of %s needs %d", n, cw.n, entries[n].Shape, entries[n].DType, sizes[n])
		}
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeJSONString escapes as serde_json does: only quotes, backslashes and
// control characters, never HTML characters or non-ASCII text.
func writeJSONString(b *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if c < 0x20 {
				b.WriteString(`\u00`)
				b.WriteByte(hex[c>>4])
				b.WriteByte(hex[c&15])
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('"')
}

// FromFloat32 makes an F32 tensor.
func FromFloat32(shape []int64, v []float32) Tensor {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return Tensor{DType: Float32, Shape: slices.Clone(shape), Data: b}
}

// FromInt64 makes an I64 tensor.
func FromInt64(shape []int64, v []int64) Tensor {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(x))
	}
	return Tensor{DType: Int64, Shape: slices.Clone(shape), Data: b}
}

// Float32s returns the values as float32, widening F16 and BF16 exactly and
// narrowing F64 by rounding; other dtypes are an error.
func (t Tensor) Float32s() ([]float32, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	n := int(t.NumElements())
	out := make([]float32, n)
	switch t.DType {
	case Float32:
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
		}
	case Float64:
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(t.Data[8*i:])))
		}
	case BFloat16:
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(t.Data[2*i:])) << 16)
		}
	case Float16:
		for i := range out {
			out[i] = HalfToFloat32(binary.LittleEndian.Uint16(t.Data[2*i:]))
		}
	default:
		return nil, fmt.Errorf("dtype %s is not a float type", t.DType)
	}
	return out, nil
}

// Int64s returns integer values widened to int64.
func (t Tensor) Int64s() ([]int64, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	n := int(t.NumElements())
	out := make([]int64, n)
	switch t.DType {
	case Int64:
		for i := range out {
			out[i] = int64(binary.LittleEndian.Uint64(t.Data[8*i:]))
		}
	case Int32:
		for i := range out {
			out[i] = int64(int32(binary.LittleEndian.Uint32(t.Data[4*i:])))
		}
	case Int16:
		for i := range out {
			out[i] = int64(int16(binary.LittleEndian.Uint16(t.Data[2*i:])))
		}
	case Int8:
		for i := range out {
			out[i] = int64(int8(t.Data[i]))
		}
	case Uint8, Bool:
		for i := range out {
			out[i] = int64(t.Data[i])
		}
	default:
		return nil, fmt.Errorf("dtype %s is not an integer type", t.DType)
	}
	return out, nil
}

// HalfToFloat32 converts IEEE binary16 bits to float32 exactly.
func HalfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // inf / nan
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp == 0:
		if mant == 0 {
			return math.Float32frombits(sign)
		}
		// Subnormal: value = mant * 2^-24.
		f := float32(mant) * (1.0 / (1 << 24))
		if sign != 0 {
			f = -f
		}
		return f
	}
	return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
}
