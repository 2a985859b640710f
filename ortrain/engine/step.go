package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/collective"
	"github.com/ortrain/ortrain/internal/data"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/optim"
	"github.com/ortrain/ortrain/ortrain"
)

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
	seed := float32(lossScale)
	if e.scaler != nil {
		// scaler.scale(loss).backward(): HF divides the loss first, so the
		// backward seed is the scale times the micro-batch's factor.
		seed *= e.scaler.Scale()
	}
	loss, _, err := e.trainMicroBatch(b, seed, int64(dropoutSeed>>1))
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
	for name, v := range e.shared {
		if err := bind.BindInput(name, v); err != nil {
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
	e.skipped = false
	if err := e.averageGradients(); err != nil {
		return 0, err
	}
	if e.scaler != nil {
		foundInf, norm, err := e.unscaleGradients()
		if err != nil {
			return 0, err
		}
		if foundInf {
			// GradScaler.step skips optimizer.step; the gradients are
			// dropped and the parameters, moments and step count stay as
			// they are. The sums are zeroed: the next micro-batch restarts
			// them by multiplying with 0, which keeps an inf or NaN.
			e.scaler.Update(true)
			e.skipped, e.haveGrads = true, false
			for _, p := range e.params {
				if err := e.zero(e.grad[p.Name]); err != nil {
					return 0, err
				}
			}
			return float64(norm), nil
		}
	}
	gn, err := e.optimizerStep(lr)
	if err == nil && e.scaler != nil {
		e.scaler.Update(false)
	}
	e.version++
	return float64(gn), err
}

// averageGradients replaces every gradient sum by its mean over the
// data-parallel processes (one all-reduce over all of them, in graph
// order), as DDP's all-reduce at the last micro-batch of a window does:
// in device memory with a DeviceComm, else through host memory.
func (e *Engine) averageGradients() error {
	c := e.opts.Comm
	if c == nil || c.Size() == 1 {
		return nil
	}
	if d := e.opts.DeviceComm; d != nil {
		grads := make([]*onnxrt.Value, len(e.params))
		for i, p := range e.params {
			grads[i] = e.grad[p.Name]
		}
		if err := d.AverageFloat32(grads); err != nil {
			return fmt.Errorf("averaging gradients over %d processes: %w", c.Size(), err)
		}
		return nil
	}
	var flat []float32
	for _, p := range e.params {
		g, err := e.download(e.grad[p.Name])
		if err != nil {
			return err
		}
		flat = append(flat, g...)
	}
	if err := collective.AverageFloat32(c, flat); err != nil {
		return fmt.Errorf("averaging gradients over %d processes: %w", c.Size(), err)
	}
	for _, p := range e.params {
		v := e.grad[p.Name]
		if err := e.upload(v, flat[:v.Len()]); err != nil {
			return err
		}
		flat = flat[v.Len():]
	}
	return nil
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
	switch e.opts.Optimizer {
	case "sgd":
		scalars[optim.Momentum] = h.Momentum
	case "adafactor":
		// lr and weight decay only: eps, clip threshold and decay rate are
		// Adafactor's defaults, as the Trainer leaves them.
	default:
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
		for _, sl := range e.state(p) {
			pairs = append(pairs, [3]any{sl.name, e.st[sl.name], e.stNext[sl.name]})
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
	sess, err := e.evalSession()
	if err != nil {
		return EvalResult{}, err
	}
	var c closer
	defer c.close()
	in, err := e.batchValues(b, inputSet(sess), &c)
	if err != nil {
		return EvalResult{}, err
	}
	for _, p := range e.params {
		in[p.Name] = e.cur[p.Name]
	}
	for name, v := range e.shared {
		in[name] = v
	}
	names := []string{optim.Loss, optim.LossSum, optim.TokenCount}
	if withLogits {
		names = append(names, artifacts.Logits)
	}
	outs, err := sess.Run(in, names)
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
