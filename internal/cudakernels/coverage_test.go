package cudakernels_test

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/generate"
	"github.com/ortrain/ortrain/generate/ortdecoder"
	"github.com/ortrain/ortrain/internal/amp"
	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/cudakernels"
	"github.com/ortrain/ortrain/internal/data"
	"github.com/ortrain/ortrain/internal/demo"
	"github.com/ortrain/ortrain/internal/lora"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/optim"
	"github.com/ortrain/ortrain/internal/ortimport"
	"github.com/ortrain/ortrain/internal/testenv"
	"github.com/ortrain/ortrain/ortrain/engine"
)

// coverage checks graphs against the CUDA table, each distinct graph once.
type coverage struct {
	t     *testing.T
	table *cudakernels.Table
	mu    sync.Mutex
	seen  map[[32]byte]bool
	// graphs and nodes checked, by where the graph came from
	graphs, nodes map[string]int
	bad           int
}

func newCoverage(t *testing.T) *coverage {
	table, err := cudakernels.CUDA()
	if err != nil {
		t.Fatal(err)
	}
	if table.Runtime != "1.29.0" {
		t.Fatalf("kernel table of ONNX Runtime %s, want 1.29.0", table.Runtime)
	}
	return &coverage{t: t, table: table, seen: map[[32]byte]bool{}, graphs: map[string]int{}, nodes: map[string]int{}}
}

// check checks one graph; kind groups the counts in the summary.
func (c *coverage) check(kind, label string, m *onnxpb.ModelProto) {
	c.t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		c.t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen[sum] {
		return
	}
	c.seen[sum] = true
	rep, err := c.table.Check(m)
	if err != nil {
		c.t.Errorf("%s: %v", label, err)
		return
	}
	c.graphs[kind]++
	c.nodes[kind] += rep.Nodes
	for _, u := range rep.Uncovered {
		c.bad++
		c.t.Errorf("%s: %s", label, u)
	}
}

func (c *coverage) checkFile(kind, path string) {
	c.t.Helper()
	m, err := onnx.LoadWith(path, onnx.LoadOptions{KeepExternal: true})
	if err != nil {
		c.t.Fatal(err)
	}
	c.check(kind, path, m)
}

// observe checks every graph a session of env is made from: the graphs
// ortrain builds while it runs (row gathers, the in-graph reorder, the
// decoding heads, the copy and unscale graphs, half-precision models).
func (c *coverage) observe(env *onnxrt.Env) {
	env.ObserveModels(func(src onnxrt.ModelSource) {
		var m *onnxpb.ModelProto
		if src.Bytes != nil {
			m = &onnxpb.ModelProto{}
			if err := proto.Unmarshal(src.Bytes, m); err != nil {
				c.t.Errorf("%s: %v", src.Name, err)
				return
			}
		} else {
			var err error
			if m, err = onnx.LoadWith(src.Path, onnx.LoadOptions{KeepExternal: true}); err != nil {
				c.t.Errorf("%s: %v", src.Name, err)
				return
			}
		}
		c.check("run time", "session "+src.Name, m)
	})
}

func (c *coverage) summary() {
	var kinds []string
	total, nodes := 0, 0
	for k := range c.graphs {
		kinds = append(kinds, k)
		total += c.graphs[k]
		nodes += c.nodes[k]
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		c.t.Logf("%-34s %5d graphs %8d nodes", k, c.graphs[k], c.nodes[k])
	}
	c.t.Logf("CUDA kernel coverage (ONNX Runtime %s, %d kernels): %d distinct graphs, %d nodes checked, %d without a CUDA kernel",
		c.table.Runtime, c.table.Kernels(), total, nodes, c.bad)
}

// cudaPrecisions are the lower-precision graphs a GPU runs: mixed precision
// with torch's CUDA autocast lists, and half-precision models (with and
// without autocast), in float16 and bfloat16.
func cudaPrecisions() []artifacts.Precision {
	var out []artifacts.Precision
	for _, dt := range []onnx.DType{onnx.Float16, onnx.BFloat16} {
		out = append(out,
			artifacts.Precision{Options: amp.Options{DType: dt, Device: amp.CUDA}},
			artifacts.Precision{Options: amp.Options{DType: dt, HalfModel: true}},
			artifacts.Precision{Options: amp.Options{DType: dt, HalfModel: true, Device: amp.CUDA}})
	}
	return out
}

