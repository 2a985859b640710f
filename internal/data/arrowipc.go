package data

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/modelfile"
)

// A datasets.save_to_disk folder: state.json lists the Arrow IPC stream
// files ("_data_files"), in order; dataset_info.json describes the
// features. A DatasetDict's folder (dataset_dict.json) holds one such
// folder per split.
const (
	stateFile       = "state.json"
	datasetInfoFile = "dataset_info.json"
	datasetDictFile = "dataset_dict.json"
)

// isSaveToDisk reports whether path is a folder that datasets.save_to_disk
// wrote (a Dataset or a DatasetDict).
func isSaveToDisk(path string) bool {
	st, err := os.Stat(path)
	if err != nil || !st.IsDir() {
		return false
	}
	for _, n := range []string{stateFile, datasetDictFile} {
		if _, err := os.Stat(filepath.Join(path, n)); err == nil {
			return true
		}
	}
	return false
}

// arrowFiles lists the Arrow files of a save_to_disk folder in dataset
// order (through the model-folder rule: each resolves inside the folder
// and is a regular file), or the .arrow file itself.
func arrowFiles(path string) ([]string, *modelfile.Folder, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, fileError(err)
	}
	if !st.IsDir() {
		return []string{filepath.Base(path)}, nil, nil
	}
	folder, err := modelfile.NewFolder(path)
	if err != nil {
		return nil, nil, err
	}
	if folder.Exists(datasetDictFile) && !folder.Exists(stateFile) {
		b, err := folder.ReadFile(datasetDictFile, 1<<20)
		if err != nil {
			return nil, nil, err
		}
		var dict struct {
			Splits []string `json:"splits"`
		}
		_ = json.Unmarshal(b, &dict)
		return nil, nil, fault.Inputf("%s holds a DatasetDict (splits %s); give the folder of one split, e.g. %s", path,
			strings.Join(dict.Splits, ", "), filepath.Join(path, firstOr(dict.Splits, "train")))
	}
	b, err := folder.ReadFile(stateFile, 16<<20)
	if err != nil {
		return nil, nil, err
	}
	var state struct {
		DataFiles []struct {
			Filename string `json:"filename"`
		} `json:"_data_files"`
		Indices any `json:"_indices_data_files"`
	}
	if err := json.Unmarshal(b, &state); err != nil {
		return nil, nil, fault.Inputf("%s: %v", filepath.Join(path, stateFile), err)
	}
	if len(state.DataFiles) == 0 {
		return nil, nil, fault.Inputf("%s: no _data_files; is this a folder datasets.save_to_disk wrote?", filepath.Join(path, stateFile))
	}
	var names []string
	for _, d := range state.DataFiles {
		if d.Filename == "" {
			return nil, nil, fault.Inputf("%s: a data file without a filename", filepath.Join(path, stateFile))
		}
		if _, err := folder.Resolve(d.Filename); err != nil {
			return nil, nil, err
		}
		names = append(names, d.Filename)
	}
	return names, folder, nil
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}

// ipcSource streams the record batches of Arrow IPC files (stream format,
// as datasets writes them, or the file format), one file after another.
type ipcSource struct {
	path   string
	names  []string
	folder *modelfile.Folder
	sel    columnSelection
	allow  bool
	i      int // next file
	f      *modelfile.File
	rd     *ipc.Reader
}

