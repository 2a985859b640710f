package data

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/apache/arrow-go/v18/parquet/schema"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/modelfile"
)

// parquetBatchLevels is how many values (levels) a column cursor decodes at
// a time: the reader holds that many values per selected column and the
// page being decoded, whatever the file's size.
const parquetBatchLevels = 1024

// allocationLimit bounds any single buffer a columnar file of size bytes
// may make the reader allocate: compressed pages expand, but not beyond
// this, and a damaged header claiming more is refused before allocation.
func allocationLimit(size int64) int {
	const floor, ceiling = 64 << 20, 2 << 30
	return int(min(max(64*size, floor), ceiling))
}

// parquetRows streams the selected text columns of a Parquet file, row by
// row, through the Parquet library's column readers. Its pqarrow record
// reader is not used: it decodes struct fields on goroutines of its own,
// where a damaged page's panic could not be recovered; here every decode
// runs on the caller's goroutine.
type parquetRows struct {
	f        *modelfile.File
	pf       *file.Reader
	src, tgt *leafCursor // tgt nil: no target column (prediction sets)
}

// cell is one row of a text column: a string, a list of strings, or null.
type cell struct {
	null     bool
	list     bool
	texts    []string
	nullItem bool // a null inside the list
}

func openParquet(path string, sel columnSelection, allowEmptyTarget bool) (_ *parquetRows, err error) {
	f, err := modelfile.Open(path)
	if err != nil {
		return nil, fileError(err)
	}
	var pf *file.Reader
	defer func() {
		if p := recover(); p != nil {
			err = damaged(path, p)
		}
		if err != nil {
			if pf != nil {
				pf.Close()
			}
			f.Close()
		}
	}()
	mem := boundedAllocator{mem: memory.NewGoAllocator(), limit: allocationLimit(f.Size)}
	props := parquet.NewReaderProperties(mem)
	props.BufferedStreamEnabled = true // read pages as they are decoded, never a whole column chunk
	pf, err = file.NewParquetReader(f.File, file.WithReadProps(props))
	if err != nil {
		return nil, fault.Inputf("%s: not a readable Parquet file: %w", path, err)
	}
	psc := pf.MetaData().Schema
	// The Arrow types come from the Parquet schema alone: the Arrow schema
	// a writer may embed (ARROW:schema) is unchecked IPC metadata, and the
	// leaf columns are read as Parquet byte arrays either way.
	sc, err := pqarrow.FromParquet(psc, nil, nil)
	if err != nil {
		return nil, fault.Inputf("%s: %w", path, err)
	}
	if err := sel.checkSchema(path, sc, allowEmptyTarget); err != nil {
		return nil, err
	}
	rows := &parquetRows{f: f, pf: pf}
	for _, side := range []struct {
		name   string
		cursor **leafCursor
	}{{sel.srcName, &rows.src}, {sel.tgtName, &rows.tgt}} {
		col, err := textLeaf(path, psc, sel, side.name)
		if err != nil {
			return nil, err
		}
		if col >= 0 {
			*side.cursor = newLeafCursor(pf, psc.Column(col), col)
		}
	}
	if rows.src == nil {
		return nil, fault.Inputf("%s: no column holds the source texts %q", path, sel.srcName)
	}
	return rows, nil
}

// textLeaf is the index of the Parquet leaf column holding the named texts
// (-1: absent, allowed by checkSchema for a target).
func textLeaf(path string, sc *schema.Schema, sel columnSelection, name string) (int, error) {
	found := -1
	for i := range sc.NumColumns() {
		p := sc.Column(i).ColumnPath()
		var match bool
		if sel.translation {
			match = len(p) == 2 && p[0] == "translation" && p[1] == name
		} else {
			match = len(p) >= 1 && p[0] == name
		}
		if !match {
			continue
		}
		if found >= 0 {
			return 0, fault.Inputf("%s: column %q has several leaves; want a string or a list of strings", path, name)
		}
		if sc.Column(i).PhysicalType() != parquet.Types.ByteArray || sc.Column(i).MaxRepetitionLevel() > 1 {
			return 0, fault.Inputf("%s: column %q is stored as %s (repetition %d); want a string or a list of strings", path, name,
				sc.Column(i).PhysicalType(), sc.Column(i).MaxRepetitionLevel())
		}
		found = i
	}
	return found, nil
}

