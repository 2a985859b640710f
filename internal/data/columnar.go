package data

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/tokenize"
)

// batchSource yields the record batches of a columnar file (Parquet, or the
// Arrow IPC files of a datasets.save_to_disk folder) one at a time; io.EOF
// at the end. A batch stays valid until the next call.
type batchSource interface {
	next() (arrow.RecordBatch, error)
	close() error
}

// columnSelection says which columns hold the texts, with the same rules
// as JSONL records: a translation struct column keyed by language, or flat
// columns holding a string or a list of strings.
type columnSelection struct {
	translation      bool   // texts are fields of the "translation" struct
	srcName, tgtName string // the fields (translation) or columns (flat)
}

func selectionFor(format Format) columnSelection {
	if format.SourceLang != "" {
		return columnSelection{translation: true, srcName: recordKey(format.SourceLang), tgtName: recordKey(format.TargetLang)}
	}
	s, t := format.fields()
	return columnSelection{srcName: s, tgtName: t}
}

// topColumns are the top-level columns the selection reads.
func (c columnSelection) topColumns() []string {
	if c.translation {
		return []string{"translation"}
	}
	return []string{c.srcName, c.tgtName}
}

// checkSchema refuses, before any row is read, a schema whose columns
// cannot hold the selected texts (missing, or of another type), naming the
// columns it has.
func (c columnSelection) checkSchema(file string, sc *arrow.Schema, allowEmptyTarget bool) error {
	have := make([]string, 0, sc.NumFields())
	for _, f := range sc.Fields() {
		have = append(have, fmt.Sprintf("%s (%s)", f.Name, f.Type))
	}
	if c.translation {
		if c.srcName == c.tgtName {
			return fault.Inputf("%s: source and target language both read the %q texts of the translation column", file, c.srcName)
		}
		idx := sc.FieldIndices("translation")
		if len(idx) == 0 {
			return fault.Inputf("%s: no column \"translation\" (columns: %s); source/target languages select translation records — name the text columns instead", file, strings.Join(have, ", "))
		}
		st, ok := sc.Field(idx[0]).Type.(*arrow.StructType)
		if !ok {
			return fault.Inputf("%s: column \"translation\" is %s; want a struct of language: text", file, sc.Field(idx[0]).Type)
		}
		for _, name := range []string{c.srcName, c.tgtName} {
			i, ok := st.FieldIdx(name)
			if !ok {
				if name == c.tgtName && allowEmptyTarget {
					continue
				}
				return fault.Inputf("%s: column \"translation\" has no language %q (it has %s)", file, name, st)
			}
			if !isText(st.Field(i).Type) {
				return fault.Inputf("%s: translation.%s is %s; want a string", file, name, st.Field(i).Type)
			}
		}
		return nil
	}
	for _, name := range []string{c.srcName, c.tgtName} {
		idx := sc.FieldIndices(name)
		if len(idx) == 0 {
			if name == c.tgtName && allowEmptyTarget {
				continue
			}
			return fault.Inputf("%s: no column %q (columns: %s); set the source/target column names", file, name, strings.Join(have, ", "))
		}
		if t := sc.Field(idx[0]).Type; !isText(t) && !isTextList(t) {
			return fault.Inputf("%s: column %q is %s; want a string or a list of strings", file, name, t)
		}
	}
	return nil
}

func isText(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.STRING, arrow.LARGE_STRING, arrow.STRING_VIEW:
		return true
	}
	return false
}

func isTextList(t arrow.DataType) bool {
	if l, ok := t.(arrow.ListLikeType); ok && (t.ID() == arrow.LIST || t.ID() == arrow.LARGE_LIST) {
		return isText(l.Elem())
	}
	return false
}

// columnar reads examples from record batches, row by row.
type columnar struct {
	src      batchSource  // Arrow IPC files
	pq       *parquetRows // or a Parquet file
	sel      columnSelection
	rec      arrow.RecordBatch
	row      int // next row of rec
	srcCol   arrow.Array
	tgtCol   arrow.Array // nil: no target column (prediction sets)
	rowsRead int
}

// nextRecord moves to the next batch with rows. Panics of the Arrow library
// on damaged files become errors.
func (c *columnar) nextRecord(file string) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = damaged(file, p)
		}
	}()
	for {
		rec, err := c.src.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return io.EOF
			}
			var ce *claimError
			if errors.As(err, &ce) {
				return fault.Inputf("%s: %v", file, ce)
			}
			return fault.Inputf("%s: %w (the file is damaged or not what its name says)", file, err)
		}
		if rec.NumRows() == 0 {
			continue
		}
		c.rec, c.row = rec, 0
		c.srcCol, c.tgtCol = c.column(rec, c.sel.srcName), c.column(rec, c.sel.tgtName)
		if c.srcCol == nil {
			return fault.Inputf("%s: a record batch lacks the source column %q", file, c.sel.srcName)
		}
		if c.srcCol.Len() < int(rec.NumRows()) || (c.tgtCol != nil && c.tgtCol.Len() < int(rec.NumRows())) {
			return fault.Inputf("%s: a record batch's columns are shorter than its %d rows", file, rec.NumRows())
		}
		return nil
	}
}

