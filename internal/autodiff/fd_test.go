package autodiff

import (
	"fmt"
	"math"
	"math/rand"
	"sort"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/testenv"
)

// The finite-difference harness: a case builds a tiny forward graph with
// the IR builder; the harness appends loss = sum_i ReduceSum(out_i * W_i)
// with random constant weights W_i, runs Backward, and compares every
// gradient element computed by ONNX Runtime with a central difference of
// the loss, also computed by ONNX Runtime.

type fdCase struct {
	name string
	op   string // the op whose rule is checked (for the error table)
	// dtype is the element type of the float inputs; 0 = float64, falling
	// back to float32 when ONNX Runtime's CPU provider lacks a float64
	// kernel for the op.
	dtype  onnx.DType
	opset  int64 // default 17
	build  func(b *caseBuilder)
	params []string // wrt subset; nil = every float input
}

type caseBuilder struct {
	*onnx.GraphBuilder
	rng      *rand.Rand
	dt       onnx.DType
	feeds    map[string]fdTensor
	intFeeds map[string]intTensor // integer inputs, fed as they are
	order    []string
	outs     []string
	domains  map[string]int64
}

type intTensor struct {
	shape []int64
	data  []int64
}

// intInput declares an int64 input (a dropout seed, indices) with a value.
func (b *caseBuilder) intInput(name string, shape []int64, data ...int64) string {
	dims := make([]onnx.Dim, len(shape))
	for i, d := range shape {
		dims[i] = onnx.D(d)
	}
	b.AddInput(name, onnx.Int64, dims...)
	b.intFeeds[name] = intTensor{shape: shape, data: data}
	return name
}

type fdTensor struct {
	shape []int64
	data  []float64
}

// dims draws k random sizes in [lo, hi].
func (b *caseBuilder) dims(k int, lo, hi int64) []int64 {
	d := make([]int64, k)
	for i := range d {
		d[i] = lo + b.rng.Int63n(hi-lo+1)
	}
	return d
}

// input declares a float input of the given actual shape; decl names the
// dims that are declared symbolic ("" keeps a dim static).
func (b *caseBuilder) input(name string, shape []int64, decl ...string) string {
	return b.inputRange(name, shape, -1, 1, decl...)
}

func (b *caseBuilder) inputRange(name string, shape []int64, lo, hi float64, decl ...string) string {
	dims := make([]onnx.Dim, len(shape))
	for i, d := range shape {
		dims[i] = onnx.D(d)
		if i < len(decl) && decl[i] != "" {
			dims[i] = onnx.Sym(decl[i])
		}
	}
	b.AddInput(name, b.dt, dims...)
	n := onnx.NumElements(shape)
	data := make([]float64, n)
	for i := range data {
		data[i] = lo + (hi-lo)*b.rng.Float64()
	}
	b.feeds[name] = fdTensor{shape: shape, data: data}
	b.order = append(b.order, name)
	return name
}

// away draws inputs with |x| in [0.5, 1.5] and random sign.
func (b *caseBuilder) away(name string, shape []int64, decl ...string) string {
	x := b.inputRange(name, shape, 0.5, 1.5, decl...)
	for i := range b.feeds[name].data {
		if b.rng.Intn(2) == 0 {
			b.feeds[name].data[i] *= -1
		}
	}
	return x
}

func (b *caseBuilder) ints(v ...int64) string { return b.ConstInt64Vec(v...) }

func (b *caseBuilder) intsShaped(v []int64, dims ...int64) string { return b.ConstInt64s(v, dims) }

func (b *caseBuilder) scalar(v float64) string {
	s, err := b.ConstScalar(b.dt, v)
	if err != nil {
		panic(err)
	}
	return s
}

func (b *caseBuilder) boolConst(shape []int64) string {
	n := onnx.NumElements(shape)
	v := make([]bool, n)
	for i := range v {
		v[i] = b.rng.Intn(2) == 0
	}
	return b.Const(onnx.MustTensor("", shape, v))
}

func (b *caseBuilder) out(names ...string) { b.outs = append(b.outs, names...) }

func (b *caseBuilder) ms(op string, ins []string, n int, attrs ...onnx.Attr) []string {
	b.domains["com.microsoft"] = 1
	return b.OpDomain("com.microsoft", op, ins, n, attrs...)
}

// --- runtime plumbing ------------------------------------------------------

var (
	envOnce sync.Once
	envVal  *onnxrt.Env
	envErr  error
)

func ortEnv(t testing.TB) *onnxrt.Env {
	t.Helper()
	lib := testenv.ORTLibrary(t)
	envOnce.Do(func() { envVal, envErr = onnxrt.Open(lib) })
	if envErr != nil {
		t.Fatalf("open ONNX Runtime: %v", envErr)
	}
	return envVal
}

