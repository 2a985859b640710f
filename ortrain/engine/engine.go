// Package engine connects the trainer (package ortrain) to ONNX Runtime:
// an Engine over an artifact folder (internal/artifacts), a Generator over
// its generation graphs (generate/ortdecoder + generate), batches collated as
// HF's DataCollatorForSeq2Seq does, and BLEU/ROUGE compute_metrics.
package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/ortrain/ortrain/generate"
	"github.com/ortrain/ortrain/generate/ortdecoder"
	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/ortrain"
)

// Files the engine writes into checkpoint folders.
const (
	ModelFile     = "model.safetensors"
	OptimizerFile = "optimizer.safetensors"
)

// Example is one pre-tokenized row.
type Example struct {
	InputIDs []int64
	Labels   []int64
}

// Batch is a collated micro-batch. It satisfies ortrain.LabeledBatch.
type Batch struct {
	artifacts.Batch
	Sources     [][]int64 // unpadded input ids, for generation
	labels      [][]int
	labelTokens int
}

func (b *Batch) NumExamples() int    { return b.Rows }
func (b *Batch) NumLabelTokens() int { return b.labelTokens }
func (b *Batch) NumInputTokens() int { return b.Rows * b.SourceLen }
func (b *Batch) LabelIDs() [][]int   { return b.labels }

// Collate pads as transformers' DataCollatorForSeq2Seq(model=...) with
// padding="longest": input_ids with pad, attention_mask 1/0, labels with
// -100, decoder_input_ids = labels shifted right behind decoderStart with
// -100 replaced by pad (the model's prepare_decoder_input_ids_from_labels).
func Collate(rows []Example, pad, decoderStart int64) *Batch {
	b := &Batch{}
	b.Rows = len(rows)
	for _, r := range rows {
		b.SourceLen = max(b.SourceLen, len(r.InputIDs))
		b.TargetLen = max(b.TargetLen, len(r.Labels))
	}
	s, tl := b.SourceLen, b.TargetLen
	b.InputIDs = make([]int64, b.Rows*s)
	b.AttentionMask = make([]int64, b.Rows*s)
	b.Labels = make([]int64, b.Rows*tl)
	b.DecoderInputIDs = make([]int64, b.Rows*tl)
	b.DecoderAttentionMask = make([]int64, b.Rows*tl)
	for i, r := range rows {
		for j := 0; j < s; j++ {
			b.InputIDs[i*s+j] = pad
			if j < len(r.InputIDs) {
				b.InputIDs[i*s+j] = r.InputIDs[j]
				b.AttentionMask[i*s+j] = 1
			}
		}
		b.Sources = append(b.Sources, append([]int64(nil), r.InputIDs...))
		lab := make([]int, tl)
		for j := 0; j < tl; j++ {
			v := int64(-100)
			b.DecoderAttentionMask[i*tl+j] = 1 // HF's collator passes none: all ones
			if j < len(r.Labels) {
				v = r.Labels[j]
			}
			b.Labels[i*tl+j] = v
			lab[j] = int(v)
			if v != -100 {
				b.labelTokens++
			}
		}
		b.labels = append(b.labels, lab)
		for j := 0; j < tl; j++ {
			prev := decoderStart
			if j > 0 {
				prev = b.Labels[i*tl+j-1]
				if prev == -100 {
					prev = pad
				}
			}
			b.DecoderInputIDs[i*tl+j] = prev
		}
	}
	return b
}

// Rows is an in-memory data set of pre-tokenized examples. As training
// data it yields ceil(n/BatchSize) micro-batches per epoch, in dataset
// order or, with Shuffle, in a permutation drawn from (Seed, epoch) alone,
// so any epoch can be replayed and resumed mid-way.
type Rows struct {
	Examples          []Example
	BatchSize         int
	Shuffle           bool
	Seed              uint64
	Pad, DecoderStart int64
}

func (r *Rows) NumExamples() int { return len(r.Examples) }
func (r *Rows) NumBatches() int {
	return (len(r.Examples) + r.BatchSize - 1) / r.BatchSize
}

func (r *Rows) order(epoch int) []int {
	idx := make([]int, len(r.Examples))
	for i := range idx {
		idx[i] = i
	}
	if r.Shuffle {
		g := rand.New(rand.NewPCG(r.Seed, uint64(epoch)))
		g.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
	}
	return idx
}

