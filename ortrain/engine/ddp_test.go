package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ortrain/ortrain/generate"
	"github.com/ortrain/ortrain/generate/ortdecoder"
	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/collective/mpi"
	"github.com/ortrain/ortrain/internal/collective/nccl"
	"github.com/ortrain/ortrain/internal/data"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/testenv"
	"github.com/ortrain/ortrain/ortrain"
)

// ddpEnv carries a ddpJob (JSON) to the processes mpirun starts from this
// test binary (see TestMain).
const ddpEnv = "ORTENGINE_DDP"

// ddpJob is one data-parallel training run of t5-tiny on the trainer
// fixture data, as the HF references make it.
type ddpJob struct {
	Args       map[string]any `json:"args"`
	LossKwargs bool           `json:"loss_kwargs"`
	Root       string         `json:"root"` // repository root
	Lib        string         `json:"lib"`  // ONNX Runtime
	Out        string         `json:"out"`  // output_dir
	Result     string         `json:"result"`
	KillAtStep int            `json:"kill_at_step"` // every process SIGKILLs itself after this step
	// Device runs the engine there ("standin": device memory as a GPU's);
	// NCCL averages the gradients over NCCL (the library
	// $ORTRAIN_NCCL_LIB names) instead of MPI.
	Device string `json:"device"`
	NCCL   bool   `json:"nccl"`
	// Timeout is $ORTRAIN_COLLECTIVE_TIMEOUT (default 60s).
	Timeout string `json:"timeout"`
}

// ddpResult is what process 0 reports.
type ddpResult struct {
	State       json.RawMessage    `json:"state"` // trainer_state.json after train()
	Final       map[string]float64 `json:"final"` // the evaluate() after train()
	GlobalStep  int                `json:"global_step"`
	Best        string             `json:"best_model_checkpoint"`
	TrainLoss   float64            `json:"training_loss"`
	Checkpoints []string           `json:"checkpoints"`
}

func ddpChild() int {
	if err := ddpRun(os.Getenv(ddpEnv)); err != nil {
		fmt.Fprintf(os.Stderr, "ddp process: %v\n", err)
		return 1
	}
	return 0
}

