package ortrain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/ortrain/ortrain/internal/collective"
	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/schedule"
)

// Trainer runs HF Seq2SeqTrainer's training loop over an Engine. Fill the
// exported fields, then call Train / Evaluate / Predict (or Run).
type Trainer struct {
	Args      TrainingArguments // finalized (Finalize) before use
	Engine    Engine
	TrainData TrainData
	EvalData  EvalData
	// Generator and ComputeMetrics serve predict_with_generate; MetricNames
	// lists the keys ComputeMetrics returns, so a metric_for_best_model that
	// evaluation never produces fails before training starts.
	Generator      Generator
	ComputeMetrics MetricsFunc
	MetricNames    []string
	// Callbacks run after DefaultFlowCallback (and EarlyStoppingCallback
	// when early_stopping_patience > 0) and the report_to integrations.
	Callbacks   []Callback
	LossScaling LossScaling
	// Comm, with several processes, makes this trainer one of the
	// processes of data-parallel training (see world.go); nil is one
	// process. TrainData, EvalData and Engine must be the same process's
	// shares and replica.
	Comm  collective.Comm
	FS    FileSystem       // nil: the OS
	Clock func() time.Time // nil: time.Now
	Warn  io.Writer        // warnings; nil: discarded
	// OutputLock is the caller's lock on output_dir (LockOutputDir), held
	// from before anything is written there; when nil, Run and Train take
	// one for their own duration.
	OutputLock *OutputLock

	state                *TrainerState
	control              TrainerControl
	handler              callbackHandler
	sched                schedule.Schedule
	schedStep            int
	trLoss               float32
	totalLossScalar      float64
	globalStepLastLogged int
	initialGlobalStep    int
	// trainStart and initialTokensSeen: when this session started training
	// and the tokens counted before it (HF's _initial_num_input_tokens_seen).
	trainStart        time.Time
	initialTokensSeen int
	currentFlos       float64
	earlyStopping     *EarlyStoppingCallback
	reporters         []reporter // report_to integrations, made at first use, closed by Close
	lastSaved         string
	// data position: epoch and micro-batches consumed in it
	posEpoch, posBatch, stepsInEpoch int
}

// TrainOutput is HF's TrainOutput.
type TrainOutput struct {
	GlobalStep   int
	TrainingLoss float64
	Metrics      Logs
}

func (t *Trainer) fs() FileSystem {
	if t.FS == nil {
		return OSFileSystem{}
	}
	return t.FS
}

func (t *Trainer) now() time.Time {
	if t.Clock == nil {
		return time.Now()
	}
	return t.Clock()
}

func (t *Trainer) warnf(format string, a ...any) {
	if t.Warn != nil {
		fmt.Fprintf(t.Warn, format+"\n", a...)
	}
}

// State returns the trainer state (nil before Train).
func (t *Trainer) State() *TrainerState { return t.state }

func (t *Trainer) event() *Event {
	return &Event{Args: &t.Args, State: t.state, Control: &t.control}
}

