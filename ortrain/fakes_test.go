package ortrain

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// fakeBatch is a batch of rows (x, y) for the fake linear model.
type fakeBatch struct {
	xs, ys []float32
	labels [][]int
}

func (b *fakeBatch) NumExamples() int    { return len(b.xs) }
func (b *fakeBatch) NumLabelTokens() int { return len(b.xs) }
func (b *fakeBatch) NumInputTokens() int { return len(b.xs) }
func (b *fakeBatch) LabelIDs() [][]int   { return b.labels }

// fakeData yields nBatches batches per epoch in a per-epoch seeded order.
type fakeData struct {
	batches []*fakeBatch
	seed    uint64
	shuffle bool
}

func newFakeData(nBatches, batchSize int, seed uint64, shuffle bool) *fakeData {
	r := rand.New(rand.NewPCG(seed, 1))
	d := &fakeData{seed: seed, shuffle: shuffle}
	for i := 0; i < nBatches; i++ {
		b := &fakeBatch{}
		n := batchSize
		if i == nBatches-1 && nBatches > 2 {
			n = max(1, batchSize-1) // a short last batch
		}
		for j := 0; j < n; j++ {
			x := float32(r.Float64()*2 - 1)
			b.xs = append(b.xs, x)
			b.ys = append(b.ys, 3*x+0.5+float32(r.NormFloat64()*0.1))
			b.labels = append(b.labels, []int{i, j})
		}
		d.batches = append(d.batches, b)
	}
	return d
}

func (d *fakeData) NumExamples() int {
	n := 0
	for _, b := range d.batches {
		n += len(b.xs)
	}
	return n
}
func (d *fakeData) NumBatches() int { return len(d.batches) }

type sliceIter struct {
	bs []*fakeBatch
	i  int
}

func (it *sliceIter) Next(context.Context) (Batch, error) {
	if it.i >= len(it.bs) {
		return nil, io.EOF
	}
	it.i++
	return it.bs[it.i-1], nil
}

func (d *fakeData) Epoch(epoch, skip int) (BatchIterator, error) {
	order := make([]*fakeBatch, len(d.batches))
	copy(order, d.batches)
	if d.shuffle {
		r := rand.New(rand.NewPCG(d.seed, uint64(epoch)+100))
		r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	}
	return &sliceIter{bs: order[skip:]}, nil
}

func (d *fakeData) Batches() (BatchIterator, error) { return &sliceIter{bs: d.batches}, nil }

// fakeEngine trains y = w*x + b with dropout-like noise from the seed and
// Adam-like updates in float32. Optional scripted eval losses.
type fakeEngine struct {
	w, b       float32
	gw, gb     float32
	mw, mb     float32
	vw, vb     float32
	t          int
	maxNorm    float32
	evalScript []float64
	evalCalls  int
	nanAtCall  int // TrainMicroBatch call (1-based) returning NaN; 0: never
	calls      int
	killAfter  int // panic-free kill simulation: return errKilled after this many optimizer steps
	steps      int
	saveFail   func(path string) error
	loadedFrom string
}

var errKilled = errors.New("killed")

func (e *fakeEngine) TrainMicroBatch(ctx context.Context, b Batch, scale float64, seed uint64) (float64, error) {
	e.calls++
	fb := b.(*fakeBatch)
	noise := float32(seed%1000)/1000*0.01 - 0.005
	var loss float32
	var gw, gb float32
	n := float32(len(fb.xs))
	for i := range fb.xs {
		d := e.w*fb.xs[i] + e.b + noise - fb.ys[i]
		loss += d * d / n
		gw += 2 * d * fb.xs[i] / n
		gb += 2 * d / n
	}
	s := float32(scale)
	e.gw += gw * s
	e.gb += gb * s
	if e.nanAtCall > 0 && e.calls == e.nanAtCall {
		return math.NaN(), nil
	}
	return float64(loss), nil
}

