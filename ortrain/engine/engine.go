package engine

import (
	"errors"
	"fmt"
	"context"
	"os"
	"path/filepath"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/data"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/optim"
	"github.com/ortrain/ortrain/internal/safetensors"
	"github.com/ortrain/ortrain/ortrain"
)

// Files the engine writes into checkpoint folders.
const (
	ModelFile     = "model.safetensors"
	OptimizerFile = "optimizer.safetensors"
)

var _ ortrain.Engine = (*Engine)(nil)

// Hyper holds the optimizer's hyperparameters other than the learning rate
// (HF TrainingArguments names in comments).
type Hyper struct {
	Beta1       float64 // adam_beta1
	Beta2       float64 // adam_beta2
	Eps         float64 // adam_epsilon
	WeightDecay float64 // weight_decay (decay parameters only)
	MaxGradNorm float64 // max_grad_norm; 0 disables clipping
	Momentum    float64 // SGD only
}

// DefaultHyper is HF's TrainingArguments defaults.
func DefaultHyper() Hyper {
	return Hyper{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0, MaxGradNorm: 1}
}

// Options for Open.
type Options struct {
	Session   onnxrt.SessionOptions
	Optimizer string // "adamw" (default, torch.optim.AdamW), "adamw_hf" (transformers' legacy AdamW) or "sgd"
	// DoubleBuffer writes every updated tensor (parameters, gradient sums,
	// optimizer state) to a second buffer and swaps, instead of updating in
	// place: twice the memory, for runtimes that may not alias an input
	// and an output of a run.
	DoubleBuffer bool
	Hyper        Hyper
	// ModelDir, when set, is the source model folder whose config.json and
	// generation_config.json SaveModel copies next to model.safetensors, so
	// checkpoints load back into transformers.
	ModelDir string
}

// EvalResult is the eval graph's output for one batch.
type EvalResult struct {
	Loss, LossSum float32
	Tokens        int64
	Logits        []float32 // only when asked for: [Rows, TargetLen, vocab]
	LogitsShape   []int64
}

// Engine is the training engine: it runs an artifact folder's graphs for the
// trainer (it implements ortrain.Engine). Parameters, gradient sums and
// optimizer state live as runtime values (device memory for a CUDA session)
// and pass from one run to the next through IoBinding without host copies.
// Updated tensors are written in place (the same buffer bound as input and
// output; see Options.DoubleBuffer).
type Engine struct {
	dir       string
	man       *artifacts.Manifest
	env       *onnxrt.Env
	opts      Options
	train     *onnxrt.Session
	opt       *onnxrt.Session
	eval      *onnxrt.Session
	copier    *onnxrt.Session // Identity graph: moves host <-> device
	params    []artifacts.Parameter     // trainable, graph order
	frozen    []artifacts.Parameter
	trainIns  map[string]bool
	evalIns   map[string]bool
	cur       map[string]*onnxrt.Value // parameters now
	next      map[string]*onnxrt.Value // spare parameter buffers
	grad      map[string]*onnxrt.Value // gradient sums now
	gradNext  map[string]*onnxrt.Value
	state     []func(string) string // optimizer state names (exp_avg, ...)
	st        map[string]*onnxrt.Value
	stNext    map[string]*onnxrt.Value
	step      int64
	haveGrads bool      // a micro-batch ran since the last optimizer step
	zeros     []float32 // host zeros for zero()
	version   int       // bumped whenever the parameters change (generators reopen)
}