type rowsIter struct {
	r     *Rows
	order []int
	next  int // batch index
}

func (it *rowsIter) Next() (ortrain.Batch, error) {
	lo := it.next * it.r.BatchSize
	if lo >= len(it.order) {
		return nil, io.EOF
	}
	hi := min(lo+it.r.BatchSize, len(it.order))
	rows := make([]Example, 0, hi-lo)
	for _, i := range it.order[lo:hi] {
		rows = append(rows, it.r.Examples[i])
	}
	it.next++
	return Collate(rows, it.r.Pad, it.r.DecoderStart), nil
}

// Epoch iterates epoch's batches, skipping the first skip.
func (r *Rows) Epoch(epoch, skip int) (ortrain.BatchIterator, error) {
	return &rowsIter{r: r, order: r.order(epoch), next: skip}, nil
}

// Batches iterates in dataset order (evaluation).
func (r *Rows) Batches() (ortrain.BatchIterator, error) {
	seq := make([]int, len(r.Examples))
	for i := range seq {
		seq[i] = i
	}
	return &rowsIter{r: r, order: seq}, nil
}

// Engine runs an artifact folder through artifacts.Trainer.
type Engine struct {
	T   *artifacts.Trainer
	Dir string // the artifact folder (for ExportInference)
	// ModelDir, when set, is the source model folder whose config.json and
	// generation_config.json are copied next to every model.safetensors, so
	// checkpoints load back into transformers.
	ModelDir string
	version  int // bumped whenever the parameters change
}

func asBatch(b ortrain.Batch) (*Batch, error) {
	bb, ok := b.(*Batch)
	if !ok {
		return nil, fmt.Errorf("engine: batch of type %T, want *engine.Batch", b)
	}
	return bb, nil
}

func (e *Engine) TrainMicroBatch(ctx context.Context, b ortrain.Batch, scale float64, seed uint64) (float64, error) {
	bb, err := asBatch(b)
	if err != nil {
		return 0, err
	}
	loss, _, err := e.T.TrainMicroBatch(bb.Batch, float32(scale), int64(seed>>1))
	return float64(loss), err
}

func (e *Engine) OptimizerStep(ctx context.Context, lr float64) (float64, error) {
	gn, err := e.T.OptimizerStep(lr)
	e.version++
	return float64(gn), err
}

func (e *Engine) EvalLoss(ctx context.Context, b ortrain.Batch) (float64, error) {
	bb, err := asBatch(b)
	if err != nil {
		return 0, err
	}
	r, err := e.T.Eval(bb.Batch, false)
	return float64(r.Loss), err
}

