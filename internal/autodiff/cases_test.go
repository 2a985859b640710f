package autodiff

import (
	"github.com/ortrain/ortrain/internal/onnx"
)

func ai(name string, v int64) onnx.Attr    { return onnx.AttrInt(name, v) }
func as(name string, v ...int64) onnx.Attr { return onnx.AttrInts(name, v) }
func af(name string, v float32) onnx.Attr  { return onnx.AttrFloat(name, v) }
func astr(name, v string) onnx.Attr        { return onnx.AttrString(name, v) }

// binary builds op(x, y) over several broadcasting patterns, some with
// symbolic dims, including one whose broadcast is only known at run time.
func binaryCases(op string, makeY func(b *caseBuilder, name string, shape []int64, decl ...string) string) []fdCase {
	mk := func(b *caseBuilder, name string, shape []int64, decl ...string) string {
		if makeY != nil && name == "y" {
			return makeY(b, name, shape, decl...)
		}
		return b.input(name, shape, decl...)
	}
	return []fdCase{
		{name: op + "/same", op: op, build: func(b *caseBuilder) {
			d := b.dims(2, 2, 4)
			b.out(b.Op(op, []string{mk(b, "x", d), mk(b, "y", d)}))
		}},
		{name: op + "/bcast_lead", op: op, build: func(b *caseBuilder) {
			d := b.dims(3, 2, 4)
			b.out(b.Op(op, []string{mk(b, "x", d, "B"), mk(b, "y", d[2:])}))
		}},
		{name: op + "/bcast_inner", op: op, build: func(b *caseBuilder) {
			d := b.dims(3, 2, 4)
			b.out(b.Op(op, []string{mk(b, "x", []int64{d[0], 1, d[2]}, "B"), mk(b, "y", []int64{d[1], 1})}))
		}},
		{name: op + "/scalar", op: op, build: func(b *caseBuilder) {
			d := b.dims(2, 2, 4)
			b.out(b.Op(op, []string{mk(b, "x", nil), mk(b, "y", d, "N", "M")}))
		}},
		{name: op + "/symbolic_runtime_bcast", op: op, build: func(b *caseBuilder) {
			// x declared [n, 3] but fed [1, 3]; y declared [m, 3] fed [4, 3]:
			// only Shape(x) at run time says that x was broadcast.
			b.out(b.Op(op, []string{mk(b, "x", []int64{1, 3}, "n"), mk(b, "y", []int64{4, 3}, "m")}))
		}},
	}
}

func positive(b *caseBuilder, name string, shape []int64, decl ...string) string {
	return b.inputRange(name, shape, 0.5, 2, decl...)
}

func unaryCase(op string, lo, hi float64, attrs ...onnx.Attr) fdCase {
	return fdCase{name: op, op: op, build: func(b *caseBuilder) {
		x := b.inputRange("x", b.dims(3, 1, 4), lo, hi, "B", "", "")
		b.out(b.Op(op, []string{x}, attrs...))
	}}
}

