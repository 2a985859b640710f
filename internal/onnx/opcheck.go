package onnx

import (
	"errors"
	"fmt"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// OpSince returns the opset version whose definition of an operator is in
// effect at the given opset of its domain ("" or "ai.onnx", "ai.onnx.ml",
// ...). ok is false when the operator does not exist at that opset: not yet
// introduced, deprecated, or unknown. Operator sets outside the standard
// ONNX domains (com.microsoft, custom ones) have no table here.
func OpSince(domain, op string, opset int64) (since int64, ok bool) {
	versions, known := opSchemas[normDomain(domain)+"|"+op]
	if !known {
		return 0, false
	}
	for _, v := range versions {
		switch {
		case v < 0 && -v <= opset:
			since, ok = 0, false // deprecated from -v on
		case v > 0 && v <= opset:
			since, ok = v, true
		}
	}
	return since, ok
}

// ortStandardDomainOps are operators that ONNX Runtime registers in the
// standard domain itself (contrib operators older than, or absent from, the
// ONNX standard); its optimizer writes them into models.
var ortStandardDomainOps = map[string]bool{
	"SimplifiedLayerNormalization": true, // RMS norm (T5); com.microsoft has the Skip variants
	"LayerNormalization":           true, // before opset 17, as an ONNX Runtime operator
}

// HasSchemas reports whether OpSince knows the operators of a domain.
func HasSchemas(domain string) bool {
	switch normDomain(domain) {
	case "", "ai.onnx.ml", "ai.onnx.preview", "ai.onnx.preview.training":
		return true
	}
	return false
}

// CheckOps checks every node of the model, nested graphs and functions
// included: its domain must be imported, and an operator of a standard
// domain must exist at the imported opset (as the onnx checker requires).
// Operators of other domains (com.microsoft, custom), ONNX Runtime's own
// operators in the standard domain (SimplifiedLayerNormalization,
// LayerNormalization before opset 17) and calls of the model's own
// functions pass. The error lists the offending nodes (the
// first ten, then a count).
func CheckOps(m *onnxpb.ModelProto) error {
	opsets := Opsets(m)
	funcs := map[string]bool{}
	for _, f := range m.GetFunctions() {
		funcs[normDomain(f.GetDomain())+"|"+f.GetName()] = true
	}
	var errs []error
	var walk func(nodes []*onnxpb.NodeProto, opsets map[string]int64)
	walk = func(nodes []*onnxpb.NodeProto, opsets map[string]int64) {
		for _, n := range nodes {
			d := normDomain(n.GetDomain())
			if funcs[d+"|"+n.GetOpType()] {
				continue
			}
			v, imported := opsets[d]
			switch {
			case !imported:
				errs = append(errs, fmt.Errorf("%s: domain %q is not imported by the model", NodeLabel(n), domainName(d)))
			case d == "" && ortStandardDomainOps[n.GetOpType()]:
				// ONNX Runtime's own operators registered in the standard domain.
			case HasSchemas(d):
				if _, ok := OpSince(d, n.GetOpType(), v); !ok {
					errs = append(errs, fmt.Errorf("%s: %s has no operator %q at opset %d (%s)%s",
						NodeLabel(n), domainName(d), n.GetOpType(), v, schemaSource, opsetHint(d, n.GetOpType(), v)))
				}
			}
			for _, a := range n.GetAttribute() {
				if a.G != nil {
					walk(a.G.Node, opsets)
				}
				for _, g := range a.Graphs {
					walk(g.Node, opsets)
				}
			}
		}
	}
	walk(m.GetGraph().GetNode(), opsets)
	for _, f := range m.GetFunctions() {
		fo := map[string]int64{}
		for k, v := range opsets {
			fo[k] = v
		}
		for _, o := range f.GetOpsetImport() {
			fo[normDomain(o.GetDomain())] = o.GetVersion()
		}
		walk(f.GetNode(), fo)
	}
	if len(errs) > 10 {
		errs = append(errs[:10:10], fmt.Errorf("... and %d more", len(errs)-10))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("onnx: operators not available: %w", err)
	}
	return nil
}

func domainName(d string) string {
	if d == "" {
		return "ai.onnx"
	}
	return d
}

// opsetHint says from which opset an operator exists, when it does later.
func opsetHint(domain, op string, opset int64) string {
	for _, v := range opSchemas[domain+"|"+op] {
		if v > opset {
			return fmt.Sprintf("; it exists from opset %d", v)
		}
	}
	if _, known := opSchemas[domain+"|"+op]; known {
		return "; it is deprecated"
	}
	return ""
}
