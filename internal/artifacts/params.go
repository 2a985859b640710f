package artifacts

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"regexp"
	"strings"

	"github.com/ortrain/ortrain/internal/arch"
	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/optim"
	"github.com/ortrain/ortrain/internal/safetensors"
)

// candidate is a float initializer of the forward graph that may become a
// parameter.
type candidate struct {
	onnxName string
	shape    []int64
	raw      []byte // little-endian float32 elements
}

// isCandidate: float32 initializers with more than one element. Scalars
// and integer tensors are constants of the computation (scales, shapes).
func isCandidate(t *onnxpb.TensorProto) bool {
	return onnx.DType(t.GetDataType()) == onnx.Float32 && onnx.NumElements(t.GetDims()) > 1
}

func candidates(g *onnxpb.GraphProto) ([]candidate, error) {
	var out []candidate
	for _, t := range g.GetInitializer() {
		if !isCandidate(t) {
			continue
		}
		raw, err := onnx.RawBytes(t)
		if err != nil {
			return nil, fmt.Errorf("initializer %q: %w", t.GetName(), err)
		}
		out = append(out, candidate{onnxName: t.GetName(), shape: append([]int64(nil), t.GetDims()...), raw: raw})
	}
	return out, nil
}

type contentKey struct {
	shape string
	sum   [32]byte
}

func keyOf(shape []int64, raw []byte) contentKey {
	return contentKey{fmt.Sprint(shape), sha256.Sum256(raw)}
}

// transpose2D transposes a row-major [rows, cols] float32 matrix of raw bytes.
func transpose2D(raw []byte, rows, cols int64) []byte {
	out := make([]byte, len(raw))
	for r := int64(0); r < rows; r++ {
		for c := int64(0); c < cols; c++ {
			copy(out[4*(c*rows+r):4*(c*rows+r)+4], raw[4*(r*cols+c):4*(r*cols+c)+4])
		}
	}
	return out
}

// matchWeights names each candidate after the PyTorch tensor it holds:
// first by equal name (the contents must then agree), then by equal
// contents, then by contents equal after a transpose. Candidates that
// match nothing are not parameters of the PyTorch model (folded constants)
// and stay constants. Equal contents under several names (possible in
// untrained models: all-ones norms) are resolved in sorted name order and
// noted, since every choice gives the same values.
func matchWeights(cands []candidate, w *safetensors.File, weightsPath string) (params []Parameter, constants []string, notes []string, byContent int, err error) {
	type hfTensor struct {
		name  string
		shape []int64
		raw   []byte
	}
	hf := map[string]*hfTensor{}
	direct := map[contentKey][]string{}
	transposed := map[contentKey][]string{}
	for _, name := range w.Names() {
		t := w.Tensors[name]
		if t.DType != safetensors.Float32 {
			continue
		}
		h := &hfTensor{name: name, shape: t.Shape, raw: t.Data}
		hf[name] = h
		direct[keyOf(t.Shape, t.Data)] = append(direct[keyOf(t.Shape, t.Data)], name)
		if len(t.Shape) == 2 {
			tr := transpose2D(t.Data, t.Shape[0], t.Shape[1])
			k := keyOf([]int64{t.Shape[1], t.Shape[0]}, tr)
			transposed[k] = append(transposed[k], name)
		}
	}
	claimed := map[string]bool{}
	matched := make([]*Parameter, len(cands))
	for i, c := range cands {
		h, ok := hf[c.onnxName]
		if !ok {
			continue
		}
		if fmt.Sprint(h.shape) != fmt.Sprint(c.shape) || !bytes.Equal(h.raw, c.raw) {
			return nil, nil, nil, 0, fmt.Errorf("initializer %q of the model differs from the tensor of that name in %s (shape %v vs %v or values): pass the weights the model was exported from with --weights", c.onnxName, weightsPath, c.shape, h.shape)
		}
		claimed[c.onnxName] = true
		matched[i] = &Parameter{Name: c.onnxName, Shape: c.shape, DType: "float32"}
	}
	// pick chooses among unclaimed names with equal contents the one whose
	// name ends like the initializer's (a wrapper module prefixes names:
	// "m.encoder.x" holds "encoder.x"), else the first in sorted order. It
	// also reports whether the choice was ambiguous.
	pick := func(names []string, onnxName string) (string, bool) {
		best, bestLen, ties := "", -1, 0
		for _, n := range names {
			if claimed[n] {
				continue
			}
			l := commonSuffixParts(n, onnxName)
			switch {
			case l > bestLen:
				best, bestLen, ties = n, l, 1
			case l == bestLen:
				ties++
			}
		}
		return best, ties > 1
	}
	for i, c := range cands {
		if matched[i] != nil {
			continue
		}
		k := keyOf(c.shape, c.raw)
		name, ambiguous := pick(direct[k], c.onnxName)
		tr := false
		if name == "" {
			name, ambiguous = pick(transposed[k], c.onnxName)
			tr = name != ""
		}
		if name == "" {
			constants = append(constants, c.onnxName)
			continue
		}
		if ambiguous {
			notes = append(notes, fmt.Sprintf("initializer %q has the same values as several tensors of %s; named %q (any choice gives the same values)", c.onnxName, weightsPath, name))
		}
		claimed[name] = true
		byContent++
		matched[i] = &Parameter{Name: name, ONNXName: c.onnxName, Shape: c.shape, DType: "float32", Transposed: tr}
	}
	for _, p := range matched {
		if p != nil {
			params = append(params, *p)
		}
	}
	return params, constants, notes, byContent, nil
}

