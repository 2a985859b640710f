package onnx

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// Summary describes a model for people: what goes in and out, which
// operators it uses and how big its weights are.
//
// Its JSON form (ortrain inspect --json) has stable snake_case keys and
// readable type names (TypeInfo.MarshalJSON).
type Summary struct {
	IRVersion int64          `json:"ir_version"`
	Producer  string         `json:"producer"` // name and version of the producing tool
	Opsets    []OpsetVersion `json:"opsets"`
	Inputs    []NamedType    `json:"inputs"` // graph inputs that are not initializers
	Outputs   []NamedType    `json:"outputs"`
	Nodes     int            `json:"nodes"`
	Ops       []OpCount      `json:"ops"` // most used first
	// Initializers counts the stored tensors of the main graph; Parameters
	// the elements of its floating-point ones, ParameterBytes the bytes of
	// all of them.
	Initializers   int      `json:"initializers"`
	Parameters     int64    `json:"parameters"`
	ParameterBytes int64    `json:"parameter_bytes"`
	ExternalFiles  []string `json:"external_files"` // external data files, relative to the model's folder
	ExternalBytes  int64    `json:"external_bytes"` // bytes of the tensors stored in them
	Functions      int      `json:"functions"`      // model-local functions
}

// OpsetVersion is one operator set import.
type OpsetVersion struct {
	Domain  string `json:"domain"` // "" for the standard domain
	Version int64  `json:"version"`
}

// NamedType is a value with its declared type.
type NamedType struct {
	Name string   `json:"name"`
	Type TypeInfo `json:"type"`
}

// OpCount is how often an operator occurs (nested graphs included).
type OpCount struct {
	Domain string `json:"domain"`
	OpType string `json:"op_type"`
	Count  int    `json:"count"`
}

// Summarize describes a model. It reads only declarations and tensor dims,
// so it works on a model loaded with KeepExternal.
func Summarize(m *onnxpb.ModelProto) Summary {
	s := Summary{IRVersion: m.GetIrVersion(), Functions: len(m.GetFunctions())}
	s.Producer = strings.TrimSpace(m.GetProducerName() + " " + m.GetProducerVersion())
	for _, o := range m.GetOpsetImport() {
		s.Opsets = append(s.Opsets, OpsetVersion{Domain: normDomain(o.GetDomain()), Version: o.GetVersion()})
	}
	sort.Slice(s.Opsets, func(i, j int) bool { return s.Opsets[i].Domain < s.Opsets[j].Domain })
	g := m.GetGraph()
	inits := map[string]bool{}
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = true
		s.Initializers++
		s.ParameterBytes += ByteSize(t)
		if IsFloat(DType(t.GetDataType())) {
			s.Parameters += max(0, NumElements(t.GetDims()))
		}
	}
	for _, vi := range g.GetInput() {
		if inits[vi.GetName()] {
			continue
		}
		ti, _ := TypeInfoOf(vi)
		s.Inputs = append(s.Inputs, NamedType{vi.GetName(), ti})
	}
	for _, vi := range g.GetOutput() {
		ti, _ := TypeInfoOf(vi)
		s.Outputs = append(s.Outputs, NamedType{vi.GetName(), ti})
	}
	counts := map[[2]string]int{}
	var walk func(g *onnxpb.GraphProto)
	walk = func(g *onnxpb.GraphProto) {
		for _, n := range g.GetNode() {
			s.Nodes++
			counts[[2]string{normDomain(n.GetDomain()), n.GetOpType()}]++
			for _, a := range n.GetAttribute() {
				if a.G != nil {
					walk(a.G)
				}
				for _, sg := range a.Graphs {
					walk(sg)
				}
			}
		}
	}
	walk(g)
	for k, c := range counts {
		s.Ops = append(s.Ops, OpCount{Domain: k[0], OpType: k[1], Count: c})
	}
	sort.Slice(s.Ops, func(i, j int) bool {
		a, b := s.Ops[i], s.Ops[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		if a.Domain != b.Domain {
			return a.Domain < b.Domain
		}
		return a.OpType < b.OpType
	})
	s.ExternalFiles = ExternalDataFiles(m)
	forEachTensor(m, func(t *onnxpb.TensorProto) error {
		if IsExternal(t) {
			if ref, err := ExternalRefOf(t); err == nil && ref.Length >= 0 {
				s.ExternalBytes += ref.Length
			} else {
				s.ExternalBytes += ByteSize(t)
			}
		}
		return nil
	})
	return s
}

// WriteText prints the summary as aligned plain text.
func (s Summary) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	p := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }
	p("IR version:\t%d\n", s.IRVersion)
	if s.Producer != "" {
		p("producer:\t%s\n", s.Producer)
	}
	var ops []string
	for _, o := range s.Opsets {
		d := o.Domain
		if d == "" {
			d = "ai.onnx"
		}
		ops = append(ops, fmt.Sprintf("%s %d", d, o.Version))
	}
	p("opsets:\t%s\n", strings.Join(ops, ", "))
	p("parameters:\t%d (%s in %d initializers)\n", s.Parameters, HumanBytes(s.ParameterBytes), s.Initializers)
	if len(s.ExternalFiles) > 0 {
		p("external data:\t%s (%s)\n", strings.Join(s.ExternalFiles, ", "), HumanBytes(s.ExternalBytes))
	}
	p("\ninputs:\n")
	for _, v := range s.Inputs {
		p("  %s\t%s\n", v.Name, v.Type)
	}
	p("outputs:\n")
	for _, v := range s.Outputs {
		p("  %s\t%s\n", v.Name, v.Type)
	}
	p("\noperators (%d nodes):\n", s.Nodes)
	for _, o := range s.Ops {
		name := o.OpType
		if o.Domain != "" {
			name = o.Domain + "::" + o.OpType
		}
		p("  %s\t%d\n", name, o.Count)
	}
	return tw.Flush()
}

// HumanBytes formats a byte count with a binary unit (KiB, MiB, GiB).
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