func openArrow(path string, sel columnSelection, allowEmptyTarget bool) (*ipcSource, error) {
	names, folder, err := arrowFiles(path)
	if err != nil {
		return nil, err
	}
	s := &ipcSource{path: path, names: names, folder: folder, sel: sel, allow: allowEmptyTarget}
	// Open the first file now, so that a wrong schema stops at once.
	if err := s.openNext(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *ipcSource) shown(name string) string {
	if s.folder == nil {
		return s.path
	}
	return filepath.Join(s.path, name)
}

func (s *ipcSource) openNext() (err error) {
	s.closeFile()
	name := s.names[s.i]
	shown := s.shown(name)
	var f *modelfile.File
	if s.folder == nil {
		f, err = modelfile.Open(s.path)
	} else {
		f, err = s.folder.Open(name)
	}
	if err != nil {
		return fileError(err)
	}
	defer func() {
		if p := recover(); p != nil {
			err = damaged(shown, p)
		}
		if err != nil {
			f.Close()
		}
	}()
	var magic [6]byte
	if n, _ := f.ReadAt(magic[:], 0); n == 6 && string(magic[:]) == "ARROW1" {
		// The random-access file format holds the stream format after
		// 8 bytes (magic and padding).
		if _, err := f.Seek(8, io.SeekStart); err != nil {
			return fault.Inputf("%s: %w", shown, err)
		}
	}
	mem := boundedAllocator{mem: memory.NewGoAllocator(), limit: allocationLimit(f.Size)}
	start, _ := f.Seek(0, io.SeekCurrent)
	rd, err := ipc.NewReader(&ipcGuard{f: f, pos: start, msgEnd: start, shown: shown}, ipc.WithAllocator(mem))
	if err != nil {
		return fault.Inputf("%s: not a readable Arrow IPC file: %w", shown, err)
	}
	if err := s.sel.checkSchema(shown, rd.Schema(), s.allow); err != nil {
		rd.Release()
		return err
	}
	s.f, s.rd = f, rd
	s.i++
	return nil
}

func (s *ipcSource) next() (arrow.RecordBatch, error) {
	for {
		if s.rd.Next() {
			return s.rd.RecordBatch(), nil
		}
		if err := s.rd.Err(); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: %w", s.shown(s.names[s.i-1]), err)
		}
		if s.i >= len(s.names) {
			return nil, io.EOF
		}
		if err := s.openNext(); err != nil {
			return nil, err
		}
	}
}

func (s *ipcSource) closeFile() {
	if s.rd != nil {
		s.rd.Release()
		s.rd = nil
	}
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
}

func (s *ipcSource) close() error {
	s.closeFile()
	return nil
}

// ipcGuard passes an Arrow IPC stream through to the Arrow reader after
// checking each message's claimed sizes (metadata and body) against the
// bytes the file has left, so that the reader never allocates what a
// damaged file merely claims. It reads the framing only; the Arrow library
// parses the messages.
type ipcGuard struct {
	f           *modelfile.File
	pos, msgEnd int64
	shown       string
	err         error
}

func (g *ipcGuard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	if g.pos >= g.msgEnd {
		if err := g.frame(); err != nil {
			g.err = err
			return 0, err
		}
	}
	n := int(min(int64(len(p)), g.msgEnd-g.pos))
	if n == 0 {
		return 0, io.EOF
	}
	n, err := g.f.ReadAt(p[:n], g.pos)
	g.pos += int64(n)
	if errors.Is(err, io.EOF) && n > 0 {
		err = nil
	}
	return n, err
}

// frame checks the message starting at pos and sets msgEnd past it.
func (g *ipcGuard) frame() (err error) {
	left := g.f.Size - g.pos
	var head [8]byte
	if left < 4 {
		g.msgEnd = g.f.Size // a stream without its end marker ends here
		return nil
	}
	if _, err := g.f.ReadAt(head[:4], g.pos); err != nil {
		return err
	}
	prefix, msgLen := int64(4), int64(binary.LittleEndian.Uint32(head[:4]))
	switch msgLen {
	case 0:
		g.msgEnd = g.pos + 4 // end of stream
		return nil
	case 0xFFFFFFFF:
		if left < 8 {
			g.msgEnd = g.f.Size
			return nil
		}
		if _, err := g.f.ReadAt(head[:], g.pos); err != nil {
			return err
		}
		prefix, msgLen = 8, int64(int32(binary.LittleEndian.Uint32(head[4:])))
		if msgLen == 0 {
			g.msgEnd = g.pos + 8
			return nil
		}
	default:
		msgLen = int64(int32(msgLen)) // before Arrow 0.15: no continuation marker
	}
	if msgLen < 0 || msgLen > left-prefix {
		return fault.Inputf("%s: an IPC message at byte %d claims %d bytes of metadata, more than the %d left in the file; the file is damaged", g.shown, g.pos, msgLen, left-prefix)
	}
	meta := make([]byte, msgLen) // within the file's size (checked)
	if _, err := g.f.ReadAt(meta, g.pos+prefix); err != nil {
		return err
	}
	body, err := bodyLength(meta)
	if err != nil {
		return fault.Inputf("%s: the IPC message at byte %d is damaged: %v", g.shown, g.pos, err)
	}
	if rest := left - prefix - msgLen; body < 0 || body > rest {
		return fault.Inputf("%s: an IPC message at byte %d claims a body of %d bytes, more than the %d left in the file; the file is damaged", g.shown, g.pos, body, rest)
	}
	g.msgEnd = g.pos + prefix + msgLen + body
	return nil
}

