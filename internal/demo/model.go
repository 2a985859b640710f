// Package demo builds ortrain's embedded default: a small encoder-decoder
// transformer written directly as ONNX graphs, and a synthetic translation
// task with its word-level tokenizer, so that the whole pipeline (tokenize,
// train, generate, score) runs with nothing downloaded.
package demo

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"

	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// Config sizes the model.
type Config struct {
	Vocab     int
	DModel    int
	Heads     int
	FF        int
	EncLayers int
	DecLayers int
	MaxLen    int // longest source or target sequence, in tokens
	Seed      uint64
	PadID     int64 // also the decoder start token, as in T5
	EOSID     int64
}

// DefaultConfig is the demo model: about 0.2M parameters.
func DefaultConfig(vocab int) Config {
	return Config{Vocab: vocab, DModel: 64, Heads: 4, FF: 128, EncLayers: 2, DecLayers: 2, MaxLen: 32, Seed: 1, PadID: 0, EOSID: 1}
}

func (c Config) validate() error {
	switch {
	case c.Vocab < 4 || c.DModel < 1 || c.Heads < 1 || c.FF < 1 || c.MaxLen < 2:
		return fmt.Errorf("demo model config %+v: sizes must be positive (vocab >= 4, max_len >= 2)", c)
	case c.DModel%c.Heads != 0:
		return fmt.Errorf("demo model config: d_model %d is not a multiple of heads %d", c.DModel, c.Heads)
	case c.EncLayers < 1 || c.DecLayers < 1:
		return fmt.Errorf("demo model config: needs at least one encoder and one decoder layer")
	}
	return nil
}

// Model is the demo transformer as ONNX graphs sharing one set of weights.
// Linear weights are stored [in, out] (ONNX MatMul layout); the names follow
// Hugging Face conventions so that the usual no-decay rules (bias, layer_norm)
// apply.
type Model struct {
	Config Config
	// Forward maps input_ids, attention_mask, decoder_input_ids to logits.
	Forward *onnxpb.ModelProto
	// Encoder maps input_ids, attention_mask to last_hidden_state.
	Encoder *onnxpb.ModelProto
	// Decoder maps input_ids, encoder_attention_mask, encoder_hidden_states to
	// logits, recomputing the whole prefix (no KV cache).
	Decoder *onnxpb.ModelProto
	// Weights holds the initial parameters by name.
	Weights map[string]Tensor
}

// Tensor is a float32 parameter.
type Tensor struct {
	Shape []int64
	Data  []float32
}

