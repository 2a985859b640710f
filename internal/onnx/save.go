package onnx

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"google.golang.org/protobuf/proto"
)

// MaxProtoSize is the largest serialized protobuf message that protobuf
// implementations accept (2 GiB); bigger models must use external data.
const MaxProtoSize = 1<<31 - 1

// DefaultSizeThreshold is the smallest tensor, in bytes, moved to the
// external data file when SaveOptions.SizeThreshold is 0 (as in onnx Python).
const DefaultSizeThreshold = 1024

// alignment of large tensors in the external data file, so that runtimes
// can map them directly (the value onnx Python uses).
const (
	alignThreshold = 1 << 20
	alignment      = 1 << 16
)

// SaveOptions controls how a model is written.
type SaveOptions struct {
	// ExternalData stores tensor data in a separate file next to the model.
	// Save does so anyway when the model would exceed MaxProtoSize.
	ExternalData bool
	// ExternalDataFile names the data file, relative to the model's folder;
	// default: the model's file name plus ".data".
	ExternalDataFile string
	// SizeThreshold: tensors smaller than this many bytes stay in the model
	// file (default DefaultSizeThreshold; negative: every tensor goes out).
	SizeThreshold int
}

// Save writes the model to path, atomically (a temporary file renamed into
// place). With external data, initializers (and, when still needed to stay
// under MaxProtoSize, tensor attributes) of at least SizeThreshold bytes go
// to one data file. The model is left as it was, but must not be used
// concurrently while Save runs: the external references are set on the
// tensors for the time of serialization.
func Save(m *onnxpb.ModelProto, path string, opts SaveOptions) error {
	return save(m, path, opts, MaxProtoSize)
}

