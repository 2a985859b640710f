package ortdecoder

import (
	"fmt"
	"math"
	"runtime"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/generate"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnxrt"
)

// Names of the decoding head's values.
const (
	headLogits         = "logits"
	headPenalty        = "penalty"
	headPenalized      = "penalized"
	headBanned         = "banned"
	headPenalizedValid = "penalized_valid"
	headBannedValid    = "banned_valid"
	headForcedValid    = "forced_valid"
	headForced         = "forced"
	headForce          = "force"
	headK              = "k"
	headValues         = "values"
	headIDs            = "ids"
)

// headModel is the decoding head: it takes a decoder step's logits
// ([rows, length, vocab], any float type) where they are, keeps the last
// position, takes its log-softmax if logSoftmax (beam search), applies the
// logits processors' edits (the repetition penalty over the penalized ids,
// -inf at the banned ids, and for the rows with force set, -inf everywhere
// but 0 at the forced ids: HF's processors in order) and returns each
// row's k best values and ids (TopK: sorted, ties by lower index, as
// torch.argmax).
//
// The graph holds only what the step needs (headKind): each edit is a pass
// over [rows, vocab] floats, and most steps have none or one (min_length's
// banned EOS), so a graph with every processor spent three quarters of a
// beam step's head on copies. The id lists are padded (see paddedIDs) so
// that the padding writes back what is there and needs no extra column.
func headModel(kind headKind) ([]byte, error) {
	b := onnx.NewGraphBuilder(nil)
	logits := b.AddInput(headLogits, onnx.DType(kind.logits), onnx.Sym("rows"), onnx.Sym("length"), onnx.Sym("vocab"))
	k := b.AddInput(headK, onnx.Int64, onnx.D(1))

	// The logits stay [rows, 1, vocab] throughout: a Reshape of the
	// session's input to [rows, vocab] made ONNX Runtime copy the edits'
	// ScatterElements input instead of editing it in place (measured: the
	// banned ids' pass cost 0.8 ms a beam step at t5-small's vocabulary,
	// against ~0 with three axes). The id lists get the middle axis too.
	x := logits
	if !kind.lastOnly {
		x = b.Op("Slice", []string{logits, b.ConstInt64Vec(-1), b.ConstInt64Vec(math.MaxInt64), b.ConstInt64Vec(1)})
	}
	if kind.logits != onnxrt.Float32 {
		x = b.Op("Cast", []string{x}, onnx.AttrInt("to", int64(onnx.Float32)))
	}
	if kind.logSoftmax {
		x = b.Op("LogSoftmax", []string{x}, onnx.AttrInt("axis", -1))
	}
	middle := b.ConstInt64Vec(1)
	idList := func(name string) string {
		return b.Op("Unsqueeze", []string{b.AddInput(name, onnx.Int64, onnx.Sym("rows"), onnx.Sym(name)), middle})
	}
	validList := func(name, ids string) string {
		return b.Op("Unsqueeze", []string{b.AddInput(name, onnx.Bool, onnx.Sym("rows"), onnx.Sym(ids)), middle})
	}
	if kind.penalty {
		// RepetitionPenaltyLogitsProcessor: where(score < 0, score * penalty, score / penalty)
		penalty := b.AddInput(headPenalty, onnx.Float32)
		penalized := idList(headPenalized)
		valid := validList(headPenalizedValid, headPenalized)
		seen := b.Op("GatherElements", []string{x, penalized}, onnx.AttrInt("axis", 2))
		neg := b.Op("Less", []string{seen, b.ConstFloat32(0)})
		penalised := b.Op("Where", []string{neg, b.Op("Mul", []string{seen, penalty}), b.Op("Div", []string{seen, penalty})})
		x = b.Op("ScatterElements", []string{x, penalized, b.Op("Where", []string{valid, penalised, seen})}, onnx.AttrInt("axis", 2))
	}
	if kind.banned {
		banned := idList(headBanned)
		valid := validList(headBannedValid, headBanned)
		seen := b.Op("GatherElements", []string{x, banned}, onnx.AttrInt("axis", 2))
		inf := b.Op("Where", []string{valid, b.ConstFloat32(float32(math.Inf(-1))), seen})
		x = b.Op("ScatterElements", []string{x, banned, inf}, onnx.AttrInt("axis", 2))
	}
	if kind.force {
		// ForcedBOS/ForcedEOS
		forced := idList(headForced)
		valid := validList(headForcedValid, headForced)
		force := b.Op("Unsqueeze", []string{b.AddInput(headForce, onnx.Bool, onnx.Sym("rows"), onnx.D(1)), middle})
		inf := b.ConstFloat32(float32(math.Inf(-1)))
		allInf := b.Op("Expand", []string{inf, b.Op("Shape", []string{x})})
		zeros := b.Op("Where", []string{valid, b.ConstFloat32(0), inf})
		x = b.Op("Where", []string{force, b.Op("ScatterElements", []string{allInf, forced, zeros}, onnx.AttrInt("axis", 2)), x})
	}
	values, ids := b.Name("top_values"), b.Name("top_ids")
	b.Node("TopK", []string{x, k}, []string{values, ids}, onnx.AttrInt("axis", -1), onnx.AttrInt("largest", 1), onnx.AttrInt("sorted", 1))
	rowsByK := b.ConstInt64Vec(0, -1)
	b.Node("Reshape", []string{values, rowsByK}, []string{headValues})
	b.Node("Reshape", []string{ids, rowsByK}, []string{headIDs})
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
	// workers run chunks of host logits at once, each on one thread (the
	// sessions then have one intra-op thread): a chunk's few rows are too
	// little work to share out within a run.
	workers int
}

