package ortdecoder

import (
	"fmt"
	"math"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/generate"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnxrt"
)

// Names of the decoding head's values.
const (
	headLogits    = "logits"
	headPenalty   = "penalty"
	headPenalized = "penalized"
	headBanned    = "banned"
	headForced    = "forced"
	headForce     = "force"
	headK         = "k"
	headValues    = "values"
	headIDs       = "ids"
)

// headModel is the decoding head: it takes a decoder step's logits
// ([rows, length, vocab], any float type) where they are, keeps the last
// position, takes its log-softmax if logSoftmax (beam search), applies the
// logits processors' edits (the repetition penalty over the penalized ids,
// -inf at the banned ids, and for the rows with force set, -inf everywhere
// but 0 at the forced ids: HF's processors in order) and returns each
// row's k best values and ids (TopK: sorted, ties by lower index, as
// torch.argmax). The id lists are padded with vocab, an extra column that
// is dropped before TopK, so rows may have different numbers of ids and
// none.
func headModel(logitsType onnx.DType, logSoftmax bool) ([]byte, error) {
	b := onnx.NewGraphBuilder(nil)
	logits := b.AddInput(headLogits, logitsType, onnx.Sym("rows"), onnx.Sym("length"), onnx.Sym("vocab"))
	penalty := b.AddInput(headPenalty, onnx.Float32)
	penalized := b.AddInput(headPenalized, onnx.Int64, onnx.Sym("rows"), onnx.Sym("penalized"))
	banned := b.AddInput(headBanned, onnx.Int64, onnx.Sym("rows"), onnx.Sym("banned"))
	forced := b.AddInput(headForced, onnx.Int64, onnx.Sym("rows"), onnx.Sym("forced"))
	force := b.AddInput(headForce, onnx.Bool, onnx.Sym("rows"), onnx.D(1))
	k := b.AddInput(headK, onnx.Int64, onnx.D(1))

	last := b.Op("Slice", []string{logits, b.ConstInt64Vec(-1), b.ConstInt64Vec(math.MaxInt64), b.ConstInt64Vec(1)})
	x := b.Op("Squeeze", []string{last, b.ConstInt64Vec(1)})
	if logitsType != onnx.Float32 {
		x = b.Op("Cast", []string{x}, onnx.AttrInt("to", int64(onnx.Float32)))
	}
	if logSoftmax {
		x = b.Op("LogSoftmax", []string{x}, onnx.AttrInt("axis", -1))
	}
	shape := b.Op("Shape", []string{x})
	rows := b.Op("Slice", []string{shape, b.ConstInt64Vec(0), b.ConstInt64Vec(1)})
	vocab := b.Op("Slice", []string{shape, b.ConstInt64Vec(1), b.ConstInt64Vec(2)})
	// the padding column
	column := b.Op("Expand", []string{b.ConstFloat32s([]float32{0}, []int64{1, 1}), b.Op("Concat", []string{rows, b.ConstInt64Vec(1)}, onnx.AttrInt("axis", 0))})
	x = b.Op("Concat", []string{x, column}, onnx.AttrInt("axis", 1))
	// RepetitionPenaltyLogitsProcessor: where(score < 0, score * penalty, score / penalty)
	seen := b.Op("GatherElements", []string{x, penalized}, onnx.AttrInt("axis", 1))
	neg := b.Op("Less", []string{seen, b.ConstFloat32(0)})
	penalised := b.Op("Where", []string{neg, b.Op("Mul", []string{seen, penalty}), b.Op("Div", []string{seen, penalty})})
	x = b.Op("ScatterElements", []string{x, penalized, penalised}, onnx.AttrInt("axis", 1))
	// the banning processors
	inf := b.Op("Expand", []string{b.ConstFloat32(float32(math.Inf(-1))), b.Op("Shape", []string{banned})})
	x = b.Op("ScatterElements", []string{x, banned, inf}, onnx.AttrInt("axis", 1))
	// ForcedBOS/ForcedEOS
	allInf := b.Op("Expand", []string{b.ConstFloat32(float32(math.Inf(-1))), b.Op("Shape", []string{x})})
	zeros := b.Op("Expand", []string{b.ConstFloat32(0), b.Op("Shape", []string{forced})})
	x = b.Op("Where", []string{force, b.Op("ScatterElements", []string{allInf, forced, zeros}, onnx.AttrInt("axis", 1)), x})
	x = b.Op("Slice", []string{x, b.ConstInt64Vec(0), vocab, b.ConstInt64Vec(1)})
	b.Node("TopK", []string{x, k}, []string{headValues, headIDs}, onnx.AttrInt("axis", -1), onnx.AttrInt("largest", 1), onnx.AttrInt("sorted", 1))
	b.AddOutput(headValues, onnx.Float32, onnx.Sym("rows"), onnx.Sym("k"))
	b.AddOutput(headIDs, onnx.Int64, onnx.Sym("rows"), onnx.Sym("k"))
	m := onnx.NewModel(b.Graph(), 18)
	m.ProducerName = proto.String("ortrain ortdecoder")
	return proto.Marshal(m)
}