// Open loads the artifact folder dir onto the device of opts.Session.
func Open(dir string, env *onnxrt.Env, opts Options) (*Engine, error) {
	man, err := artifacts.ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	if opts.Hyper == (Hyper{}) {
		opts.Hyper = DefaultHyper()
	}
	e := &Engine{dir: dir, man: man, env: env, opts: opts,
		cur: map[string]*onnxrt.Value{}, next: map[string]*onnxrt.Value{},
		grad: map[string]*onnxrt.Value{}, gradNext: map[string]*onnxrt.Value{},
		st: map[string]*onnxrt.Value{}, stNext: map[string]*onnxrt.Value{}}
	ok := false
	defer func() {
		if !ok {
			e.Close()
		}
	}()
	optFile := man.Files.AdamW
	switch opts.Optimizer {
	case "", "adamw":
		e.state = []func(string) string{optim.ExpAvgName, optim.ExpAvgSqName}
	case "adamw_hf":
		if man.Files.AdamWLegacy == "" {
			return nil, fmt.Errorf("%s has no legacy AdamW graph (optimizer adamw_hf): rebuild the artifacts with this ortrain", dir)
		}
		optFile = man.Files.AdamWLegacy
		e.state = []func(string) string{optim.ExpAvgName, optim.ExpAvgSqName}
	case "sgd":
		optFile = man.Files.SGD
		e.state = []func(string) string{optim.MomentumBufferName}
	default:
		return nil, fmt.Errorf("optimizer %q: want adamw, adamw_hf or sgd", opts.Optimizer)
	}
	if e.train, err = env.NewSession(filepath.Join(dir, man.Files.Training), opts.Session); err != nil {
		return nil, err
	}
	if e.opt, err = env.NewSession(filepath.Join(dir, optFile), opts.Session); err != nil {
		return nil, err
	}
	if e.copier, err = env.NewSessionFromBytes(identityModel(), "ortrain-copy", opts.Session); err != nil {
		return nil, err
	}
	e.trainIns = inputSet(e.train)
	for _, p := range man.Parameters {
		if p.Trainable {
			e.params = append(e.params, p)
		} else {
			e.frozen = append(e.frozen, p)
		}
	}
	init, err := safetensors.ReadFile(filepath.Join(dir, man.Files.Parameters))
	if err != nil {
		return nil, err
	}
	for _, p := range e.params {
		for _, m := range []map[string]*onnxrt.Value{e.cur, e.grad} {
			if m[p.Name], err = e.alloc(p.Shape); err != nil {
				return nil, err
			}
		}
		for _, name := range e.state {
			if e.st[name(p.Name)], err = e.alloc(p.Shape); err != nil {
				return nil, err
			}
		}
		if opts.DoubleBuffer {
			for _, m := range []map[string]*onnxrt.Value{e.next, e.gradNext} {
				if m[p.Name], err = e.alloc(p.Shape); err != nil {
					return nil, err
				}
			}
			for _, name := range e.state {
				if e.stNext[name(p.Name)], err = e.alloc(p.Shape); err != nil {
					return nil, err
				}
			}
		} else {
			// In place: every update is an elementwise node whose inputs
			// are all read by nodes that run before it, so the output may
			// be the input's own buffer.
			e.next[p.Name], e.gradNext[p.Name] = e.cur[p.Name], e.grad[p.Name]
			for _, name := range e.state {
				e.stNext[name(p.Name)] = e.st[name(p.Name)]
			}
		}
		if err := e.loadParam(p, init); err != nil {
			return nil, err
		}
		// Fresh device memory may hold NaN bit patterns, and the training
		// graph multiplies the old sums by 0 to restart them.
		if err := e.zero(e.grad[p.Name]); err != nil {
			return nil, err
		}
	}
	if err := e.ResetOptimizerState(); err != nil {
		return nil, err
	}
	ok = true
	return e, nil
}

// artifacts.Manifest describes the opened folder.
func (e *Engine) Manifest() *artifacts.Manifest { return e.man }

// Step is the number of optimizer steps taken (torch's state["step"]).
func (e *Engine) Step() int64 { return e.step }

func inputSet(s *onnxrt.Session) map[string]bool {
	m := map[string]bool{}
	for _, in := range s.Inputs() {
		m[in.Name] = true
	}
	return m
}

func (e *Engine) alloc(shape []int64) (*onnxrt.Value, error) {
	return e.train.Alloc(onnxrt.Float32, shape)
}

// identityModel copies a float tensor of any shape; run on the device, it
// uploads host values into device buffers and downloads them back.
func identityModel() []byte {
	g := &onnxpb.GraphProto{Name: proto.String("copy")}
	in := &onnxpb.ValueInfoProto{Name: proto.String("x"), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT))}}}}
	out := proto.Clone(in).(*onnxpb.ValueInfoProto)
	out.Name = proto.String("y")
	g.Input = []*onnxpb.ValueInfoProto{in}
	g.Output = []*onnxpb.ValueInfoProto{out}
	g.Node = []*onnxpb.NodeProto{{OpType: proto.String("Identity"), Input: []string{"x"}, Output: []string{"y"}}}
	b, _ := proto.Marshal(onnx.NewModel(g, 17))
	return b
}

