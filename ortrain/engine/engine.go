package engine

import (
	"fmt"
	"path/filepath"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/amp"
	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/collective"
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
	Optimizer string // "adamw" (default, torch.optim.AdamW), "adamw_hf" (transformers' legacy AdamW), "sgd" or "adafactor"
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
	// Variant names the artifact folder's lower-precision graphs
	// (artifacts.Manifest.Variants) that training, evaluation and
	// generation run: mixed precision; "" runs the float32 graphs.
	Variant string
	// HalfEvalVariant names the half-precision-model graphs that
	// evaluation and generation run outside training (HF's
	// fp16_full_eval / bf16_full_eval); "" keeps Variant's.
	HalfEvalVariant string
	// Scaler scales the loss dynamically as torch.amp.GradScaler does
	// (float16 mixed precision); nil: no loss scaling.
	Scaler *amp.ScalerConfig
	// Comm, when it has several processes, makes this engine one replica
	// of data-parallel training: each optimizer step first averages the
	// accumulated gradients over the processes, as DDP does, before
	// unscaling, clipping and the update.
	Comm collective.Comm
	// DeviceComm, with Comm of several processes and gradients in device
	// memory, averages them there in place (NCCL) instead of through host
	// memory over Comm.
	DeviceComm DeviceComm
}

// DeviceComm averages float32 values in device memory in place over the
// processes of a data-parallel job (internal/collective/nccl).
type DeviceComm interface {
	AverageFloat32(values []*onnxrt.Value) error
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
	copier    *onnxrt.Session       // Identity graph: moves host <-> device
	params    []artifacts.Parameter // trainable, graph order
	frozen    []artifacts.Parameter
	trainIns  map[string]bool
	cur       map[string]*onnxrt.Value // parameters now
	shared    map[string]*onnxrt.Value // frozen parameters every graph takes as inputs (LoRA's base weights)
	next      map[string]*onnxrt.Value // spare parameter buffers
	grad      map[string]*onnxrt.Value // gradient sums now
	gradNext  map[string]*onnxrt.Value
	state     func(artifacts.Parameter) []stateSlot // optimizer state of a parameter (exp_avg, ...)
	st        map[string]*onnxrt.Value
	stNext    map[string]*onnxrt.Value
	step      int64
	haveGrads bool      // a micro-batch ran since the last optimizer step
	zeros     []float32 // host zeros for zero()
	version   int       // bumped whenever the parameters change (generators reopen)
	files     graphFiles
	halfEval  *onnxrt.Session // eval graph of HalfEvalVariant
	scaler    *amp.GradScaler
	unscale   *onnxrt.Session
	skipped   bool // the last optimizer step found inf/NaN gradients and did not update
	training  bool // inside Trainer.Train: evaluation uses Variant, not HalfEvalVariant
}

