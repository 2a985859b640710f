package ortrain

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

// fullDiskFS fails every write under a checkpoint after the first n
// successful checkpoint commits, as a full disk would.
type fullDiskFS struct {
	OSFileSystem
	commits, failAfter int
}

func (f *fullDiskFS) WriteFile(p string, d []byte) error {
	if f.commits >= f.failAfter && strings.HasSuffix(p, TrainerStateName) {
		return &os.PathError{Op: "write", Path: p, Err: syscall.ENOSPC}
	}
	return f.OSFileSystem.WriteFile(p, d)
}

func (f *fullDiskFS) Rename(o, n string) error {
	err := f.OSFileSystem.Rename(o, n)
	if err == nil && strings.HasPrefix(filepath.Base(n), CheckpointPrefix+"-") {
		f.commits++
	}
	return err
}

func TestDiskFullWhileSavingKeepsLastCheckpoint(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	a := resumeArgs(out)
	if err := a.Finalize(); err != nil {
		t.Fatal(err)
	}
	tr, _ := newResumeTrainer(a, &fullDiskFS{failAfter: 1})
	_, err := tr.Train(context.Background())
	var se *SaveError
	if !errors.As(err, &se) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("want a SaveError wrapping ENOSPC, got %v", err)
	}
	for _, want := range []string{"checkpoint-4", "no space left on device", "checkpoint-2, is intact", "resume_from_checkpoint"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if got := checkpointNames(out); !reflect.DeepEqual(got, []string{"checkpoint-2"}) {
		t.Fatalf("checkpoints left: %v", got)
	}
	checkNoPartialCheckpoint(t, out)
	entries, _ := os.ReadDir(out)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			t.Errorf("temporary %s left behind", e.Name())
		}
	}
	// and the run resumes from it
	a.ResumeFromCheckpoint = "true"
	tr2, _ := newResumeTrainer(a, nil)
	if _, err := tr2.Train(context.Background()); err != nil {
		t.Fatalf("resume after disk full: %v", err)
	}
}

func TestNaNLossStopsWithClearError(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	a := resumeArgs(out)
	if err := a.Finalize(); err != nil {
		t.Fatal(err)
	}
	tr, eng := newResumeTrainer(a, nil)
	eng.nanAtCall = 17 // epoch 1 micro-batch 6: optimizer step 7 (windows 3,3,3,1 per epoch)
	_, err := tr.Train(context.Background())
	var ne *NonFiniteLossError
	if !errors.As(err, &ne) {
		t.Fatalf("want NonFiniteLossError, got %v", err)
	}
	if ne.Step != 7 || !strings.Contains(err.Error(), "checkpoint-6") || !strings.Contains(err.Error(), "NaN at step 7") {
		t.Errorf("error: %v", err)
	}
	checkNoPartialCheckpoint(t, out)
	if got := checkpointNames(out); !reflect.DeepEqual(got, []string{"checkpoint-4", "checkpoint-6"}) {
		t.Errorf("checkpoints left: %v", got)
	}
}

func TestSetupErrors(t *testing.T) {
	base := func() TrainingArguments {
		a := DefaultArguments()
		a.OutputDir = filepath.Join(t.TempDir(), "out")
		a.DoTrain = true
		a.MaxSteps = 4
		return a
	}
	// eval strategy without an eval set: HF's message
	a := base()
	a.EvalStrategy = StrategySteps
	if err := a.Finalize(); err != nil {
		t.Fatal(err)
	}
	tr := &Trainer{Args: a, Engine: &fakeEngine{}, TrainData: newFakeData(4, 2, 1, false)}
	_, err := tr.Train(context.Background())
	if err == nil || !strings.Contains(err.Error(), "You have set `args.eval_strategy` to IntervalStrategy.STEPS but you didn't pass an `eval_dataset`") {
		t.Errorf("eval without eval set: %v", err)
	}
	// metric_for_best_model that evaluation never produces: before training
	a = base()
	a.EvalStrategy = StrategySteps
	a.LoadBestModelAtEnd = true
	m := "bleu"
	a.MetricForBestModel = &m
	a.PredictWithGenerate = true
	if err := a.Finalize(); err != nil {
		t.Fatal(err)
	}
	eng := &fakeEngine{}
	tr = &Trainer{Args: a, Engine: eng, TrainData: newFakeData(4, 2, 1, false), EvalData: newFakeData(1, 2, 1, false),
		Generator: fakeGenerator{}, ComputeMetrics: scriptedMetrics([]float64{1, 2, 3}), MetricNames: []string{"score"}}
	_, err = tr.Train(context.Background())
	if err == nil || !strings.Contains(err.Error(), "'eval_bleu', which is not found in the evaluation metrics") || eng.calls != 0 {
		t.Errorf("missing metric (calls %d): %v", eng.calls, err)
	}
	// ... and at the first evaluation when the metric names are not declared
	tr.MetricNames = nil
	_, err = tr.Train(context.Background())
	if err == nil || !strings.Contains(err.Error(), "'eval_bleu', which is not found") || !strings.Contains(err.Error(), "'eval_score'") {
		t.Errorf("missing metric at evaluation: %v", err)
	}
	// non-empty output_dir without overwrite
	a = base()
	os.MkdirAll(a.OutputDir, 0o755)
	os.WriteFile(filepath.Join(a.OutputDir, "x"), nil, 0o644)
	if err := CheckOutputDir(&a); err == nil || !strings.Contains(err.Error(), "already exists and is not empty. Use --overwrite_output_dir") {
		t.Errorf("non-empty output dir: %v", err)
	}
	a.OverwriteOutputDir = true
	if err := CheckOutputDir(&a); err != nil {
		t.Error(err)
	}
	// resume without a checkpoint: HF's message
	a = base()
	a.ResumeFromCheckpoint = "true"
	os.MkdirAll(a.OutputDir, 0o755)
	if err := a.Finalize(); err != nil {
		t.Fatal(err)
	}
	tr = &Trainer{Args: a, Engine: &fakeEngine{}, TrainData: newFakeData(4, 2, 1, false)}
	if _, err := tr.Train(context.Background()); err == nil || !strings.Contains(err.Error(), "No valid checkpoint found in output directory") {
		t.Errorf("resume without checkpoint: %v", err)
	}
}