// bodyLength checks an IPC message's metadata (see checkMessage) and
// returns its bodyLength field.
func bodyLength(meta []byte) (int64, error) {
	m, err := checkMessage(meta)
	if err != nil {
		return 0, err
	}
	return m.int64(3), nil
}

// fbTable is a flatbuffer table within a message's metadata, its offsets
// checked against the metadata's bounds. The Arrow library reads the
// metadata without such checks and sizes arrays by the vector lengths it
// finds, so a damaged file could make it allocate what it merely claims;
// checkMessage walks the tables and vectors the library reads (Arrow's
// Message.fbs and Schema.fbs) first.
type fbTable struct {
	b       []byte
	pos, vt int
	vsize   int
}

var errFlatbuffer = errors.New("an offset or length lies outside the message metadata")

func fbTableAt(b []byte, pos int) (fbTable, error) {
	if pos < 0 || pos+4 > len(b) {
		return fbTable{}, errFlatbuffer
	}
	vt := pos - int(int32(binary.LittleEndian.Uint32(b[pos:])))
	if vt < 0 || vt+4 > len(b) {
		return fbTable{}, errFlatbuffer
	}
	vsize := int(binary.LittleEndian.Uint16(b[vt:]))
	tsize := int(binary.LittleEndian.Uint16(b[vt+2:]))
	if vsize < 4 || vt+vsize > len(b) || pos+tsize > len(b) {
		return fbTable{}, errFlatbuffer
	}
	return fbTable{b: b, pos: pos, vt: vt, vsize: vsize}, nil
}

// field is the position of slot's value (0: absent), with size bytes
// inside the metadata.
func (t fbTable) field(slot, size int) (int, error) {
	o := 4 + 2*slot
	if o+2 > t.vsize {
		return 0, nil
	}
	off := int(binary.LittleEndian.Uint16(t.b[t.vt+o:]))
	if off == 0 {
		return 0, nil
	}
	if t.pos+off+size > len(t.b) {
		return 0, errFlatbuffer
	}
	return t.pos + off, nil
}

func (t fbTable) int64(slot int) int64 {
	p, err := t.field(slot, 8)
	if err != nil || p == 0 {
		return 0
	}
	return int64(binary.LittleEndian.Uint64(t.b[p:]))
}

func (t fbTable) byte(slot int) byte {
	p, err := t.field(slot, 1)
	if err != nil || p == 0 {
		return 0
	}
	return t.b[p]
}

// target follows the offset in slot (0: absent).
func (t fbTable) target(slot int) (int, error) {
	p, err := t.field(slot, 4)
	if err != nil || p == 0 {
		return 0, err
	}
	q := p + int(binary.LittleEndian.Uint32(t.b[p:]))
	if q < 0 || q+4 > len(t.b) {
		return 0, errFlatbuffer
	}
	return q, nil
}

// table is the sub-table in slot (ok false: absent).
func (t fbTable) table(slot int) (fbTable, bool, error) {
	q, err := t.target(slot)
	if err != nil || q == 0 {
		return fbTable{}, false, err
	}
	sub, err := fbTableAt(t.b, q)
	return sub, err == nil, err
}

