// Package cudakernels tells which nodes of an ONNX graph ONNX Runtime's CUDA
// execution provider has no kernel for, without a GPU: it matches every
// node's operator, opset and element types against the provider's kernel
// registry as ONNX Runtime 1.29.0 lists it (get_all_opkernel_def(), the
// source of its docs/OperatorKernels.md), embedded here with the operator
// schemas that bind a node's inputs and outputs to type parameters.
// scripts/fixtures/cuda_kernel_table.py reads both from the onnxruntime-gpu
// 1.29.0 wheel.
//
// A node without a kernel is one that ONNX Runtime would run on the CPU
// provider, copying its inputs and outputs across at every run (or refuse,
// when the CPU provider has none either): every graph ortrain builds is
// checked to have none (coverage_test.go).
package cudakernels

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

// Table is an execution provider's kernel registry with the operator
// schemas of the operators it implements.
type Table struct {
	// Runtime is the ONNX Runtime version the table was read from.
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

// cudaTable is ONNX Runtime 1.29.0's CUDA kernel table, written by
// scripts/fixtures/cuda_kernel_table.py from the onnxruntime-gpu wheel.
//
//go:embed onnxruntime-1.29.0-cuda.json.gz
var cudaTable []byte

// CUDA is ONNX Runtime 1.29.0's CUDA kernel table (embedded).
func CUDA() (*Table, error) {
	return Parse(bytes.NewReader(cudaTable))
}

// Load reads a table written by cuda_kernel_table.py (gzip'd JSON).
func Load(path string) (*Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// Parse reads a kernel table (gzip'd JSON, at most 64 MiB unpacked).
func Parse(r io.Reader) (*Table, error) {
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
	t := &Table{Runtime: doc.Runtime, kernels: map[string][]kernelDef{}, schemas: map[string][]opSchema{}}
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

// Kernels is the number of kernels in the table.
func (t *Table) Kernels() int {
	n := 0
	for _, ks := range t.kernels {
		n += len(ks)
	}
	return n
}

// Uncovered is a node no kernel of the table runs.
type Uncovered struct {
	// Graph is "" for the main graph, else the path of the subgraph
	// ("node/attribute", nested with " > ").
	Graph    string
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
	where := ""
	if u.Graph != "" {
		where = " in " + u.Graph
	}
	op := u.Op
	if len(kv) > 0 {
		op += ", " + strings.Join(kv, " ")
	}
	return fmt.Sprintf("node %q%s (%s): %s", u.Node, where, op, u.Reason)
}

// Report is the result of checking one model.
type Report struct {
	// Nodes counts the nodes checked (subgraphs included, Constant nodes
	// not: ONNX Runtime makes them initializers).
	Nodes     int
	Uncovered []Uncovered
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

func isConstant(n *onnxpb.NodeProto) bool {
	return n.GetOpType() == "Constant" && (n.GetDomain() == "" || n.GetDomain() == "ai.onnx")
}

// Check lists the nodes of m, those of its subgraphs (If, Loop, Scan
// bodies) included, that no kernel of the table can run with the node's
// element types, as ONNX Runtime matches them: the operator's schema is
// the newest one not newer than the model's opset, a kernel must cover
// that schema version, and each of its type constraints must allow the
// types of every input and output bound to that type parameter.
func (t *Table) Check(m *onnxpb.ModelProto) (*Report, error) {
	opsets := onnx.Opsets(m)
	info, err := onnx.InferShapes(m.GetGraph(), opsets)
	if err != nil {
		return nil, fmt.Errorf("shape inference: %w", err)
	}
	elem := func(v string) onnx.DType { return info[v].Elem }
	r := &Report{}
	var walk func(g *onnxpb.GraphProto, path string)
	walk = func(g *onnxpb.GraphProto, path string) {
		for _, n := range g.GetNode() {
			for _, a := range n.Attribute {
				sub := func(sg *onnxpb.GraphProto) {
					p := n.GetName() + "/" + a.GetName()
					if path != "" {
						p = path + " > " + p
					}
					walk(sg, p)
				}
				if a.G != nil {
					sub(a.G)
				}
				for _, sg := range a.Graphs {
					sub(sg)
				}
			}
			if isConstant(n) {
				continue
			}
			r.Nodes++
			if u, bad := t.Node(n, opsets, elem); bad {
				u.Graph = path
				r.Uncovered = append(r.Uncovered, u)
			}
		}
	}
	walk(m.GetGraph(), "")
	return r, nil
}

// Node checks one node whose values have the element types elem gives:
// bad is true, with the reason in u, when no kernel of the table runs it.
func (t *Table) Node(n *onnxpb.NodeProto, opsets map[string]int64, elem func(string) onnx.DType) (u Uncovered, bad bool) {
	domain := n.GetDomain()
	if domain == "ai.onnx" {
		domain = ""
	}
	op := n.GetOpType()
	if domain != "" {
		op = domain + "." + op
	}
	u = Uncovered{Node: n.GetName(), Op: op, Types: map[string]string{}}
	key := domain + "/" + n.GetOpType()
	version, ok := opsets[domain]
	if !ok && domain == "" {
		version = opsets["ai.onnx"]
	}
	if key == "/CastLike" && len(t.kernels[key]) == 0 && len(n.Input) == 2 {
		// No provider of 1.29.0 registers CastLike: ONNX Runtime inlines
		// its function body, a Cast to the second input's type, before it
		// places nodes (AOT function inlining), so the Cast is what runs.
		cast := &onnxpb.NodeProto{Name: n.Name, OpType: proto.String("Cast"), Input: n.Input[:1], Output: n.Output}
		u, bad = t.Node(cast, opsets, elem)
		u.Op = "CastLike (inlined as Cast)"
		return u, bad
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
				if !strings.Contains(f.Type, "(") { // a type parameter, not a fixed type such as tensor(int64)
					u.Types[f.Type] = ortTypeName(dt)
				}
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