// Names lists the parameter names in a stable order.
func (m *Model) Names() []string {
	names := make([]string, 0, len(m.Weights))
	for n := range m.Weights {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Build creates the graphs and initial weights.
func Build(cfg Config) (*Model, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	w := initWeights(cfg)
	m := &Model{Config: cfg, Weights: w}

	// Forward graph: encoder and decoder in one graph, for training.
	{
		g := newGraph("demo_forward", cfg, w)
		ids := g.b.AddInput("input_ids", onnx.Int64, onnx.Sym("batch"), onnx.Sym("src_len"))
		mask := g.b.AddInput("attention_mask", onnx.Int64, onnx.Sym("batch"), onnx.Sym("src_len"))
		dec := g.b.AddInput("decoder_input_ids", onnx.Int64, onnx.Sym("batch"), onnx.Sym("tgt_len"))
		enc := g.encoder(ids, mask)
		logits := g.decoder(dec, mask, enc)
		g.b.Node("Identity", []string{logits}, []string{"logits"})
		g.b.AddOutput("logits", onnx.Float32, onnx.Sym("batch"), onnx.Sym("tgt_len"), onnx.D(int64(cfg.Vocab)))
		m.Forward = onnx.NewModel(g.b.Graph(), 17)
	}
	{
		g := newGraph("demo_encoder", cfg, w)
		ids := g.b.AddInput("input_ids", onnx.Int64, onnx.Sym("batch"), onnx.Sym("src_len"))
		mask := g.b.AddInput("attention_mask", onnx.Int64, onnx.Sym("batch"), onnx.Sym("src_len"))
		enc := g.encoder(ids, mask)
		g.b.Node("Identity", []string{enc}, []string{"last_hidden_state"})
		g.b.AddOutput("last_hidden_state", onnx.Float32, onnx.Sym("batch"), onnx.Sym("src_len"), onnx.D(int64(cfg.DModel)))
		m.Encoder = onnx.NewModel(g.b.Graph(), 17)
	}
	{
		g := newGraph("demo_decoder", cfg, w)
		dec := g.b.AddInput("input_ids", onnx.Int64, onnx.Sym("batch"), onnx.Sym("tgt_len"))
		mask := g.b.AddInput("encoder_attention_mask", onnx.Int64, onnx.Sym("batch"), onnx.Sym("src_len"))
		enc := g.b.AddInput("encoder_hidden_states", onnx.Float32, onnx.Sym("batch"), onnx.Sym("src_len"), onnx.D(int64(cfg.DModel)))
		logits := g.decoder(dec, mask, enc)
		g.b.Node("Identity", []string{logits}, []string{"logits"})
		g.b.AddOutput("logits", onnx.Float32, onnx.Sym("batch"), onnx.Sym("tgt_len"), onnx.D(int64(cfg.Vocab)))
		m.Decoder = onnx.NewModel(g.b.Graph(), 17)
	}
	return m, nil
}

func initWeights(cfg Config) map[string]Tensor {
	r := rand.New(rand.NewPCG(cfg.Seed, 0x6f72747261696e)) // "ortrain"
	w := map[string]Tensor{}
	normal := func(name string, std float64, shape ...int64) {
		n := int64(1)
		for _, d := range shape {
			n *= d
		}
		data := make([]float32, n)
		for i := range data {
			data[i] = float32(r.NormFloat64() * std)
		}
		w[name] = Tensor{Shape: shape, Data: data}
	}
	fill := func(name string, v float32, shape ...int64) {
		data := make([]float32, shape[0])
		for i := range data {
			data[i] = v
		}
		w[name] = Tensor{Shape: shape, Data: data}
	}
	d, ff := int64(cfg.DModel), int64(cfg.FF)
	inv := func(fanIn int64) float64 { return 1 / math.Sqrt(float64(fanIn)) }
	normal("shared.weight", inv(d), int64(cfg.Vocab), d)
	linear := func(prefix string, in, out int64) {
		normal(prefix+".weight", inv(in), in, out)
		fill(prefix+".bias", 0, out)
	}
	norm := func(prefix string) {
		fill(prefix+".weight", 1, d)
		fill(prefix+".bias", 0, d)
	}
	attn := func(prefix string) {
		for _, p := range []string{"q", "k", "v", "o"} {
			linear(prefix+"."+p, d, d)
		}
	}
	// A fixed order: the weights are drawn from one stream.
	for _, sl := range []struct {
		side   string
		layers int
	}{{"encoder", cfg.EncLayers}, {"decoder", cfg.DecLayers}} {
		side, layers := sl.side, sl.layers
		normal(side+".embed_positions.weight", 0.1, int64(cfg.MaxLen), d)
		norm(side + ".layer_norm")
		for i := 0; i < layers; i++ {
			p := fmt.Sprintf("%s.layers.%d", side, i)
			attn(p + ".self_attn")
			norm(p + ".self_attn_layer_norm")
			if side == "decoder" {
				attn(p + ".encoder_attn")
				norm(p + ".encoder_attn_layer_norm")
			}
			linear(p+".fc1", d, ff)
			linear(p+".fc2", ff, d)
			norm(p + ".final_layer_norm")
		}
	}
	return w
}

// graph builds one of the model's graphs.
type graph struct {
	b     *onnx.GraphBuilder
	cfg   Config
	w     map[string]Tensor
	added map[string]bool
}

func newGraph(name string, cfg Config, w map[string]Tensor) *graph {
	b := onnx.NewGraphBuilder(&onnxpb.GraphProto{Name: &name})
	// Constants as Constant nodes: initializers are the parameters.
	b.Consts = onnx.ConstNode
	return &graph{b: b, cfg: cfg, w: w, added: map[string]bool{}}
}

// param adds a weight as an initializer the first time it is used.
func (g *graph) param(name string) string {
	if !g.added[name] {
		t := g.w[name]
		g.b.AddInitializer(onnx.MustTensor(name, t.Shape, t.Data))
		g.added[name] = true
	}
	return name
}

func (g *graph) op(op string, in ...string) string { return g.b.Op(op, in) }

func (g *graph) linear(prefix, x string) string {
	return g.op("Add", g.op("MatMul", x, g.param(prefix+".weight")), g.param(prefix+".bias"))
}

func (g *graph) layerNorm(prefix, x string) string {
	return g.b.Op("LayerNormalization", []string{x, g.param(prefix + ".weight"), g.param(prefix + ".bias")},
		onnx.AttrInt("axis", -1), onnx.AttrFloat("epsilon", 1e-5))
}

// embed looks tokens up and adds learned positions 0..len-1.
func (g *graph) embed(side, ids string) string {
	n := g.b.Op("Gather", []string{g.op("Shape", ids), g.b.ConstInt64(1)}, onnx.AttrInt("axis", 0))
	pos := g.op("Range", g.b.ConstInt64(0), n, g.b.ConstInt64(1))
	return g.op("Add", g.op("Gather", g.param("shared.weight"), ids), g.op("Gather", g.param(side+".embed_positions.weight"), pos))
}

// padBias turns an attention mask [B,S] into an additive bias [B,1,1,S].
func (g *graph) padBias(mask string) string {
	m := g.b.Op("Cast", []string{mask}, onnx.AttrInt("to", int64(onnx.Float32)))
	bias := g.op("Mul", g.op("Sub", g.b.ConstFloat32(1), m), g.b.ConstFloat32(-1e9))
	return g.op("Unsqueeze", bias, g.b.ConstInt64Vec(1, 2))
}

// causalBias is an additive [T,T] bias hiding future positions.
func (g *graph) causalBias(ids string) string {
	n := g.b.Op("Gather", []string{g.op("Shape", ids), g.b.ConstInt64(1)}, onnx.AttrInt("axis", 0))
	r := g.op("Range", g.b.ConstInt64(0), n, g.b.ConstInt64(1))
	future := g.op("Greater", g.op("Unsqueeze", r, g.b.ConstInt64Vec(0)), g.op("Unsqueeze", r, g.b.ConstInt64Vec(1)))
	return g.op("Where", future, g.b.ConstFloat32(-1e9), g.b.ConstFloat32(0))
}

func (g *graph) attention(prefix, xq, xkv, bias string) string {
	h, dh := int64(g.cfg.Heads), int64(g.cfg.DModel/g.cfg.Heads)
	heads := g.b.ConstInt64Vec(0, 0, h, dh)
	split := func(t string, perm ...int64) string {
		return g.b.Op("Transpose", []string{g.op("Reshape", t, heads)}, onnx.AttrInts("perm", perm))
	}
	q := split(g.linear(prefix+".q", xq), 0, 2, 1, 3)
	k := split(g.linear(prefix+".k", xkv), 0, 2, 3, 1)
	v := split(g.linear(prefix+".v", xkv), 0, 2, 1, 3)
	scores := g.op("Add", g.op("Mul", g.op("MatMul", q, k), g.b.ConstFloat32(float32(1/math.Sqrt(float64(dh))))), bias)
	p := g.b.Op("Softmax", []string{scores}, onnx.AttrInt("axis", -1))
	ctx := g.b.Op("Transpose", []string{g.op("MatMul", p, v)}, onnx.AttrInts("perm", []int64{0, 2, 1, 3}))
	return g.linear(prefix+".o", g.op("Reshape", ctx, g.b.ConstInt64Vec(0, 0, int64(g.cfg.DModel))))
}

func (g *graph) feedForward(prefix, x string) string {
	return g.linear(prefix+".fc2", g.op("Relu", g.linear(prefix+".fc1", x)))
}

// encoder: pre-LayerNorm transformer layers over the source.
func (g *graph) encoder(ids, mask string) string {
	x := g.embed("encoder", ids)
	bias := g.padBias(mask)
	for i := 0; i < g.cfg.EncLayers; i++ {
		p := fmt.Sprintf("encoder.layers.%d", i)
		h := g.layerNorm(p+".self_attn_layer_norm", x)
		x = g.op("Add", x, g.attention(p+".self_attn", h, h, bias))
		x = g.op("Add", x, g.feedForward(p, g.layerNorm(p+".final_layer_norm", x)))
	}
	return g.layerNorm("encoder.layer_norm", x)
}

// decoder: causal self-attention, cross-attention, feed-forward; logits
// through the transposed shared embedding (tied weights).
func (g *graph) decoder(ids, encMask, enc string) string {
	x := g.embed("decoder", ids)
	self := g.causalBias(ids)
	cross := g.padBias(encMask)
	for i := 0; i < g.cfg.DecLayers; i++ {
		p := fmt.Sprintf("decoder.layers.%d", i)
		h := g.layerNorm(p+".self_attn_layer_norm", x)
		x = g.op("Add", x, g.attention(p+".self_attn", h, h, self))
		h = g.layerNorm(p+".encoder_attn_layer_norm", x)
		x = g.op("Add", x, g.attention(p+".encoder_attn", h, enc, cross))
		x = g.op("Add", x, g.feedForward(p, g.layerNorm(p+".final_layer_norm", x)))
	}
	x = g.layerNorm("decoder.layer_norm", x)
	lmHead := g.b.Op("Transpose", []string{g.param("shared.weight")}, onnx.AttrInts("perm", []int64{1, 0}))
	return g.op("MatMul", x, lmHead)
}