func (e *fakeEngine) OptimizerStep(ctx context.Context, lr float64) (float64, error) {
	if e.killAfter > 0 && e.steps >= e.killAfter {
		return 0, errKilled
	}
	e.steps++
	norm := float32(math.Sqrt(float64(e.gw*e.gw + e.gb*e.gb)))
	if e.maxNorm > 0 && norm > e.maxNorm {
		c := e.maxNorm / (norm + 1e-6)
		e.gw *= c
		e.gb *= c
	}
	e.t++
	const b1, b2, eps = 0.9, 0.999, 1e-8
	e.mw = b1*e.mw + (1-b1)*e.gw
	e.mb = b1*e.mb + (1-b1)*e.gb
	e.vw = b2*e.vw + (1-b2)*e.gw*e.gw
	e.vb = b2*e.vb + (1-b2)*e.gb*e.gb
	bc1 := 1 - float32(math.Pow(b1, float64(e.t)))
	bc2 := 1 - float32(math.Pow(b2, float64(e.t)))
	l := float32(lr)
	e.w -= l * (e.mw / bc1) / (float32(math.Sqrt(float64(e.vw/bc2))) + eps)
	e.b -= l * (e.mb / bc1) / (float32(math.Sqrt(float64(e.vb/bc2))) + eps)
	e.gw, e.gb = 0, 0
	return float64(norm), nil
}

func (e *fakeEngine) EvalLoss(ctx context.Context, b Batch) (float64, error) {
	if e.evalScript != nil {
		v := e.evalScript[e.evalCalls]
		e.evalCalls++
		return v, nil
	}
	fb := b.(*fakeBatch)
	var loss float32
	for i := range fb.xs {
		d := e.w*fb.xs[i] + e.b - fb.ys[i]
		loss += d * d / float32(len(fb.xs))
	}
	return float64(loss), nil
}

func (e *fakeEngine) write(path string, vals ...float32) error {
	if e.saveFail != nil {
		if err := e.saveFail(path); err != nil {
			return err
		}
	}
	buf := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
	}
	return os.WriteFile(path, buf, 0o644)
}

func (e *fakeEngine) read(path string, n int) ([]float32, error) {
	buf, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(buf) != 4*n {
		return nil, fmt.Errorf("%s: %d bytes", path, len(buf))
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:]))
	}
	return out, nil
}

func (e *fakeEngine) SaveModel(dir string) error {
	return e.write(filepath.Join(dir, "model.safetensors"), e.w, e.b)
}
func (e *fakeEngine) SaveOptimizer(dir string) error {
	return e.write(filepath.Join(dir, "optimizer.bin"), e.mw, e.mb, e.vw, e.vb, float32(e.t))
}
func (e *fakeEngine) LoadModel(dir string) error {
	v, err := e.read(filepath.Join(dir, "model.safetensors"), 2)
	if err != nil {
		return err
	}
	e.w, e.b = v[0], v[1]
	e.loadedFrom = dir
	return nil
}
func (e *fakeEngine) LoadOptimizer(dir string) error {
	v, err := e.read(filepath.Join(dir, "optimizer.bin"), 5)
	if err != nil {
		return err
	}
	e.mw, e.mb, e.vw, e.vb, e.t = v[0], v[1], v[2], v[3], int(v[4])
	return nil
}

// fakeGenerator returns one token per row.
type fakeGenerator struct{}

func (fakeGenerator) Generate(ctx context.Context, b Batch, maxLength, numBeams int) ([][]int, error) {
	out := make([][]int, b.NumExamples())
	for i := range out {
		out[i] = []int{1}
	}
	return out, nil
}

// scriptedMetrics returns score[i] on the i-th call.
func scriptedMetrics(scores []float64) MetricsFunc {
	var i atomic.Int64
	return func(preds, labels [][]int) (Logs, error) {
		k := i.Add(1) - 1
		return Logs{{"score", scores[k]}}, nil
	}
}

// fixedClock advances 1ms per call so timings are deterministic.
func fixedClock() func() time.Time {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var n atomic.Int64
	return func() time.Time { return t0.Add(time.Duration(n.Add(1)) * time.Millisecond) }
}
