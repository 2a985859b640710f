package artifacts

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/optim"
	"github.com/ortrain/ortrain/internal/safetensors"
)

// DropoutSeed is the training-graph input that seeds dropout masks, when the
// graph has dropout (a seed per step makes a step reproducible).
const DropoutSeed = "dropout_seed"

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
}

// Batch is one micro-batch, row-major [Rows, SourceLen] and [Rows, TargetLen].
// Inputs the graphs do not take (decoder_attention_mask for some exports)
// are ignored; inputs they take must be given.
type Batch struct {
	Rows, SourceLen, TargetLen int
	InputIDs                   []int64
	AttentionMask              []int64
	DecoderInputIDs            []int64
	DecoderAttentionMask       []int64
	Labels                     []int64
}

// EvalResult is the eval graph's output for one batch.
type EvalResult struct {
	Loss, LossSum float32
	Tokens        int64
	Logits        []float32 // only when asked for: [Rows, TargetLen, vocab]
	LogitsShape   []int64
}

// Trainer runs an artifact folder: parameters, gradient sums and optimizer
// state live as runtime values (device memory for a CUDA session) and pass
// from one run to the next through IoBinding without host copies. Updated
// tensors are written in place (the same buffer bound as input and output;
// see Options.DoubleBuffer).
type Trainer struct {
	dir       string
	man       *Manifest
	env       *onnxrt.Env
	opts      Options
	train     *onnxrt.Session
	opt       *onnxrt.Session
	eval      *onnxrt.Session
	copier    *onnxrt.Session // Identity graph: moves host <-> device
	params    []Parameter     // trainable, graph order
	frozen    []Parameter
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
}

// Open loads the artifact folder dir onto the device of opts.Session.
func Open(dir string, env *onnxrt.Env, opts Options) (*Trainer, error) {
	man, err := ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	if opts.Hyper == (Hyper{}) {
		opts.Hyper = DefaultHyper()
	}
	t := &Trainer{dir: dir, man: man, env: env, opts: opts,
		cur: map[string]*onnxrt.Value{}, next: map[string]*onnxrt.Value{},
		grad: map[string]*onnxrt.Value{}, gradNext: map[string]*onnxrt.Value{},
		st: map[string]*onnxrt.Value{}, stNext: map[string]*onnxrt.Value{}}
	ok := false
	defer func() {
		if !ok {
			t.Close()
		}
	}()
	optFile := man.Files.AdamW
	switch opts.Optimizer {
	case "", "adamw":
		t.state = []func(string) string{optim.ExpAvgName, optim.ExpAvgSqName}
	case "adamw_hf":
		if man.Files.AdamWLegacy == "" {
			return nil, fmt.Errorf("%s has no legacy AdamW graph (optimizer adamw_hf): rebuild the artifacts with this ortrain", dir)
		}
		optFile = man.Files.AdamWLegacy
		t.state = []func(string) string{optim.ExpAvgName, optim.ExpAvgSqName}
	case "sgd":
		optFile = man.Files.SGD
		t.state = []func(string) string{optim.MomentumBufferName}
	default:
		return nil, fmt.Errorf("optimizer %q: want adamw, adamw_hf or sgd", opts.Optimizer)
	}
	if t.train, err = env.NewSession(filepath.Join(dir, man.Files.Training), opts.Session); err != nil {
		return nil, err
	}
	if t.opt, err = env.NewSession(filepath.Join(dir, optFile), opts.Session); err != nil {
		return nil, err
	}
	if t.copier, err = env.NewSessionFromBytes(identityModel(), "ortrain-copy", opts.Session); err != nil {
		return nil, err
	}
	t.trainIns = inputSet(t.train)
	for _, p := range man.Parameters {
		if p.Trainable {
			t.params = append(t.params, p)
		} else {
			t.frozen = append(t.frozen, p)
		}
	}
	init, err := safetensors.ReadFile(filepath.Join(dir, man.Files.Parameters))
	if err != nil {
		return nil, err
	}
	for _, p := range t.params {
		for _, m := range []map[string]*onnxrt.Value{t.cur, t.grad} {
			if m[p.Name], err = t.alloc(p.Shape); err != nil {
				return nil, err
			}
		}
		for _, name := range t.state {
			if t.st[name(p.Name)], err = t.alloc(p.Shape); err != nil {
				return nil, err
			}
		}
		if opts.DoubleBuffer {
			for _, m := range []map[string]*onnxrt.Value{t.next, t.gradNext} {
				if m[p.Name], err = t.alloc(p.Shape); err != nil {
					return nil, err
				}
			}
			for _, name := range t.state {
				if t.stNext[name(p.Name)], err = t.alloc(p.Shape); err != nil {
					return nil, err
				}
			}
		} else {
			// In place: every update is an elementwise node whose inputs
			// are all read by nodes that run before it, so the output may
			// be the input's own buffer.
			t.next[p.Name], t.gradNext[p.Name] = t.cur[p.Name], t.grad[p.Name]
			for _, name := range t.state {
				t.stNext[name(p.Name)] = t.st[name(p.Name)]
			}
		}
		if err := t.loadParam(p, init); err != nil {
			return nil, err
		}
		// Fresh device memory may hold NaN bit patterns, and the training
		// graph multiplies the old sums by 0 to restart them.
		if err := t.zero(t.grad[p.Name]); err != nil {
			return nil, err
		}
	}
	if err := t.ResetOptimizerState(); err != nil {
		return nil, err
	}
	ok = true
	return t, nil
}