// newDecodingHead makes the head for sessions with opts: on the CPU with
// more than one thread, chunks run side by side instead of each run
// sharing out its few rows.
func newDecodingHead(env *onnxrt.Env, opts onnxrt.SessionOptions, cpu bool) decodingHead {
	h := decodingHead{env: env, opts: opts, workers: 1}
	if cpu {
		h.workers = opts.IntraOpThreads
		if h.workers <= 0 {
			h.workers = runtime.GOMAXPROCS(0)
		}
		h.opts.IntraOpThreads = 1
	}
	return h
}

// headKind is what a head graph does: the logits' type, whether they hold
// one position only, the log-softmax, and which edits any row has.
type headKind struct {
	logits                 onnxrt.DType
	lastOnly, logSoftmax   bool
	penalty, banned, force bool
}

func (k headKind) String() string {
	return fmt.Sprintf("%v, last only %v, log-softmax %v, penalty %v, banned %v, force %v", k.logits, k.lastOnly, k.logSoftmax, k.penalty, k.banned, k.force)
}

func (h *decodingHead) close() {
	for _, s := range h.sessions {
		s.Close()
	}
	h.sessions = nil
}

// paddedIDs lays out per-row id lists as [rows, width] (width at least 1)
// with a mask of the entries to edit. A short row is padded with its own
// first id, a duplicate that gets the same edited value; a row without ids
// is all 0 and unmasked: the head writes back the value it read there. An
// id thus never gets two different values, and the scatter's result does
// not depend on its order.
func paddedIDs(rows []generate.RowEdits, ids func(generate.RowEdits) []int64) (*onnxrt.Value, *onnxrt.Value, error) {
	width := 1
	for _, r := range rows {
		width = max(width, len(ids(r)))
	}
	data := make([]int64, len(rows)*width)
	valid := make([]bool, len(rows)*width)
	for i, r := range rows {
		row := data[i*width : (i+1)*width]
		if n := copy(row, ids(r)); n > 0 {
			for j := range row {
				valid[i*width+j] = true
				if j >= n {
					row[j] = row[0]
				}
			}
		}
	}
	shape := []int64{int64(len(rows)), int64(width)}
	t, err := onnxrt.NewTensor(shape, data)
	if err != nil {
		return nil, nil, err
	}
	m, err := onnxrt.NewTensor(shape, valid)
	if err != nil {
		t.Close()
		return nil, nil, err
	}
	return t, m, nil
}

// headChunkBytes bounds the logits one run of the head reads when they are
// in host memory: the log-softmax's output then stays in the core's cache
// for the edits and TopK that read it next. Measured at t5-small's
// vocabulary, 64 beam rows, cache cold as after the decoder step: one run
// of 8 MiB 5.4 ms, runs of 1 MiB 3.5 ms, of 512 KiB 3.3 ms.
const headChunkBytes = 512 << 10