// evalKeys are the keys evaluation produces (before the eval_ prefix).
func (t *Trainer) evalKeys() []string {
	keys := []string{"eval_loss"}
	if t.Args.PredictWithGenerate && t.ComputeMetrics != nil {
		for _, k := range t.MetricNames {
			keys = append(keys, "eval_"+k)
		}
	}
	return append(keys, "eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "epoch")
}

// CheckSetup runs the checks HF's Trainer.__init__ does on the arguments
// together with the data (and ortrain's own).
func (t *Trainer) CheckSetup() error {
	a := &t.Args
	if a.EvalStrategy != StrategyNo && t.EvalData == nil {
		return argErr("eval_strategy", "You have set `args.eval_strategy` to %s but you didn't pass an `eval_dataset` to `Trainer`. Either set `args.eval_strategy` to `no` or pass an `eval_dataset`. ", intervalRepr(a.EvalStrategy))
	}
	if a.PredictWithGenerate && (t.Generator == nil || t.ComputeMetrics == nil) {
		return argErr("predict_with_generate", "predict_with_generate needs generation graphs and a tokenizer to decode predictions; this model/task provides none")
	}
	if t.Engine == nil {
		return errors.New("ortrain: Trainer.Engine is nil")
	}
	if a.MetricForBestModel != nil && t.MetricNames != nil && a.EvalStrategy != StrategyNo {
		want := a.MetricToCheck()
		found := false
		for _, k := range t.evalKeys() {
			found = found || k == want
		}
		if !found {
			return argErr("metric_for_best_model", "The `metric_for_best_model` training argument is set to '%s', which is not found in the evaluation metrics. The available evaluation metrics are: %v. Consider changing the `metric_for_best_model` via the TrainingArguments.", want, pyList(t.evalKeys()))
		}
	}
	return nil
}

func pyList(xs []string) string {
	s := "["
	for i, x := range xs {
		if i > 0 {
			s += ", "
		}
		s += "'" + x + "'"
	}
	return s + "]"
}

// CheckOutputDir refuses a non-empty output_dir unless overwrite_output_dir
// or resume_from_checkpoint is set (HF's example scripts' rule).
func CheckOutputDir(a *TrainingArguments) error {
	entries, err := os.ReadDir(a.OutputDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	entries = slices.DeleteFunc(entries, func(e os.DirEntry) bool { return e.Name() == LockName })
	if len(entries) > 0 && !a.OverwriteOutputDir && a.ResumeFromCheckpoint == "" && a.DoTrain {
		return argErr("output_dir", "Output directory (%s) already exists and is not empty. Use --overwrite_output_dir to overcome, or --resume_from_checkpoint to continue its last checkpoint.", a.OutputDir)
	}
	return nil
}

// lockOutput takes the output_dir lock unless the trainer holds one; the
// function it returns releases what it took.
func (t *Trainer) lockOutput() (func(), error) {
	if t.OutputLock != nil || !t.isMain() {
		return func() {}, nil
	}
	l, err := LockOutputDir(t.Args.OutputDir)
	if err != nil {
		return nil, err
	}
	t.OutputLock = l
	return func() {
		l.Release()
		t.OutputLock = nil
	}, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// splitmix64 derives independent dropout seeds from (seed, micro-batch).
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func (t *Trainer) dropoutSeed(epoch, step, stepsInEpoch int) uint64 {
	return splitmix64(uint64(int64(t.Args.Seed))*0x100000001b3 ^ uint64(epoch*stepsInEpoch+step))
}

// resolveResume turns resume_from_checkpoint into a folder ("" for none).
func (t *Trainer) resolveResume() (string, error) {
	r := t.Args.ResumeFromCheckpoint
	switch r {
	case "", "false", "False", "none", "None":
		return "", nil
	case "true", "True", "last":
		last, err := LastCheckpoint(t.Args.OutputDir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
		if last == "" {
			return "", argErr("resume_from_checkpoint", "No valid checkpoint found in output directory (%s)", t.Args.OutputDir)
		}
		return last, nil
	}
	if _, err := os.Stat(filepath.Join(r, TrainerStateName)); err != nil {
		return "", argErr("resume_from_checkpoint", "resume_from_checkpoint %s: not a checkpoint folder (no %s): %v", r, TrainerStateName, err)
	}
	return r, nil
}

// TrainingValues are the sizes HF's set_initial_training_values derives
// from the arguments and the training data, as its "Running training"
// banner prints them.
type TrainingValues struct {
	NumExamples         int
	NumEpochs           int // whole epochs begun: ceil(max_steps / UpdateStepsPerEpoch), or ceil(num_train_epochs)
	UpdateStepsPerEpoch int
	StepsInEpoch        int // micro-batches per epoch
	TotalBatchSize      int // per device × accumulation steps
	MaxSteps            int // optimizer steps in all
	NumSamples          float64
}

// TrainingValues computes HF's set_initial_training_values.
func (t *Trainer) TrainingValues() (TrainingValues, error) {
	a := &t.Args
	if t.TrainData == nil {
		return TrainingValues{}, errors.New("ortrain: no training data")
	}
	ga := a.GradientAccumulationSteps
	lenDL := t.TrainData.NumBatches()
	if lenDL <= 0 {
		return TrainingValues{}, errors.New("the training set yields no batches")
	}
	v := TrainingValues{NumExamples: t.TrainData.NumExamples(), StepsInEpoch: lenDL, TotalBatchSize: a.PerDeviceTrainBatchSize * ga * t.world().Size()}
	v.UpdateStepsPerEpoch = max(lenDL/ga+b2i(lenDL%ga > 0), 1)
	v.MaxSteps = a.MaxSteps
	if v.MaxSteps < 0 {
		v.MaxSteps = int(math.Ceil(a.NumTrainEpochs * float64(v.UpdateStepsPerEpoch)))
	}
	if a.MaxSteps > 0 {
		v.NumEpochs = v.MaxSteps/v.UpdateStepsPerEpoch + b2i(v.MaxSteps%v.UpdateStepsPerEpoch > 0)
		v.NumSamples = float64(v.MaxSteps * v.TotalBatchSize)
	} else {
		v.NumEpochs = int(math.Ceil(a.NumTrainEpochs))
		v.NumSamples = float64(v.NumExamples) * a.NumTrainEpochs
	}
	return v, nil
}

// Train runs training (HF Trainer.train).
func (t *Trainer) Train(ctx context.Context) (*TrainOutput, error) {
	a := &t.Args
	if err := t.CheckSetup(); err != nil {
		return nil, err
	}
	if t.TrainData == nil {
		return nil, errors.New("ortrain: no training data")
	}
	unlock, err := t.lockOutput()
	if err != nil {
		return nil, err
	}
	defer unlock()
	resume, err := t.resolveResume()
	if err != nil {
		return nil, err
	}
	if err := t.checkSameArguments(); err != nil {
		return nil, err
	}
	if t.isMain() {
		if err := t.fs().MkdirAll(a.OutputDir); err != nil {
			return nil, err
		}
		if err := cleanStaleTemporaries(t.fs(), a.OutputDir); err != nil {
			return nil, err
		}
	}

	tv, err := t.TrainingValues()
	if err != nil {
		return nil, err
	}
	ga := a.GradientAccumulationSteps
	numUpdPerEpoch, maxSteps, numTrainEpochs := tv.UpdateStepsPerEpoch, tv.MaxSteps, tv.NumEpochs
	numTrainSamples := tv.NumSamples
	stepsInEpoch := tv.StepsInEpoch

	// _init_training_state
	t.handler = callbackHandler{callbacks: []Callback{DefaultFlowCallback{}}}
	t.earlyStopping = nil
	if a.EarlyStoppingPatience > 0 {
		t.earlyStopping = &EarlyStoppingCallback{Patience: a.EarlyStoppingPatience, Threshold: a.EarlyStoppingThreshold, warn: t.Warn}
		t.handler.callbacks = append(t.handler.callbacks, t.earlyStopping)
	}
	t.handler.callbacks = append(t.handler.callbacks, t.userCallbacks()...)
	t.control = TrainerControl{}
	t.state = newTrainerState()
	bs := a.PerDeviceTrainBatchSize
	t.state.TrainBatchSize = &bs
	t.state.computeSteps(a, maxSteps)
	// TrainerState(stateful_callbacks=...) records their state at creation.
	for _, cb := range t.handler.callbacks {
		if sc, ok := cb.(StatefulCallback); ok {
			t.state.StatefulCallbacks[sc.StateName()] = sc.State()
		}
	}
	t.state.StatefulCallbacks["TrainerControl"] = t.control.stateMap()
	epochsTrained, stepsTrainedInEpoch := 0, 0
	t.schedStep = 0
	if resume != "" {
		if err := t.checkResumeWorld(resume); err != nil {
			return nil, err
		}
		st, err := LoadTrainerState(filepath.Join(resume, TrainerStateName))
		if err != nil {
			return nil, err
		}
		t.state = st
		if st.BestModelCheckpoint != nil {
			if info, err := os.Stat(*st.BestModelCheckpoint); err != nil || !info.IsDir() {
				t.warnf("The best checkpoint %s recorded in the resumed state does not exist anymore. Ignoring it for this run.", *st.BestModelCheckpoint)
				st.BestModelCheckpoint = nil
			}
		}
		if err := t.restoreCallbackStates(); err != nil {
			return nil, fmt.Errorf("%s: %w", resume, err)
		}
		epochsTrained = st.GlobalStep / numUpdPerEpoch
		if !a.IgnoreDataSkip {
			stepsTrainedInEpoch = (st.GlobalStep % numUpdPerEpoch) * ga
		}
		if err := t.Engine.LoadModel(resume); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fault.Inputf("checkpoint %s is incomplete: %v (a run killed while deleting it, or a partial copy); resume from another checkpoint", resume, err)
			}
			return nil, fmt.Errorf("resuming from %s: %w", resume, err)
		}
		if err := t.loadOptimizerAndScheduler(resume); err != nil {
			return nil, fmt.Errorf("resuming from %s: %w", resume, err)
		}
	}
	t.state.MaxSteps = maxSteps
	t.state.NumTrainEpochs = numTrainEpochs
	t.sched, err = schedule.New(a.LRSchedulerType, a.LearningRate, a.WarmupStepsFor(maxSteps), maxSteps, a.LRSchedulerKwargs)
	if err != nil {
		return nil, argErr("lr_scheduler_kwargs", "%v", err)
	}

	t.setTraining(true)
	defer t.setTraining(false)
	start := t.now()
	t.trainStart = start
	t.initialTokensSeen = t.state.NumInputTokensSeen
	t.initialGlobalStep = t.state.GlobalStep
	t.trLoss = 0
	t.totalLossScalar = 0
	t.globalStepLastLogged = t.state.GlobalStep
	t.currentFlos = 0
	if err := t.handler.trainBegin(t.event()); err != nil {
		return nil, err
	}
	if a.EvalOnStart {
		if _, err := t.Evaluate(ctx, t.EvalData, "eval"); err != nil {
			return nil, err
		}
	}
	for epoch := epochsTrained; epoch < numTrainEpochs; epoch++ {
		if err := t.handler.epochBegin(t.event()); err != nil {
			return nil, err
		}
		skip := 0
		if epoch == epochsTrained && resume != "" && stepsTrainedInEpoch > 0 && !a.IgnoreDataSkip {
			skip = stepsTrainedInEpoch
		}
		if err := t.runEpoch(ctx, epoch, skip, stepsInEpoch, numUpdPerEpoch); err != nil {
			return nil, err
		}
		if t.control.ShouldTrainingStop {
			break
		}
	}
	return t.finalizeTraining(numTrainSamples, start)
}

func (t *Trainer) restoreCallbackStates() error {
	for _, cb := range t.handler.callbacks {
		sc, ok := cb.(StatefulCallback)
		if !ok {
			continue
		}
		if m, ok := t.state.StatefulCallbacks[sc.StateName()].(map[string]any); ok {
			if err := sc.RestoreState(m); err != nil {
				return err
			}
		}
	}
	return nil
}

// lossScale is what b's mean loss is multiplied by before backward; total
// is num_items_in_batch, the window's label tokens over all processes.
func (t *Trainer) lossScale(b Batch, window []Batch, total int) float64 {
	mode := t.LossScaling
	if mode == LossScalingHF {
		if t.Args.LabelSmoothingFactor == 0 {
			return t.processFactor()
		}
		mode = LossScalingTokens
	}
	if mode == LossScalingMean {
		return 1 / float64(len(window))
	}
	if total == 0 {
		return 0
	}
	return float64(b.NumLabelTokens()) / float64(total) * t.processFactor()
}

// scaledLoss is the value HF's training_step returns for a micro-batch, in
// float32 as torch computes it.
func (t *Trainer) scaledLoss(mean, scale float64, window int) float32 {
	switch {
	case scale == 1:
		return float32(mean)
	case t.LossScaling == LossScalingMean:
		return float32(mean) / float32(window)
	}
	return float32(mean) * float32(scale)
}

func (t *Trainer) runEpoch(ctx context.Context, epoch, skip, stepsInEpoch, numUpdPerEpoch int) error {
	a := &t.Args
	ga := a.GradientAccumulationSteps
	step := -1
	numUpdTrained := 0
	if skip > 0 {
		step = skip - 1
		numUpdTrained = skip / ga
	}
	it, err := t.TrainData.Epoch(epoch, skip)
	if err != nil {
		return err
	}
	remainder := stepsInEpoch % ga
	if remainder == 0 {
		remainder = ga
	}
	var gradNorm, learningRate *float64
	exhausted := false
	for upd := numUpdTrained; upd < numUpdPerEpoch && !exhausted; upd++ {
		n := ga
		if upd == numUpdPerEpoch-1 {
			n = remainder
		}
		window := make([]Batch, 0, n)
		for len(window) < n {
			b, err := it.Next(ctx)
			if err == io.EOF {
				exhausted = true
				break
			}
			if err != nil {
				return err
			}
			window = append(window, b)
		}
		total := 0
		if t.passesNumItems() && len(window) > 0 {
			if total, err = t.labelTokens(window); err != nil {
				return err
			}
		}
		for _, b := range window {
			if err := ctx.Err(); err != nil {
				return err
			}
			step++
			t.posEpoch, t.posBatch, t.stepsInEpoch = epoch, step+1, stepsInEpoch
			doSync := (step+1)%ga == 0 || step+1 == stepsInEpoch
			if step%ga == 0 {
				if err := t.handler.stepBegin(t.event()); err != nil {
					return err
				}
			}
			scale := t.lossScale(b, window, total)
			loss, err := t.Engine.TrainMicroBatch(ctx, b, scale, t.dropoutSeed(epoch, step, stepsInEpoch))
			if err != nil {
				return fmt.Errorf("step %d (epoch %d, micro-batch %d): %w", t.state.GlobalStep+1, epoch, step, err)
			}
			switch {
			case !math.IsNaN(loss) && !math.IsInf(loss, 0):
				t.trLoss += t.scaledLoss(loss, scale, len(window))
			case !t.skipsOverflow():
				// HF would step the optimizer with non-finite gradients and
				// carry on with NaN weights; stop before they are applied.
				return &NonFiniteLossError{Step: t.state.GlobalStep + 1, Epoch: epoch, MicroBatch: step, Loss: loss, LastCheckpoint: t.lastCheckpoint()}
			case a.LoggingNanInfFilter:
				// The loss scaler skips this step; HF logs the average of
				// the losses logged since the last log in its place.
				t.trLoss += t.trLoss / float32(1+t.state.GlobalStep-t.globalStepLastLogged)
			default:
				t.trLoss += float32(loss)
			}
			if pc, ok := t.Engine.(ParameterCounter); ok {
				t.currentFlos += 6 * float64(b.NumInputTokens()) * float64(pc.NumParameters(true))
			}
			if a.IncludeNumInputTokensSeen != "no" {
				n, err := t.inputTokensOverProcesses(b)
				if err != nil {
					return err
				}
				t.state.NumInputTokensSeen += n
			}
			if doSync {
				lr := t.sched.LR(t.schedStep)
				gn, err := t.Engine.OptimizerStep(ctx, lr)
				if err != nil {
					return fmt.Errorf("optimizer step %d: %w", t.state.GlobalStep+1, err)
				}
				gradNorm, learningRate = &gn, &lr
				if !t.stepSkipped() {
					// GradScaler skipped the optimizer step (inf/NaN
					// gradients): HF leaves the scheduler where it was.
					t.schedStep++
				}
				t.state.GlobalStep++
				t.state.Epoch = float64(epoch) + float64(step+1)/float64(stepsInEpoch)
				if err := t.handler.stepEnd(t.event()); err != nil {
					return err
				}
				if err := t.maybeLogSaveEvaluate(ctx, gradNorm, learningRate); err != nil {
					return err
				}
			} else if err := t.handler.substepEnd(t.event()); err != nil {
				return err
			}
			if t.control.ShouldEpochStop || t.control.ShouldTrainingStop {
				break
			}
		}
		if t.control.ShouldEpochStop || t.control.ShouldTrainingStop {
			break
		}
	}
	if step < 0 {
		t.warnf("There seems not to be a single sample in your epoch_iterator, stopping training at step %d!", t.state.GlobalStep)
		t.control.ShouldTrainingStop = true
	}
	if err := t.handler.epochEnd(t.event()); err != nil {
		return err
	}
	return t.maybeLogSaveEvaluate(ctx, gradNorm, learningRate)
}

// NonFiniteLossError reports a NaN or infinite training loss.
type NonFiniteLossError struct {
	Step, Epoch, MicroBatch int
	Loss                    float64
	LastCheckpoint          string
}

func (e *NonFiniteLossError) Error() string {
	last := "no checkpoint was written yet"
	if e.LastCheckpoint != "" {
		last = "the last good checkpoint is " + e.LastCheckpoint + " (resume with --resume_from_checkpoint " + e.LastCheckpoint + ")"
	}
	return fmt.Sprintf("training loss is %v at step %d (epoch %d, micro-batch %d); stopped before applying non-finite gradients; %s. lower learning_rate (or check the data) and resume", e.Loss, e.Step, e.Epoch, e.MicroBatch, last)
}

func (t *Trainer) lastCheckpoint() string {
	if t.lastSaved != "" {
		return t.lastSaved
	}
	last, _ := LastCheckpoint(t.Args.OutputDir)
	return last
}

func (t *Trainer) storeFlos() error {
	flos, err := t.flosOverProcesses(t.currentFlos)
	if err != nil {
		return err
	}
	t.state.TotalFlos += flos
	t.currentFlos = 0
	return nil
}

// log is Trainer.log: add epoch, append to log_history, call on_log.
func (t *Trainer) log(logs Logs) (Logs, error) {
	return t.logSince(logs, time.Time{})
}

// logSince is Trainer.log(logs, start_time): a non-zero start (the
// periodic training logs) adds the session's token throughput when
// tokens are counted.
func (t *Trainer) logSince(logs Logs, start time.Time) (Logs, error) {
	logs.Set("epoch", t.state.Epoch)
	if t.Args.IncludeNumInputTokensSeen != "no" {
		logs.Set("num_input_tokens_seen", float64(t.state.NumInputTokensSeen))
		if !start.IsZero() {
			tokens := float64(t.state.NumInputTokensSeen - t.initialTokensSeen)
			runtime := t.now().Sub(start).Seconds()
			logs.Set("train_runtime", pyRound(runtime, 4))
			if runtime != 0 {
				logs.Set("train_tokens_per_second", pyRound(tokens/runtime, 3))
			}
		}
	}
	entry := LogEntry{Logs: append(Logs(nil), logs...), Step: t.state.GlobalStep}
	t.state.LogHistory = append(t.state.LogHistory, entry)
	e := t.event()
	e.Logs = logs
	return logs, t.handler.log(e)
}

func (t *Trainer) maybeLogSaveEvaluate(ctx context.Context, gradNorm, learningRate *float64) error {
	a := &t.Args
	if t.control.ShouldLog && t.state.GlobalStep > t.globalStepLastLogged {
		mean, err := t.meanOverProcesses(t.trLoss)
		if err != nil {
			return err
		}
		trLossScalar := float64(mean)
		t.trLoss = 0
		logs := Logs{{"loss", trLossScalar / float64(t.state.GlobalStep-t.globalStepLastLogged)}}
		if gradNorm != nil {
			logs = append(logs, Metric{"grad_norm", *gradNorm})
		}
		if learningRate != nil {
			logs = append(logs, Metric{"learning_rate", *learningRate})
		} else {
			logs = append(logs, Metric{"learning_rate", t.sched.LR(t.schedStep)})
		}
		t.totalLossScalar += trLossScalar
		t.globalStepLastLogged = t.state.GlobalStep
		if err := t.storeFlos(); err != nil {
			return err
		}
		if _, err := t.logSince(logs, t.trainStart); err != nil {
			return err
		}
	}
	if t.control.ShouldEvaluate {
		metrics, err := t.Evaluate(ctx, t.EvalData, "eval")
		if err != nil {
			return err
		}
		isNew, err := t.determineBestMetric(metrics)
		if err != nil {
			return err
		}
		if a.SaveStrategy == StrategyBest {
			t.control.ShouldSave = isNew
		}
	}
	if t.control.ShouldSave {
		if err := t.saveCheckpoint(); err != nil {
			return err
		}
		if err := t.handler.save(t.event()); err != nil {
			return err
		}
	}
	return nil
}

func (t *Trainer) determineBestMetric(metrics Logs) (bool, error) {
	a := &t.Args
	if a.MetricForBestModel == nil {
		return false, nil
	}
	key := a.MetricToCheck()
	v, ok := metrics.Get(key)
	if !ok {
		return false, argErr("metric_for_best_model", "The `metric_for_best_model` training argument is set to '%s', which is not found in the evaluation metrics. The available evaluation metrics are: %s. Consider changing the `metric_for_best_model` via the TrainingArguments.", key, pyList(metrics.Keys()))
	}
	if t.state.BestMetric == nil {
		inf := math.Inf(1)
		if *a.GreaterIsBetter {
			inf = math.Inf(-1)
		}
		t.state.BestMetric = &inf
	}
	better := v < *t.state.BestMetric
	if *a.GreaterIsBetter {
		better = v > *t.state.BestMetric
	}
	if !better {
		return false, nil
	}
	t.state.BestMetric = &v
	switch a.SaveStrategy {
	case StrategySteps, StrategyEpoch, StrategyBest:
		gs := t.state.GlobalStep
		t.state.BestGlobalStep = &gs
	}
	return true, nil
}

// pyRound is Python's round(x, n): the correctly rounded decimal.
func pyRound(x float64, n int) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'f', n, 64), 64)
	return v
}

