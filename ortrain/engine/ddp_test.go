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

	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/collective/mpi"
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
}

// ddpResult is what process 0 reports.
type ddpResult struct {
	State       json.RawMessage    `json:"state"` // trainer_state.json after train()
	Final       map[string]float64 `json:"final"` // the evaluate() after train()
	GlobalStep  int                `json:"global_step"`
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
	eng, err := Open(art, env, Options{
		Session:  onnxrt.SessionOptions{IntraOpThreads: 1},
		Hyper:    Hyper{Beta1: a.AdamBeta1, Beta2: a.AdamBeta2, Eps: a.AdamEpsilon, WeightDecay: a.WeightDecay, MaxGradNorm: a.MaxGradNorm},
		ModelDir: modelDir, Comm: comm,
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
	job.Root, job.Lib = testenv.RepoRoot(t), testenv.ORTLibrary(t)
	if job.Result == "" {
		job.Result = job.Out + ".result.json"
	}
	spec, _ := json.Marshal(job)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := append(testenv.MPIRun(t, n), os.Args[0], "-test.run=^$")
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append(os.Environ(), ddpEnv+"="+string(spec), "ORTRAIN_COLLECTIVE_TIMEOUT=60s")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mpirun -np %d: %v\n%s", n, err, out)
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
	for _, name := range []string{"ddp_ga2", "ddp_ga2_ls"} {
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
		})
	}
}