// Manifest describes the opened folder.
func (t *Trainer) Manifest() *Manifest { return t.man }

// Step is the number of optimizer steps taken (torch's state["step"]).
func (t *Trainer) Step() int64 { return t.step }

func inputSet(s *onnxrt.Session) map[string]bool {
	m := map[string]bool{}
	for _, in := range s.Inputs() {
		m[in.Name] = true
	}
	return m
}

func (t *Trainer) alloc(shape []int64) (*onnxrt.Value, error) {
	return t.train.Alloc(onnxrt.Float32, shape)
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
func (t *Trainer) upload(dst *onnxrt.Value, data []float32) error {
	if dst.Device().Kind == "cpu" {
		return dst.SetFloat32s(data)
	}
	src, err := onnxrt.NewTensor(dst.Shape(), data)
	if err != nil {
		return err
	}
	defer src.Close()
	return t.copier.RunInto(map[string]*onnxrt.Value{"x": src}, map[string]*onnxrt.Value{"y": dst})
}

// download reads a runtime value into host floats (graph layout).
func (t *Trainer) download(v *onnxrt.Value) ([]float32, error) {
	if v.Device().Kind == "cpu" {
		return v.Float32s()
	}
	out, err := t.copier.Run(map[string]*onnxrt.Value{"x": v}, []string{"y"})
	if err != nil {
		return nil, err
	}
	defer out["y"].Close()
	return out["y"].Float32s()
}

func (t *Trainer) param(name string) (Parameter, bool) {
	for _, p := range t.man.Parameters {
		if p.Name == name {
			return p, true
		}
	}
	return Parameter{}, false
}

// toGraph converts PyTorch-layout values to the graph layout of p.
func toGraph(p Parameter, v []float32) []float32 {
	if !p.Transposed {
		return v
	}
	return transposeF32(v, p.Shape[1], p.Shape[0])
}

func toTorch(p Parameter, v []float32) []float32 {
	if !p.Transposed {
		return v
	}
	return transposeF32(v, p.Shape[0], p.Shape[1])
}

func transposeF32(v []float32, rows, cols int64) []float32 {
	out := make([]float32, len(v))
	for r := int64(0); r < rows; r++ {
		for c := int64(0); c < cols; c++ {
			out[c*rows+r] = v[r*cols+c]
		}
	}
	return out
}

func (t *Trainer) loadParam(p Parameter, f *safetensors.File) error {
	ts, ok := f.Tensors[p.Name]
	if !ok {
		return fmt.Errorf("parameter %q is missing from the parameter file", p.Name)
	}
	if fmt.Sprint(ts.Shape) != fmt.Sprint(p.TorchShape()) {
		return fmt.Errorf("parameter %q has shape %v in the file, the model needs %v", p.Name, ts.Shape, p.TorchShape())
	}
	dst := t.cur[p.Name]
	if ts.DType == safetensors.Float32 && !p.Transposed && dst.Device().Kind == "cpu" {
		return dst.SetBytes(ts.Data) // straight from the file's bytes, no float copy
	}
	v, err := ts.Float32s()
	if err != nil {
		return fmt.Errorf("parameter %q: %w", p.Name, err)
	}
	return t.upload(dst, toGraph(p, v))
}

// Param returns a parameter's values in PyTorch layout (frozen ones too).
func (t *Trainer) Param(name string) ([]float32, error) {
	p, ok := t.param(name)
	if !ok {
		return nil, fmt.Errorf("no parameter %q", name)
	}
	if !p.Trainable {
		f, err := safetensors.ReadFile(filepath.Join(t.dir, t.man.Files.Parameters))
		if err != nil {
			return nil, err
		}
		return f.Tensors[name].Float32s()
	}
	v, err := t.download(t.cur[name])
	if err != nil {
		return nil, err
	}
	return toTorch(p, v), nil
}

// SetParam overwrites a trainable parameter (PyTorch layout).
func (t *Trainer) SetParam(name string, v []float32) error {
	p, ok := t.param(name)
	if !ok || !p.Trainable {
		return fmt.Errorf("no trainable parameter %q", name)
	}
	if int64(len(v)) != onnx.NumElements(p.Shape) {
		return fmt.Errorf("parameter %q has %d elements, got %d", name, onnx.NumElements(p.Shape), len(v))
	}
	return t.upload(t.cur[name], toGraph(p, v))
}

// Gradient returns a trainable parameter's accumulated gradient (PyTorch
// layout) since the last optimizer step.
func (t *Trainer) Gradient(name string) ([]float32, error) {
	p, ok := t.param(name)
	if !ok || !p.Trainable {
		return nil, fmt.Errorf("no trainable parameter %q", name)
	}
	if !t.haveGrads {
		return make([]float32, onnx.NumElements(p.Shape)), nil
	}
	v, err := t.download(t.grad[name])
	if err != nil {
		return nil, err
	}
	return toTorch(p, v), nil
}

// ParamValues returns the current trainable parameter values by name
// (graph layout), to bind as inputs of the generation graphs. They stay
// owned by the Trainer and change after OptimizerStep.
func (t *Trainer) ParamValues() map[string]*onnxrt.Value {
	out := make(map[string]*onnxrt.Value, len(t.cur))
	for k, v := range t.cur {
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

func (t *Trainer) batchValues(b Batch, ins map[string]bool, c *closer) (map[string]*onnxrt.Value, error) {
	src := []int64{int64(b.Rows), int64(b.SourceLen)}
	tgt := []int64{int64(b.Rows), int64(b.TargetLen)}
	all := []struct {
		name  string
		shape []int64
		data  []int64
	}{
		{"input_ids", src, b.InputIDs}, {"attention_mask", src, b.AttentionMask},
		{"decoder_input_ids", tgt, b.DecoderInputIDs}, {"decoder_attention_mask", tgt, b.DecoderAttentionMask},
		{optim.Labels, tgt, b.Labels},
	}
	out := map[string]*onnxrt.Value{}
	for _, a := range all {
		if !ins[a.name] {
			continue
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

// TrainMicroBatch runs forward and backward on one micro-batch and adds
// lossScale * d(loss)/d(params) to the gradient sums (the first micro-batch
// after an optimizer step overwrites them). It returns the batch's mean
// loss (unscaled) and its number of label tokens. seed feeds the dropout
// masks when the graph has dropout.
func (t *Trainer) TrainMicroBatch(b Batch, lossScale float32, seed int64) (float32, int64, error) {
	var c closer
	defer c.close()
	in, err := t.batchValues(b, t.trainIns, &c)
	if err != nil {
		return 0, 0, err
	}
	if in[LossScale], err = c.add(scalarF32(lossScale)); err != nil {
		return 0, 0, err
	}
	keep := float32(0)
	if t.haveGrads {
		keep = 1
	}
	if in[Accumulate], err = c.add(scalarF32(keep)); err != nil {
		return 0, 0, err
	}
	if t.trainIns[DropoutSeed] {
		if in[DropoutSeed], err = c.add(onnxrt.NewTensor(nil, []int64{seed})); err != nil {
			return 0, 0, err
		}
	}
	bind, err := t.train.NewBinding()
	if err != nil {
		return 0, 0, err
	}
	defer bind.Close()
	for n, v := range in {
		if err := bind.BindInput(n, v); err != nil {
			return 0, 0, err
		}
	}
	for _, p := range t.params {
		if err := bind.BindInput(p.Name, t.cur[p.Name]); err != nil {
			return 0, 0, err
		}
		if t.trainIns[NoGradName(p.Name)] {
			if err := bind.BindInput(NoGradName(p.Name), t.cur[p.Name]); err != nil {
				return 0, 0, err
			}
		}
		if err := bind.BindInput(GradAccumName(p.Name), t.grad[p.Name]); err != nil {
			return 0, 0, err
		}
		if err := bind.BindOutput(optim.UpdatedName(GradAccumName(p.Name)), t.gradNext[p.Name]); err != nil {
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
	t.grad, t.gradNext = t.gradNext, t.grad
	t.haveGrads = true
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
func (t *Trainer) OptimizerStep(lr float64) (float32, error) {
	if !t.haveGrads {
		return 0, errors.New("optimizer step without gradients: run a micro-batch first")
	}
	h := t.opts.Hyper
	var c closer
	defer c.close()
	step := t.step + 1
	scalars := map[string]float64{optim.LearningRate: lr, optim.WeightDecay: h.WeightDecay}
	if t.opts.Optimizer == "sgd" {
		scalars[optim.Momentum] = h.Momentum
	} else {
		scalars[optim.Beta1], scalars[optim.Beta2], scalars[optim.Epsilon] = h.Beta1, h.Beta2, h.Eps
	}
	bind, err := t.opt.NewBinding()
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
	if t.opts.Optimizer != "sgd" {
		sv, err := c.add(onnxrt.NewTensor(nil, []int64{step}))
		if err != nil {
			return 0, err
		}
		if err := bind.BindInput(optim.Step, sv); err != nil {
			return 0, err
		}
	}
	for _, p := range t.params {
		pairs := [][3]any{{p.Name, t.cur[p.Name], t.next[p.Name]}}
		for _, sn := range t.state {
			n := sn(p.Name)
			pairs = append(pairs, [3]any{n, t.st[n], t.stNext[n]})
		}
		for _, pr := range pairs {
			if err := bind.BindInput(pr[0].(string), pr[1].(*onnxrt.Value)); err != nil {
				return 0, err
			}
			if err := bind.BindOutput(optim.UpdatedName(pr[0].(string)), pr[2].(*onnxrt.Value)); err != nil {
				return 0, err
			}
		}
		if err := bind.BindInput(optim.GradName(p.Name), t.grad[p.Name]); err != nil {
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
	t.cur, t.next = t.next, t.cur
	t.st, t.stNext = t.stNext, t.st
	t.step = step
	t.haveGrads = false
	norm, err := outs[optim.GradNorm].Scalar()
	return float32(norm), err
}

// Eval runs the eval graph on a batch with the current parameters.
func (t *Trainer) Eval(b Batch, withLogits bool) (EvalResult, error) {
	if t.eval == nil {
		s, err := t.env.NewSession(filepath.Join(t.dir, t.man.Files.Eval), t.opts.Session)
		if err != nil {
			return EvalResult{}, err
		}
		t.eval, t.evalIns = s, inputSet(s)
	}
	var c closer
	defer c.close()
	in, err := t.batchValues(b, t.evalIns, &c)
	if err != nil {
		return EvalResult{}, err
	}
	for _, p := range t.params {
		in[p.Name] = t.cur[p.Name]
	}
	names := []string{optim.Loss, optim.LossSum, optim.TokenCount}
	if withLogits {
		names = append(names, Logits)
	}
	outs, err := t.eval.Run(in, names)
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
		if r.Logits, err = outs[Logits].Float32s(); err != nil {
			return r, err
		}
		r.LogitsShape = outs[Logits].Shape()
	}
	return r, nil
}

// ResetOptimizerState zeroes the moments and the step, as a fresh torch optimizer.
func (t *Trainer) ResetOptimizerState() error {
	for _, p := range t.params {
		for _, sn := range t.state {
			if err := t.zero(t.st[sn(p.Name)]); err != nil {
				return err
			}
		}
	}
	t.step = 0
	t.zeros = nil
	return nil
}

// zero fills a value with zeros, reusing one host buffer of zeros.
func (t *Trainer) zero(v *onnxrt.Value) error {
	n := v.Len()
	if len(t.zeros) < n {
		t.zeros = make([]float32, n)
	}
	return t.upload(v, t.zeros[:n])
}

// SaveParameters writes every parameter (frozen ones too) under the
// model's own names and PyTorch layout, loadable by transformers.
func (t *Trainer) SaveParameters(path string) error {
	tensors := map[string]safetensors.Tensor{}
	var initial *safetensors.File // frozen parameters never change: copy them from the folder's file
	for _, p := range t.man.Parameters {
		if !p.Trainable {
			if initial == nil {
				f, err := safetensors.ReadFile(filepath.Join(t.dir, t.man.Files.Parameters))
				if err != nil {
					return err
				}
				initial = f
			}
			ts, ok := initial.Tensors[p.Name]
			if !ok {
				return fmt.Errorf("frozen parameter %q is missing from %s", p.Name, t.man.Files.Parameters)
			}
			tensors[p.Name] = ts
			continue
		}
		v, err := t.Param(p.Name)
		if err != nil {
			return err
		}
		tensors[p.Name] = safetensors.FromFloat32(p.TorchShape(), v)
	}
	return safetensors.WriteFile(path, tensors, map[string]string{"format": "pt"})
}

// LoadParameters reads trainable parameters from a safetensors file written
// by SaveParameters (or by transformers for the same model).
func (t *Trainer) LoadParameters(path string) error {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return err
	}
	for _, p := range t.params {
		if err := t.loadParam(p, f); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return nil
}

// SaveOptimizerState writes the optimizer state as safetensors: one tensor
// per state value named "<state>.<param>" (torch's state keys, PyTorch
// layout) and the step in the metadata.
func (t *Trainer) SaveOptimizerState(path string) error {
	tensors := map[string]safetensors.Tensor{}
	for _, p := range t.params {
		for _, sn := range t.state {
			n := sn(p.Name)
			v, err := t.download(t.st[n])
			if err != nil {
				return err
			}
			tensors[n] = safetensors.FromFloat32(p.TorchShape(), toTorch(p, v))
		}
	}
	opt := t.opts.Optimizer
	if opt == "" {
		opt = "adamw"
	}
	return safetensors.WriteFile(path, tensors, map[string]string{"step": strconv.FormatInt(t.step, 10), "optimizer": opt, "format": "ortrain-optimizer"})
}

// LoadOptimizerState reads what SaveOptimizerState wrote.
func (t *Trainer) LoadOptimizerState(path string) error {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return err
	}
	opt := t.opts.Optimizer
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
	for _, p := range t.params {
		for _, sn := range t.state {
			n := sn(p.Name)
			ts, ok := f.Tensors[n]
			if !ok || fmt.Sprint(ts.Shape) != fmt.Sprint(p.TorchShape()) {
				return fmt.Errorf("%s: tensor %q missing or of the wrong shape (want %v)", path, n, p.TorchShape())
			}
			v, err := ts.Float32s()
			if err != nil {
				return err
			}
			if err := t.upload(t.st[n], toGraph(p, v)); err != nil {
				return err
			}
		}
	}
	t.step = step
	return nil
}

// Close releases sessions and values.
func (t *Trainer) Close() error {
	closed := map[*onnxrt.Value]bool{}
	for _, m := range []map[string]*onnxrt.Value{t.cur, t.next, t.grad, t.gradNext, t.st, t.stNext} {
		for _, v := range m {
			if !closed[v] {
				closed[v] = true
				v.Close()
			}
		}
	}
	for _, s := range []*onnxrt.Session{t.train, t.opt, t.eval, t.copier} {
		if s != nil {
			s.Close()
		}
	}
	return nil
}
