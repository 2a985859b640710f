package engine

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/generate"
	"github.com/ortrain/ortrain/generate/ortdecoder"
	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/data"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/testenv"
	"github.com/ortrain/ortrain/ortrain"
)

type hfScenario struct {
	Arguments           map[string]any               `json:"arguments"`
	ModelAcceptsLossKw  bool                         `json:"model_accepts_loss_kwargs"`
	CheckpointsOnDisk   map[string][]string          `json:"checkpoints_on_disk"`
	BestModelCheckpoint *string                      `json:"best_model_checkpoint"`
	BestMetric          *float64                     `json:"best_metric"`
	LogHistory          []map[string]json.RawMessage `json:"log_history"`
	FinalEvaluate       map[string]json.RawMessage   `json:"final_evaluate"`
	TrainOutput         struct {
		GlobalStep   int     `json:"global_step"`
		TrainingLoss float64 `json:"training_loss"`
	} `json:"train_output"`
}

func readExamples(t *testing.T, path string) *data.Dataset {
	t.Helper()
	out, err := readExamplesErr(path)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// readExamplesErr reads pre-tokenized examples ({"input_ids", "labels"}
// per line).
func readExamplesErr(path string) (*data.Dataset, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var src, labels [][]int32
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r struct {
			InputIDs []int32 `json:"input_ids"`
			Labels   []int32 `json:"labels"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		src, labels = append(src, r.InputIDs), append(labels, r.Labels)
	}
	return data.NewDataset(src, labels), sc.Err()
}

// idsToText is the reference script's tokenizer-free decoding: ids other
// than pad/eos become "w<id>", stopping at the first eos.
func idsToText(ids []int) string {
	var words []string
	for _, v := range ids {
		if v == 1 {
			break
		}
		if v == 0 || v == -100 {
			continue
		}
		words = append(words, fmt.Sprintf("w%d", v))
	}
	return strings.Join(words, " ")
}

func num(raw json.RawMessage) (float64, bool) {
	var v *float64
	if json.Unmarshal(raw, &v) != nil || v == nil {
		return 0, false
	}
	return *v, true
}

func relClose(a, b, tol float64) bool {
	return math.Abs(a-b) <= tol*math.Max(math.Abs(b), 1e-12)
}

// compareLogs checks every numeric value HF logged: training loss,
// grad_norm, learning_rate, eval_loss, train_loss within 1e-4 relative,
// epoch, step, total_flos and generation metrics exactly; wall-clock
// values (null in the reference) are not compared.
func compareLogs(t *testing.T, what string, got ortrain.Logs, step int, want map[string]json.RawMessage) (worst float64) {
	t.Helper()
	return compareLogsTol(t, what, got, step, want, 1e-4)
}

// compareLogsTol is compareLogs with tol for the losses, grad_norm and
// learning_rate.
func compareLogsTol(t *testing.T, what string, got ortrain.Logs, step int, want map[string]json.RawMessage, lossTol float64) (worst float64) {
	t.Helper()
	for k, raw := range want {
		w, ok := num(raw)
		if !ok {
			continue
		}
		if k == "step" {
			if step != int(w) {
				t.Errorf("%s: step %d, HF %v", what, step, w)
			}
			continue
		}
		g, ok := got.Get(k)
		if !ok {
			t.Errorf("%s: %s missing (have %v)", what, k, got.Keys())
			continue
		}
		if strings.HasSuffix(k, "_tokens_per_second") {
			continue // wall-clock: present, value not comparable
		}
		tol := lossTol
		switch {
		case k == "epoch" || k == "total_flos" || k == "num_input_tokens_seen" || strings.HasPrefix(k, "eval_bleu") || strings.HasPrefix(k, "eval_rouge") || k == "eval_gen_len":
			tol = 1e-12
		}
		if w != 0 {
			worst = math.Max(worst, math.Abs(g-w)/math.Abs(w))
		}
		if !relClose(g, w, tol) {
			t.Errorf("%s: %s = %.10g, HF %.10g (rel %.2g)", what, k, g, w, math.Abs(g-w)/math.Abs(w))
		} else if os.Getenv("ORTRAIN_SHOW_DIFFS") != "" && w != 0 {
			t.Logf("%s: %s rel %.2g", what, k, math.Abs(g-w)/math.Abs(w))
		}
	}
	for _, m := range got {
		if _, ok := want[m.Key]; !ok && m.Key != "total_flos" {
			t.Errorf("%s: logged %s, which HF does not log", what, m.Key)
		}
	}
	return worst
}

// TestMatchesHFSeq2SeqTrainer trains t5-tiny through ONNX Runtime with the
// arguments of every scenario of scripts/refs/trainer_refs.py and compares
// the whole log_history (loss, grad_norm, learning_rate at every logged
// step, eval_loss, BLEU/ROUGE/gen_len, final train metrics), the
// checkpoints left on disk, best_model_checkpoint / best_metric and the
// final evaluate() with the real Seq2SeqTrainer run.
func TestMatchesHFSeq2SeqTrainer(t *testing.T) {
	env, err := onnxrt.Open(testenv.ORTLibrary(t))
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	modelDir := testenv.Testdata(t, "models", "t5-tiny")
	arts := map[float64]string{}
	artFor := func(ls float64) string {
		if d, ok := arts[ls]; ok {
			return d
		}
		d := t.TempDir()
		if _, err := artifacts.Build(artifacts.Config{
			Model: filepath.Join(modelDir, "model.onnx"), Out: d, LabelSmoothing: ls,
			Encoder: filepath.Join(modelDir, "encoder_model.onnx"), Decoder: filepath.Join(modelDir, "decoder_model.onnx"),
			DecoderWithPast: filepath.Join(modelDir, "decoder_with_past_model.onnx"),
		}); err != nil {
			t.Fatal(err)
		}
		arts[ls] = d
		return d
	}
	train := readExamples(t, testenv.Testdata(t, "trainer", "data", "train.jsonl"))
	dev := readExamples(t, testenv.Testdata(t, "trainer", "data", "eval.jsonl"))
	genBase, err := generate.LoadConfig(modelDir)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"steps_ga1", "steps_ga4", "steps_ga4_mean", "steps_ga4_ls", "steps_adafactor", "steps_tokens_seen", "best_limit1", "best_limit2", "generate_metrics"}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			var sc hfScenario
			raw, err := os.ReadFile(testenv.Testdata(t, "trainer", "hf", name, "scenario.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(raw, &sc); err != nil {
				t.Fatal(err)
			}
			runDir := t.TempDir()
			out := filepath.Join(runDir, "out")
			a := ortrain.DefaultArguments()
			for k, v := range sc.Arguments {
				switch k {
				case "dataloader_num_workers", "disable_tqdm", "remove_unused_columns", "train_sampling_strategy", "use_cpu":
					continue // torch/dataloader settings; ortrain reads data in order
				}
				if err := a.Set(k, v); err != nil {
					t.Fatal(err)
				}
			}
			a.OutputDir = out
			a.DoTrain = true
			if err := a.Finalize(); err != nil {
				t.Fatal(err)
			}
			art := artFor(a.LabelSmoothingFactor)
			eng, err := Open(art, env, Options{
				Session:   onnxrt.SessionOptions{IntraOpThreads: 1},
				Hyper:     Hyper{Beta1: a.AdamBeta1, Beta2: a.AdamBeta2, Eps: a.AdamEpsilon, WeightDecay: a.WeightDecay, MaxGradNorm: a.MaxGradNorm},
				ModelDir:  modelDir,
				Optimizer: artifactsOptimizer(a.Optim),
			})
			if err != nil {
				t.Fatal(err)
			}
			defer eng.Close()
			trainer := &ortrain.Trainer{
				Args:      a,
				Engine:    eng,
				TrainData: &Data{Dataset: train, Order: data.Order{BatchSize: a.PerDeviceTrainBatchSize}},
				EvalData:  &Data{Dataset: dev, Order: data.Order{BatchSize: a.PerDeviceEvalBatchSize}},
			}
			if !sc.ModelAcceptsLossKw {
				trainer.LossScaling = ortrain.LossScalingMean
			}
			if a.PredictWithGenerate {
				gen := &Generator{Env: env, Dir: art, Engine: eng, Config: genBase, Opts: ortdecoder.Options{IntraOpThreads: 1}}
				defer gen.Close()
				trainer.Generator = gen
				trainer.ComputeMetrics = ortrain.TextMetrics(idsToText, 0, false)
				trainer.MetricNames = ortrain.TextMetricNames
			}
			res, err := trainer.Train(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			final, err := trainer.Evaluate(context.Background(), trainer.EvalData, "eval")
			if err != nil {
				t.Fatal(err)
			}
			hist := trainer.State().LogHistory
			// the final evaluate() is logged after the reference's saved state
			if len(hist)-1 != len(sc.LogHistory) {
				t.Fatalf("%d log entries, HF %d", len(hist)-1, len(sc.LogHistory))
			}
			worst := 0.0
			for i, want := range sc.LogHistory {
				worst = math.Max(worst, compareLogs(t, fmt.Sprintf("log_history[%d]", i), hist[i].Logs, hist[i].Step, want))
			}
			t.Logf("%d log entries, largest relative difference %.2g", len(sc.LogHistory), worst)
			compareLogs(t, "final evaluate", final, trainer.State().GlobalStep, sc.FinalEvaluate)
			if res.GlobalStep != sc.TrainOutput.GlobalStep || !relClose(res.TrainingLoss, sc.TrainOutput.TrainingLoss, 1e-4) {
				t.Errorf("train output step %d loss %v, HF %d %v", res.GlobalStep, res.TrainingLoss, sc.TrainOutput.GlobalStep, sc.TrainOutput.TrainingLoss)
			}
			var gotCk, wantCk []string
			entries, _ := os.ReadDir(out)
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), "checkpoint-") {
					gotCk = append(gotCk, e.Name())
				}
			}
			for k := range sc.CheckpointsOnDisk {
				wantCk = append(wantCk, k)
			}
			sort.Strings(gotCk)
			sort.Strings(wantCk)
			if fmt.Sprint(gotCk) != fmt.Sprint(wantCk) {
				t.Errorf("checkpoints %v, HF %v", gotCk, wantCk)
			}
			st := trainer.State()
			gotBest := ""
			if st.BestModelCheckpoint != nil {
				gotBest, _ = filepath.Rel(runDir, *st.BestModelCheckpoint)
			}
			if sc.BestModelCheckpoint != nil && gotBest != *sc.BestModelCheckpoint || sc.BestModelCheckpoint == nil && gotBest != "" {
				t.Errorf("best_model_checkpoint %q, HF %v", gotBest, sc.BestModelCheckpoint)
			}
			if (st.BestMetric == nil) != (sc.BestMetric == nil) || st.BestMetric != nil && !relClose(*st.BestMetric, *sc.BestMetric, 1e-4) {
				t.Errorf("best_metric %v, HF %v", st.BestMetric, sc.BestMetric)
			}
			compareStateFile(t, st, runDir, name)
		})
	}
}

// TestExportedModelGeneratesLikeTheTrainer trains t5-tiny a few steps,
// exports the inference graphs with the trained weights and checks that
// `ortrain predict`'s decoder over the exported folder (KV cache) produces
// exactly what the trainer's own generator (artifact graphs fed with the
// live parameters) produces, and differs from the untrained model.
func TestExportedModelGeneratesLikeTheTrainer(t *testing.T) {
	env, err := onnxrt.Open(testenv.ORTLibrary(t))
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	modelDir := testenv.Testdata(t, "models", "t5-tiny")
	art := t.TempDir()
	if _, err := artifacts.Build(artifacts.Config{
		Model: filepath.Join(modelDir, "model.onnx"), Out: art,
		Encoder: filepath.Join(modelDir, "encoder_model.onnx"), Decoder: filepath.Join(modelDir, "decoder_model.onnx"),
		DecoderWithPast: filepath.Join(modelDir, "decoder_with_past_model.onnx"),
	}); err != nil {
		t.Fatal(err)
	}
	eng, err := Open(art, env, Options{Session: onnxrt.SessionOptions{IntraOpThreads: 1}, ModelDir: modelDir})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	train := readExamples(t, testenv.Testdata(t, "trainer", "data", "train.jsonl"))
	a := ortrain.DefaultArguments()
	a.OutputDir = filepath.Join(t.TempDir(), "out")
	a.DoTrain = true
	a.MaxSteps = 6
	a.LearningRate = 1e-2
	a.SaveStrategy = ortrain.StrategyNo
	if err := a.Finalize(); err != nil {
		t.Fatal(err)
	}
	trainer := &ortrain.Trainer{Args: a, Engine: eng, TrainData: &Data{Dataset: train, Order: data.Order{BatchSize: 8}}}
	if _, err := trainer.Train(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := trainer.SaveModel(out); err != nil {
		t.Fatal(err)
	}
	cfg, err := generate.LoadConfig(modelDir)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxLength = 16
	batch := data.Collator{}.Collate(train, []int{0, 1, 2, 3, 4, 5})
	live := &Generator{Env: env, Dir: art, Engine: eng, Config: cfg, Opts: ortdecoder.Options{IntraOpThreads: 1}}
	defer live.Close()
	want, err := live.Generate(context.Background(), batch, 16, 2)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ortdecoder.OpenModel(env, out, ortdecoder.OpenOptions{Options: ortdecoder.Options{IntraOpThreads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	cfg.NumBeams = 2
	got, err := generate.Generate(context.Background(), m, batch.SourceIDs(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if m.Kind != "kv" || fmt.Sprint(got.Sequences) != fmt.Sprint(want) {
		t.Fatalf("exported (%s) %v\ntrainer %v", m.Kind, got.Sequences, want)
	}
	orig, err := ortdecoder.OpenModel(env, modelDir, ortdecoder.OpenOptions{Options: ortdecoder.Options{IntraOpThreads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	before, err := generate.Generate(context.Background(), orig, batch.SourceIDs(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(before.Sequences) == fmt.Sprint(want) {
		t.Fatal("training changed nothing: the comparison is blind")
	}
	// The exported forward graph carries the same weights: the mean
	// cross-entropy of its logits equals the trainer's eval loss.
	sess, err := env.NewSession(filepath.Join(out, "model.onnx"), onnxrt.SessionOptions{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	in := map[string]*onnxrt.Value{}
	rows, sl, tl := int64(batch.Rows), int64(batch.SourceLen), int64(batch.TargetLen)
	for name, v := range map[string][]int64{"input_ids": batch.InputIDs, "attention_mask": batch.AttentionMask,
		"decoder_input_ids": batch.DecoderInputIDs, "decoder_attention_mask": batch.DecoderMask()} {
		shape := []int64{rows, tl}
		if name == "input_ids" || name == "attention_mask" {
			shape = []int64{rows, sl}
		}
		if in[name], err = onnxrt.NewTensor(shape, v); err != nil {
			t.Fatal(err)
		}
		defer in[name].Close()
	}
	outs, err := sess.Run(in, []string{"logits"})
	if err != nil {
		t.Fatal(err)
	}
	logits, _ := outs["logits"].Float32s()
	vocab := len(logits) / int(rows*tl)
	var sum float64
	n := 0
	for i, lab := range batch.Labels {
		if lab == -100 {
			continue
		}
		row := logits[i*vocab : (i+1)*vocab]
		mx := math.Inf(-1)
		for _, x := range row {
			mx = math.Max(mx, float64(x))
		}
		z := 0.0
		for _, x := range row {
			z += math.Exp(float64(x) - mx)
		}
		sum += math.Log(z) + mx - float64(row[lab])
		n++
	}
	evalLoss, err := eng.EvalLoss(context.Background(), batch)
	if err != nil {
		t.Fatal(err)
	}
	if !relClose(sum/float64(n), evalLoss, 1e-5) {
		t.Errorf("exported model.onnx loss %v, trainer eval loss %v", sum/float64(n), evalLoss)
	}
	for _, f := range []string{"model.onnx", "model.safetensors", "config.json", "training_args.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("missing %s", f)
		}
	}
}

// compareStateFile checks trainer_state.json (as Trainer.save_state writes
// it after train()) against HF's: the same keys, the same values outside
// log_history (best_metric and total_flos numerically), the same number of
// log entries.
func compareStateFile(t *testing.T, st *ortrain.TrainerState, runDir, name string) {
	t.Helper()
	// the final evaluate() came after save_state in the reference
	saved := *st
	saved.LogHistory = st.LogHistory[:len(st.LogHistory)-1]
	if saved.BestModelCheckpoint != nil {
		rel, _ := filepath.Rel(runDir, *saved.BestModelCheckpoint)
		saved.BestModelCheckpoint = &rel
	}
	raw, err := saved.MarshalHF()
	if err != nil {
		t.Fatal(err)
	}
	var got, want map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	ref, err := os.ReadFile(testenv.Testdata(t, "trainer", "hf", name, "trainer_state.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(ref, &want); err != nil {
		t.Fatal(err)
	}
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("trainer_state.json lacks %q", k)
		case k == "log_history":
			if len(g.([]any)) != len(w.([]any)) {
				t.Errorf("log_history: %d entries, HF %d", len(g.([]any)), len(w.([]any)))
			}
		case k == "best_metric" || k == "total_flos":
			if (g == nil) != (w == nil) || g != nil && !relClose(g.(float64), w.(float64), 1e-4) {
				t.Errorf("%s %v, HF %v", k, g, w)
			}
		default:
			if fmt.Sprint(g) != fmt.Sprint(w) {
				t.Errorf("trainer_state.json %s = %v, HF %v", k, g, w)
			}
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("trainer_state.json has %q, HF has not", k)
		}
	}
}
