package onnx

import (
	"container/heap"
	"fmt"
	"strings"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"google.golang.org/protobuf/proto"
)

// NodeInputs lists every value a node reads: its inputs and the outer-scope
// values its subgraphs (If/Loop/Scan bodies) refer to. Empty optional
// inputs are left out.
func NodeInputs(n *onnxpb.NodeProto) []string {
	var out []string
	for _, s := range n.Input {
		if s != "" {
			out = append(out, s)
		}
	}
	for _, a := range n.Attribute {
		if a.G != nil {
			out = append(out, OuterRefs(a.G)...)
		}
		for _, g := range a.Graphs {
			out = append(out, OuterRefs(g)...)
		}
	}
	return out
}

// OuterRefs lists the names a (sub)graph reads but does not define.
func OuterRefs(g *onnxpb.GraphProto) []string {
	defined := map[string]bool{}
	for _, vi := range g.Input {
		defined[vi.GetName()] = true
	}
	for _, t := range g.Initializer {
		defined[t.GetName()] = true
	}
	for _, st := range g.SparseInitializer {
		defined[st.GetValues().GetName()] = true
	}
	for _, n := range g.Node {
		for _, o := range n.Output {
			defined[o] = true
		}
	}
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		if s != "" && !defined[s] && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, n := range g.Node {
		for _, s := range NodeInputs(n) {
			add(s)
		}
	}
	for _, vi := range g.Output {
		add(vi.GetName())
	}
	return out
}

// Producers maps each value name to the node producing it.
func Producers(g *onnxpb.GraphProto) map[string]*onnxpb.NodeProto {
	m := map[string]*onnxpb.NodeProto{}
	for _, n := range g.Node {
		for _, o := range n.Output {
			if o != "" {
				m[o] = n
			}
		}
	}
	return m
}

// Consumers maps each value name to the nodes reading it (subgraph
// references included), in graph order, each node once.
func Consumers(g *onnxpb.GraphProto) map[string][]*onnxpb.NodeProto {
	m := map[string][]*onnxpb.NodeProto{}
	for _, n := range g.Node {
		seen := map[string]bool{}
		for _, s := range NodeInputs(n) {
			if !seen[s] {
				seen[s] = true
				m[s] = append(m[s], n)
			}
		}
	}
	return m
}

type intHeap []int