// vector checks the vector in slot (elements of elem bytes) and returns
// where its elements start and how many there are.
func (t fbTable) vector(slot, elem int) (start, n int, err error) {
	q, err := t.target(slot)
	if err != nil || q == 0 {
		return 0, 0, err
	}
	n = int(binary.LittleEndian.Uint32(t.b[q:]))
	if int64(q)+4+int64(n)*int64(elem) > int64(len(t.b)) {
		return 0, 0, errFlatbuffer
	}
	return q + 4, n, nil
}

// tables checks each table of the vector of tables in slot with check.
func (t fbTable) tables(slot int, check func(fbTable) error) error {
	start, n, err := t.vector(slot, 4)
	if err != nil {
		return err
	}
	for i := range n {
		p := start + 4*i
		sub, err := fbTableAt(t.b, p+int(binary.LittleEndian.Uint32(t.b[p:])))
		if err != nil {
			return err
		}
		if err := check(sub); err != nil {
			return err
		}
	}
	return nil
}

// Message header types and field type ids of Arrow's flatbuffers.
const (
	headerSchema          = 1
	headerDictionaryBatch = 2
	headerRecordBatch     = 3
	typeUnion             = 14
	maxFieldDepth         = 64
)

// checkMessage checks the tables and vectors of an IPC message's metadata
// that the Arrow library reads, and returns the Message table.
func checkMessage(meta []byte) (fbTable, error) {
	if len(meta) < 4 {
		return fbTable{}, errors.New("metadata shorter than a flatbuffer")
	}
	m, err := fbTableAt(meta, int(binary.LittleEndian.Uint32(meta)))
	if err != nil {
		return fbTable{}, err
	}
	if _, err := m.field(3, 8); err != nil { // bodyLength
		return fbTable{}, err
	}
	if err := checkKeyValues(m, 4); err != nil {
		return fbTable{}, err
	}
	h, ok, err := m.table(2)
	if err != nil || !ok {
		return fbTable{}, cmpOr(err, errors.New("a message without header"))
	}
	switch m.byte(1) {
	case headerSchema:
		if err := h.tables(1, func(f fbTable) error { return checkField(f, 0) }); err != nil {
			return fbTable{}, err
		}
		if err := checkKeyValues(h, 2); err != nil {
			return fbTable{}, err
		}
		_, _, err = h.vector(3, 8) // features
	case headerDictionaryBatch:
		rb, ok, err2 := h.table(1)
		if err2 != nil {
			return fbTable{}, err2
		}
		if ok {
			err = checkRecordBatch(rb)
		}
	case headerRecordBatch:
		err = checkRecordBatch(h)
	default:
		err = fmt.Errorf("message type %d is not part of a record batch stream", m.byte(1))
	}
	return m, err
}

func cmpOr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}

func checkKeyValues(t fbTable, slot int) error {
	return t.tables(slot, func(kv fbTable) error {
		for s := range 2 {
			if _, _, err := kv.vector(s, 1); err != nil {
				return err
			}
		}
		return nil
	})
}

func checkField(f fbTable, depth int) error {
	if depth > maxFieldDepth {
		return fmt.Errorf("fields nested deeper than %d", maxFieldDepth)
	}
	if _, _, err := f.vector(0, 1); err != nil { // name
		return err
	}
	if typ, ok, err := f.table(3); err != nil {
		return err
	} else if ok && f.byte(2) == typeUnion {
		if _, _, err := typ.vector(1, 4); err != nil { // typeIds
			return err
		}
	}
	if dict, ok, err := f.table(4); err != nil {
		return err
	} else if ok {
		if _, _, err := dict.table(1); err != nil { // indexType
			return err
		}
	}
	if err := f.tables(5, func(c fbTable) error { return checkField(c, depth+1) }); err != nil {
		return err
	}
	return checkKeyValues(f, 6)
}

func checkRecordBatch(rb fbTable) error {
	for _, v := range []struct{ slot, elem int }{{1, 16}, {2, 16}, {4, 8}} { // nodes, buffers, variadicBufferCounts
		if _, _, err := rb.vector(v.slot, v.elem); err != nil {
			return err
		}
	}
	_, _, err := rb.table(3) // compression
	return err
}
