package onnx

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/testenv"
)

// shapeRef is testdata/onnx/<model>.shapes.json, written by
// scripts/fixtures/make_onnx_testmodels.py.
type shapeRef struct {
	Symbols map[string]map[string]int64 `json:"symbols"`
	Values  map[string]struct {
		ONNX *onnxType          `json:"onnx"`
		Run  map[string][]int64 `json:"run"`
	} `json:"values"`
}

// TestInferRealExports checks InferShapes on tiny T5, Marian and BART
// exports (TorchScript and dynamo exporters, opsets 14, 17, 18) against
//   - the shapes ONNX Runtime produced for every value at two input sizes:
//     each static dim must match, each input symbol must stand for its
//     size, each fresh symbol for one consistent size;
//   - onnx.shape_inference: every elem type, rank, static dim and input
//     symbol it knows, we know too.
func TestInferRealExports(t *testing.T) {
	for _, name := range []string{"t5_ts17", "marian_ts14", "bart_dynamo18", "kvcache_ts17", "kvcache_dynamo18"} {
		t.Run(name, func(t *testing.T) {
			m, err := Load(testenv.Testdata(t, "onnx", name+".onnx"))
			if err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(testenv.Testdata(t, "onnx", name+".shapes.json"))
			if err != nil {
				t.Fatal(err)
			}
			var ref shapeRef
			if err := json.Unmarshal(raw, &ref); err != nil {
				t.Fatal(err)
			}
			types, err := InferModelShapes(m)
			if err != nil {
				t.Fatal(err)
			}
			names := make([]string, 0, len(ref.Values))
			for n := range ref.Values {
				names = append(names, n)
			}
			sort.Strings(names)
			c := newShapeChecker(ref.Symbols)
			var better, total int
			for _, n := range names {
				want := ref.Values[n]
				got, ok := types[n]
				if !ok {
					c.problems = append(c.problems, fmt.Sprintf("%s: not inferred", n))
					continue
				}
				total++
				if c.check(n, got, want.ONNX, want.Run) {
					better++
				}
			}
			problems := c.problems
			// These exports need no fresh symbols: every size is static
			// or an expression of the input sizes.
			if c.freshDims > 0 {
				problems = append(problems, fmt.Sprintf("%d dims got fresh symbols", c.freshDims/2))
			}
			if len(problems) > 0 {
				if len(problems) > 40 {
					problems = append(problems[:40], fmt.Sprintf("... and %d more", len(problems)-40))
				}
				t.Fatalf("%d problems:\n%s", len(problems), strings.Join(problems, "\n"))
			}
			t.Logf("%d values checked (%d symbolic dims by evaluating their expression); %d known more precisely than onnx.shape_inference", total, c.exprs/2, better)
		})
	}
}

// onnxType is a type as onnx.shape_inference reports it.
type onnxType struct {
	Elem *int32 `json:"elem"`
	Dims []any  `json:"dims"` // int (as float64), string, or nil
}

// shapeChecker compares inferred types with reference shapes. Symbols of the
// graph inputs stand for known sizes per setting; any other symbol must
// stand for one size throughout a setting.
type shapeChecker struct {
	symbols   map[string]map[string]int64
	fresh     map[string]map[string]int64
	problems  []string
	exprs     int // dims checked by evaluating an expression of input symbols
	freshDims int // dims with a symbol of their own
}

func (c *shapeChecker) sizes(setting string) map[string]int64 {
	out := map[string]int64{}
	for sym, v := range c.symbols {
		out[sym] = v[setting]
	}
	return out
}

// evaluable reports whether d is made of input symbols only.
func (c *shapeChecker) evaluable(d Dim, setting string) bool {
	_, ok := d.Eval(c.sizes(setting))
	return ok
}

func newShapeChecker(symbols map[string]map[string]int64) *shapeChecker {
	return &shapeChecker{symbols: symbols, fresh: map[string]map[string]int64{}}
}