func ddpRun(spec string) error {
	var job ddpJob
	if err := json.Unmarshal([]byte(spec), &job); err != nil {
		return err
	}
	comm, err := mpi.Open(mpi.Options{})
	if err != nil {
		return err
	}
	rank, ranks := comm.Rank(), comm.Size()
	env, err := onnxrt.Open(job.Lib)
	if err != nil {
		return err
	}
	defer env.Close()
	a := ortrain.DefaultArguments()
	for k, v := range job.Args {
		switch k {
		case "dataloader_num_workers", "disable_tqdm", "remove_unused_columns", "train_sampling_strategy", "use_cpu":
			continue
		}
		if err := a.Set(k, v); err != nil {
			return err
		}
	}
	a.OutputDir, a.DoTrain = job.Out, true
	if err := a.Finalize(); err != nil {
		return err
	}
	modelDir := filepath.Join(job.Root, "testdata", "models", "t5-tiny")
	art := fmt.Sprintf("%s-artifacts-%d", job.Out, rank)
	if _, err := os.Stat(filepath.Join(art, "manifest.json")); err != nil {
		if _, err := artifacts.Build(artifacts.Config{
			Model: filepath.Join(modelDir, "model.onnx"), Out: art, LabelSmoothing: a.LabelSmoothingFactor,
			Encoder: filepath.Join(modelDir, "encoder_model.onnx"), Decoder: filepath.Join(modelDir, "decoder_model.onnx"),
			DecoderWithPast: filepath.Join(modelDir, "decoder_with_past_model.onnx"),
		}); err != nil {
			return err
		}
	}
	var dc DeviceComm
	if job.NCCL {
		dev, err := onnxrt.ParseDevice(job.Device)
		if err != nil {
			return err
		}
		c, err := nccl.Open(comm, dev, nccl.Options{})
		if err != nil {
			return err
		}
		defer c.Close()
		dc = c
	}
	eng, err := Open(art, env, Options{
		Session:  onnxrt.SessionOptions{IntraOpThreads: 1, Device: job.Device},
		Hyper:    Hyper{Beta1: a.AdamBeta1, Beta2: a.AdamBeta2, Eps: a.AdamEpsilon, WeightDecay: a.WeightDecay, MaxGradNorm: a.MaxGradNorm},
		ModelDir: modelDir, Comm: comm, DeviceComm: dc,
	})
	if err != nil {
		return err
	}
	defer eng.Close()
	train, err := readExamplesErr(filepath.Join(job.Root, "testdata", "trainer", "data", "train.jsonl"))
	if err != nil {
		return err
	}
	dev, err := readExamplesErr(filepath.Join(job.Root, "testdata", "trainer", "data", "eval.jsonl"))
	if err != nil {
		return err
	}
	trainer := &ortrain.Trainer{
		Args: a, Engine: eng, Comm: comm,
		TrainData: &Data{Dataset: train, Order: data.Order{BatchSize: a.PerDeviceTrainBatchSize, Rank: rank, Ranks: ranks}},
		EvalData:  &Data{Dataset: dev, Order: data.Order{BatchSize: a.PerDeviceEvalBatchSize, Rank: rank, Ranks: ranks}},
	}
	if !job.LossKwargs {
		trainer.LossScaling = ortrain.LossScalingMean
	}
	if job.KillAtStep > 0 {
		trainer.Callbacks = []ortrain.Callback{killAt{step: job.KillAtStep}}
	}
	if a.PredictWithGenerate {
		genBase, err := generate.LoadConfig(modelDir)
		if err != nil {
			return err
		}
		gen := &Generator{Env: env, Dir: art, Engine: eng, Config: genBase, Opts: ortdecoder.Options{IntraOpThreads: 1}}
		defer gen.Close()
		trainer.Generator = gen
		trainer.ComputeMetrics = ortrain.TextMetrics(idsToText, 0, false)
		trainer.MetricNames = ortrain.TextMetricNames
	}
	ctx := context.Background()
	res, err := trainer.Train(ctx)
	if err != nil {
		return err
	}
	st, err := trainer.State().MarshalHF()
	if err != nil {
		return err
	}
	final, err := trainer.Evaluate(ctx, trainer.EvalData, "eval")
	if err != nil {
		return err
	}
	if rank == 0 {
		if err := trainer.SaveModel(filepath.Join(job.Out, "final")); err != nil {
			return err
		}
		r := ddpResult{State: st, Final: map[string]float64{}, GlobalStep: res.GlobalStep, TrainLoss: res.TrainingLoss}
		if b := trainer.State().BestModelCheckpoint; b != nil {
			r.Best, _ = filepath.Rel(filepath.Dir(job.Out), *b)
		}
		for _, m := range final {
			r.Final[m.Key] = m.Value
		}
		entries, _ := os.ReadDir(job.Out)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "checkpoint-") {
				r.Checkpoints = append(r.Checkpoints, e.Name())
			}
		}
		b, _ := json.Marshal(r)
		if err := os.WriteFile(job.Result, b, 0o644); err != nil {
			return err
		}
	}
	return comm.Close()
}

// runDDP runs job as n processes under mpirun and returns process 0's
// result.
func runDDP(t *testing.T, job ddpJob, n int) ddpResult {
	t.Helper()
	code, out := startDDP(t, job, n)
	if code != 0 {
		t.Fatalf("mpirun -np %d: exit %d\n%s", n, code, out)
	}
	if job.Result == "" {
		job.Result = job.Out + ".result.json"
	}
	var r ddpResult
	b, err := os.ReadFile(job.Result)
	if err == nil {
		err = json.Unmarshal(b, &r)
	}
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return r
}

// startDDP runs job as n processes under mpirun and returns its exit
// status and output.
func startDDP(t *testing.T, job ddpJob, n int) (int, string) {
	t.Helper()
	job.Root, job.Lib = testenv.RepoRoot(t), testenv.ORTLibrary(t)
	if job.Result == "" {
		job.Result = job.Out + ".result.json"
	}
	spec, _ := json.Marshal(job)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := append(testenv.MPIRun(t, n), os.Args[0], "-test.run=^$")
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	timeout := job.Timeout
	if timeout == "" {
		timeout = "60s"
	}
	cmd.Env = append(os.Environ(), ddpEnv+"="+string(spec), "ORTRAIN_COLLECTIVE_TIMEOUT="+timeout)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("mpirun -np %d still running after 5 minutes:\n%s", n, out)
	}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatal(err)
		}
		return ee.ExitCode(), string(out)
	}
	return 0, string(out)
}

// logHistory reads the log_history of a trainer_state.json.
func logHistory(t *testing.T, state []byte) []map[string]json.RawMessage {
	t.Helper()
	var st struct {
		LogHistory []map[string]json.RawMessage `json:"log_history"`
	}
	if err := json.Unmarshal(state, &st); err != nil {
		t.Fatal(err)
	}
	return st.LogHistory
}

