package ortdecoder

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/generate"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/onnxrt"
)

// TestHeadEditsLogitsInPlace: the head keeps the logits [rows, 1, vocab]
// from input to TopK (a Reshape of the input made ONNX Runtime copy the
// whole [rows, vocab] before each edit); the only Reshapes are of TopK's
// [rows, 1, k] outputs. Every combination of edits.
func TestHeadEditsLogitsInPlace(t *testing.T) {
	for bits := 0; bits < 32; bits++ {
		kind := headKind{logits: onnxrt.Float32, lastOnly: bits&1 != 0, logSoftmax: bits&2 != 0,
			penalty: bits&4 != 0, banned: bits&8 != 0, force: bits&16 != 0}
		data, err := headModel(kind)
		if err != nil {
			t.Fatal(err)
		}
		var m onnxpb.ModelProto
		if err := proto.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		topk := map[string]bool{}
		for _, n := range m.Graph.Node {
			if n.GetOpType() == "TopK" {
				for _, o := range n.Output {
					topk[o] = true
				}
			}
		}
		for _, n := range m.Graph.Node {
			if (n.GetOpType() == "Reshape" || n.GetOpType() == "Squeeze" || n.GetOpType() == "Flatten") && !topk[n.Input[0]] {
				t.Fatalf("head (%v): %s of %s", kind, n.GetOpType(), n.Input[0])
			}
		}
	}
}

// TestHeadChunksEqualOneRun: host logits larger than headChunkBytes go
// through the head in views of a few rows each, one after another or side
// by side; the values and ids are those of one run over all rows, bit for
// bit, with every edit present.
func TestHeadChunksEqualOneRun(t *testing.T) {
	env := openEnv(t)
	const rows, vocab, k = 13, 50000, 8 // 200 kB a row: 2 rows a chunk
	r := rand.New(rand.NewPCG(5, 6))
	data := make([]float32, rows*vocab)
	for i := range data {
		data[i] = float32(r.NormFloat64())
	}
	logits, err := onnxrt.NewTensor([]int64{rows, 1, vocab}, data)
	if err != nil {
		t.Fatal(err)
	}
	defer logits.Close()
	edits := generate.Edits{LogSoftmax: true, Penalty: 1.3, Rows: make([]generate.RowEdits, rows)}
	for i := range edits.Rows {
		e := &edits.Rows[i]
		if i%3 == 0 {
			e.Penalized = []int64{int64(r.IntN(vocab)), int64(r.IntN(vocab))}
		}
		if i%2 == 0 {
			e.Banned = []int64{int64(r.IntN(vocab))}
		}
		if i == 5 {
			e.Force, e.Forced = true, []int64{7, 9}
		}
	}
	// chunks one after another, and three at a time
	for _, threads := range []int{1, 3} {
		h := newDecodingHead(env, Options{IntraOpThreads: threads}.session(), true)
		defer h.close()
		chunked, err := h.run(logits, edits, k)
		if err != nil {
			t.Fatal(err)
		}
		kind := headKind{logits: onnxrt.Float32, lastOnly: true, logSoftmax: true, penalty: true, banned: true, force: true}
		whole, err := h.runRows(logits, edits, kind, k)
		if err != nil {
			t.Fatal(err)
		}
		if len(h.sessions) != 1 || h.workers != threads {
			t.Errorf("%d head graphs, want the one kind; %d workers, want %d", len(h.sessions), h.workers, threads)
		}
		same := func(a, b []float32) bool {
			return slices.EqualFunc(a, b, func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) })
		}
		if chunked.Rows != rows || !same(chunked.Values, whole.Values) || !slices.Equal(chunked.IDs, whole.IDs) {
			t.Fatalf("%d threads: chunked head differs from one run:\nvalues %v\n   vs %v\nids %v\n vs %v", threads, chunked.Values, whole.Values, chunked.IDs, whole.IDs)
		}
		if chunked.IDs[5*k] != 7 || chunked.IDs[5*k+1] != 9 {
			t.Fatalf("%d threads: row 5 forced to 7 and 9, got %v", threads, chunked.IDs[5*k:6*k])
		}
	}
}