// save is Save with the size limit as a parameter, so that tests can check
// the automatic switch to external data without 2 GiB models.
func save(m *onnxpb.ModelProto, path string, opts SaveOptions, limit int) error {
	if m == nil || m.Graph == nil {
		return fmt.Errorf("onnx: save %s: model has no graph", path)
	}
	if err := forEachTensor(m, func(t *onnxpb.TensorProto) error {
		if IsExternal(t) {
			return fmt.Errorf("onnx: save %s: tensor %q still refers to external data %q; call ResolveExternalData before saving",
				path, t.GetName(), externalInfo(t)["location"])
		}
		return nil
	}); err != nil {
		return err
	}
	external := opts.ExternalData
	if !external && proto.Size(m) > limit {
		external = true
	}
	var restore []func()
	defer func() {
		for i := len(restore) - 1; i >= 0; i-- {
			restore[i]()
		}
	}()
	if external {
		r, err := writeExternal(m, path, opts, limit)
		restore = r
		if err != nil {
			return err
		}
	}
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return fmt.Errorf("onnx: save %s: serialize: %w", path, err)
	}
	if len(data) > limit {
		return fmt.Errorf("onnx: save %s: the model is %d bytes even with external data (limit %d); lower SizeThreshold", path, len(data), limit)
	}
	return writeFileAtomic(path, func(w *bufio.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

type extCandidate struct {
	t    *onnxpb.TensorProto
	attr bool
}

func writeExternal(m *onnxpb.ModelProto, path string, opts SaveOptions, limit int) ([]func(), error) {
	loc := opts.ExternalDataFile
	if loc == "" {
		loc = filepath.Base(path) + ".data"
	}
	loc = filepath.ToSlash(loc)
	if filepath.IsAbs(loc) || strings.HasPrefix(loc, "/") || strings.Contains("/"+loc+"/", "/../") {
		return nil, fmt.Errorf("onnx: save %s: ExternalDataFile %q must be a path inside the model's folder", path, opts.ExternalDataFile)
	}
	threshold := int64(opts.SizeThreshold)
	if threshold == 0 {
		threshold = DefaultSizeThreshold
	}
	var cands []extCandidate
	var walk func(g *onnxpb.GraphProto)
	walk = func(g *onnxpb.GraphProto) {
		if g == nil {
			return
		}
		for _, t := range g.Initializer {
			cands = append(cands, extCandidate{t: t})
		}
		for _, n := range g.Node {
			for _, a := range n.Attribute {
				if a.T != nil {
					cands = append(cands, extCandidate{t: a.T, attr: true})
				}
				for _, t := range a.Tensors {
					cands = append(cands, extCandidate{t: t, attr: true})
				}
				walk(a.G)
				for _, sg := range a.Graphs {
					walk(sg)
				}
			}
		}
	}
	walk(m.Graph)
	var chosen []*onnxpb.TensorProto
	var attrBytes int64
	for _, c := range cands {
		dt := DType(c.t.GetDataType())
		if dt == String || DTypeBits(dt) == 0 || ByteSize(c.t) < threshold {
			continue
		}
		if c.attr {
			attrBytes += ByteSize(c.t)
			continue
		}
		chosen = append(chosen, c.t)
	}
	// Attribute tensors (Constant values) stay inline unless the model would
	// still be too large without moving them too.
	if attrBytes > 0 {
		var initBytes int64
		for _, t := range chosen {
			initBytes += ByteSize(t)
		}
		if int64(proto.Size(m))-initBytes > int64(limit)/2 {
			for _, c := range cands {
				if c.attr && DTypeBits(DType(c.t.GetDataType())) != 0 && DType(c.t.GetDataType()) != String && ByteSize(c.t) >= threshold {
					chosen = append(chosen, c.t)
				}
			}
		}
	}
	var restore []func()
	dataPath := filepath.Join(filepath.Dir(path), filepath.FromSlash(loc))
	if err := os.MkdirAll(filepath.Dir(dataPath), 0o755); err != nil {
		return nil, fmt.Errorf("onnx: save %s: %w", path, err)
	}
	err := writeFileAtomic(dataPath, func(w *bufio.Writer) error {
		var off int64
		for _, t := range chosen {
			raw, err := RawBytes(t)
			if err != nil {
				return err
			}
			n := int64(len(raw))
			if n >= alignThreshold && off%alignment != 0 {
				pad := alignment - off%alignment
				if _, err := w.Write(make([]byte, pad)); err != nil {
					return err
				}
				off += pad
			}
			if _, err := w.Write(raw); err != nil {
				return err
			}
			saved := struct {
				raw []byte
				f   []float32
				d   []float64
				i32 []int32
				i64 []int64
				u64 []uint64
				loc *onnxpb.TensorProto_DataLocation
				ext []*onnxpb.StringStringEntryProto
			}{t.RawData, t.FloatData, t.DoubleData, t.Int32Data, t.Int64Data, t.Uint64Data, t.DataLocation, t.ExternalData}
			tt := t
			restore = append(restore, func() {
				tt.RawData, tt.FloatData, tt.DoubleData = saved.raw, saved.f, saved.d
				tt.Int32Data, tt.Int64Data, tt.Uint64Data = saved.i32, saved.i64, saved.u64
				tt.DataLocation, tt.ExternalData = saved.loc, saved.ext
			})
			t.RawData, t.FloatData, t.DoubleData, t.Int32Data, t.Int64Data, t.Uint64Data = nil, nil, nil, nil, nil, nil
			t.DataLocation = onnxpb.TensorProto_EXTERNAL.Enum()
			t.ExternalData = []*onnxpb.StringStringEntryProto{
				{Key: proto.String("location"), Value: proto.String(loc)},
				{Key: proto.String("offset"), Value: proto.String(strconv.FormatInt(off, 10))},
				{Key: proto.String("length"), Value: proto.String(strconv.FormatInt(n, 10))},
			}
			off += n
		}
		return nil
	})
	if err != nil {
		return restore, fmt.Errorf("onnx: save %s: external data %s: %w", path, dataPath, err)
	}
	return restore, nil
}

// writeFileAtomic writes through a temporary file in the same folder and
// renames it over path, so readers never see a half-written file.
func writeFileAtomic(path string, write func(*bufio.Writer) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("onnx: create %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	w := bufio.NewWriterSize(f, 1<<20)
	if err = write(w); err != nil {
		return err
	}
	if err = w.Flush(); err != nil {
		return fmt.Errorf("onnx: write %s: %w", path, err)
	}
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("onnx: write %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("onnx: write %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("onnx: write %s: %w", path, err)
	}
	return nil
}

func sortStrings(s []string) { sort.Strings(s) }