func asLogs(entry map[string]json.RawMessage) (ortrain.Logs, int) {
	var logs ortrain.Logs
	step := 0
	keys := make([]string, 0, len(entry))
	for k := range entry {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, ok := num(entry[k])
		switch {
		case k == "step":
			step = int(v)
		case ok:
			logs = append(logs, ortrain.Metric{Key: k, Value: v})
		}
	}
	return logs, step
}

// TestDDPMatchesHFTorchrun trains t5-tiny with 2 processes under mpirun
// and compares the whole log_history (loss, grad_norm, learning_rate,
// eval_loss within 1e-5 relative; epoch and total_flos exactly), the
// final evaluate(), train() output and the checkpoints on disk with HF
// Seq2SeqTrainer under torchrun --nproc_per_node 2 (gloo):
// testdata/trainer/ddp/*/scenario.json from scripts/refs/trainer_ddp_refs.py.
func TestDDPMatchesHFTorchrun(t *testing.T) {
	for _, name := range []string{"ddp_ga2", "ddp_ga2_ls", "ddp_generate", "ddp_tokens"} {
		t.Run(name, func(t *testing.T) {
			var sc hfScenario
			raw, err := os.ReadFile(testenv.Testdata(t, "trainer", "ddp", name, "scenario.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(raw, &sc); err != nil {
				t.Fatal(err)
			}
			r := runDDP(t, ddpJob{Args: sc.Arguments, LossKwargs: sc.ModelAcceptsLossKw, Out: filepath.Join(t.TempDir(), "out")}, 2)
			hist := logHistory(t, r.State)
			if len(hist) != len(sc.LogHistory) {
				t.Fatalf("%d log entries, HF %d", len(hist), len(sc.LogHistory))
			}
			worst := 0.0
			for i, want := range sc.LogHistory {
				got, step := asLogs(hist[i])
				worst = math.Max(worst, compareLogsTol(t, fmt.Sprintf("log_history[%d]", i), got, step, want, 1e-5))
			}
			t.Logf("%d log entries, largest relative difference %.2g", len(hist), worst)
			var final ortrain.Logs
			for k, v := range r.Final {
				final = append(final, ortrain.Metric{Key: k, Value: v})
			}
			compareLogsTol(t, "final evaluate", final, r.GlobalStep, sc.FinalEvaluate, 1e-5)
			if r.GlobalStep != sc.TrainOutput.GlobalStep || !relClose(r.TrainLoss, sc.TrainOutput.TrainingLoss, 1e-5) {
				t.Errorf("train output step %d loss %v, HF %d %v", r.GlobalStep, r.TrainLoss, sc.TrainOutput.GlobalStep, sc.TrainOutput.TrainingLoss)
			}
			var want []string
			for k := range sc.CheckpointsOnDisk {
				want = append(want, k)
			}
			sort.Strings(want)
			sort.Strings(r.Checkpoints)
			if fmt.Sprint(r.Checkpoints) != fmt.Sprint(want) {
				t.Errorf("checkpoints %v, HF %v", r.Checkpoints, want)
			}
			if wantBest := sc.BestModelCheckpoint; wantBest != nil && r.Best != *wantBest || wantBest == nil && r.Best != "" {
				t.Errorf("best_model_checkpoint %q, HF %v", r.Best, wantBest)
			}
		})
	}
}

func ddpArgs(t *testing.T, name string, set map[string]any) (map[string]any, bool) {
	t.Helper()
	var sc hfScenario
	raw, err := os.ReadFile(testenv.Testdata(t, "trainer", "ddp", name, "scenario.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &sc); err != nil {
		t.Fatal(err)
	}
	for k, v := range set {
		sc.Arguments[k] = v
	}
	return sc.Arguments, sc.ModelAcceptsLossKw
}

// withoutWallClock drops the wall-clock values of log entries, and
// train_loss, which HF averages over the steps trained by the run (those
// after the checkpoint, for a resumed run).
func withoutWallClock(hist []map[string]json.RawMessage) []map[string]json.RawMessage {
	for _, e := range hist {
		for k := range e {
			if strings.HasSuffix(k, "_runtime") || strings.HasSuffix(k, "_per_second") || k == "train_loss" {
				delete(e, k)
			}
		}
	}
	return hist
}

// HF's rule makes 2 processes with per-device batch B train as 1 process
// with batch 2B when the loss is token-weighted over the processes: with
// label smoothing, the LabelSmoother divides by num_items_in_batch (the
// window's label tokens over both processes), the loss is multiplied by
// the 2 processes and DDP averages the gradients, so each step's gradient,
// logged loss and eval loss are those of the 2B batch. (Without label
// smoothing T5 ignores num_items_in_batch: 2 processes then log and step
// the sum of their means, about twice one process's.) The steps compared
// see the same examples: 3 steps of 16 rows, 20 eval rows in batches of 5
// (10), no filler rows.
func TestDDPTwoProcessesEqualOneWithDoubleBatch(t *testing.T) {
	set := map[string]any{"max_steps": 3, "eval_steps": 3, "save_strategy": "no", "per_device_eval_batch_size": 5}
	args2, kw := ddpArgs(t, "ddp_ga2_ls", set)
	two := runDDP(t, ddpJob{Args: args2, LossKwargs: kw, Out: filepath.Join(t.TempDir(), "two")}, 2)
	set["per_device_train_batch_size"], set["per_device_eval_batch_size"] = 8, 10
	args1, _ := ddpArgs(t, "ddp_ga2_ls", set)
	one := runDDP(t, ddpJob{Args: args1, LossKwargs: kw, Out: filepath.Join(t.TempDir(), "one")}, 1)
	h2, h1 := logHistory(t, two.State), logHistory(t, one.State)
	if len(h2) != len(h1) || len(h1) < 4 {
		t.Fatalf("%d log entries with 2 processes, %d with one", len(h2), len(h1))
	}
	worst := 0.0
	for i := range h1 {
		for _, k := range []string{"loss", "grad_norm", "learning_rate", "eval_loss", "train_loss", "epoch"} {
			a, ok1 := num(h2[i][k])
			b, ok2 := num(h1[i][k])
			if ok1 != ok2 {
				t.Errorf("log_history[%d]: %s in one run only", i, k)
			}
			if !ok1 || !ok2 {
				continue
			}
			if b != 0 {
				worst = math.Max(worst, math.Abs(a-b)/math.Abs(b))
			}
			if !relClose(a, b, 1e-6) {
				t.Errorf("log_history[%d] %s: 2 processes %.9g, 1 process %.9g", i, k, a, b)
			}
		}
	}
	t.Logf("%d log entries, largest relative difference %.2g", len(h1), worst)
}

// Both processes killed after step 6 (checkpoint-4 on disk), then resumed
// from it: the log_history and the final weights are bit-identical to an
// uninterrupted 2-process run.
func TestDDPResumeAfterKillIsExact(t *testing.T) {
	args, kw := ddpArgs(t, "ddp_ga2", nil)
	dir := t.TempDir()
	whole := runDDP(t, ddpJob{Args: args, LossKwargs: kw, Out: filepath.Join(dir, "whole")}, 2)
	cut := ddpJob{Args: args, LossKwargs: kw, Out: filepath.Join(dir, "cut"), KillAtStep: 6}
	if code, out := startDDP(t, cut, 2); code == 0 {
		t.Fatalf("the killed run exited 0:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(cut.Out, "checkpoint-4", "model.safetensors")); err != nil {
		t.Fatalf("no checkpoint-4 to resume from: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cut.Out, "checkpoint-8")); err == nil {
		t.Fatal("the run was not cut short")
	}
	resumed := map[string]any{"resume_from_checkpoint": "true"}
	for k, v := range args {
		resumed[k] = v
	}
	cut.Args, cut.KillAtStep = resumed, 0
	got := runDDP(t, cut, 2)
	a, _ := json.Marshal(withoutWallClock(logHistory(t, whole.State)))
	b, _ := json.Marshal(withoutWallClock(logHistory(t, got.State)))
	if string(a) != string(b) {
		t.Errorf("log_history after resume:\n%s\nuninterrupted:\n%s", b, a)
	}
	for _, f := range []string{"final/model.safetensors", "checkpoint-8/model.safetensors", "checkpoint-8/optimizer.safetensors"} {
		x, err1 := os.ReadFile(filepath.Join(dir, "whole", f))
		y, err2 := os.ReadFile(filepath.Join(dir, "cut", f))
		if err1 != nil || err2 != nil {
			t.Errorf("%s: %v %v", f, err1, err2)
			continue
		}
		if string(x) != string(y) {
			t.Errorf("%s differs from the uninterrupted run's", f)
		}
	}
	if got.GlobalStep != whole.GlobalStep {
		t.Errorf("resumed run ends at step %d, uninterrupted %d", got.GlobalStep, whole.GlobalStep)
	}
}