// Open loads the artifact folder dir onto the device of opts.Session.
func Open(dir string, env *onnxrt.Env, opts Options) (*Engine, error) {
	man, err := artifacts.ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	if err := checkModelFiles(opts.ModelDir); err != nil {
		return nil, err
	}
	if opts.Hyper == (Hyper{}) {
		opts.Hyper = DefaultHyper()
	}
	e := &Engine{dir: dir, man: man, env: env, opts: opts,
		cur: map[string]*onnxrt.Value{}, next: map[string]*onnxrt.Value{}, shared: map[string]*onnxrt.Value{},
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
		e.state = paramShaped(optim.ExpAvgName, optim.ExpAvgSqName)
	case "adamw_hf":
		if man.Files.AdamWLegacy == "" {
			return nil, fmt.Errorf("%s has no legacy AdamW graph (optimizer adamw_hf): rebuild the artifacts with this ortrain", dir)
		}
		optFile = man.Files.AdamWLegacy
		e.state = paramShaped(optim.ExpAvgName, optim.ExpAvgSqName)
	case "sgd":
		optFile = man.Files.SGD
		e.state = paramShaped(optim.MomentumBufferName)
	case "adafactor":
		if man.Files.Adafactor == "" {
			return nil, fmt.Errorf("%s has no Adafactor graph (optimizer adafactor): rebuild the artifacts with this ortrain", dir)
		}
		optFile = man.Files.Adafactor
		e.state = adafactorSlots
	default:
		return nil, fmt.Errorf("optimizer %q: want adamw, adamw_hf, sgd or adafactor", opts.Optimizer)
	}
	if e.files, err = resolveFiles(man, opts); err != nil {
		return nil, err
	}
	if e.files.lowPrecision() {
		opts.Session = lowPrecisionSession(opts.Session)
		e.opts.Session = opts.Session
	}
	if e.train, err = env.NewSession(filepath.Join(dir, e.files.training), opts.Session); err != nil {
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
	init, err := safetensors.OpenIndex(filepath.Join(dir, man.Files.Parameters))
	if err != nil {
		return nil, err
	}
	defer init.Close()
	for _, p := range e.params {
		for _, m := range []map[string]*onnxrt.Value{e.cur, e.grad} {
			if m[p.Name], err = e.alloc(p.Shape); err != nil {
				return nil, err
			}
		}
		for _, sl := range e.state(p) {
			if e.st[sl.name], err = e.alloc(sl.shape); err != nil {
				return nil, err
			}
		}
		if opts.DoubleBuffer {
			for _, m := range []map[string]*onnxrt.Value{e.next, e.gradNext} {
				if m[p.Name], err = e.alloc(p.Shape); err != nil {
					return nil, err
				}
			}
			for _, sl := range e.state(p) {
				if e.stNext[sl.name], err = e.alloc(sl.shape); err != nil {
					return nil, err
				}
			}
		} else {
			// In place: every update is an elementwise node whose inputs
			// are all read by nodes that run before it, so the output may
			// be the input's own buffer.
			e.next[p.Name], e.gradNext[p.Name] = e.cur[p.Name], e.grad[p.Name]
			for _, sl := range e.state(p) {
				e.stNext[sl.name] = e.st[sl.name]
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
	// Frozen parameters the graphs take as inputs: one value each, bound
	// to every session, with no gradient or optimizer state.
	for _, p := range e.frozen {
		if !p.SharedInput {
			continue
		}
		if e.cur[p.Name], err = e.alloc(p.Shape); err != nil {
			return nil, err
		}
		if err := e.loadParam(p, init); err != nil {
			return nil, err
		}
		e.shared[p.Name] = e.cur[p.Name]
		delete(e.cur, p.Name)
	}
	if err := e.ResetOptimizerState(); err != nil {
		return nil, err
	}
	if opts.Scaler != nil {
		if err := e.openScaler(*opts.Scaler); err != nil {
			return nil, err
		}
	}
	ok = true
	return e, nil
}

// ArenaStats reports the statistics of the allocator the training
// session's CPU tensors come from (onnxrt.Session.ArenaStats): for CPU
// sessions, the one arena every session of the process shares.
func (e *Engine) ArenaStats() (map[string]int64, error) { return e.train.ArenaStats() }

// DeviceArenaStats reports the statistics of the training session's device
// allocator (onnxrt.Session.DeviceArenaStats): on CUDA, its device arena.
func (e *Engine) DeviceArenaStats() (map[string]int64, error) { return e.train.DeviceArenaStats() }

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

// stateSlot is one optimizer state tensor of a parameter.
type stateSlot struct {
	name  string
	shape []int64 // in the graphs
	torch []int64 // in checkpoints
	// param: shaped like the parameter, so held in the graphs' layout
	// (converted with Parameter.ToTorch/ToGraph); otherwise the same in both.
	param bool
}

// paramShaped is the state of optimizers that keep tensors shaped like
// each parameter (AdamW's moments, SGD's momentum buffer).
func paramShaped(names ...func(string) string) func(artifacts.Parameter) []stateSlot {
	return func(p artifacts.Parameter) []stateSlot {
		out := make([]stateSlot, len(names))
		for i, n := range names {
			out[i] = stateSlot{name: n(p.Name), shape: p.Shape, torch: p.TorchShape(), param: true}
		}
		return out
	}
}

// adafactorSlots is Adafactor's state: factored moments in torch's layout
// for matrices, a parameter-shaped one otherwise.
func adafactorSlots(p artifacts.Parameter) []stateSlot {
	st := optim.AdafactorState(p.Name, p.TorchShape())
	if len(st) == 1 {
		return paramShaped(optim.ExpAvgSqName)(p)
	}
	out := make([]stateSlot, len(st))
	for i, s := range st {
		out[i] = stateSlot{name: s.Name, shape: s.Shape, torch: s.Shape}
	}
	return out
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

// Close releases sessions and values.
func (e *Engine) Close() error {
	closed := map[*onnxrt.Value]bool{}
	for _, m := range []map[string]*onnxrt.Value{e.cur, e.next, e.grad, e.gradNext, e.st, e.stNext, e.shared} {
		for _, v := range m {
			if !closed[v] {
				closed[v] = true
				v.Close()
			}
		}
	}
	for _, s := range []*onnxrt.Session{e.train, e.opt, e.eval, e.copier, e.halfEval, e.unscale} {
		if s != nil {
			s.Close()
		}
	}
	return nil
}
