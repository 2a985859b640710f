package onnx

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/modelfile"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// LoadOptions controls how a model is read.
type LoadOptions struct {
	// Dir is the folder that external data locations are relative to. Load
	// sets it to the model file's folder when empty.
	Dir string
	// KeepExternal leaves tensors whose data is EXTERNAL unresolved, so that a
	// huge model can be inspected without reading its weights. Their values
	// can be read later with ResolveExternalData.
	KeepExternal bool
}

// Load reads an ONNX model file and the external data files it refers to.
func Load(path string) (*onnxpb.ModelProto, error) {
	return LoadWith(path, LoadOptions{})
}

// LoadWith reads an ONNX model file with options. A file that is missing,
// unreadable or not a model is bad input (fault.Input).
func LoadWith(path string, opts LoadOptions) (*onnxpb.ModelProto, error) {
	data, err := modelfile.ReadFile(path, maxModelFile)
	if err != nil {
		return nil, fault.Inputf("onnx: read model: %w", err)
	}
	if opts.Dir == "" {
		opts.Dir = filepath.Dir(path)
	}
	m, err := decodeModel(data)
	if err != nil {
		return nil, fmt.Errorf("onnx: %s: %w", path, err)
	}
	if !opts.KeepExternal {
		folder, err := modelfile.NewFolder(opts.Dir, path)
		if err != nil {
			return nil, err
		}
		if err := resolveExternal(m, folder); err != nil {
			return nil, fmt.Errorf("onnx: model %s: %w", path, err)
		}
	}
	return m, nil
}

// LoadBytes decodes a serialized model. A model with external data needs
// LoadBytesWith and the folder its data files live in.
func LoadBytes(data []byte) (*onnxpb.ModelProto, error) {
	return LoadBytesWith(data, LoadOptions{})
}

// LoadBytesWith decodes a serialized model with options. Without opts.Dir
// and without KeepExternal, a model with external data is an error.
func LoadBytesWith(data []byte, opts LoadOptions) (*onnxpb.ModelProto, error) {
	m, err := decodeModel(data)
	if err != nil {
		return nil, fmt.Errorf("onnx: model bytes: %w", err)
	}
	if opts.KeepExternal {
		return m, nil
	}
	if opts.Dir == "" {
		if files := ExternalDataFiles(m); len(files) > 0 {
			return nil, fmt.Errorf("onnx: model bytes refer to external data files %v; pass LoadOptions.Dir (the folder holding them) or KeepExternal", files)
		}
		return m, nil
	}
	if err := ResolveExternalData(m, opts.Dir); err != nil {
		return nil, fmt.Errorf("onnx: model bytes: %w", err)
	}
	return m, nil
}

// maxModelFile is protobuf's own limit: a serialized message (the model
// without its external data) cannot exceed 2 GiB.
const maxModelFile = 2 << 30

// ErrNotModel marks input that is not a serialized ONNX ModelProto (bad
// input, fault.Input).
var ErrNotModel = fault.New(fault.Input, "not an ONNX model")

func notModel(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrNotModel, fmt.Sprintf(format, args...))
}