// run selects the k best tokens of every row of logits (in the session's
// device memory) after the edits. Host logits go through in chunks of rows
// (headChunkBytes), each a view of the same memory.
func (h *decodingHead) run(logits *onnxrt.Value, edits generate.Edits, k int) (generate.TopK, error) {
	shape := logits.Shape()
	if len(shape) != 3 || int(shape[0]) != len(edits.Rows) || shape[2] <= 0 {
		return generate.TopK{}, fmt.Errorf("logits of shape %v, want [%d, length, vocab]", shape, len(edits.Rows))
	}
	rows, vocab := int(shape[0]), int(shape[2])
	if k < 1 || k > vocab {
		return generate.TopK{}, fmt.Errorf("top-%d of a vocabulary of %d", k, vocab)
	}
	kind := headKind{logits: logits.DType(), lastOnly: shape[1] == 1, logSoftmax: edits.LogSoftmax}
	for _, r := range edits.Rows {
		kind.penalty = kind.penalty || (len(r.Penalized) > 0 && edits.Penalty != 1)
		kind.banned = kind.banned || len(r.Banned) > 0
		kind.force = kind.force || r.Force
	}
	chunk := rows
	if logits.Device().Kind == onnxrt.CPU.Kind {
		rowBytes := int(shape[1]) * vocab * logits.DType().Size()
		chunk = max(1, min(rows, headChunkBytes/max(1, rowBytes)))
	}
	if chunk == rows {
		return h.runRows(logits, edits, kind, k)
	}
	// the session exists before chunks run side by side
	if _, err := h.session(kind); err != nil {
		return generate.TopK{}, err
	}
	parts := make([]generate.TopK, (rows+chunk-1)/chunk)
	errs := make([]error, len(parts))
	next := make(chan int, len(parts))
	for i := range parts {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for range min(max(1, h.workers), len(parts)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				lo, hi := i*chunk, min(rows, (i+1)*chunk)
				view, err := logits.RowsView(int64(lo), int64(hi))
				if err != nil {
					errs[i] = err
					continue
				}
				part := edits
				part.Rows = edits.Rows[lo:hi]
				parts[i], errs[i] = h.runRows(view, part, kind, k)
				view.Close()
			}
		}()
	}
	wg.Wait()
	top := generate.TopK{Rows: rows, K: k, Vocab: vocab, Values: make([]float32, 0, rows*k), IDs: make([]int64, 0, rows*k)}
	for i, t := range parts {
		if errs[i] != nil {
			return generate.TopK{}, errs[i]
		}
		top.Values = append(top.Values, t.Values...)
		top.IDs = append(top.IDs, t.IDs...)
	}
	return top, nil
}

// session is the head graph of a kind, made on first use.
func (h *decodingHead) session(kind headKind) (*onnxrt.Session, error) {
	if s := h.sessions[kind]; s != nil {
		return s, nil
	}
	model, err := headModel(kind)
	if err != nil {
		return nil, err
	}
	s, err := h.env.NewSessionFromBytes(model, fmt.Sprintf("decoding head (%v)", kind), h.opts)
	if err != nil {
		return nil, err
	}
	if h.sessions == nil {
		h.sessions = map[headKind]*onnxrt.Session{}
	}
	h.sessions[kind] = s
	return s, nil
}

// runRows runs the head of the given kind once over all rows of logits.
func (h *decodingHead) runRows(logits *onnxrt.Value, edits generate.Edits, kind headKind, k int) (generate.TopK, error) {
	shape := logits.Shape()
	rows, vocab := int(shape[0]), int(shape[2])
	s, err := h.session(kind)
	if err != nil {
		return generate.TopK{}, err
	}
	var created []*onnxrt.Value
	defer func() {
		for _, v := range created {
			v.Close()
		}
	}()
	in := map[string]*onnxrt.Value{headLogits: logits}
	idLists := func(idsName, validName string, of func(generate.RowEdits) []int64) error {
		t, m, err := paddedIDs(edits.Rows, of)
		if err != nil {
			return err
		}
		created = append(created, t, m)
		in[idsName], in[validName] = t, m
		return nil
	}
	add := func(name string) func(*onnxrt.Value, error) error {
		return func(v *onnxrt.Value, err error) error {
			if err == nil {
				created = append(created, v)
				in[name] = v
			}
			return err
		}
	}
	if kind.penalty {
		if err := add(headPenalty)(onnxrt.NewTensor(nil, []float32{edits.Penalty})); err != nil {
			return generate.TopK{}, err
		}
		if err := idLists(headPenalized, headPenalizedValid, func(r generate.RowEdits) []int64 { return r.Penalized }); err != nil {
			return generate.TopK{}, err
		}
	}
	if kind.banned {
		if err := idLists(headBanned, headBannedValid, func(r generate.RowEdits) []int64 { return r.Banned }); err != nil {
			return generate.TopK{}, err
		}
	}
	if kind.force {
		if err := idLists(headForced, headForcedValid, func(r generate.RowEdits) []int64 { return r.Forced }); err != nil {
			return generate.TopK{}, err
		}
		flags := make([]bool, rows)
		for i, r := range edits.Rows {
			flags[i] = r.Force
		}
		if err := add(headForce)(onnxrt.NewTensor([]int64{int64(rows), 1}, flags)); err != nil {
			return generate.TopK{}, err
		}
	}
	if err := add(headK)(onnxrt.NewTensor([]int64{1}, []int64{int64(k)})); err != nil {
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