// leafCursor reads one BYTE_ARRAY leaf column across the row groups,
// a batch of levels at a time, and assembles rows from the definition and
// repetition levels.
type leafCursor struct {
	pf     *file.Reader
	col    int
	cut    int   // token limit for single strings (tokenize.CutText); 0: none
	maxDef int16 // a value is present at this level
	maxRep int16 // 0: one level per row; 1: a list
	// nullBelow: a definition level below it is a null row (the column or
	// an enclosing struct is null); itemAt: a level at or above it is a
	// list item (below: an empty list).
	nullBelow, itemAt int16

	rg   int
	rd   *file.ByteArrayColumnChunkReader
	defs []int16
	reps []int16
	vals []parquet.ByteArray
	n    int // levels in the buffer
	pos  int // next level
	vpos int // next value
}

func newLeafCursor(pf *file.Reader, c *schema.Column, col int) *leafCursor {
	lc := &leafCursor{pf: pf, col: col, maxDef: c.MaxDefinitionLevel(), maxRep: c.MaxRepetitionLevel(),
		defs: make([]int16, parquetBatchLevels), reps: make([]int16, parquetBatchLevels), vals: make([]parquet.ByteArray, parquetBatchLevels)}
	// The nodes from the top column down to the leaf; each optional or
	// repeated one adds a definition level.
	var path []schema.Node
	for n := c.SchemaNode(); n != nil && n.Parent() != nil; n = n.Parent() {
		path = append([]schema.Node{n}, path...)
	}
	lc.nullBelow, lc.itemAt = lc.maxDef, lc.maxDef
	if lc.maxRep == 0 {
		return lc
	}
	// A list: below the levels of the nodes above the repeated one the row
	// is null; at the repeated node's level an item exists; between, the
	// list is empty.
	var def int16
	for _, n := range path {
		if n.RepetitionType() == parquet.Repetitions.Repeated {
			lc.nullBelow, lc.itemAt = def, def+1
			break
		}
		if n.RepetitionType() != parquet.Repetitions.Required {
			def++
		}
	}
	return lc
}

// fill makes a level available; io.EOF after the last row group.
func (lc *leafCursor) fill() error {
	for lc.pos >= lc.n {
		if lc.rd == nil {
			if lc.rg >= lc.pf.NumRowGroups() {
				return io.EOF
			}
			cr, err := lc.pf.RowGroup(lc.rg).Column(lc.col)
			if err != nil {
				return err
			}
			rd, ok := cr.(*file.ByteArrayColumnChunkReader)
			if !ok {
				return fmt.Errorf("column %d of row group %d is not a byte-array column", lc.col, lc.rg)
			}
			lc.rd = rd
			lc.rg++
		}
		total, _, err := lc.rd.ReadBatch(parquetBatchLevels, lc.vals, lc.defs, lc.reps)
		if err != nil {
			return err
		}
		if total == 0 {
			lc.rd = nil
			continue
		}
		lc.n, lc.pos, lc.vpos = int(total), 0, 0
	}
	return nil
}

func (lc *leafCursor) def() int16 {
	if lc.maxDef == 0 {
		return 0
	}
	return lc.defs[lc.pos]
}

func (lc *leafCursor) rep() int16 {
	if lc.maxRep == 0 {
		return 0
	}
	return lc.reps[lc.pos]
}

