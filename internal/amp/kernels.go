package amp

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// KernelTable is an execution provider's kernel registry as ONNX Runtime's
// get_all_opkernel_def() lists it (docs/OperatorKernels.md is made from the
// same list), with the operator schemas that tell which input and output
// of a node carries which type parameter. scripts/fixtures/cuda_kernel_table.py
// writes ONNX Runtime 1.29.0's CUDA table.
type KernelTable struct {
	Runtime string
	kernels map[string][]kernelDef // "domain/op"
	schemas map[string][]opSchema  // "domain/op", ascending since
}

type kernelDef struct {
	Since int64               `json:"since"`
	End   int64               `json:"end"`
	Types map[string][]string `json:"types"`
}

type formal struct {
	Name   string `json:"name"`
	Type   string `json:"type"`
	Option int    `json:"option"` // 0 single, 1 optional, 2 variadic
}

type opSchema struct {
	Since   int64    `json:"since"`
	Inputs  []formal `json:"inputs"`
	Outputs []formal `json:"outputs"`
}

// cudaKernels is ONNX Runtime 1.29.0's CUDA kernel table, written by
// scripts/fixtures/cuda_kernel_table.py from the onnxruntime-gpu wheel.
//
//go:embed kernels/onnxruntime-1.29.0-cuda.json.gz
var cudaKernels []byte

// CUDAKernels is ONNX Runtime 1.29.0's CUDA kernel table (embedded).
func CUDAKernels() (*KernelTable, error) {
	return ParseKernelTable(bytes.NewReader(cudaKernels))
}