// upload writes host floats (graph layout) into a runtime value.
func (e *Engine) upload(dst *onnxrt.Value, data []float32) error {
	if dst.Device().Kind == "cpu" {
		return dst.SetFloat32s(data)
	}
	src, err := onnxrt.NewTensor(dst.Shape(), data)
	if err != nil {
		return err
	}
	defer src.Close()
	return e.copier.RunInto(map[string]*onnxrt.Value{"x": src}, map[string]*onnxrt.Value{"y": dst})
}

// download reads a runtime value into host floats (graph layout).
func (e *Engine) download(v *onnxrt.Value) ([]float32, error) {
	if v.Device().Kind == "cpu" {
		return v.Float32s()
	}
	out, err := e.copier.Run(map[string]*onnxrt.Value{"x": v}, []string{"y"})
	if err != nil {
		return nil, err
	}
	defer out["y"].Close()
	return out["y"].Float32s()
}

func (e *Engine) param(name string) (artifacts.Parameter, bool) {
	for _, p := range e.man.Parameters {
		if p.Name == name {
			return p, true
		}
	}
	return artifacts.Parameter{}, false
}

func (e *Engine) loadParam(p artifacts.Parameter, f *safetensors.File) error {
	ts, ok := f.Tensors[p.Name]
	if !ok {
		return fmt.Errorf("parameter %q is missing from the parameter file", p.Name)
	}
	if fmt.Sprint(ts.Shape) != fmt.Sprint(p.TorchShape()) {
		return fmt.Errorf("parameter %q has shape %v in the file, the model needs %v", p.Name, ts.Shape, p.TorchShape())
	}
	dst := e.cur[p.Name]
	if ts.DType == safetensors.Float32 && !p.Transposed && dst.Device().Kind == "cpu" {
		return dst.SetBytes(ts.Data) // straight from the file's bytes, no float copy
	}
	v, err := ts.Float32s()
	if err != nil {
		return fmt.Errorf("parameter %q: %w", p.Name, err)
	}
	return e.upload(dst, p.ToGraph(v))
}

// Param returns a parameter's values in PyTorch layout (frozen ones too).
func (e *Engine) Param(name string) ([]float32, error) {
	p, ok := e.param(name)
	if !ok {
		return nil, fmt.Errorf("no parameter %q", name)
	}
	if !p.Trainable {
		f, err := safetensors.ReadFile(filepath.Join(e.dir, e.man.Files.Parameters))
		if err != nil {
			return nil, err
		}
		return f.Tensors[name].Float32s()
	}
	v, err := e.download(e.cur[name])
	if err != nil {
		return nil, err
	}
	return p.ToTorch(v), nil
}

// SetParam overwrites a trainable parameter (PyTorch layout).
func (e *Engine) SetParam(name string, v []float32) error {
	e.version++
	p, ok := e.param(name)
	if !ok || !p.Trainable {
		return fmt.Errorf("no trainable parameter %q", name)
	}
	if int64(len(v)) != onnx.NumElements(p.Shape) {
		return fmt.Errorf("parameter %q has %d elements, got %d", name, onnx.NumElements(p.Shape), len(v))
	}
	return e.upload(e.cur[name], p.ToGraph(v))
}

// Gradient returns a trainable parameter's accumulated gradient (PyTorch
// layout) since the last optimizer step.
func (e *Engine) Gradient(name string) ([]float32, error) {
	p, ok := e.param(name)
	if !ok || !p.Trainable {
		return nil, fmt.Errorf("no trainable parameter %q", name)
	}
	if !e.haveGrads {
		return make([]float32, onnx.NumElements(p.Shape)), nil
	}
	v, err := e.download(e.grad[name])
	if err != nil {
		return nil, err
	}
	return p.ToTorch(v), nil
}

