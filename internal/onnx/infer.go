package onnx

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// InferShapes infers the element type, rank and dimensions of every value
// of g: graph inputs, initializers and node outputs, nested graphs
// included. opsets maps operator domains ("" for the standard one) to the
// imported versions (see Opsets); most rules read operands by their
// presence (axes as attribute before opset 13/18, as input after), so a nil
// map works too.
//
// Static dimensions are computed wherever they are determinable. Symbolic
// dimensions (dim_param) are carried through elementwise broadcasting,
// reshapes, slices and small integer shape computations (Shape -> Gather ->
// Unsqueeze -> Concat chains and their constants are folded). A dimension
// that cannot be known gets a fresh symbol "unk__N" that appears nowhere
// else, so equal symbols always mean equal sizes. Unknown dimensions of
// graph inputs get fresh symbols too. Values produced by operators without a
// rule have Elem Undefined and RankKnown false; declared value_info is used
// for them when the graph carries it.
//
// The error reports the contradictions that make the graph invalid (static
// dimensions that cannot broadcast, a MatMul whose inner sizes differ, a
// value that nothing defines), each naming its node; the outputs of such a
// node stay unknown and the rest of the graph is still inferred, so the
// map is useful even with an error. A cycle stops inference.
func InferShapes(g *onnxpb.GraphProto, opsets map[string]int64) (map[string]TypeInfo, error) {
	inf := newInferer(opsets)
	inf.collectSymbols(g)
	if err := inf.graph(g); err != nil {
		return inf.types, err
	}
	return inf.types, inf.err()
}

// err joins the contradictions found (the first ten, then a count).
func (inf *inferer) err() error {
	const show = 10
	if len(inf.errs) > show {
		more := fmt.Errorf("... and %d more", len(inf.errs)-show)
		return errors.Join(append(inf.errs[:show:show], more)...)
	}
	return errors.Join(inf.errs...)
}

// InferModelShapes is InferShapes on a model's main graph with its opsets.
func InferModelShapes(m *onnxpb.ModelProto) (map[string]TypeInfo, error) {
	return InferShapes(m.GetGraph(), Opsets(m))
}

// AnnotateShapes records inferred types in g.ValueInfo for every node
// output that is not a graph output (replacing older entries), so tools
// that read value_info see them.
func AnnotateShapes(g *onnxpb.GraphProto, types map[string]TypeInfo) {
	isOut := map[string]bool{}
	for _, vi := range g.Output {
		isOut[vi.GetName()] = true
	}
	g.ValueInfo = g.ValueInfo[:0]
	for _, n := range g.Node {
		for _, o := range n.Output {
			if t, ok := types[o]; ok && o != "" && !isOut[o] && t.Elem != Undefined {
				g.ValueInfo = append(g.ValueInfo, ValueInfoOf(o, t))
			}
		}
	}
}

// sv is one element of an integer tensor whose value matters for shapes: an
// exact number, a symbolic dimension, or unknown.
type sv struct {
	v   int64
	sym string
	ok  bool
}

func num(v int64) sv { return sv{v: v, ok: true} }

func (s sv) dim() (Dim, bool) {
	switch {
	case s.ok && s.v >= 0:
		return D(s.v), true
	case s.sym != "":
		return Sym(s.sym), true
	}
	return Dim{}, false
}

func svOfDim(d Dim) sv {
	if d.Static() {
		return num(d.Value)
	}
	return sv{sym: d.Param}
}

// maxKnownElems bounds the integer tensors whose values are tracked.
const maxKnownElems = 1024

type inferer struct {
	opsets map[string]int64
	types  map[string]TypeInfo
	vals   map[string][]sv // element values of small integer tensors
	fvals  map[string][]float64
	decl   map[string]TypeInfo // value_info of the graphs being inferred
	syms   map[string]bool
	fresh  int
	errs   []error
}

func newInferer(opsets map[string]int64) *inferer {
	return &inferer{
		opsets: opsets, types: map[string]TypeInfo{}, vals: map[string][]sv{},
		fvals: map[string][]float64{}, decl: map[string]TypeInfo{}, syms: map[string]bool{},
	}
}

func (inf *inferer) collectSymbols(g *onnxpb.GraphProto) {
	if g == nil {
		return
	}
	for _, lst := range [][]*onnxpb.ValueInfoProto{g.Input, g.Output, g.ValueInfo} {
		for _, vi := range lst {
			if t, ok := TypeInfoOf(vi); ok {
				for _, d := range t.Dims {
					if d.Param != "" {
						inf.syms[d.Param] = true
					}
				}
			}
		}
	}
	for _, n := range g.Node {
		for _, a := range n.Attribute {
			inf.collectSymbols(a.G)
			for _, sg := range a.Graphs {
				inf.collectSymbols(sg)
			}
		}
	}
}

// freshDim returns a dimension symbol used nowhere else.
func (inf *inferer) freshDim() Dim {
	for {
		name := "unk__" + strconv.Itoa(inf.fresh)
		inf.fresh++
		if !inf.syms[name] {
			inf.syms[name] = true
			return Sym(name)
		}
	}
}

// named turns unknown dimensions into fresh symbols.
func (inf *inferer) named(t TypeInfo) TypeInfo {
	if !t.RankKnown {
		return t
	}
	dims := make([]Dim, len(t.Dims))
	for i, d := range t.Dims {
		if !d.Static() && d.Param == "" {
			d = inf.freshDim()
		}
		dims[i] = d
	}
	t.Dims = dims
	return t
}

