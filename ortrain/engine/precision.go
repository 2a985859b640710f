package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/generate/ortdecoder"
	"github.com/ortrain/ortrain/internal/amp"
	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/optim"
	"github.com/ortrain/ortrain/ortrain"
)

// ScalerFile holds the GradScaler state in checkpoints (HF: scaler.pt,
// the same keys as GradScaler.state_dict()).
const ScalerFile = "scaler.json"

var (
	_ ortrain.OverflowSkipper = (*Engine)(nil)
	_ ortrain.TrainingMode    = (*Engine)(nil)
)

// graphFiles are the training and eval graphs the engine runs, and the
// variants generation uses (Generator).
type graphFiles struct {
	training, eval, halfEval string
	variant, halfEvalVariant string
}

func (f graphFiles) lowPrecision() bool { return f.variant != "" || f.halfEvalVariant != "" }

// lowPrecisionSession keeps ONNX Runtime from fusing MatMul and Add into
// Gemm on the CPU: its float16 Gemm accumulates in float16 (a relative
// error growing with the inner dimension, 6e-3 at 4096), while its float16
// MatMul computes in float32 and rounds once, as torch does.
func lowPrecisionSession(o onnxrt.SessionOptions) onnxrt.SessionOptions {
	if d, err := onnxrt.ParseDevice(o.Device); err == nil && d.Kind == "cpu" {
		o.DisabledOptimizers = append(append([]string(nil), o.DisabledOptimizers...), "MatMulAddFusion")
	}
	return o
}

// lowPrecisionDecoding is lowPrecisionSession for generation sessions.
func lowPrecisionDecoding(o ortdecoder.Options) ortdecoder.Options {
	so := lowPrecisionSession(onnxrt.SessionOptions{Device: o.Device, DisabledOptimizers: o.DisabledOptimizers})
	o.DisabledOptimizers = so.DisabledOptimizers
	return o
}

func resolveFiles(man *artifacts.Manifest, opts Options) (graphFiles, error) {
	f := graphFiles{training: man.Files.Training, eval: man.Files.Eval, variant: opts.Variant, halfEvalVariant: opts.HalfEvalVariant}
	if opts.Variant != "" {
		v, err := man.Variant(opts.Variant)
		if err != nil {
			return f, err
		}
		if v.Files.Training == "" {
			return f, fmt.Errorf("the %s graphs of the artifact folder are for evaluation only (a half-precision model); training needs mixed-precision graphs", v.Name)
		}
		f.training, f.eval = v.Files.Training, v.Files.Eval
	}
	if opts.HalfEvalVariant != "" {
		v, err := man.Variant(opts.HalfEvalVariant)
		if err != nil {
			return f, err
		}
		f.halfEval = v.Files.Eval
	}
	return f, nil
}

// openScaler starts dynamic loss scaling and builds the unscale graph over
// the trainable parameters' gradients.
func (e *Engine) openScaler(cfg amp.ScalerConfig) error {
	s, err := amp.NewGradScaler(cfg)
	if err != nil {
		return err
	}
	var grads []amp.Tensor
	for _, p := range e.params {
		grads = append(grads, amp.Tensor{Name: p.Name, Shape: p.Shape})
	}
	m, err := amp.BuildUnscale(grads, optim.GradName, optim.UpdatedName)
	if err != nil {
		return err
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	if e.unscale, err = e.env.NewSessionFromBytes(b, "ortrain-unscale", e.opts.Session); err != nil {
		return err
	}
	e.scaler = s
	return nil
}

// unscaleGradients is GradScaler.unscale_: the gradient sums are divided
// by the scale in place; it reports whether one of them holds an inf or
// NaN, and their total norm (inf or NaN then).
func (e *Engine) unscaleGradients() (bool, float32, error) {
	if !e.haveGrads {
		return false, 0, errors.New("optimizer step without gradients: run a micro-batch first")
	}
	var c closer
	defer c.close()
	bind, err := e.unscale.NewBinding()
	if err != nil {
		return false, 0, err
	}
	defer bind.Close()
	inv, err := c.add(scalarF32(e.scaler.InvScale()))
	if err != nil {
		return false, 0, err
	}
	if err := bind.BindInput(amp.InvScale, inv); err != nil {
		return false, 0, err
	}
	for _, p := range e.params {
		in := optim.GradName(p.Name)
		if err := bind.BindInput(in, e.grad[p.Name]); err != nil {
			return false, 0, err
		}
		if err := bind.BindOutput(optim.UpdatedName(in), e.gradNext[p.Name]); err != nil {
			return false, 0, err
		}
	}
	for _, n := range []string{amp.FoundInf, amp.GradNorm} {
		if err := bind.BindOutputToHost(n); err != nil {
			return false, 0, err
		}
	}
	if err := bind.Run(); err != nil {
		return false, 0, err
	}
	outs, err := bind.Outputs()
	if err != nil {
		return false, 0, err
	}
	defer func() {
		for _, v := range outs {
			v.Close()
		}
	}()
	e.grad, e.gradNext = e.gradNext, e.grad
	found, err := outs[amp.FoundInf].Bools()
	if err != nil {
		return false, 0, err
	}
	norm, err := outs[amp.GradNorm].Scalar()
	return found[0], float32(norm), err
}

// StepSkipped reports whether the last OptimizerStep skipped its update
// because the gradients held an inf or NaN (float16 loss scaling).
func (e *Engine) StepSkipped() bool { return e.skipped }

// SkipsOverflow reports whether the engine scales the loss and skips the
// updates whose gradients overflow.
func (e *Engine) SkipsOverflow() bool { return e.scaler != nil }

// LossScale is the GradScaler's current scale (0 without loss scaling).
func (e *Engine) LossScale() float32 {
	if e.scaler == nil {
		return 0
	}
	return e.scaler.Scale()
}

// SetTraining tells the engine whether Trainer.Train is running: HF casts
// the model to half precision for fp16_full_eval / bf16_full_eval only in
// evaluate() and predict() outside training.
func (e *Engine) SetTraining(on bool) { e.training = on }

// halfEvalActive reports whether evaluation and generation now run the
// half-precision model.
func (e *Engine) halfEvalActive() bool { return e.files.halfEval != "" && !e.training }

// generationVariant is the variant whose generation graphs run now.
func (e *Engine) generationVariant() string {
	if e.halfEvalActive() {
		return e.files.halfEvalVariant
	}
	return e.files.variant
}

func (e *Engine) evalSession() (*onnxrt.Session, error) {
	file, slot := e.files.eval, &e.eval
	if e.halfEvalActive() {
		file, slot = e.files.halfEval, &e.halfEval
	}
	if *slot == nil {
		s, err := e.env.NewSession(filepath.Join(e.dir, file), e.opts.Session)
		if err != nil {
			return nil, err
		}
		*slot = s
	}
	return *slot, nil
}

// saveScaler writes the scaler state into dir (checkpoints), when scaling.
func (e *Engine) saveScaler(dir string) error {
	if e.scaler == nil {
		return nil
	}
	b, err := json.MarshalIndent(e.scaler, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, ScalerFile), append(b, '\n'), 0o644)
}