// decodingHead runs the head on a session of the decoder's device, one
// session per logits type.
type decodingHead struct {
	env      *onnxrt.Env
	opts     onnxrt.SessionOptions
	sessions map[headKind]*onnxrt.Session
}

type headKind struct {
	logits     onnxrt.DType
	logSoftmax bool
}

func (h *decodingHead) close() {
	for _, s := range h.sessions {
		s.Close()
	}
	h.sessions = nil
}

// padded lays out per-row id lists as [rows, width] (width at least 1),
// filling with vocab.
func padded(rows []generate.RowEdits, ids func(generate.RowEdits) []int64, vocab int) (*onnxrt.Value, error) {
	width := 1
	for _, r := range rows {
		width = max(width, len(ids(r)))
	}
	data := make([]int64, len(rows)*width)
	for i, r := range rows {
		row := data[i*width : (i+1)*width]
		n := copy(row, ids(r))
		for j := n; j < width; j++ {
			row[j] = int64(vocab)
		}
	}
	return onnxrt.NewTensor([]int64{int64(len(rows)), int64(width)}, data)
}

// run selects the k best tokens of every row of logits (in the session's
// device memory) after the edits.
func (h *decodingHead) run(logits *onnxrt.Value, edits generate.Edits, k int) (generate.TopK, error) {
	shape := logits.Shape()
	if len(shape) != 3 || int(shape[0]) != len(edits.Rows) || shape[2] <= 0 {
		return generate.TopK{}, fmt.Errorf("logits of shape %v, want [%d, length, vocab]", shape, len(edits.Rows))
	}
	rows, vocab := int(shape[0]), int(shape[2])
	if k < 1 || k > vocab {
		return generate.TopK{}, fmt.Errorf("top-%d of a vocabulary of %d", k, vocab)
	}
	kind := headKind{logits.DType(), edits.LogSoftmax}
	s := h.sessions[kind]
	if s == nil {
		model, err := headModel(onnx.DType(kind.logits), kind.logSoftmax)
		if err != nil {
			return generate.TopK{}, err
		}
		if s, err = h.env.NewSessionFromBytes(model, fmt.Sprintf("decoding head (%v, log-softmax %v)", kind.logits, kind.logSoftmax), h.opts); err != nil {
			return generate.TopK{}, err
		}
		if h.sessions == nil {
			h.sessions = map[headKind]*onnxrt.Session{}
		}
		h.sessions[kind] = s
	}
	var created []*onnxrt.Value
	defer func() {
		for _, v := range created {
			v.Close()
		}
	}()
	add := func(v *onnxrt.Value, err error) (*onnxrt.Value, error) {
		if err == nil {
			created = append(created, v)
		}
		return v, err
	}
	in := map[string]*onnxrt.Value{headLogits: logits}
	var err error
	if in[headPenalty], err = add(onnxrt.NewTensor(nil, []float32{edits.Penalty})); err != nil {
		return generate.TopK{}, err
	}
	if in[headPenalized], err = add(padded(edits.Rows, func(r generate.RowEdits) []int64 { return r.Penalized }, vocab)); err != nil {
		return generate.TopK{}, err
	}
	if in[headBanned], err = add(padded(edits.Rows, func(r generate.RowEdits) []int64 { return r.Banned }, vocab)); err != nil {
		return generate.TopK{}, err
	}
	if in[headForced], err = add(padded(edits.Rows, func(r generate.RowEdits) []int64 { return r.Forced }, vocab)); err != nil {
		return generate.TopK{}, err
	}
	flags := make([]bool, rows)
	for i, r := range edits.Rows {
		flags[i] = r.Force
	}
	if in[headForce], err = add(onnxrt.NewTensor([]int64{int64(rows), 1}, flags)); err != nil {
		return generate.TopK{}, err
	}
	if in[headK], err = add(onnxrt.NewTensor([]int64{1}, []int64{int64(k)})); err != nil {
		return generate.TopK{}, err
	}
	outs, err := s.Run(in, []string{headValues, headIDs})
	if err != nil {
		return generate.TopK{}, err
	}
	defer func() {
		for _, v := range outs {
			v.Close()
		}
	}()
	values, err := outs[headValues].Float32s()
	if err != nil {
		return generate.TopK{}, err
	}
	ids, err := outs[headIDs].Int64s()
	if err != nil {
		return generate.TopK{}, err
	}
	if len(values) != rows*k || len(ids) != rows*k {
		return generate.TopK{}, fmt.Errorf("decoding head returned %d values and %d ids, want %d", len(values), len(ids), rows*k)
	}
	return generate.TopK{Rows: rows, K: k, Vocab: vocab, Values: values, IDs: ids}, nil
}