// take consumes a level: its value when it holds one.
func (lc *leafCursor) take() (def int16, val []byte, err error) {
	def = lc.def()
	lc.pos++
	if def == lc.maxDef {
		if lc.vpos >= len(lc.vals) {
			return 0, nil, errors.New("more values than levels")
		}
		val = lc.vals[lc.vpos]
		lc.vpos++
	}
	return def, val, nil
}

// next assembles the next row (io.EOF after the last).
func (lc *leafCursor) next() (cell, error) {
	if err := lc.fill(); err != nil {
		return cell{}, err
	}
	if lc.rep() != 0 {
		return cell{}, errors.New("a row starts inside a list (damaged repetition levels)")
	}
	def, val, err := lc.take()
	if err != nil {
		return cell{}, err
	}
	if lc.maxRep == 0 {
		if def < lc.maxDef {
			return cell{null: true}, nil
		}
		return cell{texts: []string{boundedString(val, lc.cut)}}, nil
	}
	c := cell{list: true}
	if def < lc.nullBelow {
		c.null = true
	}
	if def < lc.itemAt {
		return c, nil
	}
	for {
		if def < lc.maxDef {
			c.nullItem = true
		} else {
			c.texts = append(c.texts, string(val))
		}
		if err := lc.fill(); errors.Is(err, io.EOF) {
			return c, nil
		} else if err != nil {
			return cell{}, err
		}
		if lc.rep() == 0 {
			return c, nil
		}
		if def, val, err = lc.take(); err != nil {
			return cell{}, err
		}
	}
}

func (s *parquetRows) close() error {
	s.pf.Close()
	return s.f.Close()
}

// readParquet is RecordReader.read for Parquet files.
func (r *RecordReader) readParquet() (ex Example, bad *RecordError, err error) {
	s := r.columnar.pq
	sel := r.columnar.sel
	defer func() {
		if p := recover(); p != nil {
			err = damaged(r.file, p)
		}
	}()
	s.src.cut = r.cutSource
	if s.tgt != nil {
		s.tgt.cut = r.cutTarget
	}
	src, err := s.src.next()
	if errors.Is(err, io.EOF) {
		if s.tgt != nil {
			if _, err := s.tgt.next(); !errors.Is(err, io.EOF) {
				return Example{}, nil, fault.Inputf("%s: the target column has more rows than the source column; the file is damaged", r.file)
			}
		}
		return Example{}, nil, io.EOF
	}
	if err != nil {
		return Example{}, nil, fault.Inputf("%s: row %d: %v (the file is damaged or not what its name says)", r.file, r.line+1, err)
	}
	r.line++
	var tgt cell
	if s.tgt != nil {
		if tgt, err = s.tgt.next(); errors.Is(err, io.EOF) {
			return Example{}, nil, fault.Inputf("%s: the target column has fewer rows than the source column; the file is damaged", r.file)
		} else if err != nil {
			return Example{}, nil, fault.Inputf("%s: row %d: %v (the file is damaged or not what its name says)", r.file, r.line, err)
		}
	} else {
		tgt = cell{null: true}
	}
	srcs, bad := r.cellTexts(src, sel.srcName, false)
	if bad != nil {
		return Example{}, bad, nil
	}
	tgts, bad := r.cellTexts(tgt, sel.tgtName, r.format.AllowEmptyTarget)
	if bad != nil {
		return Example{}, bad, nil
	}
	if len(tgts) == 0 {
		tgts = []string{""}
	}
	ex, bad = r.check(strings.Join(srcs, " "), tgts, sel.srcName, sel.tgtName)
	return ex, bad, nil
}

// cellTexts are the texts of a cell, or the bad record it makes.
func (r *RecordReader) cellTexts(c cell, name string, optional bool) ([]string, *RecordError) {
	switch {
	case c.null && optional:
		return nil, nil
	case c.null:
		return nil, r.bad(name, "missing (null)")
	case c.nullItem:
		return nil, r.bad(name, "a null in the list of strings")
	}
	return c.texts, nil
}
