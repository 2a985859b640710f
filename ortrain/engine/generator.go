package engine

import (
	"context"
	"fmt"
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
	at      int
	variant string
}

var _ ortrain.Generator = (*Generator)(nil)

// Generate generates for the batch's sources with the engine's current
// parameters.
func (g *Generator) Generate(ctx context.Context, b ortrain.Batch, maxLength, numBeams int) ([][]int, error) {
	bb, err := batchOf(b)
	if err != nil {
		return nil, err
	}
	variant := g.Engine.generationVariant()
	if g.dec == nil || g.at != g.Engine.version || g.variant != variant {
		// The trainer swaps parameter buffers at every step: reopen on the
		// current ones (and on the graphs of the precision in force).
		g.Close()
		opts := g.Opts
		opts.Variant = variant
		if variant != "" {
			opts = lowPrecisionDecoding(opts)
		}
		if g.RecomputeGraph != "" {
			graph := g.RecomputeGraph
			if variant != "" {
				v, err := g.Engine.man.Variant(variant)
				if err != nil {
					return nil, err
				}
				if v.Files.Forward == "" {
					return nil, fmt.Errorf("the %s graphs have no forward graph to generate with", variant)
				}
				graph = filepath.Join(g.Dir, v.Files.Forward)
			}
			opts.Inputs = g.Engine.ParamValues()
			pad := g.Config.PadTokenID
			if pad < 0 {
				pad = 0
			}
			d, err := ortdecoder.NewRecompute(g.Env, graph, pad, opts)
			if err != nil {
				return nil, err
			}
			g.dec = d
		} else {
			d, err := ortdecoder.OpenArtifacts(g.Env, g.Dir, g.Engine.ParamValues(), opts)
			if err != nil {
				return nil, err
			}
			g.dec = d
		}
		g.at, g.variant = g.Engine.version, variant
	}
	cfg := g.Config
	if maxLength > 0 {
		cfg.MaxLength = maxLength
		cfg.MaxNewTokens = 0
	}
	if numBeams > 0 {
		cfg.NumBeams = numBeams
	}
	out, err := generate.Generate(ctx, g.dec, bb.SourceIDs(), cfg)
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
// Decoder position ids count every earlier token, as with HF's default KV
// cache (ortdecoder.CachePositions).
func WriteRecomputeGraph(model string, man *artifacts.Manifest, out string) error {
	m, err := onnx.Load(model)
	if err != nil {
		return err
	}
	if _, err := ortdecoder.CachePositions(m); err != nil {
		return fmt.Errorf("%s: %w", model, err)
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
	for _, p := range e.man.Parameters {
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
