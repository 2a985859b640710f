package ortrain

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// The test binary re-executes itself as a training child that SIGKILLs
// itself at a chosen optimizer step or file operation.
func TestMain(m *testing.M) {
	if os.Getenv("ORTRAIN_TEST_CHILD") == "1" {
		os.Exit(runChild())
	}
	if dir := os.Getenv("ORTRAIN_TEST_LOCK_DIR"); dir != "" {
		os.Exit(lockHolderChild(dir))
	}
	os.Exit(m.Run())
}

func resumeArgs(out string) TrainingArguments {
	a := DefaultArguments()
	a.OutputDir = out
	a.DoTrain = true
	a.NumTrainEpochs = 3
	a.PerDeviceTrainBatchSize = 4
	a.PerDeviceEvalBatchSize = 4
	a.GradientAccumulationSteps = 3 // 10 batches: windows 3,3,3,1
	a.LearningRate = 0.05
	a.WarmupSteps = 2
	a.LoggingSteps = 1
	a.EvalStrategy = StrategySteps
	es := 2.0
	a.EvalSteps = &es
	a.SaveSteps = 2
	lim := 2
	a.SaveTotalLimit = &lim
	a.EarlyStoppingPatience = 100
	m := "loss"
	a.MetricForBestModel = &m
	return a
}

func newResumeTrainer(a TrainingArguments, fsys FileSystem) (*Trainer, *fakeEngine) {
	eng := &fakeEngine{maxNorm: 1}
	return &Trainer{Args: a, Engine: eng, TrainData: newFakeData(10, 4, 7, true), EvalData: newFakeData(3, 4, 8, false), FS: fsys}, eng
}

// killFS SIGKILLs the process at its n-th mutating operation.
type killFS struct {
	OSFileSystem
	n, count int
}