// ParamValues returns the current trainable parameter values by name
// (graph layout), to bind as inputs of the generation graphs. They stay
// owned by the Engine and change after OptimizerStep.
func (e *Engine) ParamValues() map[string]*onnxrt.Value {
	out := make(map[string]*onnxrt.Value, len(e.cur))
	for k, v := range e.cur {
		out[k] = v
	}
	return out
}

func scalarF32(x float32) (*onnxrt.Value, error) { return onnxrt.NewTensor(nil, []float32{x}) }

type closer []*onnxrt.Value

func (c *closer) add(v *onnxrt.Value, err error) (*onnxrt.Value, error) {
	if v != nil {
		*c = append(*c, v)
	}
	return v, err
}

func (c closer) close() {
	for _, v := range c {
		v.Close()
	}
}

func (e *Engine) batchValues(b *data.Batch, ins map[string]bool, c *closer) (map[string]*onnxrt.Value, error) {
	src := []int64{int64(b.Rows), int64(b.SourceLen)}
	tgt := []int64{int64(b.Rows), int64(b.TargetLen)}
	all := []struct {
		name  string
		shape []int64
		data  []int64
	}{
		{"input_ids", src, b.InputIDs}, {"attention_mask", src, b.AttentionMask},
		{"decoder_input_ids", tgt, b.DecoderInputIDs}, {"decoder_attention_mask", tgt, nil},
		{optim.Labels, tgt, b.Labels},
	}
	out := map[string]*onnxrt.Value{}
	for _, a := range all {
		if !ins[a.name] {
			continue
		}
		if a.name == "decoder_attention_mask" {
			a.data = b.DecoderMask()
		}
		if int64(len(a.data)) != a.shape[0]*a.shape[1] {
			return nil, fmt.Errorf("batch %s has %d values, want %d x %d", a.name, len(a.data), a.shape[0], a.shape[1])
		}
		v, err := c.add(onnxrt.NewTensor(a.shape, a.data))
		if err != nil {
			return nil, err
		}
		out[a.name] = v
	}
	return out, nil
}

// batchOf unwraps the trainer's batch: the engine runs data.Batch only.
func batchOf(b ortrain.Batch) (*data.Batch, error) {
	bb, ok := b.(*data.Batch)
	if !ok {
		return nil, fmt.Errorf("engine: batch of type %T, want *data.Batch", b)
	}
	return bb, nil
}

// TrainMicroBatch runs forward and backward on one micro-batch and adds
// lossScale * d(loss)/d(params) to the gradient sums (the first micro-batch
// after an optimizer step overwrites them). It returns the batch's mean
// loss (unscaled). dropoutSeed feeds the dropout masks when the graph has
// dropout (its top 63 bits: the graph's seed is an int64).
func (e *Engine) TrainMicroBatch(ctx context.Context, batch ortrain.Batch, lossScale float64, dropoutSeed uint64) (float64, error) {
	b, err := batchOf(batch)
	if err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	loss, _, err := e.trainMicroBatch(b, float32(lossScale), int64(dropoutSeed>>1))
	return float64(loss), err
}

