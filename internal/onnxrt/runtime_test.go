package onnxrt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/ortlib"
)

const f32 = onnxpb.TensorProto_FLOAT

func TestRunDynamicShapes(t *testing.T) {
	env := openEnv(t)
	if !strings.HasPrefix(env.Version(), "1.") {
		t.Fatalf("version %q", env.Version())
	}
	m := model(t, []*onnxpb.NodeProto{node("Add", []string{"a", "b"}, []string{"c"})},
		[]*onnxpb.ValueInfoProto{vi("a", f32, "batch", 3), vi("b", f32, 3)},
		[]*onnxpb.ValueInfoProto{vi("c", f32, "batch", 3)})
	s, err := env.NewSessionFromBytes(m, "add", SessionOptions{IntraOpThreads: 1, InterOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.Inputs()[0]; got.Name != "a" || got.DType != Float32 || got.Shape[0] != -1 || got.Shape[1] != 3 {
		t.Fatalf("input info %+v", got)
	}
	for _, batch := range []int64{1, 4} {
		a := make([]float32, batch*3)
		for i := range a {
			a[i] = float32(i)
		}
		out, err := s.Run(map[string]*Value{"a": mustF32(t, []int64{batch, 3}, a), "b": mustF32(t, []int64{3}, []float32{10, 20, 30})}, nil)
		if err != nil {
			t.Fatal(err)
		}
		c, err := out["c"].Float32s()
		if err != nil {
			t.Fatal(err)
		}
		if got := out["c"].Shape(); len(got) != 2 || got[0] != batch {
			t.Fatalf("shape %v", got)
		}
		for i := range c {
			if want := a[i] + []float32{10, 20, 30}[i%3]; c[i] != want {
				t.Fatalf("c[%d]=%v want %v", i, c[i], want)
			}
		}
		out["c"].Close()
	}
}

// The wrapper cannot auto-allocate a rank-0 output (its Shape.Validate
// rejects an empty shape); our Run can.
func TestScalarOutput(t *testing.T) {
	env := openEnv(t)
	m := model(t, []*onnxpb.NodeProto{node("ReduceSum", []string{"x"}, []string{"s"}, attrInt("keepdims", 0))},
		[]*onnxpb.ValueInfoProto{vi("x", f32, "n")}, []*onnxpb.ValueInfoProto{vi("s", f32)})

	// The defect, shown on the wrapper itself.
	raw, err := ort.NewDynamicAdvancedSessionWithONNXData(m, []string{"x"}, []string{"s"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	x, _ := ort.NewTensor(ort.NewShape(3), []float32{1, 2, 3.5})
	outs := []ort.Value{nil}
	if err := raw.Run([]ort.Value{x}, outs); err == nil {
		t.Log("note: the wrapper allocated a rank-0 output; the defect may be fixed upstream")
	} else {
		t.Logf("wrapper defect reproduced: %v", err)
	}
	x.Destroy()
	raw.Destroy()

	s, err := env.NewSessionFromBytes(m, "sum", SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.Run(map[string]*Value{"x": mustF32(t, []int64{3}, []float32{1, 2, 3.5})}, []string{"s"})
	if err != nil {
		t.Fatal(err)
	}
	defer out["s"].Close()
	if len(out["s"].Shape()) != 0 {
		t.Fatalf("rank %d", len(out["s"].Shape()))
	}
	if v, err := out["s"].Scalar(); err != nil || v != 6.5 {
		t.Fatalf("sum = %v, %v", v, err)
	}
	// A scalar input works too.
	sc, err := NewTensor(nil, []float32{2})
	if err != nil || len(sc.Shape()) != 0 {
		t.Fatalf("scalar tensor: %v %v", sc, err)
	}
	sc.Close()
}

// The wrapper's GetBoundOutputNames garbles names after the first; our
// Binding tracks names itself.
func TestBoundOutputNames(t *testing.T) {
	env := openEnv(t)
	m := model(t, []*onnxpb.NodeProto{
		node("Neg", []string{"x"}, []string{"first_output"}),
		node("Abs", []string{"x"}, []string{"second"}),
		node("Identity", []string{"x"}, []string{"third_one"}),
	}, []*onnxpb.ValueInfoProto{vi("x", f32, 2)},
		[]*onnxpb.ValueInfoProto{vi("first_output", f32, 2), vi("second", f32, 2), vi("third_one", f32, 2)})

	// The defect, shown on the wrapper itself.
	raw, err := ort.NewDynamicAdvancedSessionWithONNXData(m, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := raw.CreateIoBinding()
	if err != nil {
		t.Fatal(err)
	}
	x, _ := ort.NewTensor(ort.NewShape(2), []float32{-1, 2})
	y1, _ := ort.NewEmptyTensor[float32](ort.NewShape(2))
	y2, _ := ort.NewEmptyTensor[float32](ort.NewShape(2))
	y3, _ := ort.NewEmptyTensor[float32](ort.NewShape(2))
	rb.BindInput("x", x)
	rb.BindOutput("first_output", y1)
	rb.BindOutput("second", y2)
	rb.BindOutput("third_one", y3)
	// Depending on the name lengths the wrapper returns wrong names or
	// slices out of range (a panic, recovered here only to show it).
	wrapperNames, panicked := func() (names []string, panicked any) {
		defer func() { panicked = recover() }()
		names, _ = rb.GetBoundOutputNames()
		return names, nil
	}()
	if panicked == nil && len(wrapperNames) == 3 && wrapperNames[1] == "second" && wrapperNames[2] == "third_one" {
		t.Log("note: the wrapper returned correct names; the defect may be fixed upstream")
	} else {
		t.Logf("wrapper defect reproduced: names %q, panic %v", wrapperNames, panicked)
	}
	rb.Destroy()
	for _, v := range []ort.Value{x, y1, y2, y3} {
		v.Destroy()
	}
	raw.Destroy()

	s, err := env.NewSessionFromBytes(m, "three", SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b, err := s.NewBinding()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.BindInput("x", mustF32(t, []int64{2}, []float32{-1, 2})); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"third_one", "first_output", "second"} {
		if err := b.BindOutputToHost(n); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Run(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(b.OutputNames(), ","); got != "third_one,first_output,second" {
		t.Fatalf("names %s", got)
	}
	outs, err := b.Outputs()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]float32{"first_output": {1, -2}, "second": {1, 2}, "third_one": {-1, 2}}
	for n, w := range want {
		got, err := outs[n].Float32s()
		if err != nil || got[0] != w[0] || got[1] != w[1] {
			t.Fatalf("%s = %v (%v), want %v", n, got, err, w)
		}
		outs[n].Close()
	}
}

func TestDTypes(t *testing.T) {
	env := openEnv(t)
	cases := []struct {
		dt onnxpb.TensorProto_DataType
		mk func() (*Value, error)
	}{
		{onnxpb.TensorProto_FLOAT16, func() (*Value, error) { return NewTensorRaw(Float16, []int64{2}, []byte{0x00, 0x3c, 0x00, 0xc0}) }}, // 1, -2
		{onnxpb.TensorProto_BFLOAT16, func() (*Value, error) { return NewTensorRaw(BFloat16, []int64{2}, []byte{0x80, 0x3f, 0x00, 0xc0}) }},
		{onnxpb.TensorProto_INT64, func() (*Value, error) { return NewTensor([]int64{2}, []int64{1, -2}) }},
		{onnxpb.TensorProto_INT32, func() (*Value, error) { return NewTensor([]int64{2}, []int32{1, -2}) }},
		{onnxpb.TensorProto_DOUBLE, func() (*Value, error) { return NewTensor([]int64{2}, []float64{1, -2}) }},
		{onnxpb.TensorProto_BOOL, func() (*Value, error) { return NewTensor([]int64{2}, []bool{true, false}) }},
	}
	for _, c := range cases {
		t.Run(c.dt.String(), func(t *testing.T) {
			m := model(t, []*onnxpb.NodeProto{
				node("Identity", []string{"x"}, []string{"same"}),
				node("Cast", []string{"x"}, []string{"asfloat"}, attrInt("to", int64(f32))),
			}, []*onnxpb.ValueInfoProto{vi("x", c.dt, 2)},
				[]*onnxpb.ValueInfoProto{vi("same", c.dt, 2), vi("asfloat", f32, 2)})
			s, err := env.NewSessionFromBytes(m, c.dt.String(), SessionOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			x, err := c.mk()
			if err != nil {
				t.Fatal(err)
			}
			defer x.Close()
			out, err := s.Run(map[string]*Value{"x": x}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if out["same"].DType() != DType(c.dt) {
				t.Fatalf("dtype %v", out["same"].DType())
			}
			in, _ := x.Bytes()
			back, _ := out["same"].Bytes()
			if string(in) != string(back) {
				t.Fatalf("round trip %v != %v", back, in)
			}
			f, _ := out["asfloat"].Float32s()
			want := []float32{1, -2}
			if c.dt == onnxpb.TensorProto_BOOL {
				want = []float32{1, 0}
			}
			if f[0] != want[0] || f[1] != want[1] {
				t.Fatalf("cast to float: %v want %v", f, want)
			}
			for _, v := range out {
				v.Close()
			}
		})
	}
}

func TestRunIntoPreallocated(t *testing.T) {
	env := openEnv(t)
	m := model(t, []*onnxpb.NodeProto{node("Mul", []string{"a", "a"}, []string{"sq"})},
		[]*onnxpb.ValueInfoProto{vi("a", f32, "n")}, []*onnxpb.ValueInfoProto{vi("sq", f32, "n")})
	s, err := env.NewSessionFromBytes(m, "sq", SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, _ := NewZeros(Float32, []int64{3})
	defer out.Close()
	if err := s.RunInto(map[string]*Value{"a": mustF32(t, []int64{3}, []float32{1, 2, 3})}, map[string]*Value{"sq": out}); err != nil {
		t.Fatal(err)
	}
	got, _ := out.Float32s()
	if got[0] != 1 || got[1] != 4 || got[2] != 9 {
		t.Fatalf("%v", got)
	}
}

// Device-resident values: parameters updated in place between runs through
// a binding, double-buffered, with no host copies (CPU memory here; the same
// code keeps them on the GPU with a CUDA session).
func TestDeviceValuesAndBinding(t *testing.T) {
	env := openEnv(t)
	m := model(t, []*onnxpb.NodeProto{
		node("Mul", []string{"w", "half"}, []string{"w_new"}),
		node("ReduceSum", []string{"w_new"}, []string{"total"}, attrInt("keepdims", 0)),
	}, []*onnxpb.ValueInfoProto{vi("w", f32, 4), vi("half", f32)},
		[]*onnxpb.ValueInfoProto{vi("w_new", f32, 4), vi("total", f32)})
	s, err := env.NewSessionFromBytes(m, "update", SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, err := s.Alloc(Float32, []int64{4})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	bb, _ := s.Alloc(Float32, []int64{4})
	defer bb.Close()
	if a.Device() != CPU {
		t.Fatalf("device %v", a.Device())
	}
	if err := a.SetFloat32s([]float32{8, 16, 32, 64}); err != nil {
		t.Fatal(err)
	}
	half := mustF32(t, nil, []float32{0.5})
	cur, next := a, bb
	for step := 0; step < 3; step++ {
		b, err := s.NewBinding()
		if err != nil {
			t.Fatal(err)
		}
		b.BindInput("w", cur)
		b.BindInput("half", half)
		b.BindOutput("w_new", next)
		b.BindOutputToHost("total")
		if err := b.Run(); err != nil {
			t.Fatal(err)
		}
		outs, err := b.Outputs()
		if err != nil {
			t.Fatal(err)
		}
		total, _ := outs["total"].Scalar()
		if want := 120.0 / float64(int(2)<<step); total != want {
			t.Fatalf("step %d total %v want %v", step, total, want)
		}
		for _, v := range outs {
			v.Close()
		}
		b.Close()
		cur, next = next, cur
	}
	final, _ := cur.Float32s()
	if final[0] != 1 || final[3] != 8 {
		t.Fatalf("final %v", final)
	}
}

func TestBadInput(t *testing.T) {
	env := openEnv(t)
	dir := t.TempDir()

	t.Run("missing library", func(t *testing.T) {
		_, err := Open(filepath.Join(dir, "nope.so"))
		if !errors.Is(err, ortlib.ErrNotFound) || !strings.Contains(err.Error(), "fetch-onnxruntime.sh") {
			t.Fatalf("got %v", err)
		}
		t.Setenv(ortlib.EnvVar, filepath.Join(dir, "missing.so"))
		if _, err := ortlib.Find(""); !errors.Is(err, ortlib.ErrNotFound) || !strings.Contains(err.Error(), ortlib.EnvVar) {
			t.Fatalf("env var: got %v", err)
		}
	})

	if _, err := exec.LookPath("gcc"); err != nil {
		t.Fatalf("gcc is needed to build fake libraries for this test: %v", err)
	}
	build := func(name, src string) string {
		c := filepath.Join(dir, name+".c")
		so := filepath.Join(dir, name+".so")
		if err := os.WriteFile(c, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("gcc", "-shared", "-fPIC", "-o", so, c).CombinedOutput(); err != nil {
			t.Fatalf("gcc: %v\n%s", err, out)
		}
		return so
	}
	t.Run("library too old", func(t *testing.T) {
		so := build("oldort", `
typedef struct { const void *(*GetApi)(unsigned); const char *(*GetVersionString)(void); } Base;
static const void *get_api(unsigned v) { return v <= 16 ? (const void *)1 : 0; }
static const char *version(void) { return "1.16.3"; }
static Base base = {get_api, version};
const Base *OrtGetApiBase(void) { return &base; }
`)
		_, err := loadLibrary(so)
		if !errors.Is(err, ErrLibraryTooOld) || !strings.Contains(err.Error(), "1.16.3") || !strings.Contains(err.Error(), MinVersion) {
			t.Fatalf("got %v", err)
		}
		// Through Open, a second library in the same process is refused plainly.
		if _, err := Open(so); err == nil || !strings.Contains(err.Error(), "already loaded") {
			t.Fatalf("Open of a second library: %v", err)
		}
	})
	t.Run("not an onnxruntime library", func(t *testing.T) {
		so := build("notort", `int something(void) { return 1; }`)
		if _, err := loadLibrary(so); !errors.Is(err, ErrLibraryUnusable) || !strings.Contains(err.Error(), "not an ONNX Runtime library") {
			t.Fatalf("got %v", err)
		}
		junk := filepath.Join(dir, "junk.so")
		os.WriteFile(junk, []byte("not an ELF file"), 0o644)
		if _, err := loadLibrary(junk); !errors.Is(err, ErrLibraryUnusable) || !strings.Contains(err.Error(), "cannot load") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("corrupt model", func(t *testing.T) {
		p := filepath.Join(dir, "corrupt.onnx")
		os.WriteFile(p, []byte("\x08\x07garbage that is not a protobuf model"), 0o644)
		_, err := env.NewSession(p, SessionOptions{})
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Fatalf("got %v", err)
		}
		if _, err := env.NewSession(filepath.Join(dir, "absent.onnx"), SessionOptions{}); err == nil || !strings.Contains(err.Error(), "absent.onnx") {
			t.Fatalf("got %v", err)
		}
	})
	m := model(t, []*onnxpb.NodeProto{node("Identity", []string{"x"}, []string{"y"})},
		[]*onnxpb.ValueInfoProto{vi("x", f32, 1)}, []*onnxpb.ValueInfoProto{vi("y", f32, 1)})
	t.Run("unknown provider", func(t *testing.T) {
		_, err := env.NewSessionFromBytes(m, "id", SessionOptions{Device: "tpu:0"})
		if !errors.Is(err, fault.Settings) || !strings.Contains(err.Error(), "cuda:N") {
			t.Fatalf("got %v", err)
		}
		if _, err := ParseDevice("cuda:x"); !errors.Is(err, fault.Settings) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("cuda without a cuda build", func(t *testing.T) {
		// The CPU build lists CUDAExecutionProvider but lacks its provider
		// library; either way the request must fail, never fall back.
		if _, err := os.Stat(filepath.Join(filepath.Dir(env.Path()), "libonnxruntime_providers_cuda.so")); err == nil {
			t.Skip("a CUDA provider library sits beside this ONNX Runtime")
		}
		_, err := env.NewSessionFromBytes(m, "id", SessionOptions{Device: "cuda:0"})
		if !errors.Is(err, ErrProviderUnavailable) || !errors.Is(err, fault.Runtime) || !strings.Contains(err.Error(), "CUDA") {
			t.Fatalf("got %v", err)
		}
		t.Logf("error: %v", err)
	})
	t.Run("wrong inputs", func(t *testing.T) {
		s, err := env.NewSessionFromBytes(m, "id", SessionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		_, err = s.Run(map[string]*Value{"nope": mustF32(t, []int64{1}, []float32{1})}, nil)
		if err == nil || !strings.Contains(err.Error(), "nope") {
			t.Fatalf("got %v", err)
		}
		if _, err := NewTensor([]int64{2, 2}, []float32{1}); err == nil {
			t.Fatal("shape/data mismatch accepted")
		}
	})
}

// Sessions without the CPU arena run the same graphs.
func TestNoCPUArena(t *testing.T) {
	env := openEnv(t)
	m := model(t, []*onnxpb.NodeProto{node("Mul", []string{"a", "a"}, []string{"sq"})},
		[]*onnxpb.ValueInfoProto{vi("a", f32, "n")}, []*onnxpb.ValueInfoProto{vi("sq", f32, "n")})
	s, err := env.NewSessionFromBytes(m, "sq", SessionOptions{NoCPUArena: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.Run(map[string]*Value{"a": mustF32(t, []int64{2}, []float32{3, -4})}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer out["sq"].Close()
	if got, _ := out["sq"].Float32s(); got[0] != 9 || got[1] != 16 {
		t.Fatalf("%v", got)
	}
}

// CPU sessions allocate from one arena registered with the environment,
// without memory patterns: what one session's run left in the arena serves
// the next run of any session, so the arena holds the largest run's needs
// rather than each session's peak (or, with memory patterns, each
// session's peak again as one planned block).
func TestCPUSessionsShareOneArena(t *testing.T) {
	env := openEnv(t)
	ins := []*onnxpb.ValueInfoProto{vi("a", f32, "n")}
	outs := []*onnxpb.ValueInfoProto{vi("y", f32)}
	// Two intermediates alive at once, then a scalar out.
	open := func(name string, op string) *Session {
		m := model(t, []*onnxpb.NodeProto{
			node(op, []string{"a", "a"}, []string{"x1"}),
			node("Add", []string{"a", "a"}, []string{"x2"}),
			node("Mul", []string{"x1", "x2"}, []string{"x3"}),
			node("ReduceSum", []string{"x3"}, []string{"y"}, attrInt("keepdims", 0)),
		}, ins, outs)
		s, err := env.NewSessionFromBytes(m, name, SessionOptions{IntraOpThreads: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	sa, sb := open("a", "Mul"), open("b", "Sub")
	const n = 1 << 20 // 4 MiB intermediates, far above the arena's first chunk
	a := mustF32(t, []int64{n}, make([]float32, n))
	defer a.Close()
	run := func(s *Session) {
		t.Helper()
		out, err := s.Run(map[string]*Value{"a": a}, nil)
		if err != nil {
			t.Fatal(err)
		}
		out["y"].Close()
	}
	stats := func(s *Session) map[string]int64 {
		t.Helper()
		st, err := s.ArenaStats()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := st["TotalAllocated"]; !ok {
			t.Fatalf("%s: no arena statistics: %v", s.name, st)
		}
		return st
	}
	run(sa)
	afterA, seenByB := stats(sa), stats(sb)
	if afterA["NumAllocs"] != seenByB["NumAllocs"] || afterA["TotalAllocated"] != seenByB["TotalAllocated"] {
		t.Fatalf("the sessions have different arenas: a %v, b %v", afterA, seenByB)
	}
	if afterA["TotalAllocated"] < 2*4*n {
		t.Fatalf("the run took %d bytes from the arena, want at least its two intermediates (%d)", afterA["TotalAllocated"], 2*4*n)
	}
	run(sa)
	run(sb)
	run(sb)
	if after := stats(sb); after["TotalAllocated"] != afterA["TotalAllocated"] {
		t.Fatalf("the arena grew from %d to %d bytes: later runs did not reuse the first run's blocks", afterA["TotalAllocated"], after["TotalAllocated"])
	}
}

// Fill reads a tensor's bytes from a reader into its own memory, refusing
// a short read; Zero clears it.
func TestFillAndZero(t *testing.T) {
	openEnv(t)
	v := mustF32(t, []int64{2, 2}, []float32{9, 9, 9, 9})
	defer v.Close()
	var raw []byte
	for _, f := range []float32{1, -2, 3.5, 4} {
		raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(f))
	}
	if err := v.Fill(bytes.NewReader(raw)); err != nil {
		t.Fatal(err)
	}
	if got, _ := v.Float32s(); got[0] != 1 || got[1] != -2 || got[2] != 3.5 || got[3] != 4 {
		t.Fatalf("after Fill: %v", got)
	}
	if err := v.Fill(bytes.NewReader(raw[:12])); err == nil || !strings.Contains(err.Error(), "needs 16 bytes") {
		t.Fatalf("short read: %v", err)
	}
	if err := v.Zero(); err != nil {
		t.Fatal(err)
	}
	if got, _ := v.Float32s(); got[0] != 0 || got[1] != 0 || got[2] != 0 || got[3] != 0 {
		t.Fatalf("after Zero: %v", got)
	}
}

// TestRowsView: a view of rows reads and writes the parent's memory, has
// the rows' shape, runs as a session input, and refuses rows outside.
func TestRowsView(t *testing.T) {
	env := openEnv(t)
	data := []float32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	v, err := NewTensor([]int64{4, 1, 3}, data)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	view, err := v.RowsView(1, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer view.Close()
	if got := view.Shape(); !slices.Equal(got, []int64{2, 1, 3}) {
		t.Fatalf("view shape %v", got)
	}
	got, _ := view.Float32s()
	if !slices.Equal(got, data[3:9]) {
		t.Fatalf("view holds %v, want %v", got, data[3:9])
	}
	if err := view.SetFloat32s([]float32{-3, -4, -5, -6, -7, -8}); err != nil {
		t.Fatal(err)
	}
	all, _ := v.Float32s()
	if want := []float32{0, 1, 2, -3, -4, -5, -6, -7, -8, 9, 10, 11}; !slices.Equal(all, want) {
		t.Fatalf("parent holds %v after writing the view, want %v", all, want)
	}
	m := model(t, []*onnxpb.NodeProto{node("Neg", []string{"x"}, []string{"y"})},
		[]*onnxpb.ValueInfoProto{vi("x", onnxpb.TensorProto_FLOAT, "r", 1, 3)}, []*onnxpb.ValueInfoProto{vi("y", onnxpb.TensorProto_FLOAT, "r", 1, 3)})
	s, err := env.NewSessionFromBytes(m, "neg", SessionOptions{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	outs, err := s.Run(map[string]*Value{"x": view}, []string{"y"})
	if err != nil {
		t.Fatal(err)
	}
	defer outs["y"].Close()
	if y, _ := outs["y"].Float32s(); !slices.Equal(y, []float32{3, 4, 5, 6, 7, 8}) {
		t.Fatalf("a session read %v from the view", y)
	}
	for _, r := range [][2]int64{{-1, 1}, {0, 5}, {2, 2}, {3, 1}} {
		if w, err := v.RowsView(r[0], r[1]); err == nil {
			w.Close()
			t.Errorf("rows [%d, %d) of 4: no error", r[0], r[1])
		}
	}
	scalar, _ := NewTensor(nil, []float32{1})
	defer scalar.Close()
	if _, err := scalar.RowsView(0, 1); err == nil {
		t.Error("a view of a scalar: no error")
	}
}

// TestPermuteRows: in place, row i becomes the old row rows[i], for random
// selections (repeats and rows left out), shifts, swaps and cycles, against
// a gather into a new slice.
func TestPermuteRows(t *testing.T) {
	openEnv(t)
	r := rand.New(rand.NewPCG(8, 9))
	var scratch []byte
	cases := [][]int{{0, 1, 2, 3}, {0, 0, 1, 2}, {1, 0, 3, 2}, {1, 2, 3, 0}, {3, 3, 3, 3}, {2, 0, 1, 3}}
	for range 300 {
		n := 1 + r.IntN(12)
		rows := make([]int, n)
		switch r.IntN(3) {
		case 0:
			for i := range rows {
				rows[i] = r.IntN(n)
			}
		case 1:
			copy(rows, r.Perm(n))
		default: // beam-search-like: each group of 4 continues rows of its own group
			for i := range rows {
				g := i / 4 * 4
				rows[i] = g + r.IntN(min(4, n-g))
			}
		}
		cases = append(cases, rows)
	}
	for _, rows := range cases {
		n, width := len(rows), 1+r.IntN(5)
		data := make([]float32, n*width)
		for i := range data {
			data[i] = float32(i)
		}
		v, err := NewTensor([]int64{int64(n), 1, int64(width)}, data)
		if err != nil {
			t.Fatal(err)
		}
		plan, err := PlanRowPermutation(rows)
		if err == nil {
			err = v.PermuteRows(plan, &scratch)
		}
		if err != nil {
			t.Fatal(err)
		}
		got, _ := v.Float32s()
		v.Close()
		want := make([]float32, 0, n*width)
		for _, src := range rows {
			want = append(want, data[src*width:(src+1)*width]...)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("rows %v: got %v, want %v", rows, got, want)
		}
	}
	v, _ := NewTensor([]int64{2, 3}, []float32{1, 2, 3, 4, 5, 6})
	defer v.Close()
	for _, bad := range [][]int{{0}, {0, 2}, {-1, 0}} {
		plan, err := PlanRowPermutation(bad)
		if err == nil {
			err = v.PermuteRows(plan, &scratch)
		}
		if err == nil {
			t.Errorf("rows %v of 2: no error", bad)
		}
	}
}

// TestPermuteRowsPrefix: with only the first positions along an axis
// held, rows are permuted as a gather would, over those positions only; the
// positions beyond are not touched, nor the leading ones a row is told it
// shares with the row it takes over.
func TestPermuteRowsPrefix(t *testing.T) {
	openEnv(t)
	r := rand.New(rand.NewPCG(3, 4))
	var scratch []byte
	for range 200 {
		rows, heads, room, size := 1+r.IntN(9), 1+r.IntN(3), 1+r.IntN(6), 1+r.IntN(4)
		used := r.IntN(room + 1)
		sel := make([]int, rows)
		for i := range sel {
			sel[i] = r.IntN(rows)
		}
		shape := []int64{int64(rows), int64(heads), int64(room), int64(size)}
		data := make([]float32, rows*heads*room*size)
		for i := range data {
			data[i] = float32(i)
		}
		v, err := NewTensor(shape, data)
		if err != nil {
			t.Fatal(err)
		}
		// half the cases skip leading positions a row shares with the one
		// it takes over (SkipLeading): those keep the row's own values
		lead := make([]int, rows*rows)
		if r.IntN(2) == 0 {
			for i := range lead {
				lead[i] = r.IntN(room + 2)
			}
		}
		plan, err := PlanRowPermutation(sel)
		if err == nil {
			plan.SkipLeading(func(dst, src int) int { return lead[dst*rows+src] })
			err = v.PermuteRowsPrefix(plan, 2, int64(used), &scratch)
		}
		if err != nil {
			t.Fatal(err)
		}
		got, _ := v.Float32s()
		v.Close()
		at := func(row, h, p, x int) int { return ((row*heads+h)*room+p)*size + x }
		for i, src := range sel {
			for h := range heads {
				for p := range room {
					for x := range size {
						want := data[at(i, h, p, x)] // beyond the positions held, or shared: untouched
						if p < used && p >= lead[i*rows+src] {
							want = data[at(src, h, p, x)]
						}
						if got[at(i, h, p, x)] != want {
							t.Fatalf("rows %v, %d of %d positions held: [%d %d %d %d] = %v, want %v", sel, used, room, i, h, p, x, got[at(i, h, p, x)], want)
						}
					}
				}
			}
		}
	}
	v, _ := NewTensor([]int64{2, 1, 3, 1}, []float32{1, 2, 3, 4, 5, 6})
	defer v.Close()
	plan, _ := PlanRowPermutation([]int{1, 0})
	for _, bad := range []struct {
		axis int
		used int64
	}{{2, 4}, {2, -1}, {4, 0}, {-1, 0}} {
		if err := v.PermuteRowsPrefix(plan, bad.axis, bad.used, &scratch); err == nil {
			t.Errorf("%d positions along axis %d of shape [2 1 3 1]: no error", bad.used, bad.axis)
		}
	}
}

// TestCopyPrefix: a tensor is written into the first positions of a larger
// one along an axis, element for element, the rest left as it was; shapes
// that do not fit are refused.
func TestCopyPrefix(t *testing.T) {
	openEnv(t)
	src, _ := NewTensor([]int64{2, 2, 1, 3}, []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	defer src.Close()
	dst, _ := NewTensor([]int64{2, 2, 2, 3}, slices.Repeat([]float32{-1}, 24))
	defer dst.Close()
	if err := dst.CopyPrefix(src, 2); err != nil {
		t.Fatal(err)
	}
	got, _ := dst.Float32s()
	want := []float32{1, 2, 3, -1, -1, -1, 4, 5, 6, -1, -1, -1, 7, 8, 9, -1, -1, -1, 10, 11, 12, -1, -1, -1}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for _, bad := range []struct {
		shape []int64
		axis  int
	}{{[]int64{2, 2, 3, 3}, 2}, {[]int64{2, 1, 1, 3}, 2}, {[]int64{2, 2, 1, 3}, 0}, {[]int64{2, 2, 1, 3}, 4}} {
		s, _ := NewZeros(Float32, bad.shape)
		if err := dst.CopyPrefix(s, bad.axis); err == nil {
			t.Errorf("shape %v along axis %d into [2 2 2 3]: no error", bad.shape, bad.axis)
		}
		s.Close()
	}
	i64, _ := NewZeros(Int64, []int64{2, 2, 1, 3})
	defer i64.Close()
	if err := dst.CopyPrefix(i64, 2); err == nil {
		t.Error("int64 into float32: no error")
	}
}