func (k *killFS) tick() {
	k.count++
	if k.count == k.n {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
}
func (k *killFS) WriteFile(p string, d []byte) error { k.tick(); return k.OSFileSystem.WriteFile(p, d) }
func (k *killFS) Rename(o, n string) error           { k.tick(); return k.OSFileSystem.Rename(o, n) }
func (k *killFS) RemoveAll(p string) error           { k.tick(); return k.OSFileSystem.RemoveAll(p) }

type killAtStep struct {
	NopCallback
	step int
}

func (k killAtStep) OnStepEnd(e *Event) error {
	if e.State.GlobalStep == k.step {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	return nil
}

func runChild() int {
	out := os.Getenv("ORTRAIN_TEST_OUT")
	a := resumeArgs(out)
	if os.Getenv("ORTRAIN_TEST_RESUME") == "1" {
		a.ResumeFromCheckpoint = "true"
	}
	if err := a.Finalize(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var fsys FileSystem
	if n, _ := strconv.Atoi(os.Getenv("ORTRAIN_TEST_KILL_FSOP")); n > 0 {
		fsys = &killFS{n: n}
	}
	if n, _ := strconv.Atoi(os.Getenv("ORTRAIN_TEST_KILL_MIDREMOVE")); n > 0 {
		fsys = &midRemoveKillFS{n: n}
	}
	tr, _ := newResumeTrainer(a, fsys)
	if s, _ := strconv.Atoi(os.Getenv("ORTRAIN_TEST_KILL_STEP")); s > 0 {
		tr.Callbacks = append(tr.Callbacks, killAtStep{step: s})
	}
	if _, err := tr.Train(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func runChildProcess(t *testing.T, out string, env ...string) error {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{"ORTRAIN_TEST_CHILD=1", "ORTRAIN_TEST_OUT=" + out}, env...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err != nil && stderr.Len() > 0 {
		t.Logf("child stderr: %s", stderr.String())
	}
	return err
}

func finalParams(t *testing.T, a TrainingArguments) []byte {
	t.Helper()
	tr, eng := newResumeTrainer(a, nil)
	if _, err := tr.Train(context.Background()); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := eng.SaveModel(dir); err != nil {
		t.Fatal(err)
	}
	if err := eng.SaveOptimizer(dir); err != nil {
		t.Fatal(err)
	}
	m, _ := os.ReadFile(filepath.Join(dir, "model.safetensors"))
	o, _ := os.ReadFile(filepath.Join(dir, "optimizer.bin"))
	return append(m, o...)
}

func wasKilled(err error) bool {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok {
			return ws.Signaled() && ws.Signal() == syscall.SIGKILL
		}
	}
	return false
}

// checkNoPartialCheckpoint asserts every checkpoint-N folder is complete.
func checkNoPartialCheckpoint(t *testing.T, out string) {
	t.Helper()
	for _, name := range checkpointNames(out) {
		for _, f := range []string{"model.safetensors", "optimizer.bin", SchedulerName, RNGStateName, TrainerStateName, TrainingArgsName} {
			if _, err := os.Stat(filepath.Join(out, name, f)); err != nil {
				t.Errorf("partial checkpoint %s: %v", name, err)
			}
		}
		if _, err := LoadTrainerState(filepath.Join(out, name, TrainerStateName)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestResumeAfterSIGKILLIsBitwiseEqual kills a training process with
// SIGKILL at random optimizer steps and at random file operations inside
// checkpoint writes, resumes from the last checkpoint, and requires the
// final parameters and optimizer state to be bitwise equal to an
// uninterrupted run; no partial checkpoint may ever be visible.
func TestResumeAfterSIGKILLIsBitwiseEqual(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	ref := resumeArgs(filepath.Join(t.TempDir(), "ref"))
	if err := ref.Finalize(); err != nil {
		t.Fatal(err)
	}
	want := finalParams(t, ref)

	// Negative control: ignoring the data position must change the result,
	// or this test could not see a wrong resume.
	{
		out := filepath.Join(t.TempDir(), "ctl")
		if err := runChildProcess(t, out, "ORTRAIN_TEST_KILL_STEP=7"); !wasKilled(err) {
			t.Fatalf("control child was not killed: %v", err)
		}
		a := resumeArgs(out)
		a.ResumeFromCheckpoint = "true"
		a.IgnoreDataSkip = true
		if err := a.Finalize(); err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(finalParams(t, a), want) {
			t.Fatal("a resume that ignores the data position ends equal: the comparison is blind")
		}
	}

	// Every optimizer step (max_steps is 12, a checkpoint every 2) and a
	// random sample of file operations (about 7 per checkpoint).
	counter := &killFS{n: -1}
	{
		a := resumeArgs(filepath.Join(t.TempDir(), "count"))
		if err := a.Finalize(); err != nil {
			t.Fatal(err)
		}
		tr, _ := newResumeTrainer(a, counter)
		if _, err := tr.Train(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	r := rand.New(rand.NewPCG(uint64(os.Getpid()), 3))
	var cases []string
	for s := 2; s < 12; s++ {
		cases = append(cases, "ORTRAIN_TEST_KILL_STEP="+strconv.Itoa(s))
	}
	for i := 0; i < 8; i++ {
		cases = append(cases, "ORTRAIN_TEST_KILL_FSOP="+strconv.Itoa(1+r.IntN(counter.count)))
	}
	for _, kill := range cases {
		t.Run(kill, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			err := runChildProcess(t, out, kill)
			if !wasKilled(err) {
				t.Fatalf("child was not killed: %v", err)
			}
			checkNoPartialCheckpoint(t, out)
			if len(checkpointNames(out)) == 0 {
				// Killed before the first checkpoint: no partial one is
				// left (checked above) and there is nothing to resume.
				t.Logf("%s: killed before the first checkpoint", kill)
				return
			}
			a := resumeArgs(out)
			a.ResumeFromCheckpoint = "true"
			if err := a.Finalize(); err != nil {
				t.Fatal(err)
			}
			got := finalParams(t, a)
			if !bytes.Equal(got, want) {
				t.Errorf("%s: resumed run ends with %x, uninterrupted %x", kill, got, want)
			}
			checkNoPartialCheckpoint(t, out)
			entries, _ := os.ReadDir(out)
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), tmpPrefix) {
					t.Errorf("temporary %s left behind", e.Name())
				}
			}
		})
	}
}

// TestEarlyStoppingCounterSurvivesResume interrupts a run (an engine error
// at an optimizer step) and resumes it: the patience counter comes back
// from trainer_state.json, so training stops at the same step as an
// uninterrupted run.
func TestEarlyStoppingCounterSurvivesResume(t *testing.T) {
	losses := []float64{1, 0.5, 0.75, 0.625, 0.75, 0.875, 1, 1, 1, 1, 1, 1}
	mk := func(out string, script []float64, killAfter int, resume bool) (*Trainer, *fakeEngine) {
		a := resumeArgs(out)
		es := 1.0
		a.EvalSteps = &es
		a.SaveSteps = 1
		a.EarlyStoppingPatience = 3
		a.GradientAccumulationSteps = 1
		if resume {
			a.ResumeFromCheckpoint = "true"
		}
		if err := a.Finalize(); err != nil {
			t.Fatal(err)
		}
		tr, eng := newResumeTrainer(a, nil)
		tr.EvalData = newFakeData(1, 4, 8, false) // one EvalLoss call per evaluation
		eng.evalScript = script
		eng.killAfter = killAfter
		return tr, eng
	}
	ref, _ := mk(filepath.Join(t.TempDir(), "ref"), losses, 0, false)
	if _, err := ref.Train(context.Background()); err != nil {
		t.Fatal(err)
	}
	stopAt := ref.State().GlobalStep
	if stopAt != 5 { // best at step 2, then 3 evaluations without improvement
		t.Fatalf("uninterrupted run stopped at %d, want 5", stopAt)
	}
	out := filepath.Join(t.TempDir(), "out")
	first, _ := mk(out, losses, 4, false) // fails at optimizer step 5, after checkpoint-4 (counter 2)
	if _, err := first.Train(context.Background()); !errors.Is(err, errKilled) {
		t.Fatalf("want the injected failure, got %v", err)
	}
	second, _ := mk(out, losses[4:], 0, true)
	if _, err := second.Train(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := second.State().GlobalStep; got != stopAt {
		t.Fatalf("resumed run stopped at %d, uninterrupted at %d", got, stopAt)
	}
}