// trainMicroBatch also returns the batch's label tokens as the graph counted them.
func (e *Engine) trainMicroBatch(b *data.Batch, lossScale float32, seed int64) (float32, int64, error) {
	var c closer
	defer c.close()
	in, err := e.batchValues(b, e.trainIns, &c)
	if err != nil {
		return 0, 0, err
	}
	if in[artifacts.LossScale], err = c.add(scalarF32(lossScale)); err != nil {
		return 0, 0, err
	}
	keep := float32(0)
	if e.haveGrads {
		keep = 1
	}
	if in[artifacts.Accumulate], err = c.add(scalarF32(keep)); err != nil {
		return 0, 0, err
	}
	if e.trainIns[artifacts.DropoutSeed] {
		if in[artifacts.DropoutSeed], err = c.add(onnxrt.NewTensor(nil, []int64{seed})); err != nil {
			return 0, 0, err
		}
	}
	bind, err := e.train.NewBinding()
	if err != nil {
		return 0, 0, err
	}
	defer bind.Close()
	for n, v := range in {
		if err := bind.BindInput(n, v); err != nil {
			return 0, 0, err
		}
	}
	for _, p := range e.params {
		if err := bind.BindInput(p.Name, e.cur[p.Name]); err != nil {
			return 0, 0, err
		}
		if e.trainIns[artifacts.NoGradName(p.Name)] {
			if err := bind.BindInput(artifacts.NoGradName(p.Name), e.cur[p.Name]); err != nil {
				return 0, 0, err
			}
		}
		if err := bind.BindInput(artifacts.GradAccumName(p.Name), e.grad[p.Name]); err != nil {
			return 0, 0, err
		}
		if err := bind.BindOutput(optim.UpdatedName(artifacts.GradAccumName(p.Name)), e.gradNext[p.Name]); err != nil {
			return 0, 0, err
		}
	}
	for _, n := range []string{optim.Loss, optim.TokenCount} {
		if err := bind.BindOutputToHost(n); err != nil {
			return 0, 0, err
		}
	}
	if err := bind.Run(); err != nil {
		return 0, 0, err
	}
	outs, err := bind.Outputs()
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		for _, v := range outs {
			v.Close()
		}
	}()
	e.grad, e.gradNext = e.gradNext, e.grad
	e.haveGrads = true
	loss, err := outs[optim.Loss].Scalar()
	if err != nil {
		return 0, 0, err
	}
	tok, err := outs[optim.TokenCount].Int64s()
	if err != nil {
		return 0, 0, err
	}
	return float32(loss), tok[0], nil
}

// OptimizerStep clips the gradient sums and updates the parameters with
// learning rate lr, as HF's sync step; it returns the pre-clip gradient
// norm. The next micro-batch starts new gradient sums.
func (e *Engine) OptimizerStep(ctx context.Context, lr float64) (float64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	gn, err := e.optimizerStep(lr)
	e.version++
	return float64(gn), err
}

func (e *Engine) optimizerStep(lr float64) (float32, error) {
	if !e.haveGrads {
		return 0, errors.New("optimizer step without gradients: run a micro-batch first")
	}
	h := e.opts.Hyper
	var c closer
	defer c.close()
	step := e.step + 1
	scalars := map[string]float64{optim.LearningRate: lr, optim.WeightDecay: h.WeightDecay}
	if e.opts.Optimizer == "sgd" {
		scalars[optim.Momentum] = h.Momentum
	} else {
		scalars[optim.Beta1], scalars[optim.Beta2], scalars[optim.Epsilon] = h.Beta1, h.Beta2, h.Eps
	}
	bind, err := e.opt.NewBinding()
	if err != nil {
		return 0, err
	}
	defer bind.Close()
	for n, x := range scalars {
		v, err := c.add(onnxrt.NewTensor(nil, []float64{x}))
		if err != nil {
			return 0, err
		}
		if err := bind.BindInput(n, v); err != nil {
			return 0, err
		}
	}
	mgn, err := c.add(scalarF32(float32(h.MaxGradNorm)))
	if err != nil {
		return 0, err
	}
	if err := bind.BindInput(optim.MaxGradNorm, mgn); err != nil {
		return 0, err
	}
	if e.opts.Optimizer != "sgd" {
		sv, err := c.add(onnxrt.NewTensor(nil, []int64{step}))
		if err != nil {
			return 0, err
		}
		if err := bind.BindInput(optim.Step, sv); err != nil {
			return 0, err
		}
	}
	for _, p := range e.params {
		pairs := [][3]any{{p.Name, e.cur[p.Name], e.next[p.Name]}}
		for _, sn := range e.state {
			n := sn(p.Name)
			pairs = append(pairs, [3]any{n, e.st[n], e.stNext[n]})
		}
		for _, pr := range pairs {
			if err := bind.BindInput(pr[0].(string), pr[1].(*onnxrt.Value)); err != nil {
				return 0, err
			}
			if err := bind.BindOutput(optim.UpdatedName(pr[0].(string)), pr[2].(*onnxrt.Value)); err != nil {
				return 0, err
			}
		}
		if err := bind.BindInput(optim.GradName(p.Name), e.grad[p.Name]); err != nil {
			return 0, err
		}
	}
	if err := bind.BindOutputToHost(optim.GradNorm); err != nil {
		return 0, err
	}
	if err := bind.Run(); err != nil {
		return 0, err
	}
	outs, err := bind.Outputs()
	if err != nil {
		return 0, err
	}
	defer func() {
		for _, v := range outs {
			v.Close()
		}
	}()
	e.cur, e.next = e.next, e.cur
	e.st, e.stNext = e.stNext, e.st
	e.step = step
	e.haveGrads = false
	norm, err := outs[optim.GradNorm].Scalar()
	return float32(norm), err
}