func speedMetrics(split string, runtime float64, numSamples, numSteps *float64) Logs {
	out := Logs{{split + "_runtime", pyRound(runtime, 4)}}
	if runtime == 0 {
		return out
	}
	if numSamples != nil {
		out = append(out, Metric{split + "_samples_per_second", pyRound(*numSamples/runtime, 3)})
	}
	if numSteps != nil {
		out = append(out, Metric{split + "_steps_per_second", pyRound(*numSteps/runtime, 3)})
	}
	return out
}

func (t *Trainer) finalizeTraining(numTrainSamples float64, start time.Time) (*TrainOutput, error) {
	a := &t.Args
	t.totalLossScalar += float64(t.trLoss)
	t.trLoss = 0
	stepsTrained := t.state.GlobalStep - t.initialGlobalStep
	trainLoss := t.totalLossScalar / math.Max(float64(stepsTrained), 0.001)
	samples := numTrainSamples * float64(stepsTrained) / float64(max(t.state.MaxSteps, 1))
	steps := float64(stepsTrained)
	metrics := speedMetrics("train", t.now().Sub(start).Seconds(), &samples, &steps)
	if err := t.storeFlos(); err != nil {
		return nil, err
	}
	metrics = append(metrics, Metric{"total_flos", t.state.TotalFlos}, Metric{"train_loss", trainLoss})
	metrics, err := t.log(metrics)
	if err != nil {
		return nil, err
	}
	best := t.state.BestModelCheckpoint
	if a.LoadBestModelAtEnd && best != nil {
		if err := t.Engine.LoadModel(*best); err != nil {
			return nil, fmt.Errorf("loading the best model from %s: %w", *best, err)
		}
	}
	if best != nil && a.saveTotalLimit() == 1 {
		cps, err := sortCheckpoints(a.OutputDir, false, *best)
		if err != nil {
			return nil, err
		}
		for _, cp := range cps {
			if !sameFile(cp, *best) {
				if err := removeDir(t.fs(), cp); err != nil {
					return nil, err
				}
			}
		}
	}
	if err := t.handler.trainEnd(t.event()); err != nil {
		return nil, err
	}
	return &TrainOutput{GlobalStep: t.state.GlobalStep, TrainingLoss: trainLoss, Metrics: metrics}, nil
}

func sameFile(a, b string) bool {
	ia, err1 := os.Stat(a)
	ib, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(ia, ib)
}