type session struct {
	s  *onnxrt.Session
	dt onnx.DType
}

func newSession(t *testing.T, g *onnxpb.GraphProto, opsets map[string]int64) (*session, error) {
	m := &onnxpb.ModelProto{IrVersion: proto.Int64(9), Graph: g}
	doms := make([]string, 0, len(opsets))
	for d := range opsets {
		doms = append(doms, d)
	}
	sort.Strings(doms)
	for _, d := range doms {
		m.OpsetImport = append(m.OpsetImport, &onnxpb.OperatorSetIdProto{Domain: proto.String(d), Version: proto.Int64(opsets[d])})
	}
	data, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ortEnv(t).NewSessionFromBytes(data, g.GetName(), onnxrt.SessionOptions{IntraOpThreads: 1, InterOpThreads: 1})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { s.Close() })
	return &session{s: s}, nil
}

func (s *session) run(t *testing.T, dt onnx.DType, feeds map[string]fdTensor, names []string, ints ...map[string]intTensor) map[string]fdTensor {
	t.Helper()
	in := map[string]*onnxrt.Value{}
	for _, m := range ints {
		for k, v := range m {
			val, err := onnxrt.NewTensor(v.shape, v.data)
			if err != nil {
				t.Fatal(err)
			}
			defer val.Close()
			in[k] = val
		}
	}
	for k, v := range feeds {
		var val *onnxrt.Value
		var err error
		if dt == onnx.Float32 {
			f := make([]float32, len(v.data))
			for i, x := range v.data {
				f[i] = float32(x)
			}
			val, err = onnxrt.NewTensor(v.shape, f)
		} else {
			val, err = onnxrt.NewTensor(v.shape, v.data)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer val.Close()
		in[k] = val
	}
	outs, err := s.s.Run(in, names)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	res := map[string]fdTensor{}
	for k, v := range outs {
		var data []float64
		switch v.DType() {
		case onnxrt.Float32:
			f, err := v.Float32s()
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range f {
				data = append(data, float64(x))
			}
		case onnxrt.Float64:
			if data, err = v.Float64s(); err != nil {
				t.Fatal(err)
			}
		case onnxrt.Bool:
			bs, err := v.Bools()
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range bs {
				data = append(data, float64(boolInt(x)))
			}
		default:
			t.Fatalf("output %s has type %v", k, v.DType())
		}
		res[k] = fdTensor{shape: v.Shape(), data: data}
		v.Close()
	}
	return res
}

// --- the check ---------------------------------------------------------------

type fdResult struct {
	op       string
	dtype    onnx.DType
	maxErr   float64 // max |analytic - fd| / max(1, |fd|)
	elements int
}

var (
	fdMu      sync.Mutex
	fdResults = map[string]*fdResult{}
)

func record(op string, dt onnx.DType, err float64, n int) {
	fdMu.Lock()
	defer fdMu.Unlock()
	key := op + "/" + onnx.DTypeName(dt)
	r := fdResults[key]
	if r == nil {
		r = &fdResult{op: op, dtype: dt}
		fdResults[key] = r
	}
	r.maxErr = math.Max(r.maxErr, err)
	r.elements += n
}

func isMissingKernel(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "Could not find an implementation") || strings.Contains(err.Error(), "NOT_IMPLEMENTED"))
}