// EvalLoss is the teacher-forced mean loss of b.
func (e *Engine) EvalLoss(ctx context.Context, b ortrain.Batch) (float64, error) {
	bb, err := batchOf(b)
	if err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	r, err := e.Eval(bb, false)
	return float64(r.Loss), err
}

// Eval runs the eval graph on a batch with the current parameters.
func (e *Engine) Eval(b *data.Batch, withLogits bool) (EvalResult, error) {
	if e.eval == nil {
		s, err := e.env.NewSession(filepath.Join(e.dir, e.man.Files.Eval), e.opts.Session)
		if err != nil {
			return EvalResult{}, err
		}
		e.eval, e.evalIns = s, inputSet(s)
	}
	var c closer
	defer c.close()
	in, err := e.batchValues(b, e.evalIns, &c)
	if err != nil {
		return EvalResult{}, err
	}
	for _, p := range e.params {
		in[p.Name] = e.cur[p.Name]
	}
	names := []string{optim.Loss, optim.LossSum, optim.TokenCount}
	if withLogits {
		names = append(names, artifacts.Logits)
	}
	outs, err := e.eval.Run(in, names)
	if err != nil {
		return EvalResult{}, err
	}
	defer func() {
		for _, v := range outs {
			v.Close()
		}
	}()
	var r EvalResult
	l, err := outs[optim.Loss].Scalar()
	if err != nil {
		return r, err
	}
	s, err := outs[optim.LossSum].Scalar()
	if err != nil {
		return r, err
	}
	tok, err := outs[optim.TokenCount].Int64s()
	if err != nil {
		return r, err
	}
	r.Loss, r.LossSum, r.Tokens = float32(l), float32(s), tok[0]
	if withLogits {
		if r.Logits, err = outs[artifacts.Logits].Float32s(); err != nil {
			return r, err
		}
		r.LogitsShape = outs[artifacts.Logits].Shape()
	}
	return r, nil
}

// ResetOptimizerState zeroes the moments and the step, as a fresh torch optimizer.
func (e *Engine) ResetOptimizerState() error {
	for _, p := range e.params {
		for _, sn := range e.state {
			if err := e.zero(e.st[sn(p.Name)]); err != nil {
				return err
			}
		}
	}
	e.step = 0
	e.zeros = nil
	return nil
}

// zero fills a value with zeros, reusing one host buffer of zeros.
func (e *Engine) zero(v *onnxrt.Value) error {
	n := v.Len()
	if len(e.zeros) < n {
		e.zeros = make([]float32, n)
	}
	return e.upload(v, e.zeros[:n])
}

// SaveParameters writes every parameter (frozen ones too) under the
// model's own names and PyTorch layout, loadable by transformers.
func (e *Engine) SaveParameters(path string) error {
	tensors := map[string]safetensors.Tensor{}
	var initial *safetensors.File // frozen parameters never change: copy them from the folder's file
	for _, p := range e.man.Parameters {
		if !p.Trainable {
			if initial == nil {
				f, err := safetensors.ReadFile(filepath.Join(e.dir, e.man.Files.Parameters))
				if err != nil {
					return err
				}
				initial = f
			}
			ts, ok := initial.Tensors[p.Name]
			if !ok {
				return fmt.Errorf("frozen parameter %q is missing from %s", p.Name, e.man.Files.Parameters)
			}
			tensors[p.Name] = ts
			continue
		}
		v, err := e.Param(p.Name)
		if err != nil {
			return err
		}
		tensors[p.Name] = safetensors.FromFloat32(p.TorchShape(), v)
	}
	return safetensors.WriteFile(path, tensors, map[string]string{"format": "pt"})
}