func (c *shapeChecker) fail(format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// check compares one value; it reports whether ours is more precise than
// onnx.shape_inference somewhere.
func (c *shapeChecker) check(n string, got TypeInfo, o *onnxType, run map[string][]int64) (better bool) {
	if !got.RankKnown {
		c.fail("%s: rank unknown", n)
		return false
	}
	if o != nil && o.Elem != nil && *o.Elem != 0 && DType(*o.Elem) != got.Elem {
		c.fail("%s: elem %s, onnx says %s", n, DTypeName(got.Elem), DTypeName(DType(*o.Elem)))
	}
	settings := make([]string, 0, len(run))
	for s := range run {
		settings = append(settings, s)
	}
	sort.Strings(settings)
	for _, setting := range settings {
		shape := run[setting]
		if len(shape) != len(got.Dims) {
			c.fail("%s: inferred %s, ONNX Runtime ran %v", n, got, shape)
			return false
		}
		for i, d := range got.Dims {
			switch {
			case d.Static():
				if d.Value != shape[i] {
					c.fail("%s: inferred %s, ONNX Runtime ran %v (setting %s)", n, got, shape, setting)
				}
			case c.evaluable(d, setting):
				if v, _ := d.Eval(c.sizes(setting)); v != shape[i] {
					c.fail("%s: inferred %s, ONNX Runtime ran %v (setting %s)", n, got, shape, setting)
				}
				c.exprs++
			default:
				c.freshDims++
				if c.fresh[setting] == nil {
					c.fresh[setting] = map[string]int64{}
				}
				if v, seen := c.fresh[setting][d.Param]; seen && v != shape[i] {
					c.fail("%s: symbol %s stands for %d here and %d elsewhere (setting %s)", n, d.Param, shape[i], v, setting)
				}
				c.fresh[setting][d.Param] = shape[i]
			}
		}
	}
	if o == nil || o.Dims == nil {
		return got.RankKnown
	}
	if len(o.Dims) != len(got.Dims) {
		c.fail("%s: rank %d, onnx says %d", n, len(got.Dims), len(o.Dims))
		return false
	}
	for i, od := range o.Dims {
		d := got.Dims[i]
		switch v := od.(type) {
		case float64:
			if d.Value != int64(v) {
				c.fail("%s: dim %d is %s, onnx says %d", n, i, d, int64(v))
			}
		case string:
			if c.symbols[v] != nil && d.Param != v {
				c.fail("%s: dim %d is %s, onnx says %s", n, i, d, v)
			}
			if c.symbols[v] == nil && (d.Static() || c.evaluable(d, "a")) {
				better = true
			}
		case nil:
			if d.Static() || c.evaluable(d, "a") {
				better = true
			}
		}
	}
	return better
}

// TestBindSymbolsPredictsRunShapes binds the input shapes of one ONNX
// Runtime run of the KV-cache export and predicts every value's shape.
func TestBindSymbolsPredictsRunShapes(t *testing.T) {
	m, err := Load(testenv.Testdata(t, "onnx", "kvcache_ts17.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(testenv.Testdata(t, "onnx", "kvcache_ts17.shapes.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref shapeRef
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	types, err := InferModelShapes(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, setting := range []string{"a", "b"} {
		inputs := map[string][]int64{}
		for _, vi := range m.Graph.Input {
			inputs[vi.GetName()] = ref.Values[vi.GetName()].Run[setting]
		}
		sizes, err := BindSymbols(types, inputs)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for name, v := range ref.Values {
			got, ok := types[name].Shape(sizes)
			if !ok {
				t.Errorf("%s: %s not evaluable", name, types[name])
				continue
			}
			if fmt.Sprint(got) != fmt.Sprint(v.Run[setting]) {
				t.Errorf("%s: predicted %v, ran %v", name, got, v.Run[setting])
			}
			n++
		}
		if n < 80 {
			t.Fatalf("only %d values", n)
		}
	}
	// Inconsistent inputs are named.
	_, err = BindSymbols(types, map[string][]int64{"x": {2, 3, 16}, "past_key": {5, 2, 4, 8}})
	if err == nil || !strings.Contains(err.Error(), "batch") {
		t.Fatalf("inconsistent batch: %v", err)
	}
	_, err = BindSymbols(types, map[string][]int64{"x": {2, 3, 15}})
	if err == nil || !strings.Contains(err.Error(), `"x"`) {
		t.Fatalf("wrong static dim: %v", err)
	}
}