// column is the array holding the named texts in rec (nil: absent).
func (c *columnar) column(rec arrow.RecordBatch, name string) arrow.Array {
	sc := rec.Schema()
	if c.sel.translation {
		idx := sc.FieldIndices("translation")
		if len(idx) == 0 {
			return nil
		}
		st, ok := rec.Column(idx[0]).(*array.Struct)
		if !ok {
			return nil
		}
		i, ok := st.DataType().(*arrow.StructType).FieldIdx(name)
		if !ok {
			return nil
		}
		return st.Field(i)
	}
	idx := sc.FieldIndices(name)
	if len(idx) == 0 {
		return nil
	}
	return rec.Column(idx[0])
}

// damaged is the error for a panic of the Arrow library on a damaged file.
func damaged(file string, p any) error {
	if ce, ok := p.(*claimError); ok {
		return fault.Inputf("%s: %v", file, ce)
	}
	return fault.Inputf("%s: the file is damaged or not what its name says (%v)", file, p)
}

// readColumnar is RecordReader.read for columnar files.
func (r *RecordReader) readColumnar() (ex Example, bad *RecordError, err error) {
	c := r.columnar
	if c.pq != nil {
		return r.readParquet()
	}
	if c.rec == nil || c.row >= int(c.rec.NumRows()) {
		if err := c.nextRecord(r.file); err != nil {
			return Example{}, nil, err
		}
	}
	defer func() {
		if p := recover(); p != nil {
			err = damaged(r.file, p)
		}
	}()
	i := c.row
	c.row++
	c.rowsRead++
	r.line = c.rowsRead
	srcs, bad := r.columnTexts(c.srcCol, i, c.sel.srcName, false, r.cutSource)
	if bad != nil {
		return Example{}, bad, nil
	}
	var tgts []string
	if c.tgtCol != nil {
		if tgts, bad = r.columnTexts(c.tgtCol, i, c.sel.tgtName, r.format.AllowEmptyTarget, r.cutTarget); bad != nil {
			return Example{}, bad, nil
		}
	} else if !r.format.AllowEmptyTarget {
		return Example{}, r.bad(c.sel.tgtName, "missing"), nil
	}
	if len(tgts) == 0 {
		tgts = []string{""}
	}
	ex, bad = r.check(strings.Join(srcs, " "), tgts, c.sel.srcName, c.sel.tgtName)
	return ex, bad, nil
}

// columnTexts reads row i of a text column: a string, or a list of strings
// (a list source is joined with spaces by the caller, a list target gives
// several references), copied out of the batch and cut to what a token
// limit can use.
func (r *RecordReader) columnTexts(a arrow.Array, i int, name string, optional bool, limit int) ([]string, *RecordError) {
	if a.IsNull(i) {
		if optional {
			return nil, nil
		}
		return nil, r.bad(name, "missing (null)")
	}
	if s, ok := textValue(a, i); ok {
		return []string{ownedText(s, limit)}, nil
	}
	var (
		vals       arrow.Array
		start, end int64
	)
	switch l := a.(type) {
	case *array.List:
		start, end = l.ValueOffsets(i)
		vals = l.ListValues()
	case *array.LargeList:
		start, end = l.ValueOffsets(i)
		vals = l.ListValues()
	default:
		return nil, r.bad(name, "want a string or a list of strings, not %s", a.DataType())
	}
	if start < 0 || end < start || end > int64(vals.Len()) {
		return nil, r.bad(name, "list offsets [%d, %d) lie outside its %d values (damaged file)", start, end, vals.Len())
	}
	out := make([]string, 0, end-start)
	for j := start; j < end; j++ {
		if vals.IsNull(int(j)) {
			return nil, r.bad(name, "a null in the list of strings")
		}
		s, ok := textValue(vals, int(j))
		if !ok {
			return nil, r.bad(name, "want a string or a list of strings, not a list of %s", vals.DataType())
		}
		out = append(out, strings.Clone(s))
	}
	return out, nil
}

// textValue is row i of a string array (aliasing the batch's memory).
func textValue(a arrow.Array, i int) (string, bool) {
	switch s := a.(type) {
	case *array.String:
		return s.Value(i), true
	case *array.LargeString:
		return s.Value(i), true
	case *array.StringView:
		return s.Value(i), true
	}
	return "", false
}

// ownedText copies s out of the batch's memory, no more of it than a token
// limit can use (tokenize.CutText).
func ownedText(s string, limit int) string {
	if limit > 0 {
		if bound := tokenize.TextBound(limit); len(s) > bound {
			cut, _ := tokenize.CutText(s[:bound+1], limit)
			return strings.Clone(cut)
		}
	}
	return strings.Clone(s)
}

// claimError is a buffer a file claims that is larger than the file could
// fill: refused before it is allocated.
type claimError struct{ size, limit int }

func (e *claimError) Error() string {
	return fmt.Sprintf("the file claims a buffer of %d bytes, more than its contents can hold (at most %d); the file is damaged", e.size, e.limit)
}

// boundedAllocator refuses single allocations above limit (with a
// *claimError panic that the readers recover), so that a size a damaged
// file claims is never allocated.
type boundedAllocator struct {
	mem   memory.Allocator
	limit int
}

func (a boundedAllocator) Allocate(n int) []byte {
	if n < 0 || n > a.limit {
		panic(&claimError{n, a.limit})
	}
	return a.mem.Allocate(n)
}

func (a boundedAllocator) Reallocate(n int, b []byte) []byte {
	if n < 0 || n > a.limit {
		panic(&claimError{n, a.limit})
	}
	return a.mem.Reallocate(n, b)
}

func (a boundedAllocator) Free(b []byte) { a.mem.Free(b) }