// LoadParameters reads trainable parameters from a safetensors file written
// by SaveParameters (or by transformers for the same model).
func (e *Engine) LoadParameters(path string) error {
	e.version++
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return err
	}
	for _, p := range e.params {
		if err := e.loadParam(p, f); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return nil
}

// SaveOptimizerState writes the optimizer state as safetensors: one tensor
// per state value named "<state>.<param>" (torch's state keys, PyTorch
// layout) and the step in the metadata.
func (e *Engine) SaveOptimizerState(path string) error {
	tensors := map[string]safetensors.Tensor{}
	for _, p := range e.params {
		for _, sn := range e.state {
			n := sn(p.Name)
			v, err := e.download(e.st[n])
			if err != nil {
				return err
			}
			tensors[n] = safetensors.FromFloat32(p.TorchShape(), p.ToTorch(v))
		}
	}
	opt := e.opts.Optimizer
	if opt == "" {
		opt = "adamw"
	}
	return safetensors.WriteFile(path, tensors, map[string]string{"step": strconv.FormatInt(e.step, 10), "optimizer": opt, "format": "ortrain-optimizer"})
}

// LoadOptimizerState reads what SaveOptimizerState wrote.
func (e *Engine) LoadOptimizerState(path string) error {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return err
	}
	opt := e.opts.Optimizer
	if opt == "" {
		opt = "adamw"
	}
	// Both AdamW variants keep the same moments with the same meaning.
	family := func(o string) string {
		if o == "adamw_hf" {
			return "adamw"
		}
		return o
	}
	if got := f.Metadata["optimizer"]; family(got) != family(opt) {
		return fmt.Errorf("%s: optimizer state of %q, this trainer uses %q", path, got, opt)
	}
	step, err := strconv.ParseInt(f.Metadata["step"], 10, 64)
	if err != nil || step < 0 {
		return fmt.Errorf("%s: bad step %q in the metadata", path, f.Metadata["step"])
	}
	for _, p := range e.params {
		for _, sn := range e.state {
			n := sn(p.Name)
			ts, ok := f.Tensors[n]
			if !ok || fmt.Sprint(ts.Shape) != fmt.Sprint(p.TorchShape()) {
				return fmt.Errorf("%s: tensor %q missing or of the wrong shape (want %v)", path, n, p.TorchShape())
			}
			v, err := ts.Float32s()
			if err != nil {
				return err
			}
			if err := e.upload(e.st[n], p.ToGraph(v)); err != nil {
				return err
			}
		}
	}
	e.step = step
	return nil
}

// Close releases sessions and values.
func (e *Engine) Close() error {
	closed := map[*onnxrt.Value]bool{}
	for _, m := range []map[string]*onnxrt.Value{e.cur, e.next, e.grad, e.gradNext, e.st, e.stNext} {
		for _, v := range m {
			if !closed[v] {
				closed[v] = true
				v.Close()
			}
		}
	}
	for _, s := range []*onnxrt.Session{e.train, e.opt, e.eval, e.copier} {
		if s != nil {
			s.Close()
		}
	}
	return nil
}

// SaveModel writes model.safetensors (the model's own parameter names) into
// dir, with the source model's configs when Options.ModelDir is set.
func (e *Engine) SaveModel(dir string) error {
	if err := e.SaveParameters(filepath.Join(dir, ModelFile)); err != nil {
		return err
	}
	if e.opts.ModelDir == "" {
		return nil
	}
	for _, f := range []string{"config.json", "generation_config.json"} {
		b, err := os.ReadFile(filepath.Join(e.opts.ModelDir, f))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// SaveOptimizer writes the optimizer state into dir.
func (e *Engine) SaveOptimizer(dir string) error {
	return e.SaveOptimizerState(filepath.Join(dir, OptimizerFile))
}

// LoadModel reads the parameters SaveModel wrote into dir.
func (e *Engine) LoadModel(dir string) error {
	return e.LoadParameters(filepath.Join(dir, ModelFile))
}

// LoadOptimizer reads the optimizer state SaveOptimizer wrote into dir.
func (e *Engine) LoadOptimizer(dir string) error {
	return e.LoadOptimizerState(filepath.Join(dir, OptimizerFile))
}