// checkArtifacts checks every graph file of an artifact folder, and the
// unscale graph the engine builds for its parameters.
func (c *coverage) checkArtifacts(kind, dir string, man *artifacts.Manifest) {
	c.t.Helper()
	files := []string{man.Files.AdamW, man.Files.AdamWLegacy, man.Files.SGD, man.Files.Adafactor, man.Files.Training, man.Files.Eval,
		man.Files.Forward, man.Files.Encoder, man.Files.Decoder, man.Files.DecoderWithPast}
	for _, v := range man.Variants {
		f := v.Files
		files = append(files, f.Training, f.Eval, f.Forward, f.Encoder, f.Decoder, f.DecoderWithPast)
	}
	for _, f := range files {
		if f != "" {
			c.checkFile(kind, filepath.Join(dir, f))
		}
	}
	var grads []amp.Tensor
	for _, p := range man.Trainable() {
		grads = append(grads, amp.Tensor{Name: p.Name, Shape: p.Shape})
	}
	un, err := amp.BuildUnscale(grads, optim.GradName, optim.UpdatedName)
	if err != nil {
		c.t.Fatal(err)
	}
	c.check(kind, dir+": unscale graph", un)
}

// build builds the artifacts of a model folder (with every CUDA precision)
// and checks them.
func (c *coverage) build(kind, modelDir string, opt func(*artifacts.Config)) (string, *artifacts.Manifest) {
	c.t.Helper()
	cfg, err := artifacts.FolderConfig(modelDir)
	if err != nil {
		c.t.Fatal(err)
	}
	cfg.Out = c.t.TempDir()
	cfg.Precisions = cudaPrecisions()
	if opt != nil {
		opt(&cfg)
	}
	man, err := artifacts.Build(cfg)
	if err != nil {
		c.t.Fatalf("%s: %v", modelDir, err)
	}
	c.checkArtifacts(kind, cfg.Out, man)
	return cfg.Out, man
}

