package ortrain

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/ortrain/ortrain/internal/collective"
	"github.com/ortrain/ortrain/internal/fault"
)

// Data-parallel training (Trainer.Comm with several processes) follows HF
// Trainer under DDP with accelerate's defaults:
//   - each process trains on its share of the batches (TrainData deals
//     them as accelerate does) and the Engine averages the accumulated
//     gradients over the processes before clipping;
//   - with loss kwargs (LossScalingHF, LossScalingTokens) num_items_in_batch
//     is the window's label tokens summed over the processes
//     (average_tokens_across_devices) and every loss is multiplied by the
//     number of processes, which DDP's averaging divides out again: the
//     step's gradient is the sum over the processes (the token-weighted
//     mean over all of them with label smoothing); with LossScalingMean it
//     is the mean over the processes;
//   - the logged loss is the mean over the processes of what each one's
//     training steps returned (the multiplied losses), total_flos their sum
//     (in float32, as distributed_broadcast_scalars);
//   - evaluation is sharded the same way; each batch loss is computed as in
//     training (num_items_in_batch summed over the processes; the plain
//     mean with predict_with_generate, Seq2SeqTrainer's prediction_step),
//     and the losses and generated predictions are gathered in batch
//     order, the filler examples of the last batches included
//     (Seq2SeqTrainer gathers with accelerator.gather), before the
//     metrics are computed (the same on every process);
//   - only process 0 writes (checkpoints, final model, metrics, report_to).

// world is the trainer's processes.
func (t *Trainer) world() collective.Comm {
	if t.Comm == nil {
		return collective.Single{}
	}
	return t.Comm
}

// isMain reports whether this process writes the output (rank 0).
func (t *Trainer) isMain() bool { return t.world().Rank() == 0 }

func (t *Trainer) distributed() bool { return t.world().Size() > 1 }

// passesNumItems reports whether HF passes num_items_in_batch to the loss
// (a model that accepts loss kwargs).
func (t *Trainer) passesNumItems() bool { return t.LossScaling != LossScalingMean }

// labelTokens is num_items_in_batch of batches: their label tokens, summed
// over the processes.
func (t *Trainer) labelTokens(batches []Batch) (int, error) {
	n := 0
	for _, b := range batches {
		n += b.NumLabelTokens()
	}
	if !t.distributed() {
		return n, nil
	}
	buf := []float64{float64(n)}
	if err := t.world().AllReduceFloat64(buf, collective.Sum); err != nil {
		return 0, fmt.Errorf("summing num_items_in_batch over the processes: %w", err)
	}
	return int(buf[0]), nil
}

// inputTokensOverProcesses is Trainer._track_num_input_tokens for one
// micro-batch: its input tokens ("all") or its non-padding input tokens,
// gathered and summed over the processes as HF does.
func (t *Trainer) inputTokensOverProcesses(b Batch) (int, error) {
	n := b.NumInputTokens()
	if np, ok := b.(NonPaddingCounter); ok && t.Args.IncludeNumInputTokensSeen == "non_padding" {
		n = np.NumNonPaddingInputTokens()
	}
	if !t.distributed() {
		return n, nil
	}
	buf := []float64{float64(n)}
	if err := t.world().AllReduceFloat64(buf, collective.Sum); err != nil {
		return 0, fmt.Errorf("summing num_input_tokens_seen over the processes: %w", err)
	}
	return int(buf[0]), nil
}

// processFactor is what HF multiplies each loss by with several processes
// (compute_loss: loss *= num_processes when num_items_in_batch is passed).
func (t *Trainer) processFactor() float64 {
	if t.distributed() && t.passesNumItems() {
		return float64(t.world().Size())
	}
	return 1
}

// meanOverProcesses is nested_gather(x).mean() in float32.
func (t *Trainer) meanOverProcesses(x float32) (float32, error) {
	if !t.distributed() {
		return x, nil
	}
	buf := []float32{x}
	if err := t.world().AllReduceFloat32(buf, collective.Sum); err != nil {
		return 0, fmt.Errorf("averaging the training loss over the processes: %w", err)
	}
	return buf[0] / float32(t.world().Size()), nil
}