func decodeModel(data []byte) (*onnxpb.ModelProto, error) {
	if len(data) == 0 {
		return nil, notModel("the file is empty")
	}
	m := &onnxpb.ModelProto{}
	if err := (proto.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(data, m); err != nil {
		return nil, notModel("protobuf decoding failed (%v); is the file truncated or in another format?", err)
	}
	// Random bytes sometimes decode as a protobuf message; a model has at
	// least an IR version and a graph.
	if m.IrVersion == nil || m.Graph == nil {
		return nil, notModel("the protobuf message has no ir_version or no graph")
	}
	if len(m.ProtoReflect().GetUnknown()) > 0 && len(m.Graph.Node) == 0 && len(m.Graph.Initializer) == 0 {
		return nil, notModel("the protobuf message holds unknown fields and no graph content")
	}
	return m, nil
}

// externalInfo returns the key/value pairs of a tensor's external_data.
func externalInfo(t *onnxpb.TensorProto) map[string]string {
	kv := make(map[string]string, len(t.ExternalData))
	for _, e := range t.ExternalData {
		kv[e.GetKey()] = e.GetValue()
	}
	return kv
}

// ExternalRef is where an external tensor's bytes are.
type ExternalRef struct {
	Location string // path relative to the model's folder
	Offset   int64
	Length   int64 // -1: to the end of the file
}

// ExternalRefOf parses a tensor's external_data entries.
func ExternalRefOf(t *onnxpb.TensorProto) (ExternalRef, error) {
	kv := externalInfo(t)
	ref := ExternalRef{Location: kv["location"], Length: -1}
	if ref.Location == "" {
		return ref, fmt.Errorf("tensor %q: data_location is EXTERNAL but external_data has no location", t.GetName())
	}
	if filepath.IsAbs(ref.Location) || strings.HasPrefix(ref.Location, "/") {
		return ref, fmt.Errorf("tensor %q: external data location %q is absolute; ONNX requires a path relative to the model's folder", t.GetName(), ref.Location)
	}
	for _, part := range strings.Split(filepath.ToSlash(ref.Location), "/") {
		if part == ".." {
			return ref, fmt.Errorf("tensor %q: external data location %q leaves the model's folder", t.GetName(), ref.Location)
		}
	}
	for _, key := range []string{"offset", "length"} {
		s, ok := kv[key]
		if !ok {
			continue
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 0 {
			return ref, fmt.Errorf("tensor %q: external data %s %q is not a non-negative integer", t.GetName(), key, s)
		}
		if key == "offset" {
			ref.Offset = v
		} else {
			ref.Length = v
		}
	}
	return ref, nil
}

// ExternalDataFiles lists, sorted and without repeats, the files that the
// model's external tensors refer to.
func ExternalDataFiles(m *onnxpb.ModelProto) []string {
	seen := map[string]bool{}
	var out []string
	forEachTensor(m, func(t *onnxpb.TensorProto) error {
		if IsExternal(t) {
			loc := externalInfo(t)["location"]
			if !seen[loc] {
				seen[loc] = true
				out = append(out, loc)
			}
		}
		return nil
	})
	sortStrings(out)
	return out
}

// ResolveExternalData reads the data of every EXTERNAL tensor of m from the
// files under dir, stores it in raw_data and marks the tensor DEFAULT.
// Locations are resolved inside dir (modelfile's rule: links followed, then
// checked; regular files only; ranges checked against the file before
// anything is allocated).
func ResolveExternalData(m *onnxpb.ModelProto, dir string) error {
	folder, err := modelfile.NewFolder(dir)
	if err != nil {
		return err
	}
	return resolveExternal(m, folder)
}

func resolveExternal(m *onnxpb.ModelProto, folder *modelfile.Folder) error {
	files := map[string]*modelfile.File{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	return forEachTensor(m, func(t *onnxpb.TensorProto) error {
		if !IsExternal(t) {
			return nil
		}
		ref, err := ExternalRefOf(t)
		if err != nil {
			return err
		}
		f, ok := files[ref.Location]
		if !ok {
			f, err = folder.Open(ref.Location)
			if err != nil {
				return fmt.Errorf("tensor %q: external data: %w", t.GetName(), err)
			}
			files[ref.Location] = f
		}
		length := ref.Length
		if length < 0 {
			length = f.Size - ref.Offset
		}
		if ref.Offset > f.Size || length < 0 || length > f.Size-ref.Offset {
			return fault.Inputf("tensor %q: external data [offset %d, length %d] lies beyond the end of %s (%d bytes); the data file is truncated or belongs to another model",
				t.GetName(), ref.Offset, ref.Length, f.Name, f.Size)
		}
		if want, ok := ByteSizeChecked(t); DType(t.GetDataType()) != String && (!ok || want != length) {
			return fault.Inputf("tensor %q: external data in %s has %d bytes, dims %v of %s need %s",
				t.GetName(), f.Name, length, t.GetDims(), DTypeName(DType(t.GetDataType())), sizeText(want, ok))
		}
		buf, err := f.Range(ref.Offset, length)
		if err != nil {
			return fmt.Errorf("tensor %q: %w", t.GetName(), err)
		}
		t.RawData = buf
		t.ExternalData = nil
		t.DataLocation = nil
		return nil
	})
}

// forEachTensor visits every dense tensor stored in the model: initializers,
// sparse initializers' parts, tensor attributes, in the main graph, nested
// graphs, functions and training info. It stops at the first error.
func forEachTensor(m *onnxpb.ModelProto, fn func(*onnxpb.TensorProto) error) error {
	if err := forEachGraphTensor(m.GetGraph(), fn); err != nil {
		return err
	}
	for _, f := range m.GetFunctions() {
		for _, n := range f.GetNode() {
			if err := forEachAttrTensor(n.GetAttribute(), fn); err != nil {
				return err
			}
		}
	}
	for _, ti := range m.GetTrainingInfo() {
		if err := forEachGraphTensor(ti.GetInitialization(), fn); err != nil {
			return err
		}
		if err := forEachGraphTensor(ti.GetAlgorithm(), fn); err != nil {
			return err
		}
	}
	return nil
}

func forEachGraphTensor(g *onnxpb.GraphProto, fn func(*onnxpb.TensorProto) error) error {
	if g == nil {
		return nil
	}
	for _, t := range g.Initializer {
		if err := fn(t); err != nil {
			return err
		}
	}
	for _, st := range g.SparseInitializer {
		for _, t := range []*onnxpb.TensorProto{st.GetValues(), st.GetIndices()} {
			if t != nil {
				if err := fn(t); err != nil {
					return err
				}
			}
		}
	}
	for _, n := range g.Node {
		if err := forEachAttrTensor(n.GetAttribute(), fn); err != nil {
			return err
		}
	}
	return nil
}

func forEachAttrTensor(attrs []*onnxpb.AttributeProto, fn func(*onnxpb.TensorProto) error) error {
	for _, a := range attrs {
		if a.T != nil {
			if err := fn(a.T); err != nil {
				return err
			}
		}
		for _, t := range a.Tensors {
			if err := fn(t); err != nil {
				return err
			}
		}
		if err := forEachGraphTensor(a.G, fn); err != nil {
			return err
		}
		for _, g := range a.Graphs {
			if err := forEachGraphTensor(g, fn); err != nil {
				return err
			}
		}
	}
	return nil
}
