// Package report writes training logs for people and tools: TensorBoard
// event files (pure Go), JSON lines and a PNG plot of the curves.
package report

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// maskedCRC is TFRecord's masked CRC32C.
func maskedCRC(b []byte) uint32 {
	c := crc32.Checksum(b, castagnoli)
	return ((c >> 15) | (c << 17)) + 0xa282ead8
}

// writeRecord frames data as a TFRecord: length, masked CRC of the length,
// data, masked CRC of the data.
func writeRecord(w io.Writer, data []byte) error {
	var hdr [12]byte
	binary.LittleEndian.PutUint64(hdr[:8], uint64(len(data)))
	binary.LittleEndian.PutUint32(hdr[8:], maskedCRC(hdr[:8]))
	var tail [4]byte
	binary.LittleEndian.PutUint32(tail[:], maskedCRC(data))
	for _, p := range [][]byte{hdr[:], data, tail[:]} {
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	return nil
}

// Protobuf wire encoding of the few fields of tensorflow.Event and
// tensorflow.Summary that scalars need.
func appendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func appendBytesField(b []byte, field int, data []byte) []byte {
	b = appendVarint(b, uint64(field<<3|2))
	b = appendVarint(b, uint64(len(data)))
	return append(b, data...)
}

// event encodes Event{wall_time=1, step=2, file_version=3, summary=5,
// source_metadata=10{writer=1}}; zero step is omitted as proto3 does.
func event(wall float64, step int64, fileVersion string, summary []byte, writer ...string) []byte {
	b := []byte{1<<3 | 1}
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(wall))
	if step != 0 {
		b = appendVarint(b, 2<<3)
		b = appendVarint(b, uint64(step))
	}
	if fileVersion != "" {
		b = appendBytesField(b, 3, []byte(fileVersion))
	}
	if summary != nil {
		b = appendBytesField(b, 5, summary)
	}
	for _, w := range writer {
		b = appendBytesField(b, 10, appendBytesField(nil, 1, []byte(w)))
	}
	return b
}

// scalarSummary encodes Summary{value=[Value{tag=1, simple_value=2}]}.
func scalarSummary(tag string, v float32) []byte {
	val := appendBytesField(nil, 1, []byte(tag))
	val = append(val, 2<<3|5)
	val = binary.LittleEndian.AppendUint32(val, math.Float32bits(v))
	return appendBytesField(nil, 1, val)
}

// EventWriter writes a TensorBoard event file as torch's SummaryWriter
// does (the writer HF's TensorBoardCallback uses).
type EventWriter struct {
	f    *os.File
	w    *bufio.Writer
	Path string
	now  func() time.Time
}

// NewEventWriter creates dir and an event file in it named as TensorBoard
// names them; now (nil: time.Now) gives the wall times.
func NewEventWriter(dir string, now func() time.Time) (*EventWriter, error) {
	if now == nil {
		now = time.Now
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	t := now()
	name := fmt.Sprintf("events.out.tfevents.%010d.%s.%d.0", t.Unix(), host, os.Getpid())
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		return nil, err
	}
	ew := &EventWriter{f: f, w: bufio.NewWriter(f), Path: f.Name(), now: now}
	if err := writeRecord(ew.w, event(wallTime(t), 0, "brain.Event:2", nil, WriterName)); err != nil {
		f.Close()
		return nil, err
	}
	return ew, nil
}

func wallTime(t time.Time) float64 { return float64(t.Unix()) + float64(t.Nanosecond())/1e9 }

// AddScalar is SummaryWriter.add_scalar(tag, value, step) (simple_value).
func (e *EventWriter) AddScalar(tag string, value float64, step int64) error {
	return e.AddScalarAt(tag, value, step, wallTime(e.now()))
}

// AddScalarAt is AddScalar with an explicit wall time.
func (e *EventWriter) AddScalarAt(tag string, value float64, step int64, wall float64) error {
	return writeRecord(e.w, event(wall, step, "", scalarSummary(tag, float32(value))))
}

// Flush writes buffered events to the file.
func (e *EventWriter) Flush() error {
	if err := e.w.Flush(); err != nil {
		return err
	}
	return e.f.Sync()
}

// Close flushes and closes the file.
func (e *EventWriter) Close() error {
	err := e.Flush()
	if cerr := e.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// WriterName goes into the first event's source_metadata.writer.
const WriterName = "ortrain.report"

// EncodeEvents returns the bytes of an event file holding the file-version
// event (from writer) at wall time start followed by the given scalars.
func EncodeEvents(start float64, writer string, scalars []Scalar) []byte {
	var b writerBuf
	writeRecord(&b, event(start, 0, "brain.Event:2", nil, writer))
	for _, s := range scalars {
		writeRecord(&b, event(s.Wall, s.Step, "", scalarSummary(s.Tag, float32(s.Value))))
	}
	return b
}

// Scalar is one logged value.
type Scalar struct {
	Tag   string
	Value float64
	Step  int64
	Wall  float64
}

type writerBuf []byte

func (w *writerBuf) Write(p []byte) (int, error) { *w = append(*w, p...); return len(p), nil }
