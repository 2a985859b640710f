package engine

import (
	"context"
	"testing"

	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/data"
	"github.com/ortrain/ortrain/internal/onnxrt"
)

// TestTrainingStepTransfers: on a device (the stand-in device here, which
// counts what a GPU run would copy), opening the engine uploads the
// parameters once; after that a micro-batch moves only the batch and three
// scalars to the device and the loss and token count back, an optimizer
// step only its hyperparameters in and the gradient norm out, whatever the
// model's size: parameters, gradients and optimizer state stay on the
// device.
func TestTrainingStepTransfers(t *testing.T) {
	env := openEnv(t)
	dir, man := buildFixture(t, "t5-tiny", artifacts.Config{})
	paramBytes := int64(0)
	for _, p := range man.Trainable() {
		n := int64(4)
		for _, d := range p.Shape {
			n *= d
		}
		paramBytes += n
	}
	before := env.Transfers()
	e := openTrainer(t, env, dir, Options{Optimizer: "adamw", Hyper: Hyper{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, MaxGradNorm: 1}, Session: onnxrt.SessionOptions{Device: "standin"}})
	open := env.Transfers().Sub(before)
	// parameters, gradient sums and AdamW's two moments start from the host
	if open.HostToDevice != 4*paramBytes {
		t.Errorf("open uploaded %d bytes, want 4 × the parameters' %d", open.HostToDevice, paramBytes)
	}
	t.Logf("open: %+v (parameters %d bytes)", open, paramBytes)

	b := &data.Batch{Rows: 2, SourceLen: 5, TargetLen: 4}
	for i := int64(0); i < 10; i++ {
		b.InputIDs = append(b.InputIDs, 3+i)
		b.AttentionMask = append(b.AttentionMask, 1)
	}
	for i := int64(0); i < 8; i++ {
		b.DecoderInputIDs = append(b.DecoderInputIDs, 4+i)
		b.Labels = append(b.Labels, 5+i)
	}
	// input_ids, attention_mask, decoder_input_ids, decoder_attention_mask, labels
	batchBytes := int64(8 * (len(b.InputIDs) + len(b.AttentionMask) + 2*len(b.DecoderInputIDs) + len(b.Labels)))
	ctx := context.Background()
	for step := 0; step < 2; step++ {
		before = env.Transfers()
		if _, err := e.TrainMicroBatch(ctx, b, 1, 7); err != nil {
			t.Fatal(err)
		}
		got := env.Transfers().Sub(before)
		// the batch's five int64 tensors; loss scale and accumulate flag (float32)
		want := onnxrt.Transfers{HostToDevice: batchBytes + 4 + 4, TensorsToDevice: 7, DeviceToHost: 4 + 8, TensorsToHost: 2, Runs: 1}
		if e.trainIns[artifacts.DropoutSeed] {
			want.HostToDevice += 8
			want.TensorsToDevice++
		}
		if got != want {
			t.Errorf("micro-batch %d: %+v, want %+v (batch %d bytes)", step, got, want, batchBytes)
		}
		before = env.Transfers()
		if _, err := e.OptimizerStep(ctx, 1e-3); err != nil {
			t.Fatal(err)
		}
		got = env.Transfers().Sub(before)
		// lr, weight decay, beta1, beta2, eps (float64), max_grad_norm (float32), step (int64); the norm back
		want = onnxrt.Transfers{HostToDevice: 5*8 + 4 + 8, TensorsToDevice: 7, DeviceToHost: 4, TensorsToHost: 1, Runs: 1}
		if got != want {
			t.Errorf("optimizer step %d: %+v, want %+v", step, got, want)
		}
	}
}