// LoadKernelTable reads a table written by cuda_kernel_table.py (gzip'd JSON).
func LoadKernelTable(path string) (*KernelTable, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t, err := ParseKernelTable(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// ParseKernelTable reads a kernel table (gzip'd JSON).
func ParseKernelTable(r io.Reader) (*KernelTable, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(io.LimitReader(zr, 64<<20))
	if err != nil {
		return nil, err
	}
	var doc struct {
		Runtime string `json:"onnxruntime"`
		Kernels []struct {
			kernelDef
			Domain string `json:"domain"`
			Op     string `json:"op"`
		} `json:"kernels"`
		Schemas []struct {
			opSchema
			Domain string `json:"domain"`
			Op     string `json:"op"`
		} `json:"schemas"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	t := &KernelTable{Runtime: doc.Runtime, kernels: map[string][]kernelDef{}, schemas: map[string][]opSchema{}}
	for _, k := range doc.Kernels {
		key := k.Domain + "/" + k.Op
		t.kernels[key] = append(t.kernels[key], k.kernelDef)
	}
	for _, s := range doc.Schemas {
		key := s.Domain + "/" + s.Op
		t.schemas[key] = append(t.schemas[key], s.opSchema)
	}
	for _, ss := range t.schemas {
		sort.Slice(ss, func(i, j int) bool { return ss[i].Since < ss[j].Since })
	}
	return t, nil
}

// Uncovered is a node no kernel of the table runs.
type Uncovered struct {
	Node, Op string
	// Types binds the operator's type parameters to the node's types.
	Types  map[string]string
	Reason string
}

func (u Uncovered) String() string {
	var kv []string
	for k, v := range u.Types {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return fmt.Sprintf("node %q (%s, %s): %s", u.Node, u.Op, strings.Join(kv, " "), u.Reason)
}

// ortTypeName is the element type as ONNX Runtime's type strings name it.
func ortTypeName(dt onnx.DType) string {
	switch dt {
	case onnx.Float32:
		return "float"
	case onnx.Float64:
		return "double"
	}
	return strings.ToLower(onnx.DTypeName(dt))
}

// Check lists the nodes of m (main graph) that no kernel of the table can
// run with the node's element types, as ONNX Runtime matches them: the
// operator's schema is the newest one not newer than the model's opset,
// a kernel must cover that schema version, and each of its type
// constraints must allow the types of every input and output bound to
// that type parameter. Constant nodes, which ONNX Runtime turns into
// initializers, are not checked.
func (t *KernelTable) Check(m *onnxpb.ModelProto) ([]Uncovered, error) {
	opsets := onnx.Opsets(m)
	info, err := onnx.InferShapes(m.GetGraph(), opsets)
	if err != nil {
		return nil, fmt.Errorf("shape inference: %w", err)
	}
	var out []Uncovered
	for _, n := range m.GetGraph().GetNode() {
		if n.GetOpType() == "Constant" && (n.GetDomain() == "" || n.GetDomain() == "ai.onnx") {
			continue // ONNX Runtime makes Constant nodes initializers when it loads a graph
		}
		if u, bad := t.checkNode(n, opsets, func(v string) onnx.DType { return info[v].Elem }); bad {
			out = append(out, u)
		}
	}
	return out, nil
}

func (t *KernelTable) checkNode(n *onnxpb.NodeProto, opsets map[string]int64, elem func(string) onnx.DType) (Uncovered, bool) {
	domain := n.GetDomain()
	if domain == "ai.onnx" {
		domain = ""
	}
	u := Uncovered{Node: n.GetName(), Op: opKey(domain, n.GetOpType()), Types: map[string]string{}}
	key := domain + "/" + n.GetOpType()
	version, ok := opsets[domain]
	if !ok && domain == "" {
		version = opsets["ai.onnx"]
	}
	var sch *opSchema
	for i, s := range t.schemas[key] {
		if s.Since <= version {
			sch = &t.schemas[key][i]
		}
	}
	if sch == nil {
		u.Reason = fmt.Sprintf("no CUDA kernel for this operator at opset %d", version)
		return u, true
	}
	bound := map[string][]string{}
	bind := func(formals []formal, actual []string) bool {
		for i, f := range formals {
			var names []string
			switch {
			case f.Option == 2:
				if i < len(actual) {
					names = actual[i:]
				}
			case i < len(actual):
				names = actual[i : i+1]
			}
			for _, v := range names {
				if v == "" {
					continue
				}
				dt := elem(v)
				if dt == onnx.Undefined {
					u.Reason = fmt.Sprintf("type of %q unknown", v)
					return false
				}
				bound[f.Type] = append(bound[f.Type], ortTypeName(dt))
				u.Types[f.Type] = ortTypeName(dt)
			}
		}
		return true
	}
	if !bind(sch.Inputs, n.Input) || !bind(sch.Outputs, n.Output) {
		return u, true
	}
	for _, k := range t.kernels[key] {
		if k.Since > sch.Since || k.End < sch.Since {
			continue
		}
		fits := true
		for param, allowed := range k.Types {
			for _, got := range bound[param] {
				fits = fits && contains(allowed, got)
			}
		}
		if fits {
			return u, false
		}
	}
	u.Reason = fmt.Sprintf("no CUDA kernel of version %d takes these types", sch.Since)
	return u, true
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// FitKernels makes every node of g that no kernel of the table runs with
// its float16 or bfloat16 types compute in float32: its low-precision
// inputs are cast to float32 and its low-precision outputs cast back, as a
// kernel that accumulates in float32 and rounds once would compute (and as
// ONNX Runtime's CPU provider does for the float16 nodes it has no kernel
// for). CUDA's 1.29.0 kernels have no bfloat16 ReduceMean, Log, Equal or
// Greater, for example. It returns the number of nodes changed.
func FitKernels(g *onnxpb.GraphProto, opsets map[string]int64, t *KernelTable) (int, error) {
	info, err := onnx.InferShapes(g, opsets)
	if err != nil {
		return 0, fmt.Errorf("amp: shape inference: %w", err)
	}
	elem := func(v string) onnx.DType { return info[v].Elem }
	isLow := func(v string) bool { return v != "" && (elem(v) == onnx.Float16 || elem(v) == onnx.BFloat16) }
	b := onnx.NewGraphBuilder(g)
	b.Prefix = "fit/"
	cast := func(in, out string, to onnx.DType) *onnxpb.NodeProto {
		return &onnxpb.NodeProto{Name: proto.String(b.Name("cast")), OpType: proto.String("Cast"), Input: []string{in}, Output: []string{out},
			Attribute: []*onnxpb.AttributeProto{onnx.AttrInt("to", int64(to))}}
	}
	var nodes []*onnxpb.NodeProto
	changed := 0
	for _, n := range g.Node {
		if n.GetOpType() == "Constant" || hasSubgraph(n) {
			nodes = append(nodes, n)
			continue
		}
		u, bad := t.checkNode(n, opsets, elem)
		low := false
		for _, v := range append(append([]string{}, n.Input...), n.Output...) {
			low = low || isLow(v)
		}
		if !bad || !low {
			nodes = append(nodes, n)
			continue
		}
		wideType := map[string]onnx.DType{}
		for i, in := range n.Input {
			if isLow(in) {
				w := b.Name(in + "/float32")
				nodes = append(nodes, cast(in, w, onnx.Float32))
				n.Input[i] = w
				wideType[w] = onnx.Float32
			}
		}
		var after []*onnxpb.NodeProto
		for i, o := range n.Output {
			if isLow(o) {
				w := b.Name(o + "/float32")
				after = append(after, cast(w, o, elem(o)))
				n.Output[i] = w
				wideType[w] = onnx.Float32
			}
		}
		typeOf := func(v string) onnx.DType {
			if dt, ok := wideType[v]; ok {
				return dt
			}
			return elem(v)
		}
		if _, still := t.checkNode(n, opsets, typeOf); still {
			return 0, fmt.Errorf("amp: %s, and in float32 neither", u)
		}
		nodes = append(append(nodes, n), after...)
		changed++
	}
	g.Node = nodes
	return changed, nil
}