// withTrainingExport is a copy of a fixture folder whose model.onnx is its
// training-mode export (testdata/autodiff/<name>-train.onnx, Dropout nodes
// kept).
func withTrainingExport(t *testing.T, name string) string {
	dir := t.TempDir()
	src := testenv.Testdata(t, "models", name)
	for _, f := range []string{"config.json", "generation_config.json", "model.safetensors"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(testenv.Testdata(t, "autodiff", name+"-train.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "model.onnx"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// batch is a small batch of ids below vocab.
func batch(vocab int64) *data.Batch {
	b := &data.Batch{Rows: 2, SourceLen: 4, TargetLen: 3}
	for i := int64(0); i < 8; i++ {
		b.InputIDs = append(b.InputIDs, 3+(i*7)%(vocab-3))
		b.AttentionMask = append(b.AttentionMask, 1)
	}
	for i := int64(0); i < 6; i++ {
		b.DecoderInputIDs = append(b.DecoderInputIDs, 3+(i*5)%(vocab-3))
		b.Labels = append(b.Labels, 3+(i*11)%(vocab-3))
	}
	return b
}

// runEngine trains one step with each optimizer (AdamW, transformers'
// AdamW, SGD, Adafactor), evaluates and generates
// on the stand-in device, so that every graph the engine and its generator
// make at run time is seen.
func runEngine(t *testing.T, env *onnxrt.Env, dir string, man *artifacts.Manifest, vocab int64) {
	ctx := context.Background()
	for _, opt := range []string{"adamw", "adamw_hf", "sgd", "adafactor"} {
		e, err := engine.Open(dir, env, engine.Options{Optimizer: opt, Session: onnxrt.SessionOptions{Device: "standin", IntraOpThreads: 1}})
		if err != nil {
			t.Fatalf("%s, %s: %v", dir, opt, err)
		}
		b := batch(vocab)
		if _, err := e.TrainMicroBatch(ctx, b, 1, 7); err != nil {
			t.Fatal(err)
		}
		if _, err := e.OptimizerStep(ctx, 1e-3); err != nil {
			t.Fatal(err)
		}
		if _, err := e.EvalLoss(ctx, b); err != nil {
			t.Fatal(err)
		}
		if opt == "adamw" && man.Files.DecoderWithPast != "" {
			cfg := generate.DefaultConfig()
			cfg.DecoderStartTokenID, cfg.EOSTokenIDs, cfg.PadTokenID = 0, []int64{1}, 0
			g := &engine.Generator{Env: env, Dir: dir, Engine: e, Config: cfg, Opts: ortdecoder.Options{Device: "standin", IntraOpThreads: 1}}
			for _, beams := range []int{1, 4} {
				if _, err := g.Generate(ctx, b, 6, beams); err != nil {
					t.Fatalf("%s: generate, %d beams: %v", dir, beams, err)
				}
			}
			g.Close()
		}
		e.Close()
	}
}

// decode opens a model folder's decoders every way predict can (KV cache
// with the in-graph reorder, on the host, without the cache, in float16
// and bfloat16) and generates with greedy and beam search and the logits
// processors.
//
// halfMayFail: the float16 model of some architecture fixtures does not
// load on ONNX Runtime's CPU provider (t5gemma: the cast ONNX Runtime
// inserts around an inlined CastLike has the wrong type); its graphs are
// checked all the same, since a session's model is seen before it loads.
func decode(t *testing.T, env *onnxrt.Env, dir string, halfMayFail bool) {
	ctx := context.Background()
	opts := []ortdecoder.OpenOptions{
		{Options: ortdecoder.Options{Device: "standin"}},
		{Options: ortdecoder.Options{Device: "standin", HostReorder: true}},
		{Options: ortdecoder.Options{Device: "standin"}, NoCache: true},
		{Options: ortdecoder.Options{Device: "standin", DType: onnx.Float16}},
		{Options: ortdecoder.Options{Device: "standin", DType: onnx.BFloat16}},
	}
	for _, o := range opts {
		o.IntraOpThreads = 1
		m, err := ortdecoder.OpenModel(env, dir, o)
		if err != nil {
			if o.DType == onnx.BFloat16 {
				continue // the CPU has no bfloat16 kernels; the graphs were seen
			}
			if o.DType == onnx.Float16 && halfMayFail {
				t.Logf("%s, float16 on the CPU provider: %v", dir, err)
				continue
			}
			t.Fatalf("%s %+v: %v", dir, o, err)
		}
		for _, cfg := range decodingConfigs(m.Config) {
			if _, err := generate.Generate(ctx, m, [][]int64{{5, 6, 7, 8, 1}, {9, 10, 1}}, cfg); err != nil {
				t.Fatalf("%s %+v: %v", dir, o, err)
			}
		}
		m.Close()
	}
}

func decodingConfigs(base generate.Config) []generate.Config {
	base.MaxNewTokens = 5
	greedy := base
	greedy.NumBeams = 1
	beam := base
	beam.NumBeams = 3
	beam.NumReturnSequences = 2
	proc := beam
	proc.RepetitionPenalty, proc.NoRepeatNGramSize, proc.MinNewTokens = 1.3, 2, 2
	proc.BadWordsIDs = [][]int64{{7}, {5, 6}}
	sample := greedy
	sample.DoSample, sample.TopK, sample.TopP, sample.Temperature = true, 5, 0.9, 0.7
	return []generate.Config{greedy, beam, proc, sample}
}

// TestEveryGraphHasCUDAKernels checks every graph ortrain builds against
// ONNX Runtime 1.29.0's CUDA kernel table: each node must have a CUDA
// kernel for its element types, so that nothing falls back to the CPU.
// The graphs: the artifact folders (training with and without dropout,
// eval, forward, the three optimizers, the generation graphs, the unscale
// graph; float32 and every float16/bfloat16 variant) of T5, T5 v1.1, BART,
// Marian (their exports and their training-mode exports with Dropout
// nodes; with gradient checkpointing; with LoRA adapters), an Optimum export, the demo, ONNX Runtime training artifacts
// imported, and every architecture fixture (testdata/arch); and every
// graph a session is made from while the engine trains, evaluates and
// generates and while the decoders of predict generate (row gathers,
// in-graph reorders, decoding heads, copies, half-precision models).
func TestEveryGraphHasCUDAKernels(t *testing.T) {
	c := newCoverage(t)
	env, err := onnxrt.Open(testenv.ORTLibrary(t))
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	c.observe(env)

	demoDir := filepath.Join(t.TempDir(), "demo")
	if _, _, err := demo.WriteFolder(demoDir, 1); err != nil {
		t.Fatal(err)
	}
	c.build("artifacts: demo", demoDir, nil)

	for _, name := range []string{"t5-tiny", "t5-v1_1-tiny", "bart-tiny", "marian-tiny"} {
		dir := testenv.Testdata(t, "models", name)
		art, man := c.build("artifacts: fixtures", dir, nil)
		runEngine(t, env, art, man, 512)
		decode(t, env, dir, false)
	}
	for _, name := range []string{"t5-tiny", "bart-tiny", "marian-tiny"} {
		dir := withTrainingExport(t, name)
		art, man := c.build("artifacts: with dropout", dir, nil)
		if man.DropoutNodes == 0 {
			t.Fatalf("%s: the training-mode export gave no dropout nodes", name)
		}
		runEngine(t, env, art, man, 512)
		c.build("artifacts: dropout disabled", dir, func(cfg *artifacts.Config) { cfg.DisableDropout = true })
	}
	// Gradient checkpointing (the recomputed layers and the Where that
	// orders them), with every CUDA precision, and LoRA adapters with their
	// dropout (float32: LoRA refuses the half precisions).
	for _, name := range []string{"t5-tiny", "bart-tiny", "marian-tiny"} {
		dir := withTrainingExport(t, name)
		art, man := c.build("artifacts: gradient checkpointing", dir, func(cfg *artifacts.Config) { cfg.GradientCheckpointing = true })
		if man.GradientCheckpointing == nil || len(man.GradientCheckpointing.Layers) == 0 {
			t.Fatalf("%s: no layer checkpointed", name)
		}
		runEngine(t, env, art, man, 512)
		art, man = c.build("artifacts: LoRA", dir, func(cfg *artifacts.Config) {
			lc := lora.Defaults()
			lc.R, lc.Alpha, lc.Dropout = 4, 8, 0.1
			lc.SetTargets(lora.AllLinear)
			cfg.LoRA, cfg.Precisions = &lc, nil
		})
		runEngine(t, env, art, man, 512)
	}
	for _, name := range []string{"bart-tiny-with-past", "t5-tiny", "marian-tiny-with-past"} {
		dir := testenv.Testdata(t, "optimum", name)
		c.build("artifacts: Optimum exports", dir, nil)
		decode(t, env, dir, false)
	}

	imported := t.TempDir()
	if _, err := ortimport.Import(ortimport.Options{From: ortArtifacts(t), Out: imported}); err != nil {
		t.Fatal(err)
	}
	man, err := artifacts.ReadManifest(imported)
	if err != nil {
		t.Fatal(err)
	}
	c.checkArtifacts("artifacts: ORT import", imported, man)
	runEngine(t, env, imported, man, 512)

	archs, err := os.ReadDir(testenv.Testdata(t, "arch"))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range archs {
		if !a.IsDir() {
			continue
		}
		dir := testenv.Testdata(t, "arch", a.Name())
		c.build("artifacts: architectures", dir, nil)
		decode(t, env, dir, true)
	}
	c.summary()
}

// ortArtifacts is a copy of ONNX Runtime's training artifacts of t5-tiny.
func ortArtifacts(t *testing.T) string {
	src := testenv.Testdata(t, "ort-artifacts", "t5-tiny")
	dst := t.TempDir()
	for _, f := range []string{ortimport.EvalFile, ortimport.OptimizerFile, ortimport.TrainingFile, ortimport.CheckpointFile} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// TestKernelTableFindsGaps: the check reports a node whose types have no
// CUDA kernel (ReduceMean has none for bfloat16 in 1.29.0, BitShift none
// at all), in the main graph and in subgraphs.
func TestKernelTableFindsGaps(t *testing.T) {
	table, err := cudakernels.CUDA()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dt   onnx.DType
		want int
	}{{onnx.Float16, 0}, {onnx.BFloat16, 1}} {
		b := onnx.NewGraphBuilder(nil)
		x := b.AddInput("x", tc.dt, onnx.D(2), onnx.D(3))
		y := b.Op("ReduceMean", []string{x, b.ConstInt64Vec(-1)})
		b.AddOutput(y, tc.dt, onnx.D(2), onnx.D(1))
		rep, err := table.Check(onnx.NewModel(b.Graph(), 18))
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Uncovered) != tc.want || rep.Nodes != 1 {
			t.Errorf("ReduceMean %s: %d nodes, uncovered %v, want %d", onnx.DTypeName(tc.dt), rep.Nodes, rep.Uncovered, tc.want)
		}
	}
	// CastLike: no kernel anywhere, ONNX Runtime inlines it as a Cast
	cl := onnx.NewGraphBuilder(nil)
	h := cl.AddInput("h", onnx.Float16, onnx.D(2))
	f := cl.AddInput("f", onnx.Float32, onnx.D(1))
	cl.AddOutput(cl.Op("CastLike", []string{h, f}), onnx.Float32, onnx.D(2))
	if rep, err := table.Check(onnx.NewModel(cl.Graph(), 18)); err != nil || rep.Nodes != 1 || len(rep.Uncovered) != 0 {
		t.Errorf("CastLike float16 to float: %+v, %v; want covered as the Cast it is inlined into", rep, err)
	}
	// BitShift on uint64 inside an If branch
	g := onnx.NewGraphBuilder(nil)
	x := g.AddInput("x", onnx.Uint64, onnx.D(4))
	cond := g.AddInput("cond", onnx.Bool)
	then := &onnxpb.GraphProto{Name: proto.String("then"), Node: []*onnxpb.NodeProto{{
		Name: proto.String("shift"), OpType: proto.String("BitShift"), Input: []string{x, x}, Output: []string{"shifted"},
		Attribute: []*onnxpb.AttributeProto{onnx.AttrString("direction", "LEFT")}}},
		Output: []*onnxpb.ValueInfoProto{onnx.ValueInfo("shifted", onnx.Uint64, onnx.D(4))}}
	els := &onnxpb.GraphProto{Name: proto.String("else"), Node: []*onnxpb.NodeProto{{
		Name: proto.String("same"), OpType: proto.String("Identity"), Input: []string{x}, Output: []string{"same"}}},
		Output: []*onnxpb.ValueInfoProto{onnx.ValueInfo("same", onnx.Uint64, onnx.D(4))}}
	ifNode := &onnxpb.NodeProto{Name: proto.String("if"), OpType: proto.String("If"), Input: []string{cond}, Output: []string{"y"},
		Attribute: []*onnxpb.AttributeProto{{Name: proto.String("then_branch"), Type: onnxpb.AttributeProto_GRAPH.Enum(), G: then},
			{Name: proto.String("else_branch"), Type: onnxpb.AttributeProto_GRAPH.Enum(), G: els}}}
	gr := g.Graph()
	gr.Node = append(gr.Node, ifNode)
	gr.Output = []*onnxpb.ValueInfoProto{onnx.ValueInfo("y", onnx.Uint64, onnx.D(4))}
	rep, err := table.Check(onnx.NewModel(gr, 18))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Nodes != 3 || len(rep.Uncovered) != 1 || rep.Uncovered[0].Node != "shift" || !strings.Contains(rep.Uncovered[0].Graph, "then_branch") {
		t.Errorf("If with a uint64 BitShift branch: %d nodes, uncovered %v; want 3 nodes, the BitShift uncovered", rep.Nodes, rep.Uncovered)
	}
}
