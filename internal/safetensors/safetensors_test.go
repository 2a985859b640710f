package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/testenv"
)

type refFile struct {
	Metadata map[string]string `json:"metadata"`
	Tensors  map[string]struct {
		DType  string          `json:"dtype"`
		Shape  []int64         `json:"shape"`
		Values json.RawMessage `json:"values"`
	} `json:"tensors"`
}

var torchDType = map[string]DType{"float32": Float32, "float16": Float16, "bfloat16": BFloat16, "float64": Float64, "int64": Int64, "int32": Int32, "bool": Bool}

// TestReadPythonFile reads a file written by the python safetensors package
// and compares every value with the JSON dump made by the same script.
func TestReadPythonFile(t *testing.T) {
	path := testenv.Testdata(t, "safetensors", "reference.safetensors")
	f, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ref refFile
	b, err := os.ReadFile(testenv.Testdata(t, "safetensors", "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	if f.Metadata["format"] != "pt" || len(f.Metadata) != 1 {
		t.Errorf("metadata = %v", f.Metadata)
	}
	if len(f.Tensors) != len(ref.Tensors) {
		t.Fatalf("%d tensors, reference has %d", len(f.Tensors), len(ref.Tensors))
	}
	for name, want := range ref.Tensors {
		got, ok := f.Tensors[name]
		if !ok {
			t.Errorf("missing %q", name)
			continue
		}
		if got.DType != torchDType[want.DType] || !equalShape(got.Shape, want.Shape) {
			t.Errorf("%q: %s %v, want %s %v", name, got.DType, got.Shape, want.DType, want.Shape)
			continue
		}
		switch got.DType {
		case Float32, Float16, BFloat16:
			var w []float32
			json.Unmarshal(want.Values, &w)
			v, err := got.Float32s()
			if err != nil {
				t.Fatal(err)
			}
			for i := range w {
				if v[i] != w[i] {
					t.Errorf("%q[%d] = %v, want %v", name, i, v[i], w[i])
				}
			}
		case Float64:
			var w []float64
			json.Unmarshal(want.Values, &w)
			for i := range w {
				if x := math.Float64frombits(binary.LittleEndian.Uint64(got.Data[8*i:])); x != w[i] {
					t.Errorf("%q[%d] = %v, want %v", name, i, x, w[i])
				}
			}
		default:
			var w []int64
			json.Unmarshal(want.Values, &w)
			v, err := got.Int64s()
			if err != nil {
				t.Fatal(err)
			}
			for i := range w {
				if v[i] != w[i] {
					t.Errorf("%q[%d] = %v, want %v", name, i, v[i], w[i])
				}
			}
		}
	}
}

// TestWriteMatchesPythonBytes re-serialises the python-written file and
// expects the very same bytes (layout order, padding, JSON spelling).
func TestWriteMatchesPythonBytes(t *testing.T) {
	path := testenv.Testdata(t, "safetensors", "reference.safetensors")
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Decode(orig)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Write(&buf, f.Tensors, f.Metadata); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), orig) {
		n := binary.LittleEndian.Uint64(orig[:8])
		t.Fatalf("bytes differ\n got header %q\nwant header %q", buf.Bytes()[8:8+n], orig[8:8+n])
	}
}

func TestRoundTripFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "x.safetensors")
	in := map[string]Tensor{
		"w": FromFloat32([]int64{2, 2}, []float32{1, 2, 3, float32(math.Inf(-1))}),
		"n": FromInt64([]int64{1}, []int64{-5}),
	}
	if err := WriteFile(p, in, nil); err != nil {
		t.Fatal(err)
	}
	f, err := ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata != nil {
		t.Errorf("metadata %v, want none", f.Metadata)
	}
	w, _ := f.Tensors["w"].Float32s()
	n, _ := f.Tensors["n"].Int64s()
	if w[3] != float32(math.Inf(-1)) || n[0] != -5 || strings.Join(f.Names(), ",") != "n,w" {
		t.Errorf("round trip: %v %v %v", w, n, f.Names())
	}
}

func TestHalf(t *testing.T) {
	cases := map[uint16]float32{0x3c00: 1, 0xc000: -2, 0x7bff: 65504, 0x0001: 5.960464477539063e-08, 0x0400: 6.103515625e-05, 0x8000: float32(math.Copysign(0, -1))}
	for h, want := range cases {
		if got := HalfToFloat32(h); got != want || math.Signbit(float64(got)) != math.Signbit(float64(want)) {
			t.Errorf("HalfToFloat32(%#04x) = %v, want %v", h, got, want)
		}
	}
	if !math.IsInf(float64(HalfToFloat32(0x7c00)), 1) || !math.IsNaN(float64(HalfToFloat32(0x7e00))) {
		t.Error("inf/nan")
	}
}

