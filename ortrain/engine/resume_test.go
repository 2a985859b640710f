package engine

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
	"syscall"
	"testing"

	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/data"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/testenv"
	"github.com/ortrain/ortrain/ortrain"
)

func TestMain(m *testing.M) {
	if os.Getenv("ORTENGINE_CHILD") == "1" {
		os.Exit(resumeChild())
	}
	if os.Getenv(ddpEnv) != "" {
		os.Exit(ddpChild())
	}
	os.Exit(m.Run())
}

type killAt struct {
	ortrain.NopCallback
	step int
}

func (k killAt) OnStepEnd(e *ortrain.Event) error {
	if e.State.GlobalStep == k.step {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	return nil
}

// resumeRun trains t5-tiny with shuffled data, gradient accumulation 3 (a
// short last window), warmup and weight decay, saving every 2 steps, and
// returns the final parameters and optimizer state as bytes.
func resumeRun(lib, art, modelDir, trainFile, out string, resume bool, killStep int) ([]byte, error) {
	env, err := onnxrt.Open(lib)
	if err != nil {
		return nil, err
	}
	defer env.Close()
	a := ortrain.DefaultArguments()
	a.OutputDir = out
	a.DoTrain = true
	a.NumTrainEpochs = 3
	a.PerDeviceTrainBatchSize = 8 // 60 rows: 8 batches, windows 3,3,2: 3 steps per epoch
	a.GradientAccumulationSteps = 3
	a.LearningRate = 3e-3
	a.WeightDecay = 0.01
	a.WarmupSteps = 2
	a.SaveSteps = 2
	a.LoggingSteps = 1
	a.Seed = 7
	if resume {
		a.ResumeFromCheckpoint = "true"
	}
	if err := a.Finalize(); err != nil {
		return nil, err
	}
	tr, err := Open(art, env, Options{Session: onnxrt.SessionOptions{IntraOpThreads: 1}, ModelDir: modelDir,
		Hyper: Hyper{Beta1: a.AdamBeta1, Beta2: a.AdamBeta2, Eps: a.AdamEpsilon, WeightDecay: a.WeightDecay, MaxGradNorm: a.MaxGradNorm}})
	if err != nil {
		return nil, err
	}
	defer tr.Close()
	rows, err := readExamplesFile(trainFile)
	if err != nil {
		return nil, err
	}
	trainer := &ortrain.Trainer{Args: a, Engine: tr,
		TrainData: &Data{Dataset: rows, Order: data.Order{BatchSize: 8, Shuffle: true, Seed: 11}}}
	if killStep > 0 {
		trainer.Callbacks = []ortrain.Callback{killAt{step: killStep}}
	}
	if _, err := trainer.Train(context.Background()); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "engine-final-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := tr.SaveParameters(filepath.Join(dir, "m")); err != nil {
		return nil, err
	}
	if err := tr.SaveOptimizerState(filepath.Join(dir, "o")); err != nil {
		return nil, err
	}
	m, _ := os.ReadFile(filepath.Join(dir, "m"))
	o, _ := os.ReadFile(filepath.Join(dir, "o"))
	return append(m, o...), nil
}

func resumeChild() int {
	k, _ := strconv.Atoi(os.Getenv("ORTENGINE_KILL_STEP"))
	_, err := resumeRun(os.Getenv("ORTENGINE_LIB"), os.Getenv("ORTENGINE_ART"), os.Getenv("ORTENGINE_MODEL"),
		os.Getenv("ORTENGINE_TRAIN"), os.Getenv("ORTENGINE_OUT"), false, k)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestResumeAfterSIGKILLRealEngine: a training process on ONNX Runtime is
// killed with SIGKILL at a random optimizer step; resuming from its last
// checkpoint ends with parameters and optimizer state bitwise equal to an
// uninterrupted run.
func TestResumeAfterSIGKILLRealEngine(t *testing.T) {
	lib := testenv.ORTLibrary(t)
	modelDir := testenv.Testdata(t, "models", "t5-tiny")
	trainFile := testenv.Testdata(t, "trainer", "data", "train.jsonl")
	art := t.TempDir()
	if _, err := artifacts.Build(artifacts.Config{Model: filepath.Join(modelDir, "model.onnx"), Out: art}); err != nil {
		t.Fatal(err)
	}
	want, err := resumeRun(lib, art, modelDir, trainFile, filepath.Join(t.TempDir(), "ref"), false, 0)
	if err != nil {
		t.Fatal(err)
	}
	k := 3 + rand.IntN(6) // 9 steps in all, checkpoints every 2: kill at 3..8
	out := filepath.Join(t.TempDir(), "out")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "ORTENGINE_CHILD=1", "ORTENGINE_LIB="+lib, "ORTENGINE_ART="+art, "ORTENGINE_MODEL="+modelDir,
		"ORTENGINE_TRAIN="+trainFile, "ORTENGINE_OUT="+out, "ORTENGINE_KILL_STEP="+strconv.Itoa(k))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() {
		t.Fatalf("child not killed at step %d: %v %s", k, err, stderr.String())
	}
	last, err := ortrain.LastCheckpoint(out)
	if err != nil || last == "" {
		t.Fatalf("no checkpoint after a kill at step %d: %v", k, err)
	}
	got, err := resumeRun(lib, art, modelDir, trainFile, out, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("killed at step %d, resumed from %s: final state differs from the uninterrupted run", k, filepath.Base(last))
	}
	t.Logf("killed at step %d, resumed from %s: bitwise equal (%d bytes)", k, filepath.Base(last), len(got))
}

func readExamplesFile(path string) (*data.Dataset, error) { return readExamplesErr(path) }
