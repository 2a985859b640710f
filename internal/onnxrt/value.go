package onnxrt

/*
#include <stdlib.h>
#include <string.h>
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"io"
	"runtime"
	"unsafe"
)

// DType is a tensor element type; the values are ONNX's TensorProto codes.
type DType int32

const (
	Float32  DType = 1
	Uint8    DType = 2
	Int8     DType = 3
	Uint16   DType = 4
	Int16    DType = 5
	Int32    DType = 6
	Int64    DType = 7
	Bool     DType = 9
	Float16  DType = 10
	Float64  DType = 11
	Uint32   DType = 12
	Uint64   DType = 13
	BFloat16 DType = 16
)

var dtypeNames = map[DType]string{
	Float32: "float32", Uint8: "uint8", Int8: "int8", Uint16: "uint16", Int16: "int16",
	Int32: "int32", Int64: "int64", Bool: "bool", Float16: "float16", Float64: "float64",
	Uint32: "uint32", Uint64: "uint64", BFloat16: "bfloat16",
}

func (d DType) String() string {
	if s, ok := dtypeNames[d]; ok {
		return s
	}
	return fmt.Sprintf("dtype(%d)", int32(d))
}

// Size is the element size in bytes (0 for types we do not handle).
func (d DType) Size() int {
	switch d {
	case Float32, Int32, Uint32:
		return 4
	case Float64, Int64, Uint64:
		return 8
	case Float16, BFloat16, Int16, Uint16:
		return 2
	case Uint8, Int8, Bool:
		return 1
	}
	return 0
}

// Elem lists the Go element types a tensor can be made from. uint16 carries
// raw float16 or bfloat16 bits (see NewTensorRaw).
type Elem interface {
	float32 | float64 | int64 | int32 | int16 | int8 | uint8 | uint16 | uint32 | uint64 | bool
}

func dtypeOf[T Elem]() DType {
	var z T
	switch any(z).(type) {
	case float32:
		return Float32
	case float64:
		return Float64
	case int64:
		return Int64
	case int32:
		return Int32
	case int16:
		return Int16
	case int8:
		return Int8
	case uint8:
		return Uint8
	case uint16:
		return Uint16
	case uint32:
		return Uint32
	case uint64:
		return Uint64
	case bool:
		return Bool
	}
	panic("unreachable: Elem covers every case")
}

// Value is a tensor held by ONNX Runtime, in host or device memory. A Value
// must be closed; Values returned by Run belong to the caller.
type Value struct {
	lib   *library
	raw   *C.OrtValue
	dtype DType
	shape []int64
	loc   Device
}

// NewTensor copies data into a new host tensor of the given shape. A nil or
// empty shape makes a scalar (rank 0).
func NewTensor[T Elem](shape []int64, data []T) (*Value, error) {
	dt := dtypeOf[T]()
	var p unsafe.Pointer
	if len(data) > 0 {
		p = unsafe.Pointer(&data[0])
	}
	v, err := newHost(dt, shape, len(data), p)
	runtime.KeepAlive(data)
	return v, err
}

// NewTensorRaw copies little-endian element bytes into a new host tensor; use
// it for float16 and bfloat16.
func NewTensorRaw(dtype DType, shape []int64, raw []byte) (*Value, error) {
	if dtype.Size() == 0 {
		return nil, fmt.Errorf("unsupported tensor element type %v", dtype)
	}
	if len(raw)%dtype.Size() != 0 {
		return nil, fmt.Errorf("%d bytes is not a whole number of %v elements", len(raw), dtype)
	}
	var p unsafe.Pointer
	if len(raw) > 0 {
		p = unsafe.Pointer(&raw[0])
	}
	v, err := newHost(dtype, shape, len(raw)/dtype.Size(), p)
	runtime.KeepAlive(raw)
	return v, err
}

// NewZeros makes a zero-filled host tensor.
func NewZeros(dtype DType, shape []int64) (*Value, error) {
	if dtype.Size() == 0 {
		return nil, fmt.Errorf("unsupported tensor element type %v", dtype)
	}
	n, err := elements(shape)
	if err != nil {
		return nil, err
	}
	v, err := newHost(dtype, shape, n, nil)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		var data unsafe.Pointer
		if err := v.lib.check(C.ortrain_tensor_data(v.lib.api, v.raw, &data)); err != nil {
			v.Close()
			return nil, err
		}
		C.memset(data, 0, C.size_t(n*dtype.Size()))
	}
	return v, nil
}

func elements(shape []int64) (int, error) {
	n := 1
	for i, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("shape %v: dimension %d is negative", shape, i)
		}
		n *= int(d)
	}
	return n, nil
}

// newHost allocates with ORT's CPU allocator and copies count elements from
// src (if not nil). ORT owns the memory, so no Go pointer outlives the call.
func newHost(dt DType, shape []int64, count int, src unsafe.Pointer) (*Value, error) {
	lib, err := current()
	if err != nil {
		return nil, err
	}
	n, err := elements(shape)
	if err != nil {
		return nil, err
	}
	if src != nil && n != count {
		return nil, fmt.Errorf("shape %v holds %d elements but %d were given", shape, n, count)
	}
	if src == nil && count != n {
		return nil, fmt.Errorf("shape %v holds %d elements but %d were given", shape, n, count)
	}
	var shp *C.int64_t
	cshape := make([]C.int64_t, len(shape)+1) // +1 keeps &cshape[0] valid for rank 0
	for i, d := range shape {
		cshape[i] = C.int64_t(d)
	}
	shp = &cshape[0]
	var raw *C.OrtValue
	if err := lib.check(C.ortrain_tensor_alloc(lib.api, lib.cpuA, shp, C.size_t(len(shape)), C.int(dt), &raw)); err != nil {
		return nil, fmt.Errorf("allocating a %v tensor of shape %v: %w", dt, shape, err)
	}
	v := &Value{lib: lib, raw: raw, dtype: dt, shape: append([]int64(nil), shape...), loc: CPU}
	if src != nil && n > 0 {
		var data unsafe.Pointer
		if err := lib.check(C.ortrain_tensor_data(lib.api, raw, &data)); err != nil {
			v.Close()
			return nil, err
		}
		C.memcpy(data, src, C.size_t(n*dt.Size()))
	}
	return v, nil
}

// wrap takes ownership of an OrtValue produced by ONNX Runtime.
func wrap(lib *library, raw *C.OrtValue) (*Value, error) {
	var et C.int
	var rank C.size_t
	dims := make([]C.int64_t, 16)
	if err := lib.check(C.ortrain_tensor_info(lib.api, raw, &et, &rank, &dims[0], C.size_t(len(dims)))); err != nil {
		C.ortrain_value_release(lib.api, raw)
		return nil, fmt.Errorf("reading an output's type and shape: %w", err)
	}
	if int(rank) > len(dims) {
		dims = make([]C.int64_t, int(rank))
		if err := lib.check(C.ortrain_tensor_info(lib.api, raw, &et, &rank, &dims[0], C.size_t(len(dims)))); err != nil {
			C.ortrain_value_release(lib.api, raw)
			return nil, err
		}
	}
	shape := make([]int64, int(rank))
	for i := range shape {
		shape[i] = int64(dims[i])
	}
	var name *C.char
	var id C.int
	loc := CPU
	if err := lib.check(C.ortrain_tensor_location(lib.api, raw, &name, &id)); err == nil && name != nil {
		if n := C.GoString(name); n != "Cpu" && n != "CudaPinned" {
			loc = Device{Kind: deviceKind(n), ID: int(id)}
		}
	}
	return &Value{lib: lib, raw: raw, dtype: DType(et), shape: shape, loc: loc}, nil
}

// Shape returns the tensor's dimensions (empty for a scalar).
func (v *Value) Shape() []int64 { return append([]int64(nil), v.shape...) }

// DType returns the element type.
func (v *Value) DType() DType { return v.dtype }

// Device tells where the tensor's memory is.
func (v *Value) Device() Device { return v.loc }

// Len is the number of elements.
func (v *Value) Len() int {
	n, _ := elements(v.shape)
	return n
}

// Close releases the tensor. Closing twice is harmless.
func (v *Value) Close() error {
	if v == nil || v.raw == nil {
		return nil
	}
	C.ortrain_value_release(v.lib.api, v.raw)
	v.raw = nil
	return nil
}

// hostData returns a pointer to the elements after checking the type and
// that the tensor is in host memory.
func (v *Value) hostData(want DType) (unsafe.Pointer, error) {
	if v.raw == nil {
		return nil, ErrClosed
	}
	if want != 0 && v.dtype != want {
		return nil, fmt.Errorf("tensor holds %v, not %v", v.dtype, want)
	}
	if v.loc.Kind != "cpu" {
		return nil, fmt.Errorf("tensor lives in %v memory; bind the output to the host to read it", v.loc)
	}
	var data unsafe.Pointer
	if err := v.lib.check(C.ortrain_tensor_data(v.lib.api, v.raw, &data)); err != nil {
		return nil, err
	}
	return data, nil
}

func read[T Elem](v *Value) ([]T, error) {
	p, err := v.hostData(dtypeOf[T]())
	if err != nil {
		return nil, err
	}
	n := v.Len()
	out := make([]T, n)
	if n > 0 {
		copy(out, unsafe.Slice((*T)(p), n))
	}
	return out, nil
}

func write[T Elem](v *Value, data []T) error {
	p, err := v.hostData(dtypeOf[T]())
	if err != nil {
		return err
	}
	if len(data) != v.Len() {
		return fmt.Errorf("tensor of shape %v holds %d elements, got %d", v.shape, v.Len(), len(data))
	}
	if len(data) > 0 {
		copy(unsafe.Slice((*T)(p), len(data)), data)
	}
	return nil
}

// Float32s copies the elements out of a float32 host tensor.
func (v *Value) Float32s() ([]float32, error) { return read[float32](v) }

// Float64s copies the elements out of a float64 host tensor.
func (v *Value) Float64s() ([]float64, error) { return read[float64](v) }

// Int64s copies the elements out of an int64 host tensor.
func (v *Value) Int64s() ([]int64, error) { return read[int64](v) }

// Int32s copies the elements out of an int32 host tensor.
func (v *Value) Int32s() ([]int32, error) { return read[int32](v) }

// Bools copies the elements out of a bool host tensor.
func (v *Value) Bools() ([]bool, error) { return read[bool](v) }

// Bytes copies the raw little-endian element bytes of any host tensor
// (float16 and bfloat16 included).
func (v *Value) Bytes() ([]byte, error) {
	p, err := v.hostData(0)
	if err != nil {
		return nil, err
	}
	n := v.Len() * v.dtype.Size()
	out := make([]byte, n)
	if n > 0 {
		copy(out, unsafe.Slice((*byte)(p), n))
	}
	return out, nil
}

// SetFloat32s overwrites a float32 host tensor in place.
func (v *Value) SetFloat32s(data []float32) error { return write(v, data) }

// SetFloat64s overwrites a float64 host tensor in place.
func (v *Value) SetFloat64s(data []float64) error { return write(v, data) }

// SetInt64s overwrites an int64 host tensor in place.
func (v *Value) SetInt64s(data []int64) error { return write(v, data) }

// SetBytes overwrites any host tensor with raw little-endian element bytes.
func (v *Value) SetBytes(raw []byte) error {
	p, err := v.hostData(0)
	if err != nil {
		return err
	}
	if len(raw) != v.Len()*v.dtype.Size() {
		return fmt.Errorf("tensor of shape %v needs %d bytes, got %d", v.shape, v.Len()*v.dtype.Size(), len(raw))
	}
	if len(raw) > 0 {
		copy(unsafe.Slice((*byte)(p), len(raw)), raw)
	}
	return nil
}

// Fill fills a host tensor with exactly its size in bytes read from r
// (raw little-endian elements), straight into the tensor's memory: a
// tensor loaded from a file needs no copy in Go memory.
func (v *Value) Fill(r io.Reader) error {
	p, err := v.hostData(0)
	if err != nil {
		return err
	}
	n := v.Len() * v.dtype.Size()
	if n == 0 {
		return nil
	}
	got, err := io.ReadFull(r, unsafe.Slice((*byte)(p), n))
	runtime.KeepAlive(v)
	if err != nil {
		return fmt.Errorf("tensor of shape %v needs %d bytes, read %d: %w", v.shape, n, got, err)
	}
	return nil
}

// Zero fills a host tensor with zero bytes.
func (v *Value) Zero() error {
	p, err := v.hostData(0)
	if err != nil {
		return err
	}
	if n := v.Len() * v.dtype.Size(); n > 0 {
		C.memset(p, 0, C.size_t(n))
	}
	return nil
}

// Scalar reads a one-element float tensor (float32 or float64) as float64.
func (v *Value) Scalar() (float64, error) {
	if v.Len() != 1 {
		return 0, fmt.Errorf("tensor of shape %v is not a single value", v.shape)
	}
	switch v.dtype {
	case Float32:
		x, err := v.Float32s()
		if err != nil {
			return 0, err
		}
		return float64(x[0]), nil
	case Float64:
		x, err := v.Float64s()
		if err != nil {
			return 0, err
		}
		return x[0], nil
	case Int64:
		x, err := v.Int64s()
		if err != nil {
			return 0, err
		}
		return float64(x[0]), nil
	}
	return 0, fmt.Errorf("tensor holds %v, not a number type Scalar reads", v.dtype)
}

// hostRows returns a host tensor's elements and the bytes of one row (its
// first axis): what RowsView and PermuteRows work on.
func (v *Value) hostRows() (unsafe.Pointer, int, error) {
	p, err := v.hostData(0)
	if err != nil {
		return nil, 0, err
	}
	if len(v.shape) == 0 {
		return nil, 0, fmt.Errorf("rows of a scalar")
	}
	size := v.dtype.Size()
	if size == 0 {
		return nil, 0, fmt.Errorf("rows of a %v tensor", v.dtype)
	}
	inner, err := elements(v.shape[1:])
	if err != nil {
		return nil, 0, err
	}
	return p, inner * size, nil
}

// RowsView returns rows [lo, hi) of a host tensor (its first axis) as a
// tensor over the same memory: nothing is copied, writes through either are
// seen by both, and the view must be closed before v is.
func (v *Value) RowsView(lo, hi int64) (*Value, error) {
	p, rowBytes, err := v.hostRows()
	if err != nil {
		return nil, err
	}
	if lo < 0 || hi > v.shape[0] || lo >= hi {
		return nil, fmt.Errorf("rows [%d, %d) of a tensor of shape %v", lo, hi, v.shape)
	}
	shape := append([]int64{hi - lo}, v.shape[1:]...)
	cshape := make([]C.int64_t, len(shape))
	for i, d := range shape {
		cshape[i] = C.int64_t(d)
	}
	data := unsafe.Add(p, uintptr(lo)*uintptr(rowBytes))
	var raw *C.OrtValue
	if err := v.lib.check(C.ortrain_tensor_with_data(v.lib.api, v.lib.cpuMem, data, C.size_t(uintptr(hi-lo)*uintptr(rowBytes)),
		&cshape[0], C.size_t(len(shape)), C.int(v.dtype), &raw)); err != nil {
		return nil, fmt.Errorf("a view of rows [%d, %d) of a tensor of shape %v: %w", lo, hi, v.shape, err)
	}
	return &Value{lib: v.lib, raw: raw, dtype: v.dtype, shape: shape, loc: v.loc}, nil
}

// RowPermutation is the order of row copies that reorders rows in place
// (PlanRowPermutation): planned once, applied to every tensor whose rows
// move together (a beam search step's cache tensors).
type RowPermutation struct {
	rows  int
	moves []rowMove
}

// rowMove copies row src to row dst; src aside copies the row kept aside,
// dst aside keeps row src aside. of is the row whose old content the copy
// carries (src, or the row kept aside); from is the first position along
// the prefix axis that PermuteRowsPrefix copies (SkipLeading).
type rowMove struct{ dst, src, of, from int }

const aside = -1

// PlanRowPermutation plans the in-place reorder in which row i becomes
// what row rows[i] was (rows may repeat a row and leave others out, as a
// beam search reorder does). Rows that keep their place are not touched
// and every other row is copied once: a row is overwritten only after the
// rows that read it have been written (Kahn's order), and only a cycle
// (rows exchanging places) goes through one row kept aside. A beam search
// step that moves a third of the rows copies a third of the tensor, where
// a gather into a new tensor copies all of it.
func PlanRowPermutation(rows []int) (RowPermutation, error) {
	n := len(rows)
	for _, r := range rows {
		if r < 0 || r >= n {
			return RowPermutation{}, fmt.Errorf("row %d of %d in a permutation", r, n)
		}
	}
	plan := RowPermutation{rows: n}
	// readers[r]: rows still to be written from row r
	readers := make([]int, n)
	for i, r := range rows {
		if r != i {
			readers[r]++
		}
	}
	done := make([]bool, n)
	ready := make([]int, 0, n)
	for i, r := range rows {
		if r != i && readers[i] == 0 {
			ready = append(ready, i)
		}
	}
	for len(ready) > 0 {
		i := ready[len(ready)-1]
		ready = ready[:len(ready)-1]
		r := rows[i]
		plan.moves = append(plan.moves, rowMove{dst: i, src: r, of: r})
		done[i] = true
		if readers[r]--; readers[r] == 0 && rows[r] != r && !done[r] {
			ready = append(ready, r)
		}
	}
	// what is left is cycles, each rotated through its first row
	for i, r := range rows {
		if r == i || done[i] {
			continue
		}
		plan.moves = append(plan.moves, rowMove{dst: aside, src: i, of: i})
		for cur := i; ; {
			src := rows[cur]
			done[cur] = true
			if src == i {
				plan.moves = append(plan.moves, rowMove{dst: cur, src: aside, of: i})
				break
			}
			plan.moves = append(plan.moves, rowMove{dst: cur, src: src, of: src})
			cur = src
		}
	}
	return plan, nil
}

// SkipLeading lets PermuteRowsPrefix leave alone the leading positions a
// row already holds equal to those of the row it takes over: leading(dst,
// src) is how many (a beam search cache whose beams continue one source
// holds the same keys and values for the tokens two beams share). A row
// kept aside is copied whole.
func (p *RowPermutation) SkipLeading(leading func(dst, src int) int) {
	for i, m := range p.moves {
		if m.dst != aside {
			p.moves[i].from = max(0, leading(m.dst, m.of))
		}
	}
}

// PermuteRows reorders the rows (first axis) of a host tensor in place as
// planned; the row kept aside for a cycle goes to *scratch, grown as needed
// and kept for the next call.
func (v *Value) PermuteRows(plan RowPermutation, scratch *[]byte) error {
	if len(v.shape) < 2 {
		return v.PermuteRowsPrefix(plan, 0, 0, scratch)
	}
	return v.PermuteRowsPrefix(plan, 1, v.shape[1], scratch)
}

// PermuteRowsPrefix is PermuteRows for a tensor of which only the first
// used positions along axis (≥ 1) hold data: a cache allocated for more
// positions than it holds yet, whose rest is not copied, nor the leading
// positions the plan skips (SkipLeading). axis 0 means the whole rows.
func (v *Value) PermuteRowsPrefix(plan RowPermutation, axis int, used int64, scratch *[]byte) error {
	p, rowBytes, err := v.hostRows()
	if err != nil {
		return err
	}
	if int64(plan.rows) != v.shape[0] {
		return fmt.Errorf("a permutation of %d rows for a tensor of shape %v", plan.rows, v.shape)
	}
	blocks, stride, span, err := v.prefixLayout(axis, used)
	if err != nil {
		return err
	}
	if rowBytes == 0 || span == 0 || len(plan.moves) == 0 {
		return nil
	}
	data := unsafe.Slice((*byte)(p), plan.rows*rowBytes)
	if cap(*scratch) < rowBytes {
		*scratch = make([]byte, rowBytes)
	}
	kept := (*scratch)[:rowBytes]
	row := func(i int) []byte {
		if i == aside {
			return kept
		}
		return data[i*rowBytes : (i+1)*rowBytes]
	}
	perPosition := 0 // bytes of one position in a block
	if axis > 0 && used > 0 {
		perPosition = span / int(used)
	}
	for _, m := range plan.moves {
		dst, src := row(m.dst), row(m.src)
		skip := min(m.from, int(used)) * perPosition
		for b := range blocks {
			copy(dst[b*stride+skip:b*stride+span], src[b*stride+skip:b*stride+span])
		}
	}
	return nil
}

// prefixLayout splits a row (a first-axis slice) of a host tensor into the
// blocks that hold the first used positions along axis: blocks of span
// bytes, stride bytes apart. axis 0 is the whole row as one block.
func (v *Value) prefixLayout(axis int, used int64) (blocks, stride, span int, err error) {
	size := v.dtype.Size()
	if axis == 0 {
		n, err := elements(v.shape[1:])
		return 1, n * size, n * size, err
	}
	if axis < 1 || axis >= len(v.shape) || used < 0 || used > v.shape[axis] {
		return 0, 0, 0, fmt.Errorf("the first %d positions along axis %d of a tensor of shape %v", used, axis, v.shape)
	}
	outer, err := elements(v.shape[1:axis])
	if err != nil {
		return 0, 0, 0, err
	}
	inner, err := elements(v.shape[axis+1:])
	if err != nil {
		return 0, 0, 0, err
	}
	return outer, int(v.shape[axis]) * inner * size, int(used) * inner * size, nil
}

// CopyPrefix writes src into the first positions of v along axis (≥ 1):
// both in host memory, of one type, and of equal shape but along axis,
// where src has at most as many positions as v. It fills a cache allocated
// for more positions than src holds, or moves one into a larger one.
func (v *Value) CopyPrefix(src *Value, axis int) error {
	if src.dtype != v.dtype || len(src.shape) != len(v.shape) || axis < 1 || axis >= len(v.shape) {
		return fmt.Errorf("copying a %v tensor of shape %v into the front of axis %d of a %v tensor of shape %v", src.dtype, src.shape, axis, v.dtype, v.shape)
	}
	for i := range v.shape {
		if i == axis && src.shape[i] > v.shape[i] || i != axis && src.shape[i] != v.shape[i] {
			return fmt.Errorf("copying a tensor of shape %v into the front of axis %d of a tensor of shape %v", src.shape, axis, v.shape)
		}
	}
	dp, dstRow, err := v.hostRows()
	if err != nil {
		return err
	}
	sp, srcRow, err := src.hostRows()
	if err != nil {
		return err
	}
	blocks, stride, span, err := v.prefixLayout(axis, src.shape[axis])
	if err != nil || span == 0 {
		return err
	}
	rows := int(v.shape[0])
	dst := unsafe.Slice((*byte)(dp), rows*dstRow)
	from := unsafe.Slice((*byte)(sp), rows*srcRow)
	for r := range rows {
		for b := range blocks {
			copy(dst[r*dstRow+b*stride:r*dstRow+b*stride+span], from[r*srcRow+b*span:r*srcRow+(b+1)*span])
		}
	}
	return nil
}
