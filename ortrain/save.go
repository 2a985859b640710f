package ortrain

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/pyjson"
)

// SaveError is a failed checkpoint write. Nothing of the new checkpoint is
// left under its final name; earlier checkpoints are untouched.
type SaveError struct {
	Checkpoint     string
	LastCheckpoint string
	Err            error
}

func (e *SaveError) Error() string {
	last := "no earlier checkpoint exists"
	if e.LastCheckpoint != "" {
		last = "the last complete checkpoint, " + e.LastCheckpoint + ", is intact"
	}
	return fmt.Sprintf("saving %s failed: %v; nothing partial was left behind and %s (free disk space, then resume with --resume_from_checkpoint)", e.Checkpoint, e.Err, last)
}

func (e *SaveError) Unwrap() error { return e.Err }

func writeJSON(fsys FileSystem, path string, v any, indent int) error {
	b, err := pyjson.Marshal(v, indent)
	if err != nil {
		return err
	}
	return fsys.WriteFile(path, append(b, '\n'))
}

// saveCheckpoint is Trainer._save_checkpoint, written to a temporary folder
// that is fsynced and renamed to checkpoint-<step> only when complete.
func (t *Trainer) saveCheckpoint() error {
	a := &t.Args
	fsys := t.fs()
	folder := fmt.Sprintf("%s-%d", CheckpointPrefix, t.state.GlobalStep)
	final := pyJoin(a.OutputDir, folder)
	tmp := filepath.Join(a.OutputDir, tmpPrefix+folder)
	if err := t.storeFlos(); err != nil {
		return err
	}
	if !t.isMain() {
		return t.followCheckpoint(final)
	}
	prevLast := t.lastCheckpoint()
	fail := func(err error) error {
		_ = fsys.RemoveAll(tmp)
		return &SaveError{Checkpoint: final, LastCheckpoint: prevLast, Err: err}
	}
	if err := fsys.RemoveAll(tmp); err != nil {
		return fail(err)
	}
	if err := fsys.MkdirAll(tmp); err != nil {
		return fail(err)
	}
	if err := t.Engine.SaveModel(tmp); err != nil {
		return fail(err)
	}
	switch a.SaveStrategy {
	case StrategySteps, StrategyEpoch, StrategyBest:
		if b := t.state.BestGlobalStep; b != nil && *b != 0 {
			bestDir := pyJoin(a.OutputDir, fmt.Sprintf("%s-%d", CheckpointPrefix, *b))
			if _, err := os.Stat(bestDir); err == nil || *b == t.state.GlobalStep {
				t.state.BestModelCheckpoint = &bestDir
			}
		}
	}
	if !a.SaveOnlyModel {
		if err := t.Engine.SaveOptimizer(tmp); err != nil {
			return fail(err)
		}
		if err := writeJSON(fsys, filepath.Join(tmp, SchedulerName), map[string]any{
			"last_epoch": t.schedStep, "lr_scheduler_type": a.LRSchedulerType,
			"base_lr": a.LearningRate, "num_warmup_steps": a.WarmupStepsFor(t.state.MaxSteps), "num_training_steps": t.state.MaxSteps,
		}, 2); err != nil {
			return fail(err)
		}
		// Dropout seeds derive from (seed, epoch, micro-batch), so the
		// position is the whole RNG state.
		// Every process draws the same dropout seeds (as HF's processes
		// share one seed) and its batches follow from the position and
		// the number of processes, which resume must keep.
		if err := writeJSON(fsys, filepath.Join(tmp, RNGStateName), map[string]any{
			"seed": a.Seed, "data_seed": a.dataSeed(), "global_step": t.state.GlobalStep, "epoch": t.state.Epoch,
			"dropout_seed_rule": "splitmix64(seed*0x100000001b3 ^ (epoch*steps_in_epoch + micro_batch))",
			"world_size":        t.world().Size(),
		}, 2); err != nil {
			return fail(err)
		}
	}
	// Informational: resume derives the position from global_step as HF
	// does (epochs_trained, batches to skip).
	if err := writeJSON(fsys, filepath.Join(tmp, DataStateName), map[string]any{
		"epoch": t.posEpoch, "micro_batches_consumed": t.posBatch, "micro_batches_per_epoch": t.stepsInEpoch,
		"data_seed": a.dataSeed(), "global_step": t.state.GlobalStep, "world_size": t.world().Size(),
	}, 2); err != nil {
		return fail(err)
	}
	for _, cb := range t.handler.callbacks {
		if sc, ok := cb.(StatefulCallback); ok {
			t.state.StatefulCallbacks[sc.StateName()] = sc.State()
		}
	}
	t.state.StatefulCallbacks["TrainerControl"] = t.control.stateMap()
	st, err := t.state.MarshalHF()
	if err != nil {
		return fail(err)
	}
	if err := fsys.WriteFile(filepath.Join(tmp, TrainerStateName), st); err != nil {
		return fail(err)
	}
	if err := writeJSON(fsys, filepath.Join(tmp, TrainingArgsName), a.ToMap(), 2); err != nil {
		return fail(err)
	}
	if err := commitDir(fsys, tmp, final); err != nil {
		return fail(err)
	}
	t.lastSaved = final
	if _, err := rotateCheckpoints(fsys, a.OutputDir, a.saveTotalLimit(), deref(t.state.BestModelCheckpoint)); err != nil {
		return err
	}
	return t.world().Barrier()
}