func (inf *inferer) freshDims(n int) []Dim {
	out := make([]Dim, n)
	for i := range out {
		out[i] = inf.freshDim()
	}
	return out
}

func (inf *inferer) graph(g *onnxpb.GraphProto) error {
	isInput := map[string]bool{}
	for _, vi := range g.Input {
		isInput[vi.GetName()] = true
		t, ok := TypeInfoOf(vi)
		if preset, has := inf.types[vi.GetName()]; has && (!ok || t.Elem == Undefined) {
			t = preset // a Loop body input typed by the Loop node
		} else if has && !t.RankKnown && preset.RankKnown {
			t.Dims, t.RankKnown = preset.Dims, true
		}
		inf.types[vi.GetName()] = inf.named(t)
	}
	for _, t := range g.Initializer {
		name := t.GetName()
		if isInput[name] {
			// An initializer listed as input is an overridable default.
			if cur := inf.types[name]; cur.Elem == Undefined || !cur.RankKnown {
				inf.types[name] = TypeInfoOfTensor(t)
			}
			continue
		}
		inf.types[name] = TypeInfoOfTensor(t)
		inf.recordConst(name, t)
	}
	for _, st := range g.SparseInitializer {
		v := st.GetValues()
		inf.types[v.GetName()] = Tensor(DType(v.GetDataType()), Dims(st.GetDims()...)...)
	}
	for _, vi := range g.ValueInfo {
		if t, ok := TypeInfoOf(vi); ok {
			inf.decl[vi.GetName()] = t
		}
	}
	for _, vi := range g.Output {
		if t, ok := TypeInfoOf(vi); ok {
			inf.decl[vi.GetName()] = t
		}
	}
	order, err := TopoOrder(g)
	if err != nil {
		return err
	}
	for _, n := range order {
		for _, s := range n.Input {
			if _, ok := inf.types[s]; s != "" && !ok {
				inf.errs = append(inf.errs, fmt.Errorf("onnx: infer shapes: %s reads %q, which no graph input, initializer or node defines", NodeLabel(n), s))
				inf.types[s] = TypeInfo{}
			}
		}
		if len(n.Output) == 0 {
			continue // nothing to type
		}
		outs, err := inf.safeNode(n)
		if err != nil {
			// Keep going so that the rest of the graph still gets types;
			// the node's outputs stay unknown.
			inf.errs = append(inf.errs, fmt.Errorf("onnx: infer shapes: %s: %w", NodeLabel(n), err))
			outs = nil
		}
		for i, o := range n.Output {
			if o == "" {
				continue
			}
			var t TypeInfo
			if i < len(outs) {
				t = outs[i]
			}
			if d, ok := inf.decl[o]; ok {
				if err := conflict(t, d); err != nil {
					inf.errs = append(inf.errs, fmt.Errorf("onnx: infer shapes: %s: output %q: %w", NodeLabel(n), o, err))
				}
				t = mergeDeclared(t, d)
			}
			inf.types[o] = inf.named(t)
		}
	}
	return nil
}

// conflict reports a declared type that contradicts the inferred one.
func conflict(t, d TypeInfo) error {
	if t.Elem != Undefined && d.Elem != Undefined && t.Elem != d.Elem {
		return fmt.Errorf("declared %s, inferred %s", d, t)
	}
	if !t.RankKnown || !d.RankKnown {
		return nil
	}
	if len(t.Dims) != len(d.Dims) {
		return fmt.Errorf("declared %s, inferred %s", d, t)
	}
	for i := range t.Dims {
		if t.Dims[i].Static() && d.Dims[i].Static() && t.Dims[i].Value != d.Dims[i].Value {
			return fmt.Errorf("declared %s, inferred %s", d, t)
		}
	}
	return nil
}

// mergeDeclared fills what inference left open from a declared type.
func mergeDeclared(t, d TypeInfo) TypeInfo {
	if t.Elem == Undefined {
		t.Elem = d.Elem
	}
	if !t.RankKnown {
		if d.RankKnown {
			return TypeInfo{Elem: t.Elem, Dims: append([]Dim{}, d.Dims...), RankKnown: true}
		}
		return t
	}
	if d.RankKnown && len(d.Dims) == len(t.Dims) {
		dims := append([]Dim{}, t.Dims...)
		for i, dd := range d.Dims {
			if !dims[i].Static() && dd.Static() {
				dims[i] = dd
			}
		}
		t.Dims = dims
	}
	return t
}

// recordConst remembers the values of small integer and float tensors.
func (inf *inferer) recordConst(name string, t *onnxpb.TensorProto) {
	if NumElements(t.GetDims()) > maxKnownElems || IsExternal(t) {
		return
	}
	if ints, err := ToInt64s(t); err == nil {
		vals := make([]sv, len(ints))
		for i, v := range ints {
			vals[i] = num(v)
		}
		inf.vals[name] = vals
		return
	}
	if fl, err := ToFloat64s(t); err == nil {
		inf.fvals[name] = fl
	}
}

// safeNode runs a rule; a rule that trips over a malformed node (a bug on
// input nobody foresaw) becomes an error instead of a crash.
func (inf *inferer) safeNode(n *onnxpb.NodeProto) (outs []TypeInfo, err error) {
	defer func() {
		if r := recover(); r != nil {
			outs, err = nil, fmt.Errorf("malformed node (internal error: %v)", r)
		}
	}()
	return inf.node(n)
}