// commonSuffixParts counts the trailing dot-separated parts two names share.
func commonSuffixParts(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	n := 0
	for n < len(pa) && n < len(pb) && pa[len(pa)-1-n] == pb[len(pb)-1-n] {
		n++
	}
	return n
}

// unnamedParameters makes every candidate a parameter under its ONNX name,
// for models without a weights file (names then come from the exporter).
func unnamedParameters(cands []candidate) []Parameter {
	var out []Parameter
	for _, c := range cands {
		out = append(out, Parameter{Name: c.onnxName, Shape: c.shape, DType: "float32"})
	}
	return out
}

// FreezeError reports a --freeze pattern that is invalid or matches nothing.
type FreezeError struct {
	Pattern string
	Msg     string
}

func (e *FreezeError) Error() string { return fmt.Sprintf("--freeze %q %s", e.Pattern, e.Msg) }

// Is makes a FreezeError a bad setting (fault.Settings).
func (e *FreezeError) Is(target error) bool { return target == fault.Settings }

// applyFreeze sets Trainable, FrozenBy and Decay. Every pattern must match
// at least one parameter.
func applyFreeze(params []Parameter, patterns []string, semantic *arch.Arch) error {
	res := make([]*regexp.Regexp, len(patterns))
	hits := make([]int, len(patterns))
	for i, p := range patterns {
		re, err := regexp.Compile(p)
		if err != nil {
			return &FreezeError{p, fmt.Sprintf("is not a valid regular expression: %v", err)}
		}
		res[i] = re
	}
	for i := range params {
		p := &params[i]
		p.Trainable = true
		p.Decay = optim.Decays(p.Name)
		if semantic != nil {
			if why, ok := semantic.NotTrainedWhy(p.Name); ok {
				p.Trainable, p.FrozenBy = false, "not trained by HF: "+why
			}
		}
		for j, re := range res {
			if re.MatchString(p.Name) {
				hits[j]++
				if p.Trainable {
					p.Trainable, p.FrozenBy = false, "--freeze "+patterns[j]
				}
			}
		}
	}
	for j, n := range hits {
		if n == 0 {
			names := make([]string, 0, 5)
			for i := 0; i < len(params) && i < 5; i++ {
				names = append(names, params[i].Name)
			}
			return &FreezeError{patterns[j], fmt.Sprintf("matches no parameter (parameter names look like %s)", strings.Join(names, ", "))}
		}
	}
	trainable := 0
	for _, p := range params {
		if p.Trainable {
			trainable++
		}
	}
	if trainable == 0 {
		return &FreezeError{strings.Join(patterns, " "), "leaves no trainable parameter"}
	}
	return nil
}