// followCheckpoint is saveCheckpoint on a process other than 0: process
// 0 writes the checkpoint; the others keep the same state (the best
// checkpoint, the callbacks' state, the last checkpoint) and wait until
// it is on disk, so that no process runs ahead of a checkpoint that may
// fail.
func (t *Trainer) followCheckpoint(final string) error {
	a := &t.Args
	switch a.SaveStrategy {
	case StrategySteps, StrategyEpoch, StrategyBest:
		if b := t.state.BestGlobalStep; b != nil && *b != 0 {
			bestDir := pyJoin(a.OutputDir, fmt.Sprintf("%s-%d", CheckpointPrefix, *b))
			if _, err := os.Stat(bestDir); err == nil || *b == t.state.GlobalStep {
				t.state.BestModelCheckpoint = &bestDir
			}
		}
	}
	for _, cb := range t.handler.callbacks {
		if sc, ok := cb.(StatefulCallback); ok {
			t.state.StatefulCallbacks[sc.StateName()] = sc.State()
		}
	}
	t.state.StatefulCallbacks["TrainerControl"] = t.control.stateMap()
	t.lastSaved = final
	return t.world().Barrier()
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// loadOptimizerAndScheduler is _load_optimizer_and_scheduler: both are
// restored only when the checkpoint has both. A checkpoint saved with
// save_only_model has neither by design and continues with a fresh
// optimizer, as in HF; any other checkpoint lacking them is incomplete and
// refused unless resume_without_optimizer_state says to continue without
// them.
func (t *Trainer) loadOptimizerAndScheduler(dir string) error {
	data, err := os.ReadFile(filepath.Join(dir, SchedulerName))
	if errors.Is(err, os.ErrNotExist) {
		if savedModelOnly(dir) {
			t.warnf("%s was saved with save_only_model: it has no optimizer/scheduler state; they start fresh", dir)
			return nil
		}
		return t.withoutOptimizer(dir, fmt.Errorf("%s is missing", SchedulerName))
	}
	if err != nil {
		return err
	}
	var s struct {
		LastEpoch *int `json:"last_epoch"`
	}
	if err := json.Unmarshal(data, &s); err != nil || s.LastEpoch == nil || *s.LastEpoch < 0 {
		return fault.Inputf("%s: bad scheduler state", filepath.Join(dir, SchedulerName))
	}
	if err := t.Engine.LoadOptimizer(dir); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return t.withoutOptimizer(dir, err)
		}
		return err
	}
	t.schedStep = *s.LastEpoch
	return nil
}

// withoutOptimizer refuses to resume from an incomplete checkpoint, or,
// with resume_without_optimizer_state, warns and lets the optimizer and
// schedule start fresh.
func (t *Trainer) withoutOptimizer(dir string, missing error) error {
	if t.Args.ResumeWithoutOptimizerState {
		t.warnf("%s has no complete optimizer/scheduler state (%v); resume_without_optimizer_state: they start fresh", dir, missing)
		return nil
	}
	return fault.Inputf("checkpoint %s is incomplete: %v (a run killed while deleting it, or a partial copy); resume from another checkpoint, or pass --resume_without_optimizer_state to continue from its weights with a fresh optimizer and schedule",
		dir, missing)
}

// savedModelOnly reports whether a checkpoint's training_args.json says it
// was written with save_only_model.
func savedModelOnly(dir string) bool {
	data, err := os.ReadFile(filepath.Join(dir, TrainingArgsName))
	if err != nil {
		return false
	}
	var a struct {
		SaveOnlyModel bool `json:"save_only_model"`
	}
	return json.Unmarshal(data, &a) == nil && a.SaveOnlyModel
}
