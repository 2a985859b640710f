package artifacts

import (
	"crypto/sha256"
	"fmt"
	"regexp"
	"strings"

	"github.com/ortrain/ortrain/internal/arch"
	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/optim"
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
				p.Trainable, p.FrozenBy = false, notTrainedByHF+why
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