// flosOverProcesses is distributed_broadcast_scalars([flos]).sum(): the
// processes' float32 flos summed in float32.
func (t *Trainer) flosOverProcesses(flos float64) (float64, error) {
	if !t.distributed() {
		return flos, nil
	}
	buf := []float32{float32(flos)}
	if err := t.world().AllReduceFloat32(buf, collective.Sum); err != nil {
		return 0, fmt.Errorf("summing flos over the processes: %w", err)
	}
	return float64(buf[0]), nil
}

// gatherBatchLosses gathers every process's per-batch losses (each process
// has the same number of batches) in accelerate.gather's order: batch by
// batch, process by process.
func (t *Trainer) gatherBatchLosses(local []float32) ([]float32, error) {
	if !t.distributed() {
		return local, nil
	}
	payload := make([]byte, 4*len(local))
	for i, x := range local {
		binary.LittleEndian.PutUint32(payload[4*i:], math.Float32bits(x))
	}
	all, err := t.world().AllGather(payload)
	if err != nil {
		return nil, fmt.Errorf("gathering evaluation losses: %w", err)
	}
	for r, p := range all {
		if len(p) != len(payload) {
			return nil, fmt.Errorf("process %d evaluated %d batches, process %d %d", r, len(p)/4, t.world().Rank(), len(local))
		}
	}
	out := make([]float32, 0, len(local)*len(all))
	for i := range local {
		for _, p := range all {
			out = append(out, math.Float32frombits(binary.LittleEndian.Uint32(p[4*i:])))
		}
	}
	return out, nil
}

// gatherBatchRows concatenates the rows of every process's batches in
// accelerate.gather's order (batch by batch, process by process): the
// dataset order, followed by the filler rows of the last batches, which
// Seq2SeqTrainer keeps ("we don't want to drop samples").
func (t *Trainer) gatherBatchRows(batches [][][]int) ([][]int, error) {
	if !t.distributed() {
		var rows [][]int
		for _, b := range batches {
			rows = append(rows, b...)
		}
		return rows, nil
	}
	payload, err := json.Marshal(batches)
	if err != nil {
		return nil, err
	}
	all, err := t.world().AllGather(payload)
	if err != nil {
		return nil, fmt.Errorf("gathering generated predictions: %w", err)
	}
	per := make([][][][]int, len(all))
	for r, p := range all {
		if err := json.Unmarshal(p, &per[r]); err != nil {
			return nil, fmt.Errorf("predictions of process %d: %w", r, err)
		}
		if len(per[r]) != len(batches) {
			return nil, fmt.Errorf("process %d generated %d batches, process %d %d", r, len(per[r]), t.world().Rank(), len(batches))
		}
	}
	var rows [][]int
	for i := range batches {
		for r := range per {
			rows = append(rows, per[r][i]...)
		}
	}
	return rows, nil
}

// checkSameArguments fails when the processes were given different
// training arguments.
func (t *Trainer) checkSameArguments() error {
	if !t.distributed() {
		return nil
	}
	b, err := json.Marshal(t.Args.ToMap())
	if err != nil {
		return err
	}
	return collective.CheckSame(t.world(), "training arguments", b)
}

// checkResumeWorld refuses to resume a checkpoint written by another
// number of processes: each process's batches, and so the exact
// continuation, depend on it (HF only warns).
func (t *Trainer) checkResumeWorld(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, RNGStateName))
	if err != nil {
		return nil // a model-only checkpoint: nothing to continue exactly
	}
	var st struct {
		WorldSize *int `json:"world_size"`
	}
	if json.Unmarshal(b, &st) != nil {
		return fault.Inputf("%s: not JSON", filepath.Join(dir, RNGStateName))
	}
	saved := 1
	if st.WorldSize != nil {
		saved = *st.WorldSize
	}
	if n := t.world().Size(); saved != n {
		return fault.Settingsf("checkpoint %s was written by %d processes and this run has %d: resume with the same number of processes (their data shares and gradient averaging depend on it)", dir, saved, n)
	}
	return nil
}