func fdCases() []fdCase {
	var cs []fdCase
	cs = append(cs, binaryCases("Add", nil)...)
	cs = append(cs, binaryCases("Sub", nil)...)
	cs = append(cs, binaryCases("Mul", nil)...)
	cs = append(cs, binaryCases("Div", func(b *caseBuilder, name string, shape []int64, decl ...string) string {
		return b.away(name, shape, decl...)
	})...)
	for _, c := range binaryCases("Pow", positive)[:3] {
		// Both operands positive: a negative base has no real power.
		build := c.build
		c.build = func(b *caseBuilder) {
			build(b)
			for i, v := range b.feeds["x"].data {
				b.feeds["x"].data[i] = 1.25 + v
			}
		}
		cs = append(cs, c)
	}
	cs = append(cs, binaryCases("Min", nil)...)
	cs = append(cs, binaryCases("Max", nil)...)
	cs = append(cs,
		fdCase{name: "Pow/base_positive", op: "Pow", build: func(b *caseBuilder) {
			b.out(b.Op("Pow", []string{positive(b, "x", b.dims(2, 2, 3)), b.input("y", []int64{1})}))
		}},
		fdCase{name: "Pow/const2", op: "Pow", build: func(b *caseBuilder) {
			b.out(b.Op("Pow", []string{b.input("x", b.dims(2, 2, 3)), b.scalar(2)}))
		}},
		fdCase{name: "Pow/const3", op: "Pow", build: func(b *caseBuilder) {
			b.out(b.Op("Pow", []string{b.input("x", b.dims(2, 2, 3)), b.scalar(3)}))
		}},
		fdCase{name: "Pow/const_half", op: "Pow", build: func(b *caseBuilder) {
			b.out(b.Op("Pow", []string{positive(b, "x", b.dims(2, 2, 3)), b.scalar(0.5)}))
		}},
		unaryCase("Sqrt", 0.5, 2),
		unaryCase("Reciprocal", 0.5, 2),
		unaryCase("Neg", -1, 1),
		unaryCase("Exp", -1, 1),
		unaryCase("Log", 0.5, 2),
		unaryCase("Tanh", -1.5, 1.5),
		unaryCase("Erf", -1.5, 1.5),
		unaryCase("Relu", -1, 1),
		unaryCase("Sigmoid", -2, 2),
		unaryCase("Abs", -1, 1),
		unaryCase("Identity", -1, 1),
		fdCase{name: "Gelu/none", op: "Gelu", opset: 20, build: func(b *caseBuilder) {
			b.out(b.Op("Gelu", []string{b.inputRange("x", b.dims(2, 2, 4), -3, 3, "B")}))
		}},
		fdCase{name: "Gelu/tanh", op: "Gelu", opset: 20, build: func(b *caseBuilder) {
			b.out(b.Op("Gelu", []string{b.inputRange("x", b.dims(2, 2, 4), -3, 3, "B")}, astr("approximate", "tanh")))
		}},
		fdCase{name: "com.microsoft::Gelu", op: "com.microsoft::Gelu", build: func(b *caseBuilder) {
			b.out(b.ms("Gelu", []string{b.inputRange("x", b.dims(2, 2, 4), -3, 3, "B")}, 1)...)
		}},
		fdCase{name: "com.microsoft::FastGelu", op: "com.microsoft::FastGelu", build: func(b *caseBuilder) {
			d := b.dims(2, 2, 4)
			b.out(b.ms("FastGelu", []string{b.inputRange("x", d, -3, 3, "B"), b.input("bias", d[1:])}, 1)...)
		}},
		fdCase{name: "Softmax/last", op: "Softmax", build: func(b *caseBuilder) {
			b.out(b.Op("Softmax", []string{b.inputRange("x", b.dims(3, 2, 4), -2, 2, "B", "T", "")}))
		}},
		fdCase{name: "Softmax/axis1", op: "Softmax", build: func(b *caseBuilder) {
			b.out(b.Op("Softmax", []string{b.inputRange("x", b.dims(3, 2, 4), -2, 2, "B", "T", "")}, ai("axis", 1)))
		}},
		fdCase{name: "LogSoftmax/last", op: "LogSoftmax", build: func(b *caseBuilder) {
			b.out(b.Op("LogSoftmax", []string{b.inputRange("x", b.dims(3, 2, 4), -2, 2, "B", "T", "")}))
		}},
		fdCase{name: "LogSoftmax/axis0", op: "LogSoftmax", build: func(b *caseBuilder) {
			b.out(b.Op("LogSoftmax", []string{b.inputRange("x", b.dims(2, 2, 4), -2, 2)}, ai("axis", 0)))
		}},
		fdCase{name: "LayerNormalization/last", op: "LayerNormalization", build: func(b *caseBuilder) {
			d := b.dims(3, 2, 4)
			d[2] = 5
			b.out(b.Op("LayerNormalization", []string{b.input("x", d, "B", "T"), b.input("scale", d[2:]), b.input("bias", d[2:])}, af("epsilon", 1e-5)))
		}},
		fdCase{name: "LayerNormalization/axis1_nobias", op: "LayerNormalization", build: func(b *caseBuilder) {
			d := b.dims(3, 2, 4)
			b.out(b.Op("LayerNormalization", []string{b.input("x", d, "B"), b.input("scale", d[1:])}, ai("axis", 1)))
		}},
		fdCase{name: "LayerNormalization/with_stats_outputs", op: "LayerNormalization", build: func(b *caseBuilder) {
			d := b.dims(2, 3, 5)
			outs := b.OpN("LayerNormalization", []string{b.input("x", d, "B"), b.input("scale", d[1:]), b.input("bias", d[1:])}, 3)
			b.out(outs[0])
		}},
		fdCase{name: "SimplifiedLayerNormalization", op: "SimplifiedLayerNormalization", dtype: onnx.Float32, opset: 17, build: func(b *caseBuilder) {
			d := b.dims(3, 2, 4)
			d[2] = 6
			// ONNX Runtime registers this contrib op in the standard domain.
			b.out(b.Op("SimplifiedLayerNormalization", []string{b.input("x", d, "B", "T"), b.input("scale", d[2:])}, af("epsilon", 1e-6)))
		}},
		fdCase{name: "ReduceSum/axes_keep", op: "ReduceSum", build: func(b *caseBuilder) {
			b.out(b.Op("ReduceSum", []string{b.input("x", b.dims(3, 2, 4), "B"), b.ints(1)}))
		}},
		fdCase{name: "ReduceSum/axes_nokeep_neg", op: "ReduceSum", build: func(b *caseBuilder) {
			b.out(b.Op("ReduceSum", []string{b.input("x", b.dims(3, 2, 4), "B"), b.ints(-1, 0)}, ai("keepdims", 0)))
		}},
		fdCase{name: "ReduceSum/all", op: "ReduceSum", build: func(b *caseBuilder) {
			b.out(b.Op("ReduceSum", []string{b.input("x", b.dims(2, 2, 4), "B")}, ai("keepdims", 0)))
		}},
		fdCase{name: "ReduceMean/attr_opset17", op: "ReduceMean", build: func(b *caseBuilder) {
			b.out(b.Op("ReduceMean", []string{b.input("x", b.dims(3, 2, 4), "B", "T")}, as("axes", -1)))
		}},
		fdCase{name: "ReduceMean/symbolic_axis_nokeep", op: "ReduceMean", build: func(b *caseBuilder) {
			b.out(b.Op("ReduceMean", []string{b.input("x", b.dims(3, 2, 4), "B", "T")}, as("axes", 0, 1), ai("keepdims", 0)))
		}},
		fdCase{name: "ReduceMean/input_opset18", op: "ReduceMean", opset: 18, build: func(b *caseBuilder) {
			b.out(b.Op("ReduceMean", []string{b.input("x", b.dims(3, 2, 4), "B"), b.ints(1)}, ai("keepdims", 0)))
		}},
		fdCase{name: "ReduceMax", op: "ReduceMax", build: func(b *caseBuilder) {
			b.out(b.Op("ReduceMax", []string{b.input("x", b.dims(3, 2, 4), "B")}, as("axes", 2)))
		}},
		fdCase{name: "ReduceMax/opset18_nokeep", op: "ReduceMax", opset: 18, build: func(b *caseBuilder) {
			b.out(b.Op("ReduceMax", []string{b.input("x", b.dims(3, 2, 4), "B"), b.ints(0, 2)}, ai("keepdims", 0)))
		}},
		fdCase{name: "ReduceMin", op: "ReduceMin", build: func(b *caseBuilder) {
			b.out(b.Op("ReduceMin", []string{b.input("x", b.dims(3, 2, 4), "B")}, as("axes", 1)))
		}},
		fdCase{name: "ReduceSumSquare", op: "ReduceSumSquare", build: func(b *caseBuilder) {
			b.out(b.Op("ReduceSumSquare", []string{b.input("x", b.dims(3, 2, 4), "B")}, as("axes", 1)))
		}},
		fdCase{name: "ReduceL2", op: "ReduceL2", build: func(b *caseBuilder) {
			b.out(b.Op("ReduceL2", []string{b.input("x", b.dims(3, 2, 4), "B")}, as("axes", 2), ai("keepdims", 0)))
		}},
		fdCase{name: "ReduceLogSumExp", op: "ReduceLogSumExp", build: func(b *caseBuilder) {
			b.out(b.Op("ReduceLogSumExp", []string{b.input("x", b.dims(3, 2, 4), "B")}, as("axes", 2)))
		}},
		fdCase{name: "MatMul/2x2", op: "MatMul", build: func(b *caseBuilder) {
			d := b.dims(3, 2, 4)
			b.out(b.Op("MatMul", []string{b.input("a", d[:2], "M"), b.input("b", d[1:])}))
		}},
		fdCase{name: "MatMul/3x2_weight", op: "MatMul", build: func(b *caseBuilder) {
			d := b.dims(4, 2, 4)
			b.out(b.Op("MatMul", []string{b.input("a", d[:3], "B", "T"), b.input("w", d[2:])}))
		}},
		fdCase{name: "MatMul/batch_bcast", op: "MatMul", build: func(b *caseBuilder) {
			d := b.dims(5, 2, 3)
			b.out(b.Op("MatMul", []string{b.input("a", []int64{d[0], 1, d[2], d[3]}), b.input("b", []int64{d[1], d[3], d[4]})}))
		}},
		fdCase{name: "MatMul/batch_same_symbolic", op: "MatMul", build: func(b *caseBuilder) {
			d := b.dims(5, 2, 3)
			b.out(b.Op("MatMul", []string{b.input("q", []int64{d[0], d[1], d[2], d[3]}, "B", "H", "T"), b.input("k", []int64{d[0], d[1], d[3], d[4]}, "B", "H", "", "S")}))
		}},
		fdCase{name: "MatMul/2x3", op: "MatMul", build: func(b *caseBuilder) {
			d := b.dims(4, 2, 3)
			b.out(b.Op("MatMul", []string{b.input("a", d[1:3]), b.input("b", []int64{d[0], d[2], d[3]}, "B")}))
		}},
		fdCase{name: "MatMul/vec_mat", op: "MatMul", build: func(b *caseBuilder) {
			d := b.dims(3, 2, 4)
			b.out(b.Op("MatMul", []string{b.input("v", d[1:2]), b.input("m", d, "B")}))
		}},
		fdCase{name: "MatMul/mat_vec", op: "MatMul", build: func(b *caseBuilder) {
			d := b.dims(3, 2, 4)
			b.out(b.Op("MatMul", []string{b.input("m", d, "B"), b.input("v", d[2:])}))
		}},
		fdCase{name: "MatMul/vec_vec", op: "MatMul", build: func(b *caseBuilder) {
			d := b.dims(1, 2, 4)
			b.out(b.Op("MatMul", []string{b.input("u", d), b.input("v", d)}))
		}},
	)
	for _, ta := range []int64{0, 1} {
		for _, tb := range []int64{0, 1} {
			ta, tb := ta, tb
			cs = append(cs, fdCase{name: "Gemm/trans" + string(rune('0'+ta)) + string(rune('0'+tb)), op: "Gemm", build: func(b *caseBuilder) {
				d := b.dims(3, 2, 4)
				as_, bs := []int64{d[0], d[1]}, []int64{d[1], d[2]}
				if ta == 1 {
					as_ = []int64{d[1], d[0]}
				}
				if tb == 1 {
					bs = []int64{d[2], d[1]}
				}
				b.out(b.Op("Gemm", []string{b.input("a", as_), b.input("b", bs), b.input("c", []int64{d[2]})},
					ai("transA", ta), ai("transB", tb), af("alpha", 0.7), af("beta", 1.3)))
			}})
		}
	}
	cs = append(cs,
		fdCase{name: "Gather/embedding_repeats", op: "Gather", build: func(b *caseBuilder) {
			idx := b.intsShaped([]int64{1, 3, 1, 0, 3, 3}, 2, 3)
			b.out(b.Op("Gather", []string{b.input("table", []int64{4, 3}, "V"), idx}))
		}},
		fdCase{name: "Gather/axis1_negative", op: "Gather", build: func(b *caseBuilder) {
			idx := b.intsShaped([]int64{-1, 0, 2, -1}, 4)
			b.out(b.Op("Gather", []string{b.input("x", []int64{2, 3, 2}, "B"), idx}, ai("axis", 1)))
		}},
		fdCase{name: "Gather/scalar_index", op: "Gather", build: func(b *caseBuilder) {
			b.out(b.Op("Gather", []string{b.input("x", []int64{3, 4}, "", "T"), b.ConstInt64(2)}, ai("axis", 0)))
		}},
		fdCase{name: "Gather/opset14_bumps_to_16", op: "Gather", opset: 14, build: func(b *caseBuilder) {
			idx := b.intsShaped([]int64{0, 0, 2}, 3)
			b.out(b.Op("Gather", []string{b.input("x", []int64{3, 2}), idx}))
		}},
		fdCase{name: "GatherElements", op: "GatherElements", build: func(b *caseBuilder) {
			idx := b.intsShaped([]int64{0, 2, 2, 1, 0, 0}, 2, 3)
			b.out(b.Op("GatherElements", []string{b.input("x", []int64{2, 3}, "B"), idx}, ai("axis", 1)))
		}},
		fdCase{name: "Reshape", op: "Reshape", build: func(b *caseBuilder) {
			d := b.dims(3, 2, 3)
			b.out(b.Op("Reshape", []string{b.input("x", d, "B"), b.ints(0, -1)}))
		}},
		fdCase{name: "Flatten", op: "Flatten", build: func(b *caseBuilder) {
			b.out(b.Op("Flatten", []string{b.input("x", b.dims(3, 2, 3), "B")}, ai("axis", 2)))
		}},
		fdCase{name: "Transpose", op: "Transpose", build: func(b *caseBuilder) {
			b.out(b.Op("Transpose", []string{b.input("x", b.dims(4, 2, 3), "B", "T")}, as("perm", 0, 2, 3, 1)))
		}},
		fdCase{name: "Unsqueeze", op: "Unsqueeze", build: func(b *caseBuilder) {
			b.out(b.Op("Unsqueeze", []string{b.input("x", b.dims(2, 2, 3), "B"), b.ints(-1, 1)}))
		}},
		fdCase{name: "Squeeze", op: "Squeeze", build: func(b *caseBuilder) {
			d := b.dims(2, 2, 3)
			b.out(b.Op("Squeeze", []string{b.input("x", []int64{d[0], 1, d[1], 1}, "B"), b.ints(1, -1)}))
		}},
		fdCase{name: "Concat/symbolic", op: "Concat", build: func(b *caseBuilder) {
			d := b.dims(4, 1, 3)
			b.out(b.Op("Concat", []string{b.input("x", []int64{d[0], d[1]}, "", "P"), b.input("y", []int64{d[0], d[2]}, "", "Q"), b.input("z", []int64{d[0], d[3]})}, ai("axis", -1)))
		}},
		fdCase{name: "Slice/static", op: "Slice", build: func(b *caseBuilder) {
			b.out(b.Op("Slice", []string{b.input("x", []int64{3, 5}), b.ints(1, -4), b.ints(3, 4), b.ints(0, 1)}))
		}},
		fdCase{name: "Slice/symbolic_dynamic", op: "Slice", build: func(b *caseBuilder) {
			b.out(b.Op("Slice", []string{b.input("x", []int64{2, 6}, "B", "T"), b.ints(-3), b.ints(9223372036854775807), b.ints(1)}))
		}},
		fdCase{name: "Slice/no_axes", op: "Slice", build: func(b *caseBuilder) {
			b.out(b.Op("Slice", []string{b.input("x", []int64{4, 3}, "B"), b.ints(1, 0), b.ints(3, 2)}))
		}},
		fdCase{name: "Slice/step2", op: "Slice", build: func(b *caseBuilder) {
			b.out(b.Op("Slice", []string{b.input("x", []int64{2, 7}, "B", "T"), b.ints(1), b.ints(100), b.ints(1), b.ints(2)}))
		}},
		fdCase{name: "Slice/step_negative", op: "Slice", build: func(b *caseBuilder) {
			b.out(b.Op("Slice", []string{b.input("x", []int64{5, 2}, "T"), b.ints(-1), b.ints(-100), b.ints(0), b.ints(-2)}))
		}},
		fdCase{name: "Split/sizes_partial_use", op: "Split", build: func(b *caseBuilder) {
			outs := b.OpN("Split", []string{b.input("x", []int64{2, 7}, "B"), b.ints(2, 4, 1)}, 3, ai("axis", 1))
			b.out(outs[0], outs[2])
		}},
		fdCase{name: "Split/equal_opset18", op: "Split", opset: 18, build: func(b *caseBuilder) {
			outs := b.OpN("Split", []string{b.input("x", []int64{6, 2}, "T")}, 2, ai("axis", 0), ai("num_outputs", 2))
			b.out(outs...)
		}},
		fdCase{name: "Expand", op: "Expand", build: func(b *caseBuilder) {
			d := b.dims(3, 2, 3)
			b.out(b.Op("Expand", []string{b.input("x", []int64{d[1], 1}), b.ints(d[0], d[1], d[2])}))
		}},
		fdCase{name: "Expand/symbolic_shape_input", op: "Expand", params: []string{"x"}, build: func(b *caseBuilder) {
			// Expand to the (symbolic) shape of another tensor.
			y := b.input("y", []int64{3, 4}, "B", "T")
			b.out(b.Op("Expand", []string{b.input("x", []int64{1, 4}, "one"), b.Op("Shape", []string{y})}))
		}},
		fdCase{name: "Tile", op: "Tile", build: func(b *caseBuilder) {
			b.out(b.Op("Tile", []string{b.input("x", []int64{2, 3}, "B"), b.ints(3, 2)}))
		}},
		fdCase{name: "Where", op: "Where", build: func(b *caseBuilder) {
			d := b.dims(2, 2, 4)
			b.out(b.Op("Where", []string{b.boolConst(d), b.input("x", d[1:]), b.input("y", []int64{d[0], 1})}))
		}},
		fdCase{name: "Cast/f32_roundtrip", op: "Cast", dtype: onnx.Float32, build: func(b *caseBuilder) {
			x := b.input("x", b.dims(2, 2, 3), "B")
			y := b.Op("Cast", []string{x}, ai("to", int64(onnx.Float64)))
			y = b.Op("Mul", []string{y, y})
			b.out(b.Op("Cast", []string{y}, ai("to", int64(onnx.Float32))))
		}},
		fdCase{name: "CastLike/f32_roundtrip", op: "CastLike", dtype: onnx.Float32, build: func(b *caseBuilder) {
			x := b.input("x", b.dims(2, 2, 3), "B")
			like64 := b.Const(onnx.MustTensor("", nil, []float64{0}))
			y := b.Op("CastLike", []string{x, like64})
			b.out(b.Op("CastLike", []string{b.Op("Mul", []string{y, y}), x}))
		}},
		fdCase{name: "Dropout/inference_mode", op: "Dropout", build: func(b *caseBuilder) {
			b.out(b.Op("Dropout", []string{b.input("x", b.dims(2, 2, 3), "B"), b.scalar(0.3)}))
		}},
		fdCase{name: "Einsum/bmm", op: "Einsum", build: func(b *caseBuilder) {
			d := b.dims(4, 2, 3)
			b.out(b.Op("Einsum", []string{b.input("a", d[:3], "B"), b.input("b", []int64{d[0], d[2], d[3]}, "B")}, astr("equation", "bij,bjk->bik")))
		}},
		fdCase{name: "Einsum/attention_scores", op: "Einsum", build: func(b *caseBuilder) {
			d := b.dims(4, 2, 3)
			b.out(b.Op("Einsum", []string{b.input("q", d, "B", "H", "T"), b.input("k", d, "B", "H", "T")}, astr("equation", "bhqd,bhkd->bhqk")))
		}},
		fdCase{name: "Einsum/summed_only_in_one", op: "Einsum", build: func(b *caseBuilder) {
			d := b.dims(3, 2, 3)
			b.out(b.Op("Einsum", []string{b.input("a", d), b.input("v", d[2:])}, astr("equation", "ijk,k->i")))
		}},
		fdCase{name: "Einsum/ellipsis_implicit", op: "Einsum", build: func(b *caseBuilder) {
			d := b.dims(4, 2, 3)
			b.out(b.Op("Einsum", []string{b.input("a", d[:3]), b.input("b", []int64{d[0], d[2], d[3]})}, astr("equation", "...ij,...jk")))
		}},
		fdCase{name: "Trilu/lower_k", op: "Trilu", build: func(b *caseBuilder) {
			b.out(b.Op("Trilu", []string{b.input("x", []int64{2, 4, 4}, "B"), b.ConstInt64(-1)}, ai("upper", 0)))
		}},
		fdCase{name: "Trilu/upper", op: "Trilu", build: func(b *caseBuilder) {
			b.out(b.Op("Trilu", []string{b.input("x", []int64{3, 5}, "T")}))
		}},
		fdCase{name: "Clip/min_max", op: "Clip", build: func(b *caseBuilder) {
			b.out(b.Op("Clip", []string{b.inputRange("x", b.dims(2, 3, 4), -2, 2, "B"), b.scalar(-0.9), b.scalar(1.1)}))
		}},
		fdCase{name: "Clip/min_only_tensor_bound", op: "Clip", build: func(b *caseBuilder) {
			b.out(b.Op("Clip", []string{b.inputRange("x", b.dims(2, 3, 4), -2, 2, "B"), b.input("lo", nil)}))
		}},
		fdCase{name: "Sum/variadic_bcast", op: "Sum", build: func(b *caseBuilder) {
			d := b.dims(2, 2, 3)
			b.out(b.Op("Sum", []string{b.input("x", d, "B"), b.input("y", d[1:]), b.input("z", []int64{d[0], 1})}))
		}},
		fdCase{name: "Max/three_inputs", op: "Max", build: func(b *caseBuilder) {
			d := b.dims(2, 2, 3)
			b.out(b.Op("Max", []string{b.input("x", d, "B"), b.input("y", d[1:]), b.input("z", []int64{d[0], 1})}))
		}},
		fdCase{name: "fanout/tied_embedding", op: "fan-out", build: func(b *caseBuilder) {
			// Embedding lookup and output projection share the table.
			table := b.input("table", []int64{5, 3}, "V")
			h := b.Op("Gather", []string{table, b.intsShaped([]int64{4, 0, 4}, 1, 3)})
			logits := b.Op("MatMul", []string{h, b.Op("Transpose", []string{table}, as("perm", 1, 0))})
			b.out(logits, b.Op("Mul", []string{table, table}))
		}},
		fdCase{name: "GatherND", op: "GatherND", build: func(b *caseBuilder) {
			idx := b.intsShaped([]int64{0, 1, 2, -1, 0, 1}, 3, 2)
			b.out(b.Op("GatherND", []string{b.input("x", []int64{3, 3, 2}, "B"), idx}))
		}},
		fdCase{name: "Pad/constant", op: "Pad", build: func(b *caseBuilder) {
			b.out(b.Op("Pad", []string{b.input("x", []int64{2, 3}, "B"), b.ints(0, 2, 1, 0), b.scalar(0.5)}))
		}},
		fdCase{name: "Pad/axes_opset18", op: "Pad", opset: 18, build: func(b *caseBuilder) {
			b.out(b.Op("Pad", []string{b.input("x", []int64{2, 3, 2}, "B", "T"), b.ints(1, 2, 0, 1), "", b.ints(-2, 0)}))
		}},
		fdCase{name: "SoftmaxCrossEntropyLoss/mean_ignore_weights", op: "SoftmaxCrossEntropyLoss", params: []string{"scores"}, build: func(b *caseBuilder) {
			labels := b.intsShaped([]int64{2, -100, 0, 3, 3, -100}, 2, 3)
			b.out(b.Op("SoftmaxCrossEntropyLoss", []string{b.input("scores", []int64{2, 4, 3}, "B"), labels, b.input("w", []int64{4})}, ai("ignore_index", -100)))
		}},
		fdCase{name: "SoftmaxCrossEntropyLoss/sum_with_log_prob", op: "SoftmaxCrossEntropyLoss", build: func(b *caseBuilder) {
			labels := b.intsShaped([]int64{1, 0, 4}, 3)
			outs := b.OpN("SoftmaxCrossEntropyLoss", []string{b.input("scores", []int64{3, 5}, "N"), labels}, 2, astr("reduction", "sum"))
			b.out(outs...)
		}},
		fdCase{name: "SoftmaxCrossEntropyLoss/none", op: "SoftmaxCrossEntropyLoss", build: func(b *caseBuilder) {
			labels := b.intsShaped([]int64{1, 0, 4, 2}, 2, 2)
			b.out(b.Op("SoftmaxCrossEntropyLoss", []string{b.input("scores", []int64{2, 5, 2}, "N"), labels}, astr("reduction", "none"), ai("ignore_index", 4)))
		}},
		fdCase{name: "NegativeLogLikelihoodLoss/mean_ignore", op: "NegativeLogLikelihoodLoss", build: func(b *caseBuilder) {
			labels := b.intsShaped([]int64{2, -1, 0, 3}, 4)
			b.out(b.Op("NegativeLogLikelihoodLoss", []string{b.input("logp", []int64{4, 4}, "N"), labels}, ai("ignore_index", -1)))
		}},
		fdCase{name: "Dropout/training_rewrite", op: "Dropout", build: func(b *caseBuilder) {
			// EnableTrainingDropout's masks are a function of the seed, so
			// finite differences see the same mask as the gradient.
			x := b.input("x", []int64{3, 4}, "B")
			h := b.Op("Dropout", []string{x, b.scalar(0.4), b.ConstBool(true)})
			y := b.Op("Dropout", []string{b.Op("Tanh", []string{h}), b.scalar(0.2)})
			b.intInput("seed", nil, 1234)
			if _, err := EnableTrainingDropout(b.Graph(), "seed"); err != nil {
				panic(err)
			}
			b.out(y)
		}},
		fdCase{name: "MatMul/symbolic_runtime_bcast", op: "MatMul", build: func(b *caseBuilder) {
			// batch dims declared n and m, fed 1 and 3: broadcast known only at run time
			b.out(b.Op("MatMul", []string{b.input("a", []int64{1, 2, 4}, "n"), b.input("b", []int64{3, 4, 2}, "m")}))
		}},
		fdCase{name: "Where/symbolic_runtime_bcast", op: "Where", build: func(b *caseBuilder) {
			b.out(b.Op("Where", []string{b.boolConst([]int64{3, 2}), b.input("x", []int64{1, 2}, "n"), b.input("y", []int64{3, 2}, "m")}))
		}},
		fdCase{name: "Expand/symbolic_runtime_bcast", op: "Expand", params: []string{"x"}, build: func(b *caseBuilder) {
			y := b.input("y", []int64{3, 2}, "m")
			b.out(b.Op("Expand", []string{b.input("x", []int64{1, 2}, "n"), b.Op("Shape", []string{y})}))
		}},
		fdCase{name: "opset14/Softmax", op: "Softmax", opset: 14, build: func(b *caseBuilder) {
			b.out(b.Op("Softmax", []string{b.input("x", b.dims(3, 2, 4), "B")}, ai("axis", 1)))
		}},
		fdCase{name: "opset14/ReduceMean_Squeeze_Unsqueeze", op: "ReduceMean", opset: 14, build: func(b *caseBuilder) {
			x := b.input("x", b.dims(3, 2, 4), "B")
			m := b.Op("ReduceMean", []string{x}, as("axes", 1), ai("keepdims", 0))
			b.out(b.Op("Unsqueeze", []string{b.Op("Squeeze", []string{b.Op("Unsqueeze", []string{m, b.ints(0)}), b.ints(0)}), b.ints(-1)}))
		}},
		fdCase{name: "opset14/GatherElements_Split_Clip", op: "GatherElements", opset: 14, build: func(b *caseBuilder) {
			parts := b.OpN("Split", []string{b.input("x", []int64{2, 4}, "B"), b.ints(1, 3)}, 2, ai("axis", 1))
			g := b.Op("GatherElements", []string{parts[1], b.intsShaped([]int64{2, 2, 0, 1}, 2, 2)}, ai("axis", 1))
			b.out(b.Op("Clip", []string{g, b.scalar(-0.5), b.scalar(0.5)}), parts[0])
		}},
		fdCase{name: "opset16/LayerNorm_decomposed_bart_style", op: "chain", opset: 16, build: func(b *caseBuilder) {
			// LayerNorm as exporters emit it before opset 17.
			x := b.input("x", []int64{2, 3, 4}, "B", "T")
			m := b.Op("ReduceMean", []string{x}, as("axes", -1))
			d := b.Op("Sub", []string{x, m})
			v := b.Op("ReduceMean", []string{b.Op("Pow", []string{d, b.scalar(2)})}, as("axes", -1))
			n := b.Op("Div", []string{d, b.Op("Sqrt", []string{b.Op("Add", []string{v, b.scalar(1e-5)})})})
			b.out(b.Op("Add", []string{b.Op("Mul", []string{n, b.input("g", []int64{4})}), b.input("beta", []int64{4})}))
		}},
		unaryCase("Sin", -2, 2),
		unaryCase("Cos", -2, 2),
		unaryCase("Softplus", -2, 2),
		unaryCase("LeakyRelu", -1, 1, af("alpha", 0.1)),
		unaryCase("Elu", -1, 1, af("alpha", 0.7)),
		fdCase{name: "Mean/variadic_bcast", op: "Mean", build: func(b *caseBuilder) {
			d := b.dims(2, 2, 3)
			b.out(b.Op("Mean", []string{b.input("x", d, "B"), b.input("y", d[1:]), b.input("z", []int64{d[0], 1})}))
		}},
		fdCase{name: "CumSum/exclusive", op: "CumSum", build: func(b *caseBuilder) {
			b.out(b.Op("CumSum", []string{b.input("x", []int64{2, 5}, "B"), b.ConstInt64(1)}, ai("exclusive", 1)))
		}},
		fdCase{name: "CumSum/reverse", op: "CumSum", build: func(b *caseBuilder) {
			b.out(b.Op("CumSum", []string{b.input("x", []int64{4, 3}, "T"), b.ConstInt64(0)}, ai("reverse", 1)))
		}},
		fdCase{name: "chain/t5_rmsnorm_gated_gelu", op: "chain", build: func(b *caseBuilder) {
			// T5 v1.1 layer: RMS norm written out as torch exports it, then a
			// gated-GELU feed-forward and the residual connection.
			d := b.dims(2, 2, 3)
			x := b.input("x", []int64{d[0], d[1], 4}, "B", "T")
			w := b.input("ln", []int64{4})
			v := b.Op("ReduceMean", []string{b.Op("Pow", []string{x, b.scalar(2)})}, as("axes", -1))
			r := b.Op("Reciprocal", []string{b.Op("Sqrt", []string{b.Op("Add", []string{v, b.scalar(1e-6)})})})
			hn := b.Op("Mul", []string{w, b.Op("Mul", []string{x, r})})
			wi0 := b.input("wi0", []int64{4, 5})
			wi1 := b.input("wi1", []int64{4, 5})
			wo := b.input("wo", []int64{5, 4})
			g := b.Op("MatMul", []string{hn, wi0})
			c := b.scalar(0.7978845608028654)
			inner := b.Op("Mul", []string{c, b.Op("Add", []string{g, b.Op("Mul", []string{b.scalar(0.044715), b.Op("Pow", []string{g, b.scalar(3)})})})})
			gelu := b.Op("Mul", []string{b.Op("Mul", []string{b.scalar(0.5), g}), b.Op("Add", []string{b.scalar(1), b.Op("Tanh", []string{inner})})})
			ff := b.Op("MatMul", []string{b.Op("Mul", []string{gelu, b.Op("MatMul", []string{hn, wi1})}), wo})
			b.out(b.Op("Add", []string{x, ff}))
		}},
		fdCase{name: "chain/attention_masked", op: "chain", build: func(b *caseBuilder) {
			// Scores + additive mask from an integer mask, softmax, values.
			q := b.input("q", []int64{2, 3, 4}, "B", "T")
			k := b.input("k", []int64{2, 3, 4}, "B", "T")
			v := b.input("v", []int64{2, 3, 4}, "B", "T")
			mask := b.intsShaped([]int64{1, 1, 0, 1, 1, 1}, 2, 1, 3)
			fm := b.Op("Cast", []string{mask}, ai("to", int64(b.dt)))
			add := b.Op("Mul", []string{b.Op("Sub", []string{b.scalar(1), fm}), b.scalar(-1e4)})
			s := b.Op("MatMul", []string{q, b.Op("Transpose", []string{k}, as("perm", 0, 2, 1))})
			p := b.Op("Softmax", []string{b.Op("Add", []string{s, add})}, ai("axis", -1))
			b.out(b.Op("MatMul", []string{p, v}))
		}},
	)
	return cs
}
