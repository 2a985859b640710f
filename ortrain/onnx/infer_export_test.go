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
		ONNX *struct {
			Elem *int32 `json:"elem"`
			Dims []any  `json:"dims"`
		} `json:"onnx"`
		Run map[string][]int64 `json:"run"`
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
	for _, name := range []string{"t5_ts17", "marian_ts14", "bart_dynamo18"} {
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
			fresh := map[string]map[string]int64{} // setting -> fresh symbol -> size
			var problems []string
			var better, total int
			for _, n := range names {
				want := ref.Values[n]
				got, ok := types[n]
				if !ok {
					problems = append(problems, fmt.Sprintf("%s: not inferred", n))
					continue
				}
				total++
				if !got.RankKnown {
					problems = append(problems, fmt.Sprintf("%s: rank unknown", n))
					continue
				}
				if o := want.ONNX; o != nil && o.Elem != nil && *o.Elem != 0 && DType(*o.Elem) != got.Elem {
					problems = append(problems, fmt.Sprintf("%s: elem %s, onnx says %s", n, DTypeName(got.Elem), DTypeName(DType(*o.Elem))))
				}
				for setting, shape := range want.Run {
					if len(shape) != len(got.Dims) {
						problems = append(problems, fmt.Sprintf("%s: inferred %s, ONNX Runtime ran %v", n, got, shape))
						break
					}
					for i, d := range got.Dims {
						switch {
						case d.Static():
							if d.Value != shape[i] {
								problems = append(problems, fmt.Sprintf("%s: inferred %s, ONNX Runtime ran %v (setting %s)", n, got, shape, setting))
							}
						case ref.Symbols[d.Param] != nil:
							if v := ref.Symbols[d.Param][setting]; v != shape[i] {
								problems = append(problems, fmt.Sprintf("%s: inferred %s, ONNX Runtime ran %v (setting %s)", n, got, shape, setting))
							}
						default:
							if fresh[setting] == nil {
								fresh[setting] = map[string]int64{}
							}
							if v, seen := fresh[setting][d.Param]; seen && v != shape[i] {
								problems = append(problems, fmt.Sprintf("%s: symbol %s stands for %d here and %d elsewhere (setting %s)", n, d.Param, shape[i], v, setting))
							}
							fresh[setting][d.Param] = shape[i]
						}
					}
				}
				if o := want.ONNX; o != nil && o.Dims != nil {
					if len(o.Dims) != len(got.Dims) {
						problems = append(problems, fmt.Sprintf("%s: rank %d, onnx says %d", n, len(got.Dims), len(o.Dims)))
						continue
					}
					moreKnown := false
					for i, od := range o.Dims {
						d := got.Dims[i]
						switch v := od.(type) {
						case float64:
							if d.Value != int64(v) {
								problems = append(problems, fmt.Sprintf("%s: dim %d is %s, onnx says %d", n, i, d, int64(v)))
							}
						case string:
							if ref.Symbols[v] != nil && d.Param != v {
								problems = append(problems, fmt.Sprintf("%s: dim %d is %s, onnx says %s", n, i, d, v))
							}
							if ref.Symbols[v] == nil && (d.Static() || ref.Symbols[d.Param] != nil) {
								moreKnown = true
							}
						case nil:
							if d.Static() || ref.Symbols[d.Param] != nil {
								moreKnown = true
							}
						}
					}
					if moreKnown {
						better++
					}
				}
			}
			if len(problems) > 0 {
				if len(problems) > 40 {
					problems = append(problems[:40], fmt.Sprintf("... and %d more", len(problems)-40))
				}
				t.Fatalf("%d problems:\n%s", len(problems), strings.Join(problems, "\n"))
			}
			t.Logf("%d values checked; %d known more precisely than onnx.shape_inference", total, better)
		})
	}
}