func TestBadFiles(t *testing.T) {
	good := func() []byte {
		var buf bytes.Buffer
		Write(&buf, map[string]Tensor{"a": FromFloat32([]int64{2}, []float32{1, 2})}, nil)
		return buf.Bytes()
	}
	withHeader := func(h string, data int) []byte {
		b := make([]byte, 8)
		binary.LittleEndian.PutUint64(b, uint64(len(h)))
		return append(append(b, h...), make([]byte, data)...)
	}
	cases := map[string]struct {
		b    []byte
		want string
	}{
		"short":        {[]byte{1, 2}, "shorter than"},
		"huge header":  {append([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}, good()[8:]...), "header length"},
		"not json":     {withHeader("{nope", 0), "not a JSON object"},
		"bad offsets":  {withHeader(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}}`, 8), "outside"},
		"size":         {withHeader(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, 8), "needs 12 bytes"},
		"dtype":        {withHeader(`{"a":{"dtype":"Q7","shape":[1],"data_offsets":[0,1]}}`, 1), "unsupported dtype"},
		"gap":          {withHeader(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, 2), "expected 0"},
		"unknown key":  {withHeader(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":1}}`, 1), "bad header entry"},
		"trailing":     {withHeader(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, 2), "cover 1"},
		"bad metadata": {withHeader(`{"__metadata__":{"a":1}}`, 0), "__metadata__"},
	}
	dir := t.TempDir()
	for name, c := range cases {
		_, err := Decode(c.b)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want it to mention %q", name, err, c.want)
		}
		// The header-only reader refuses the same files for the same reasons.
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		if err := os.WriteFile(path, c.b, 0o644); err != nil {
			t.Fatal(err)
		}
		x, err := OpenIndex(path)
		if err == nil {
			x.Close()
		}
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: OpenIndex err = %v, want it to name the file and mention %q", name, err, c.want)
		}
	}
	if err := Write(&bytes.Buffer{}, map[string]Tensor{"a": {DType: Float32, Shape: []int64{3}, Data: make([]byte, 4)}}, nil); err == nil {
		t.Error("Write accepted a tensor whose data does not fit its shape")
	}
}

func equalShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// An Index reads each tensor of the python-written file as ReadFile does,
// without reading the file whole.
func TestIndexReadsTensorsOneByOne(t *testing.T) {
	path := testenv.Testdata(t, "safetensors", "reference.safetensors")
	whole, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	x, err := OpenIndex(path)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if len(x.Entries) != len(whole.Tensors) || x.Metadata["format"] != whole.Metadata["format"] {
		t.Fatalf("index: %d entries, metadata %v; ReadFile: %d tensors, %v", len(x.Entries), x.Metadata, len(whole.Tensors), whole.Metadata)
	}
	for name, want := range whole.Tensors {
		got, ok, err := x.Tensor(name)
		if !ok || err != nil {
			t.Fatalf("%q: ok %v, err %v", name, ok, err)
		}
		if got.DType != want.DType || !equalShape(got.Shape, want.Shape) || !bytes.Equal(got.Data, want.Data) {
			t.Errorf("%q: index gives %s %v (%d bytes), ReadFile %s %v (%d bytes)", name, got.DType, got.Shape, len(got.Data), want.DType, want.Shape, len(want.Data))
		}
		streamed := make([]byte, x.Entries[name].Size)
		if _, err := io.ReadFull(x.Reader(x.Entries[name]), streamed); err != nil || !bytes.Equal(streamed, want.Data) {
			t.Errorf("%q: Reader gives different bytes (%v)", name, err)
		}
	}
	if _, ok, _ := x.Tensor("no such tensor"); ok {
		t.Error("a missing tensor was found")
	}
}

// WriteStream asks for each tensor's bytes in file order and writes the
// same file as Write; a tensor given the wrong number of bytes is refused.
func TestWriteStreamMatchesWrite(t *testing.T) {
	tensors := map[string]Tensor{
		"b.weight": FromFloat32([]int64{2, 3}, []float32{1, 2, 3, 4, 5, 6}),
		"a.bias":   FromFloat32([]int64{3}, []float32{-1, 0, 1}),
		"steps":    FromInt64([]int64{}, []int64{7}),
	}
	meta := map[string]string{"format": "pt"}
	var want, got bytes.Buffer
	if err := Write(&want, tensors, meta); err != nil {
		t.Fatal(err)
	}
	entries := map[string]Entry{}
	for n, x := range tensors {
		entries[n] = Entry{DType: x.DType, Shape: x.Shape}
	}
	var order []string
	err := WriteStream(&got, entries, meta, func(name string, w io.Writer) error {
		order = append(order, name)
		_, err := w.Write(tensors[name].Data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatal("WriteStream wrote another file than Write")
	}
	if strings.Join(order, ",") != "steps,a.bias,b.weight" {
		t.Errorf("data asked in order %v, want the file's (I64 before F32, then by name)", order)
	}
	err = WriteStream(&bytes.Buffer{}, entries, meta, func(name string, w io.Writer) error {
		_, err := w.Write(tensors[name].Data[1:])
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "bytes written") {
		t.Errorf("short tensor data: err = %v", err)
	}
}