func runFD(t *testing.T, c fdCase, seed int64) {
	t.Helper()
	dt := c.dtype
	if dt == 0 {
		dt = onnx.Float64
	}
	err := runFDType(t, c, seed, dt)
	if isMissingKernel(err) && c.dtype == 0 {
		t.Logf("%s: no float64 kernel, checking in float32", c.name)
		err = runFDType(t, c, seed, onnx.Float32)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func runFDType(t *testing.T, c fdCase, seed int64, dt onnx.DType) error {
	t.Helper()
	opset := c.opset
	if opset == 0 {
		opset = 17
	}
	b := &caseBuilder{GraphBuilder: onnx.NewGraphBuilder(nil), rng: rand.New(rand.NewSource(seed)), dt: dt,
		feeds: map[string]fdTensor{}, intFeeds: map[string]intTensor{}, domains: map[string]int64{"": opset}}
	b.Consts = onnx.ConstNode
	c.build(b)
	g := b.Graph()
	g.Name = proto.String(c.name)
	// Forward once to learn the output shapes.
	for _, o := range b.outs {
		b.AddOutputInfo(o, onnx.TypeInfo{Elem: dt})
	}
	fwd, err := newSession(t, proto.Clone(g).(*onnxpb.GraphProto), b.domains)
	if err != nil {
		return err
	}
	outs := fwd.run(t, dt, b.feeds, b.outs, b.intFeeds)
	// loss = sum_i ReduceSum(out_i * W_i)
	g.Output = nil
	var terms []string
	for _, o := range b.outs {
		shape := outs[o].shape
		w := make([]float64, onnx.NumElements(shape))
		for i := range w {
			w[i] = b.rng.Float64()*2 - 1
		}
		var wt *onnxpb.TensorProto
		if dt == onnx.Float32 {
			f := make([]float32, len(w))
			for i := range w {
				f[i] = float32(w[i])
			}
			wt = onnx.MustTensor("", shape, f)
		} else {
			wt = onnx.MustTensor("", shape, w)
		}
		prod := b.Op("Mul", []string{o, b.Const(wt)})
		terms = append(terms, b.Op("ReduceSum", []string{prod}, onnx.AttrInt("keepdims", 0)))
	}
	loss := terms[0]
	if len(terms) > 1 {
		loss = b.Op("Sum", terms)
	}
	loss = b.Node("Identity", []string{loss}, []string{"loss"}).Output[0]
	b.AddOutput("loss", dt)
	lossOnly, err := newSession(t, proto.Clone(g).(*onnxpb.GraphProto), b.domains)
	if err != nil {
		return err
	}

	wrt := c.params
	if wrt == nil {
		wrt = b.order
	}
	gg := proto.Clone(g).(*onnxpb.GraphProto)
	opsets := map[string]int64{}
	for k, v := range b.domains {
		opsets[k] = v
	}
	grads, err := Backward(gg, opsets, "loss", wrt, Options{})
	if err != nil {
		return fmt.Errorf("%s: Backward: %w", c.name, err)
	}
	gb := onnx.NewGraphBuilder(gg)
	var names []string
	for _, w := range wrt {
		gname, ok := grads[w]
		if !ok {
			return fmt.Errorf("%s: no gradient for %s", c.name, w)
		}
		gb.AddOutputInfo(gname, onnx.TypeInfo{Elem: dt})
		names = append(names, gname)
	}
	bwd, err := newSession(t, gg, opsets)
	if err != nil {
		return fmt.Errorf("%s: backward graph rejected: %w", c.name, err)
	}
	got := bwd.run(t, dt, b.feeds, append([]string{"loss"}, names...), b.intFeeds)

	h := 1e-6
	tol := 1e-6
	if dt == onnx.Float32 {
		h, tol = 1e-2, 1e-2
	}
	worst := 0.0
	count := 0
	for k, w := range wrt {
		gt := got[names[k]]
		in := b.feeds[w]
		if fmt.Sprint(gt.shape) != fmt.Sprint(in.shape) {
			return fmt.Errorf("%s: gradient of %s has shape %v, input has %v", c.name, w, gt.shape, in.shape)
		}
		for i := range in.data {
			orig := in.data[i]
			in.data[i] = orig + h
			lp := lossOnly.run(t, dt, b.feeds, []string{"loss"}, b.intFeeds)["loss"].data[0]
			in.data[i] = orig - h
			lm := lossOnly.run(t, dt, b.feeds, []string{"loss"}, b.intFeeds)["loss"].data[0]
			in.data[i] = orig
			fd := (lp - lm) / (2 * h)
			e := math.Abs(gt.data[i]-fd) / math.Max(1, math.Abs(fd))
			if e > tol {
				t.Errorf("%s (seed %d, %s): d loss / d %s[%d] = %.9g, finite difference %.9g (error %.3g > %.1g)",
					c.name, seed, onnx.DTypeName(dt), w, i, gt.data[i], fd, e, tol)
			}
			worst = math.Max(worst, e)
			count++
		}
	}
	record(c.op, dt, worst, count)
	return nil
}

func TestFiniteDifferences(t *testing.T) {
	ortEnv(t)
	for _, c := range fdCases() {
		t.Run(c.name, func(t *testing.T) {
			for seed := int64(1); seed <= 2; seed++ {
				runFD(t, c, seed)
			}
		})
	}
	fdMu.Lock()
	defer fdMu.Unlock()
	keys := make([]string, 0, len(fdResults))
	for k := range fdResults {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	fmt.Fprintf(&sb, "max finite-difference error per op (|analytic-fd|/max(1,|fd|)):\n")
	for _, k := range keys {
		r := fdResults[k]
		fmt.Fprintf(&sb, "  %-34s %-8s %9.2e  (%d elements)\n", r.op, onnx.DTypeName(r.dtype), r.maxErr, r.elements)
	}
	t.Log(sb.String())
}