func (e *Engine) SaveModel(dir string) error {
	if err := e.T.SaveParameters(filepath.Join(dir, ModelFile)); err != nil {
		return err
	}
	if e.ModelDir != "" {
		for _, f := range []string{"config.json", "generation_config.json"} {
			data, err := os.ReadFile(filepath.Join(e.ModelDir, f))
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

func (e *Engine) SaveOptimizer(dir string) error {
	return e.T.SaveOptimizerState(filepath.Join(dir, OptimizerFile))
}

func (e *Engine) LoadModel(dir string) error {
	e.version++
	return e.T.LoadParameters(filepath.Join(dir, ModelFile))
}

func (e *Engine) LoadOptimizer(dir string) error {
	return e.T.LoadOptimizerState(filepath.Join(dir, OptimizerFile))
}

// Generator runs generate.Generate over the artifact folder's generation
// graphs (KV cache), or over a full forward graph recomputed at every step
// (RecomputeGraph, for models exported without past key values), fed with
// the engine's current parameters.
type Generator struct {
	Env            *onnxrt.Env
	Dir            string // artifact folder
	RecomputeGraph string // forward graph with parameters as inputs (WriteRecomputeGraph); "" uses the KV graphs
	Engine         *Engine
	Config         generate.Config // the model's generation defaults
	Opts           ortdecoder.Options
	dec            interface {
		generate.Decoder
		Close() error
	}
	at int
}

func (g *Generator) Generate(ctx context.Context, b ortrain.Batch, maxLength, numBeams int) ([][]int, error) {
	bb, err := asBatch(b)
	if err != nil {
		return nil, err
	}
	if g.dec == nil || g.at != g.Engine.version {
		// The trainer swaps parameter buffers at every step: reopen on the
		// current ones.
		g.Close()
		if g.RecomputeGraph != "" {
			opts := g.Opts
			opts.Inputs = g.Engine.T.ParamValues()
			pad := g.Config.PadTokenID
			if pad < 0 {
				pad = 0
			}
			d, err := ortdecoder.NewRecompute(g.Env, g.RecomputeGraph, pad, opts)
			if err != nil {
				return nil, err
			}
			g.dec = d
		} else {
			d, err := ortdecoder.OpenArtifacts(g.Env, g.Dir, g.Engine.T.ParamValues(), g.Opts)
			if err != nil {
				return nil, err
			}
			g.dec = d
		}
		g.at = g.Engine.version
	}
	cfg := g.Config
	if maxLength > 0 {
		cfg.MaxLength = maxLength
		cfg.MaxNewTokens = 0
	}
	if numBeams > 0 {
		cfg.NumBeams = numBeams
	}
	out, err := generate.Generate(ctx, g.dec, bb.Sources, cfg)
	if err != nil {
		return nil, err
	}
	rows := make([][]int, len(out.Sequences))
	for i, s := range out.Sequences {
		rows[i] = make([]int, len(s))
		for j, v := range s {
			rows[i][j] = int(v)
		}
	}
	return rows, nil
}

// Close releases the generation sessions.
func (g *Generator) Close() error {
	if g.dec != nil {
		err := g.dec.Close()
		g.dec = nil
		return err
	}
	return nil
}

// WriteRecomputeGraph writes the forward graph model (input_ids,
// attention_mask, decoder_input_ids -> logits) with the artifact
// manifest's trainable parameters turned into inputs under their manifest
// names, for generation by recomputation with the trainer's parameters.
func WriteRecomputeGraph(model string, man *artifacts.Manifest, out string) error {
	m, err := onnx.Load(model)
	if err != nil {
		return err
	}
	g := m.Graph
	byONNX := map[string]artifacts.Parameter{}
	for _, p := range man.Parameters {
		if !p.Trainable {
			continue
		}
		name := p.ONNXName
		if name == "" {
			name = p.Name
		}
		byONNX[name] = p
	}
	kept := g.Initializer[:0]
	var inputs []*onnxpb.ValueInfoProto
	for _, t := range g.Initializer {
		p, ok := byONNX[t.GetName()]
		if !ok {
			kept = append(kept, t)
			continue
		}
		if t.GetName() != p.Name {
			onnx.RenameValue(g, t.GetName(), p.Name)
		}
		inputs = append(inputs, onnx.ValueInfo(p.Name, onnx.Float32, onnx.Dims(p.Shape...)...))
	}
	g.Initializer = kept
	ins := g.Input[:0]
	for _, in := range g.Input {
		if _, ok := byONNX[in.GetName()]; !ok {
			ins = append(ins, in)
		}
	}
	g.Input = append(ins, inputs...)
	return onnx.Save(m, out, onnx.SaveOptions{})
}

// embeddingWeight reports whether a parameter is the weight of an
// nn.Embedding module in the HF models ortrain knows (token embeddings,
// learned positions, T5's relative attention bias), which
// PreTrainedModel.num_parameters(exclude_embeddings=True) leaves out.
func embeddingWeight(name string) bool {
	for _, suf := range []string{"shared.weight", "embed_tokens.weight", "embed_positions.weight", "relative_attention_bias.weight"} {
		if name == suf || strings.HasSuffix(name, "."+suf) {
			return true
		}
	}
	return false
}

// NumParameters is num_parameters(exclude_embeddings=...) over the
// manifest's parameters (tied weights appear once), for HF's total_flos.
func (e *Engine) NumParameters(excludeEmbeddings bool) int64 {
	var n int64
	for _, p := range e.T.Manifest().Parameters {
		if excludeEmbeddings && embeddingWeight(p.Name) {
			continue
		}
		k := int64(1)
		for _, d := range p.Shape {
			k *= d
		}
		n += k
	}
	return n
}
