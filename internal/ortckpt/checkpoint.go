// Package ortckpt reads and writes ONNX Runtime on-device training
// checkpoints (the "checkpoint" flatbuffer file that
// onnxruntime.training.artifacts.generate_artifacts and
// CheckpointState.save_checkpoint produce, file identifier "ODTC",
// version 1), so that ortrain can import artifacts made for ONNX Runtime's
// training API and hand parameters back to users who still have it.
package ortckpt

import (
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/modelfile"
)

// Identifier is the checkpoint's flatbuffer file identifier.
const Identifier = "ODTC"

// Version is the checkpoint version ONNX Runtime 1.19 writes (1.15–1.17
// wrote version 1, which lacks the external-data fields); both are read.
const Version = 2

// formatErr reports a file that is not a checkpoint ortrain can read: bad
// input.
func formatErr(format string, args ...any) error {
	return fault.Inputf("not a supported ONNX Runtime training checkpoint: "+format, args...)
}

// Tensor is a named tensor; Raw holds little-endian element bytes and
// DataType uses ONNX's TensorProto codes.
type Tensor struct {
	Name     string
	Dims     []int64
	DataType int32
	Raw      []byte
}

// ParamState holds a parameter's optimizer moments ("momentum0",
// "momentum1" for AdamW).
type ParamState struct {
	Param     string
	Momentums []Tensor
}

// OptimizerGroup is one optimizer group ("group0"; ONNX Runtime has one).
type OptimizerGroup struct {
	Name      string
	Step      int64
	InitialLR float32
	States    []ParamState
}

// Checkpoint is the decoded file.
type Checkpoint struct {
	Version         int32
	Trainable       []Tensor
	Frozen          []Tensor
	IsNominal       bool
	HasExternalData bool
	Groups          []OptimizerGroup
	Ints            map[string]int64
	Floats          map[string]float32
	Strings         map[string]string
}