func (h intHeap) Len() int           { return len(h) }
func (h intHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h intHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *intHeap) Push(x any)        { *h = append(*h, x.(int)) }
func (h *intHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// TopoOrder returns g's nodes in an order where every node follows the
// producers of its inputs, keeping the existing order wherever it is
// already valid. A cycle is an error naming a node on it.
func TopoOrder(g *onnxpb.GraphProto) ([]*onnxpb.NodeProto, error) {
	prod := map[string]int{}
	for i, n := range g.Node {
		for _, o := range n.Output {
			if o == "" {
				continue
			}
			if j, dup := prod[o]; dup {
				return nil, fmt.Errorf("onnx: value %q is produced twice, by %s and %s", o, NodeLabel(g.Node[j]), NodeLabel(n))
			}
			prod[o] = i
		}
	}
	indeg := make([]int, len(g.Node))
	users := make([][]int, len(g.Node))
	for i, n := range g.Node {
		seen := map[int]bool{}
		for _, s := range NodeInputs(n) {
			if j, ok := prod[s]; ok && !seen[j] {
				seen[j] = true
				if j == i {
					return nil, fmt.Errorf("onnx: graph has a cycle: %s reads its own output %q", NodeLabel(n), s)
				}
				indeg[i]++
				users[j] = append(users[j], i)
			}
		}
	}
	h := &intHeap{}
	for i, d := range indeg {
		if d == 0 {
			*h = append(*h, i)
		}
	}
	heap.Init(h)
	out := make([]*onnxpb.NodeProto, 0, len(g.Node))
	for h.Len() > 0 {
		i := heap.Pop(h).(int)
		out = append(out, g.Node[i])
		for _, u := range users[i] {
			indeg[u]--
			if indeg[u] == 0 {
				heap.Push(h, u)
			}
		}
	}
	if len(out) != len(g.Node) {
		for i, d := range indeg {
			if d > 0 {
				return nil, fmt.Errorf("onnx: graph has a cycle through %s", NodeLabel(g.Node[cycleNode(g, prod, indeg, i)]))
			}
		}
	}
	return out, nil
}

// cycleNode walks from a node that was never emitted to a blocked producer
// of it, and on, until a node repeats: that node lies on a cycle. (Every
// blocked node has a blocked producer, so the walk cannot stop early.)
func cycleNode(g *onnxpb.GraphProto, prod map[string]int, indeg []int, start int) int {
	seen := map[int]bool{}
	i := start
	for !seen[i] {
		seen[i] = true
		next := -1
		for _, s := range NodeInputs(g.Node[i]) {
			if j, ok := prod[s]; ok && indeg[j] > 0 {
				next = j
				break
			}
		}
		if next < 0 {
			return i
		}
		i = next
	}
	return i
}

// TopoSort reorders g's nodes topologically in place (see TopoOrder).
func TopoSort(g *onnxpb.GraphProto) error {
	order, err := TopoOrder(g)
	if err != nil {
		return err
	}
	g.Node = order
	return nil
}

// Extract returns a new graph computing outputs from inputs: only the nodes
// needed, in topological order, and the initializers they read (those not
// named as inputs). Types of inputs and outputs come from g's inputs,
// outputs and value_info where recorded, else from InferShapes on g. The
// new graph shares nodes and tensors with g (clone it to modify them). It is an error when an output
// depends on a value that is neither a given input, an initializer nor
// computed from them.
func Extract(g *onnxpb.GraphProto, inputs, outputs []string) (*onnxpb.GraphProto, error) {
	isInput := map[string]bool{}
	for _, s := range inputs {
		isInput[s] = true
	}
	inits := map[string]*onnxpb.TensorProto{}
	for _, t := range g.Initializer {
		inits[t.GetName()] = t
	}
	prod := Producers(g)
	need := map[*onnxpb.NodeProto]bool{}
	usedInit := map[string]bool{}
	// why[v] = the value that first needed v, to explain a missing input.
	why := map[string]string{}
	visited := map[string]bool{}
	var stack []string
	for _, o := range outputs {
		if !visited[o] {
			visited[o] = true
			stack = append(stack, o)
		}
	}
	for len(stack) > 0 {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if isInput[v] {
			continue
		}
		if _, ok := inits[v]; ok {
			usedInit[v] = true
			continue
		}
		n, ok := prod[v]
		if !ok {
			chain := []string{v}
			for w := why[v]; w != ""; w = why[w] {
				chain = append(chain, w)
			}
			return nil, fmt.Errorf("onnx: extract: output %q depends on %q, which is not among the given inputs, not an initializer and not computed by a node (path: %s)",
				chain[len(chain)-1], v, strings.Join(chain, " <- "))
		}
		need[n] = true
		for _, s := range NodeInputs(n) {
			if !visited[s] {
				visited[s] = true
				why[s] = v
				stack = append(stack, s)
			}
		}
	}
	types := valueInfoIndex(g)
	sub := &onnxpb.GraphProto{Name: proto.String(g.GetName())}
	for _, n := range g.Node {
		if need[n] {
			sub.Node = append(sub.Node, n)
		}
	}
	if err := TopoSort(sub); err != nil {
		return nil, err
	}
	for _, t := range g.Initializer {
		if usedInit[t.GetName()] {
			sub.Initializer = append(sub.Initializer, t)
		}
	}
	// Values without a recorded type get an inferred one, so the subgraph
	// can be run as it is.
	var inferred map[string]TypeInfo
	typed := func(name string) *onnxpb.ValueInfoProto {
		if vi, ok := types[name]; ok && vi.GetType().GetTensorType().GetShape() != nil {
			return proto.Clone(vi).(*onnxpb.ValueInfoProto)
		}
		if inferred == nil {
			inferred, _ = InferShapes(g, nil)
		}
		if t, ok := inferred[name]; ok && t.Elem != Undefined {
			return ValueInfoOf(name, t)
		}
		return infoOrBare(types, name)
	}
	for _, s := range inputs {
		sub.Input = append(sub.Input, typed(s))
	}
	for _, s := range outputs {
		sub.Output = append(sub.Output, typed(s))
	}
	for _, vi := range g.ValueInfo {
		if _, ok := prod[vi.GetName()]; ok && need[prod[vi.GetName()]] {
			sub.ValueInfo = append(sub.ValueInfo, vi)
		}
	}
	return sub, nil
}

// ExtractModel is Extract on a model's main graph, keeping the model's
// opsets, IR version and functions.
func ExtractModel(m *onnxpb.ModelProto, inputs, outputs []string) (*onnxpb.ModelProto, error) {
	g, err := Extract(m.GetGraph(), inputs, outputs)
	if err != nil {
		return nil, err
	}
	return &onnxpb.ModelProto{
		IrVersion: m.IrVersion, OpsetImport: m.OpsetImport, ProducerName: m.ProducerName,
		ProducerVersion: m.ProducerVersion, Functions: m.Functions, Graph: g,
	}, nil
}

func valueInfoIndex(g *onnxpb.GraphProto) map[string]*onnxpb.ValueInfoProto {
	m := map[string]*onnxpb.ValueInfoProto{}
	for _, list := range [][]*onnxpb.ValueInfoProto{g.ValueInfo, g.Output, g.Input} {
		for _, vi := range list {
			m[vi.GetName()] = vi
		}
	}
	for _, t := range g.Initializer {
		if _, ok := m[t.GetName()]; !ok {
			m[t.GetName()] = ValueInfoOf(t.GetName(), TypeInfoOfTensor(t))
		}
	}
	return m
}

func infoOrBare(types map[string]*onnxpb.ValueInfoProto, name string) *onnxpb.ValueInfoProto {
	if vi, ok := types[name]; ok {
		c := proto.Clone(vi).(*onnxpb.ValueInfoProto)
		return c
	}
	return &onnxpb.ValueInfoProto{Name: proto.String(name)}
}

// RenameValue renames a value everywhere in g: producers, consumers (in
// nested graphs too, unless a nested graph defines its own value of that
// name), graph inputs and outputs, initializers and value_info.
func RenameValue(g *onnxpb.GraphProto, from, to string) {
	renameIn(g, from, to, true)
}

func renameIn(g *onnxpb.GraphProto, from, to string, top bool) {
	if !top {
		// A nested graph that defines the name shadows the outer value.
		for _, vi := range g.Input {
			if vi.GetName() == from {
				return
			}
		}
		for _, t := range g.Initializer {
			if t.GetName() == from {
				return
			}
		}
		for _, n := range g.Node {
			for _, o := range n.Output {
				if o == from {
					return
				}
			}
		}
	}
	for _, lst := range [][]*onnxpb.ValueInfoProto{g.Input, g.Output, g.ValueInfo} {
		for _, vi := range lst {
			if vi.GetName() == from {
				vi.Name = proto.String(to)
			}
		}
	}
	for _, t := range g.Initializer {
		if t.GetName() == from {
			t.Name = proto.String(to)
		}
	}
	for _, n := range g.Node {
		for i, s := range n.Input {
			if s == from {
				n.Input[i] = to
			}
		}
		for i, s := range n.Output {
			if s == from {
				n.Output[i] = to
			}
		}
		for _, a := range n.Attribute {
			if a.G != nil {
				renameIn(a.G, from, to, false)
			}
			for _, sg := range a.Graphs {
				renameIn(sg, from, to, false)
			}
		}
	}
}

// RemoveDeadNodes deletes nodes none of whose outputs reach a graph output,
// then initializers nothing reads (unless they are graph inputs). It
// returns the number of nodes removed.
func RemoveDeadNodes(g *onnxpb.GraphProto) int {
	live := map[string]bool{}
	for _, vi := range g.Output {
		live[vi.GetName()] = true
	}
	keep := make([]bool, len(g.Node))
	// Walk backwards until no node becomes live: nodes are usually in
	// topological order, so one or two passes suffice.
	for changed := true; changed; {
		changed = false
		for i := len(g.Node) - 1; i >= 0; i-- {
			if keep[i] {
				continue
			}
			for _, o := range g.Node[i].Output {
				if live[o] {
					keep[i] = true
					changed = true
					for _, s := range NodeInputs(g.Node[i]) {
						live[s] = true
					}
					break
				}
			}
		}
	}
	nodes := g.Node[:0]
	removed := 0
	for i, n := range g.Node {
		if keep[i] {
			nodes = append(nodes, n)
		} else {
			removed++
		}
	}
	for i := len(nodes); i < len(g.Node); i++ {
		g.Node[i] = nil
	}
	g.Node = nodes
	isInput := map[string]bool{}
	for _, vi := range g.Input {
		isInput[vi.GetName()] = true
	}
	inits := g.Initializer[:0]
	for _, t := range g.Initializer {
		if live[t.GetName()] || isInput[t.GetName()] {
			inits = append(inits, t)
		}
	}
	g.Initializer = inits
	return removed
}

// Opset is the version of an operator domain the model imports, 0 if none.
// "" and "ai.onnx" both name the standard domain.
func Opset(m *onnxpb.ModelProto, domain string) int64 {
	domain = normDomain(domain)
	for _, o := range m.GetOpsetImport() {
		if normDomain(o.GetDomain()) == domain {
			return o.GetVersion()
		}
	}
	return 0
}

// SetOpset sets (or adds) the imported version of an operator domain.
func SetOpset(m *onnxpb.ModelProto, domain string, version int64) {
	nd := normDomain(domain)
	for _, o := range m.OpsetImport {
		if normDomain(o.GetDomain()) == nd {
			o.Version = proto.Int64(version)
			return
		}
	}
	m.OpsetImport = append(m.OpsetImport, &onnxpb.OperatorSetIdProto{Domain: proto.String(domain), Version: proto.Int64(version)})
}

// Opsets returns the model's operator set imports as a map from domain
// ("" for the standard one) to version.
func Opsets(m *onnxpb.ModelProto) map[string]int64 {
	out := map[string]int64{}
	for _, o := range m.GetOpsetImport() {
		out[normDomain(o.GetDomain())] = o.GetVersion()
	}
	return out
}

func normDomain(d string) string {
	if d == "ai.onnx" {
		return ""
	}
	return d
}

// RenameValues renames many values at once, as RenameValue does one by one
// (a nested graph that defines a name keeps its own value), in a single
// walk over the graph: composing graphs renames thousands of values.
func RenameValues(g *onnxpb.GraphProto, renamed map[string]string) {
	if len(renamed) > 0 {
		renameAllIn(g, renamed, true)
	}
}

func renameAllIn(g *onnxpb.GraphProto, renamed map[string]string, top bool) {
	if !top {
		var shadowed []string
		for _, vi := range g.Input {
			shadowed = append(shadowed, vi.GetName())
		}
		for _, t := range g.Initializer {
			shadowed = append(shadowed, t.GetName())
		}
		for _, n := range g.Node {
			shadowed = append(shadowed, n.Output...)
		}
		var local map[string]string
		for _, s := range shadowed {
			if _, ok := renamed[s]; ok {
				if local == nil {
					local = make(map[string]string, len(renamed))
					for k, v := range renamed {
						local[k] = v
					}
				}
				delete(local, s)
			}
		}
		if local != nil {
			renamed = local
		}
	}
	rename := func(s string) string {
		if to, ok := renamed[s]; ok {
			return to
		}
		return s
	}
	for _, lst := range [][]*onnxpb.ValueInfoProto{g.Input, g.Output, g.ValueInfo} {
		for _, vi := range lst {
			if to, ok := renamed[vi.GetName()]; ok {
				vi.Name = proto.String(to)
			}
		}
	}
	for _, t := range g.Initializer {
		if to, ok := renamed[t.GetName()]; ok {
			t.Name = proto.String(to)
		}
	}
	for _, n := range g.Node {
		for i, s := range n.Input {
			n.Input[i] = rename(s)
		}
		for i, s := range n.Output {
			n.Output[i] = rename(s)
		}
		for _, a := range n.Attribute {
			if a.G != nil {
				renameAllIn(a.G, renamed, false)
			}
			for _, sg := range a.Graphs {
				renameAllIn(sg, renamed, false)
			}
		}
	}
}