// loadScaler restores the scaler state from dir when the file is there
// (HF's _load_scaler: a checkpoint without one keeps the current scaler).
func (e *Engine) loadScaler(dir string) error {
	if e.scaler == nil {
		return nil
	}
	path := filepath.Join(dir, ScalerFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, e.scaler); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// precisions are the lower-precision graphs TrainingArguments ask for.
type precisions struct {
	mixed, half *artifacts.Precision
	scaler      *amp.ScalerConfig
}

// precisionsFor maps fp16/bf16 (mixed precision, with torch.autocast's op
// lists for the device) and fp16_full_eval/bf16_full_eval (a
// half-precision model, under autocast too when fp16/bf16 is set, as
// accelerate's wrapped forward keeps autocasting) to artifact variants.
func precisionsFor(a TrainingArgs) (precisions, error) {
	var p precisions
	dev, err := onnxrt.ParseDevice(a.Device)
	if err != nil {
		return p, err
	}
	dtypeOf := func(s string) onnx.DType {
		if s == "bfloat16" {
			return onnx.BFloat16
		}
		return onnx.Float16
	}
	if m := a.Precision(); m != "" {
		p.mixed = &artifacts.Precision{Options: amp.Options{DType: dtypeOf(m), Device: dev.Kind}}
		if m == "float16" {
			cfg := amp.DefaultScalerConfig()
			p.scaler = &cfg
		}
	}
	if h := a.FullEvalPrecision(); h != "" {
		p.half = &artifacts.Precision{Options: amp.Options{DType: dtypeOf(h), HalfModel: true}}
		if p.mixed != nil {
			p.half.Device = dev.Kind
		}
	}
	return p, nil
}

func (p precisions) list() []artifacts.Precision {
	var out []artifacts.Precision
	for _, x := range []*artifacts.Precision{p.mixed, p.half} {
		if x != nil {
			out = append(out, *x)
		}
	}
	return out
}

func (p precisions) mixedName() string {
	if p.mixed == nil {
		return ""
	}
	return p.mixed.Name()
}

func (p precisions) halfName() string {
	if p.half == nil {
		return ""
	}
	return p.half.Name()
}

// in checks that the artifact folder has the graphs p needs.
func (p precisions) in(man *artifacts.Manifest) error {
	for _, x := range p.list() {
		if _, err := man.Variant(x.Name()); err != nil {
			return err
		}
	}
	return nil
}

// Precisions lists the lower-precision artifact variants that the
// mixed-precision arguments of a (fp16, bf16, fp16_full_eval,
// bf16_full_eval, device) ask for.
func Precisions(a TrainingArgs) ([]artifacts.Precision, error) {
	p, err := precisionsFor(a)
	return p.list(), err
}

// MemoryReport describes what training keeps in memory with the graphs
// the session runs, at source and target length seqLen.
func (s *Session) MemoryReport(seqLen int) ([]string, error) {
	r, err := s.Manifest.Memory(s.engine.dir, s.engine.files.variant, seqLen)
	if err != nil {
		return nil, err
	}
	return r.Lines(), nil
}