// ReadFile decodes the checkpoint at path.
func ReadFile(path string) (*Checkpoint, error) {
	b, err := modelfile.ReadFile(path, 0)
	if err != nil {
		return nil, fmt.Errorf("reading ONNX Runtime checkpoint: %w", err)
	}
	c, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Decode parses a checkpoint buffer, checking the identifier and version.
func Decode(b []byte) (*Checkpoint, error) {
	if len(b) < 8 {
		return nil, formatErr("%d bytes is too short for a flatbuffer", len(b))
	}
	if id := string(b[4:8]); id != Identifier {
		return nil, formatErr("file identifier %q, want %q (is this the artifact folder's \"checkpoint\" file?)", printable(id), Identifier)
	}
	r := reader{buf: b}
	root, err := r.u32(0)
	if err != nil {
		return nil, formatErr("%v", err)
	}
	t, err := r.table(int(root))
	if err != nil {
		return nil, formatErr("root table: %v", err)
	}
	c, err := decodeCheckpoint(t)
	if err != nil {
		return nil, formatErr("%v", err)
	}
	return c, nil
}

func printable(s string) string {
	out := []rune{}
	for _, r := range s {
		if r < 32 || r > 126 {
			r = '?'
		}
		out = append(out, r)
	}
	return string(out)
}

func decodeCheckpoint(t table) (*Checkpoint, error) {
	c := &Checkpoint{Ints: map[string]int64{}, Floats: map[string]float32{}, Strings: map[string]string{}}
	var err error
	if c.Version, err = t.int32(0, 0); err != nil {
		return nil, err
	}
	if c.Version != 1 && c.Version != Version {
		return nil, fmt.Errorf("checkpoint version %d; ortrain reads versions 1 and %d (ONNX Runtime 1.15–1.19)", c.Version, Version)
	}
	if ms, ok, err := t.subtable(1); err != nil {
		return nil, fmt.Errorf("module state: %w", err)
	} else if ok {
		if c.Trainable, err = decodeTensors(ms, 0); err != nil {
			return nil, fmt.Errorf("trainable parameters: %w", err)
		}
		if c.Frozen, err = decodeTensors(ms, 1); err != nil {
			return nil, fmt.Errorf("frozen parameters: %w", err)
		}
		if c.IsNominal, err = ms.bool(2); err != nil {
			return nil, err
		}
		if c.HasExternalData, err = ms.bool(3); err != nil {
			return nil, err
		}
	}
	groups, err := t.tables(2)
	if err != nil {
		return nil, fmt.Errorf("optimizer groups: %w", err)
	}
	for _, g := range groups {
		var og OptimizerGroup
		if og.Name, err = g.string(0); err != nil {
			return nil, err
		}
		if og.Step, err = g.int64(1, 0); err != nil {
			return nil, err
		}
		if og.InitialLR, err = g.float32(2, 0); err != nil {
			return nil, err
		}
		states, err := g.tables(3)
		if err != nil {
			return nil, fmt.Errorf("optimizer group %q: %w", og.Name, err)
		}
		for _, s := range states {
			var ps ParamState
			if ps.Param, err = s.string(0); err != nil {
				return nil, err
			}
			if ps.Momentums, err = decodeTensors(s, 1); err != nil {
				return nil, fmt.Errorf("moments of %q: %w", ps.Param, err)
			}
			og.States = append(og.States, ps)
		}
		c.Groups = append(c.Groups, og)
	}
	if pb, ok, err := t.subtable(3); err != nil {
		return nil, fmt.Errorf("property bag: %w", err)
	} else if ok {
		props := func(i int, each func(name string, p table) error) error {
			ts, err := pb.tables(i)
			if err != nil {
				return err
			}
			for _, p := range ts {
				name, err := p.string(0)
				if err != nil {
					return err
				}
				if err := each(name, p); err != nil {
					return err
				}
			}
			return nil
		}
		if err := props(0, func(n string, p table) (err error) { c.Ints[n], err = p.int64(1, 0); return }); err != nil {
			return nil, err
		}
		if err := props(1, func(n string, p table) (err error) { c.Floats[n], err = p.float32(1, 0); return }); err != nil {
			return nil, err
		}
		if err := props(2, func(n string, p table) (err error) { c.Strings[n], err = p.string(1); return }); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func decodeTensors(t table, field int) ([]Tensor, error) {
	ts, err := t.tables(field)
	if err != nil {
		return nil, err
	}
	out := make([]Tensor, 0, len(ts))
	for _, x := range ts {
		var tn Tensor
		if tn.Name, err = x.string(0); err != nil {
			return nil, err
		}
		if tn.Dims, err = x.int64s(2); err != nil {
			return nil, fmt.Errorf("tensor %q dims: %w", tn.Name, err)
		}
		if tn.DataType, err = x.int32(3, 0); err != nil {
			return nil, err
		}
		raw, err := x.bytes(4)
		if err != nil {
			return nil, fmt.Errorf("tensor %q data: %w", tn.Name, err)
		}
		tn.Raw = append([]byte(nil), raw...)
		ext, err := x.int64(6, -1)
		if err != nil {
			return nil, err
		}
		if ext >= 0 {
			return nil, fmt.Errorf("tensor %q keeps its data in an external file (checkpoints over 2 GB), which ortrain does not read yet", tn.Name)
		}
		if count(tn.Dims) < 0 {
			return nil, fmt.Errorf("tensor %q: dims %v are negative or hold more elements than any tensor can", tn.Name, tn.Dims)
		}
		if want := elementBytes(tn.DataType) * count(tn.Dims); want >= 0 && int64(len(tn.Raw)) != want && len(tn.Raw) != 0 {
			return nil, fmt.Errorf("tensor %q: %d data bytes for dims %v of type %d (want %d)", tn.Name, len(tn.Raw), tn.Dims, tn.DataType, want)
		}
		out = append(out, tn)
	}
	return out, nil
}

// count is the product of dims; -1 when a dim is negative or the product
// does not fit in an int64.
func count(dims []int64) int64 {
	for _, d := range dims {
		if d < 0 {
			return -1
		}
		if d == 0 {
			return 0
		}
	}
	n := int64(1)
	for _, d := range dims {
		if n > math.MaxInt64/8/d {
			return -1
		}
		n *= d
	}
	return n
}

// elementBytes for ONNX data types; -1 when unknown.
func elementBytes(dt int32) int64 {
	switch dt {
	case 1, 6, 12: // float, int32, uint32
		return 4
	case 7, 11, 13: // int64, double, uint64
		return 8
	case 10, 16, 4, 5: // float16, bfloat16, uint16, int16
		return 2
	case 2, 3, 9: // uint8, int8, bool
		return 1
	}
	return -1
}

// Encode serialises a checkpoint as ONNX Runtime writes it: tensors, groups,
// parameter states and properties sorted by name.
func Encode(c *Checkpoint) ([]byte, error) {
	// Always written as the current version: version 1 is a subset of it.
	c.Version = Version
	for _, list := range [][]Tensor{c.Trainable, c.Frozen} {
		for _, t := range list {
			if want := elementBytes(t.DataType) * count(t.Dims); want < 0 || int64(len(t.Raw)) != want {
				return nil, errorf("tensor %q: %d bytes for dims %v and type %d", t.Name, len(t.Raw), t.Dims, t.DataType)
			}
		}
	}
	w := &writer{buf: make([]byte, 8)}
	copy(w.buf[4:], Identifier)
	root := w.table([]*field{
		ptr(i32(c.Version)),
		ptr(ref(func(w *writer) int {
			return w.table([]*field{
				ptr(ref(tensorVec(sortedTensors(c.Trainable)))),
				ptr(ref(tensorVec(sortedTensors(c.Frozen)))),
				ptr(boolean(c.IsNominal)),
				ptr(boolean(false)),
			})
		})),
		groupsField(c.Groups),
		ptr(ref(func(w *writer) int { return propertyBag(w, c) })),
	})
	le.PutUint32(w.buf[0:], uint32(root))
	return w.buf, nil
}

// WriteFile writes the checkpoint atomically (temporary file, then rename).
func WriteFile(path string, c *Checkpoint) error {
	b, err := Encode(c)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".checkpoint-*")
	if err != nil {
		return fmt.Errorf("writing ONNX Runtime checkpoint: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return os.Rename(tmp.Name(), path)
}

func ptr(f field) *field { return &f }

func groupsField(groups []OptimizerGroup) *field {
	if len(groups) == 0 {
		return nil
	}
	gs := append([]OptimizerGroup(nil), groups...)
	sort.Slice(gs, func(i, j int) bool { return gs[i].Name < gs[j].Name })
	return ptr(ref(func(w *writer) int {
		return w.tableVec(len(gs), func(i int, w *writer) int {
			g := gs[i]
			states := append([]ParamState(nil), g.States...)
			sort.Slice(states, func(a, b int) bool { return states[a].Param < states[b].Param })
			return w.table([]*field{
				ptr(ref(func(w *writer) int { return w.str(g.Name) })),
				ptr(i64(g.Step)),
				ptr(f32(g.InitialLR)),
				ptr(ref(func(w *writer) int {
					return w.tableVec(len(states), func(k int, w *writer) int {
						s := states[k]
						return w.table([]*field{
							ptr(ref(func(w *writer) int { return w.str(s.Param) })),
							ptr(ref(tensorVec(sortedTensors(s.Momentums)))),
						})
					})
				})),
			})
		})
	}))
}

func propertyBag(w *writer, c *Checkpoint) int {
	ints := slices.Sorted(maps.Keys(c.Ints))
	floats := slices.Sorted(maps.Keys(c.Floats))
	strs := slices.Sorted(maps.Keys(c.Strings))
	vec := func(names []string, value func(name string) field) *field {
		return ptr(ref(func(w *writer) int {
			return w.tableVec(len(names), func(i int, w *writer) int {
				n := names[i]
				return w.table([]*field{ptr(ref(func(w *writer) int { return w.str(n) })), ptr(value(n))})
			})
		}))
	}
	return w.table([]*field{
		vec(ints, func(n string) field { return i64(c.Ints[n]) }),
		vec(floats, func(n string) field { return f32(c.Floats[n]) }),
		vec(strs, func(n string) field {
			v := c.Strings[n]
			return ref(func(w *writer) int { return w.str(v) })
		}),
	})
}

func sortedTensors(ts []Tensor) []Tensor {
	out := append([]Tensor(nil), ts...)
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func tensorVec(ts []Tensor) func(*writer) int {
	return func(w *writer) int {
		return w.tableVec(len(ts), func(i int, w *writer) int {
			t := ts[i]
			return w.table([]*field{
				ptr(ref(func(w *writer) int { return w.str(t.Name) })),
				nil, // doc_string
				ptr(ref(func(w *writer) int { return w.int64Vec(t.Dims) })),
				ptr(i32(t.DataType)),
				ptr(ref(func(w *writer) int { return w.bytesVec(t.Raw, 8) })),
			})
		})
	}
}
