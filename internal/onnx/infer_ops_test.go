package onnx

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/testenv"
)

// opCases is testdata/onnx/opcases.json, written by
// scripts/fixtures/make_onnx_opcases.py: single nodes with the output
// shapes of onnx.shape_inference and of ONNX Runtime runs.
type opCases struct {
	Settings map[string]map[string]int64 `json:"settings"`
	Cases    []struct {
		Name   string `json:"name"`
		Op     string `json:"op"`
		Domain string `json:"domain"`
		Opset  int64  `json:"opset"`
		NOut   int    `json:"n_out"`
		Inputs []struct {
			Elem  int32     `json:"elem"`
			Dims  []any     `json:"dims"`
			Const []float64 `json:"const"`
		} `json:"inputs"`
		Attrs map[string]struct {
			Type  string          `json:"type"`
			Value json.RawMessage `json:"value"`
		} `json:"attrs"`
		ONNX []*onnxType          `json:"onnx"`
		Run  map[string][][]int64 `json:"run"`
	} `json:"cases"`
}

type jsonTensor struct {
	Elem int32     `json:"elem"`
	Dims []int64   `json:"dims"`
	Vals []float64 `json:"vals"`
}

func constTensor(elem DType, dims []int64, vals []float64) (*onnxpb.TensorProto, error) {
	switch elem {
	case Float32:
		f := make([]float32, len(vals))
		for i, v := range vals {
			f[i] = float32(v)
		}
		return NewTensor("", dims, f)
	case Int64:
		n := make([]int64, len(vals))
		for i, v := range vals {
			n[i] = int64(v)
			if v >= 9.2e18 {
				n[i] = 1<<63 - 1
			} else if v <= -9.2e18 {
				n[i] = -1 << 63
			}
		}
		return NewTensor("", dims, n)
	case Int8:
		n := make([]int8, len(vals))
		for i, v := range vals {
			n[i] = int8(v)
		}
		return NewTensor("", dims, n)
	case Bool:
		b := make([]bool, len(vals))
		for i, v := range vals {
			b[i] = v != 0
		}
		return NewTensor("", dims, b)
	}
	return nil, fmt.Errorf("no constants of %s in the cases", DTypeName(elem))
}

func TestInferOpCases(t *testing.T) {
	raw, err := os.ReadFile(testenv.Testdata(t, "onnx", "opcases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref opCases
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	symbols := map[string]map[string]int64{}
	for setting, vals := range ref.Settings {
		for sym, v := range vals {
			if symbols[sym] == nil {
				symbols[sym] = map[string]int64{}
			}
			symbols[sym][setting] = v
		}
	}
	if len(ref.Cases) < 100 {
		t.Fatalf("only %d cases", len(ref.Cases))
	}
	for _, cs := range ref.Cases {
		t.Run(cs.Name, func(t *testing.T) {
			b := NewGraphBuilder(nil)
			var ins []string
			for i, in := range cs.Inputs {
				name := fmt.Sprintf("in%d", i)
				if in.Const != nil {
					dims := make([]int64, len(in.Dims))
					for j, d := range in.Dims {
						dims[j] = int64(d.(float64))
					}
					ct, err := constTensor(DType(in.Elem), dims, in.Const)
					if err != nil {
						t.Fatal(err)
					}
					ct.Name = &name
					ins = append(ins, b.AddInitializer(ct))
					continue
				}
				dims := make([]Dim, len(in.Dims))
				for j, d := range in.Dims {
					switch v := d.(type) {
					case string:
						dims[j] = Sym(v)
					case float64:
						dims[j] = D(int64(v))
					}
				}
				ins = append(ins, b.AddInput(name, DType(in.Elem), dims...))
			}
			var attrs []Attr
			for name, a := range cs.Attrs {
				switch a.Type {
				case "INT":
					var v int64
					json.Unmarshal(a.Value, &v)
					attrs = append(attrs, AttrInt(name, v))
				case "INTS":
					var v []int64
					json.Unmarshal(a.Value, &v)
					attrs = append(attrs, AttrInts(name, v))
				case "FLOAT":
					var v float32
					json.Unmarshal(a.Value, &v)
					attrs = append(attrs, AttrFloat(name, v))
				case "STRING":
					var v string
					json.Unmarshal(a.Value, &v)
					attrs = append(attrs, AttrString(name, v))
				case "TENSOR":
					var v jsonTensor
					json.Unmarshal(a.Value, &v)
					ct, err := constTensor(DType(v.Elem), v.Dims, v.Vals)
					if err != nil {
						t.Fatal(err)
					}
					attrs = append(attrs, AttrTensor(name, ct))
				default:
					t.Fatalf("attribute type %s", a.Type)
				}
			}
			outs := b.OpDomain(cs.Domain, cs.Op, ins, cs.NOut, attrs...)
			types, err := InferShapes(b.Graph(), map[string]int64{"": cs.Opset})
			if err != nil {
				t.Fatal(err)
			}
			c := newShapeChecker(symbols)
			for i, o := range outs {
				run := map[string][]int64{}
				for setting, shapes := range cs.Run {
					run[setting] = shapes[i]
				}
				c.check(fmt.Sprintf("output %d", i), types[o], cs.ONNX[i], run)
			}
			if len(c.problems) > 0 {
				t.Errorf("%s: %s", cs.Op, strings.Join(c.problems, "; "))
			}
		})
	}
}
