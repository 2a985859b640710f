package ortrain

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/testenv"
)

// TestConsoleFormatsMatchHF compares log lines with what HF's
// ProgressCallback.on_log writes and metric blocks with
// Trainer.log_metrics' output (scripts/refs/trainer_basic_refs.py).
func TestConsoleFormatsMatchHF(t *testing.T) {
	data, err := os.ReadFile(testenv.Testdata(t, "trainer", "basic_refs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Console struct {
			Logs          []json.RawMessage `json:"logs"`
			ProgressLines []string          `json:"progress_lines"`
			LogMetrics    []struct {
				Split   string          `json:"split"`
				Metrics json.RawMessage `json:"metrics"`
				Text    string          `json:"text"`
			} `json:"log_metrics"`
		} `json:"console"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	c := doc.Console
	if len(c.Logs) == 0 || len(c.Logs) != len(c.ProgressLines) {
		t.Fatal("no console references")
	}
	for i, raw := range c.Logs {
		logs := orderedLogs(t, raw)
		if got := FormatLogs(logs); got != c.ProgressLines[i] {
			t.Errorf("log line:\n got %s\nwant %s", got, c.ProgressLines[i])
		}
	}
	for _, b := range c.LogMetrics {
		if got := FormatMetrics(b.Split, orderedLogs(t, b.Metrics)); got+"\n" != b.Text && got != b.Text {
			t.Errorf("log_metrics:\n got %q\nwant %q", got, b.Text)
		}
	}
}

// orderedLogs decodes [[key, value], ...] (the reference keeps dict order).
func orderedLogs(t *testing.T, raw json.RawMessage) Logs {
	t.Helper()
	var pairs [][2]any
	if err := json.Unmarshal(raw, &pairs); err != nil {
		t.Fatal(err)
	}
	var out Logs
	for _, p := range pairs {
		f, ok := p[1].(float64)
		if !ok {
			f = math.NaN()
		}
		out = append(out, Metric{p[0].(string), f})
	}
	return out
}

// TestRunWritesHFOutputs runs train + eval + predict with a fake engine
// and checks the files HF's example scripts leave in output_dir, the
// JSON-lines log, the TensorBoard file and the plot.
func TestRunWritesHFOutputs(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	a := resumeArgs(out)
	a.DoEval, a.DoPredict, a.PredictWithGenerate = true, true, true
	a.LoadBestModelAtEnd = true
	a.ReportTo = []string{"jsonl", "tensorboard"}
	if err := a.Finalize(); err != nil {
		t.Fatal(err)
	}
	tr, _ := newResumeTrainer(a, nil)
	tr.Generator = fakeGenerator{}
	tr.ComputeMetrics = func(p, l [][]int) (Logs, error) { return Logs{{"bleu", float64(len(p))}}, nil }
	tr.MetricNames = []string{"bleu"}
	tr.Clock = fixedClock()
	var console strings.Builder
	tr.Callbacks = []Callback{&ConsoleCallback{Out: &console}} // jsonl and tensorboard come from report_to
	os.MkdirAll(out, 0o755)
	res, err := tr.Run(context.Background(), RunOptions{TestData: newFakeData(2, 3, 9, false), Decode: func(ids []int) string { return " tok " }, Out: &console})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if res.Train == nil || res.Eval == nil || res.Predict == nil {
		t.Fatalf("incomplete run: %+v", res)
	}
	for _, f := range []string{TrainResultsName, EvalResultsName, PredictResultName, AllResultsName, TrainerStateName, TrainingArgsName, "model.safetensors", PredictionsName, PlotName} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("missing %s", f)
		}
	}
	var all map[string]any
	b, _ := os.ReadFile(filepath.Join(out, AllResultsName))
	if err := json.Unmarshal(b, &all); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"train_loss", "train_runtime", "train_samples", "eval_loss", "eval_bleu", "eval_samples", "predict_bleu", "predict_samples", "epoch"} {
		if _, ok := all[k]; !ok {
			t.Errorf("all_results.json lacks %s", k)
		}
	}
	if !strings.Contains(string(b), `"train_samples": 39`) {
		t.Errorf("train_samples not an integer: %s", b)
	}
	preds, _ := os.ReadFile(filepath.Join(out, PredictionsName))
	if string(preds) != "tok\ntok\ntok\ntok\ntok\ntok" {
		t.Errorf("generated_predictions.txt = %q", preds)
	}
	st, err := LoadTrainerState(filepath.Join(out, TrainerStateName))
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(filepath.Join(out, LogHistoryJSONL))
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); n++ {
	}
	f.Close()
	// jsonl also holds the final evaluate(), logged after trainer_state.json
	if n != len(st.LogHistory)+1 {
		t.Errorf("%d jsonl lines for %d log entries + 1", n, len(st.LogHistory))
	}
	events, _ := filepath.Glob(filepath.Join(out, "runs", "*", "events.out.tfevents.*"))
	if len(events) != 1 {
		t.Fatalf("event files: %v", events)
	}
	if info, _ := os.Stat(events[0]); info.Size() < 1000 {
		t.Errorf("event file too small: %d", info.Size())
	}
	for _, want := range []string{"{'loss': '", "'eval_bleu': '", "***** train metrics *****", "***** eval metrics *****", "***** predict metrics *****"} {
		if !strings.Contains(console.String(), want) {
			t.Errorf("console lacks %q", want)
		}
	}
	raw, _ := os.ReadFile(filepath.Join(out, TrainerStateName))
	if !strings.HasSuffix(string(raw), "}\n") || !strings.Contains(string(raw), "\n  \"best_global_step\": ") {
		t.Errorf("trainer_state.json layout: %.200s", raw)
	}
}

// TestProgressBarOnlyWhenAsked: with Progress the console keeps a bar on
// the last line (redrawn after every step and around log lines); without
// it, only the log lines are written.
func TestProgressBarOnlyWhenAsked(t *testing.T) {
	for _, progress := range []bool{false, true} {
		a := resumeArgs(filepath.Join(t.TempDir(), "out"))
		a.EvalStrategy = StrategyNo
		a.SaveStrategy = StrategyNo
		a.EarlyStoppingPatience = 0
		a.LoggingSteps = 4
		if err := a.Finalize(); err != nil {
			t.Fatal(err)
		}
		tr, _ := newResumeTrainer(a, nil)
		tr.EvalData = nil
		var out strings.Builder
		tr.Callbacks = []Callback{&ConsoleCallback{Out: &out, Progress: progress, Clock: fixedClock()}}
		if _, err := tr.Train(context.Background()); err != nil {
			t.Fatal(err)
		}
		s := out.String()
		lines := strings.Count(s, "{'loss'")
		if lines != 3 {
			t.Errorf("progress=%v: %d loss lines", progress, lines)
		}
		hasBar := strings.Contains(s, "\r") && strings.Contains(s, "| 12/12 [")
		if hasBar != progress {
			t.Errorf("progress=%v: bar drawn %v:\n%q", progress, hasBar, s)
		}
	}
}

// TestPlotShowsGradNorm: the plot has a gradient-norm panel with every
// finite grad_norm of the training logs at its step.
func TestPlotShowsGradNorm(t *testing.T) {
	hist := []LogEntry{
		{Logs{{"loss", 2}, {"grad_norm", 1.5}, {"learning_rate", 1e-3}, {"epoch", 0.1}}, 1},
		{Logs{{"loss", 1.8}, {"grad_norm", math.Inf(1)}, {"learning_rate", 1e-3}, {"epoch", 0.2}}, 2},
		{Logs{{"loss", 1.5}, {"grad_norm", 0.75}, {"learning_rate", 5e-4}, {"epoch", 0.3}}, 3},
		{Logs{{"eval_loss", 1.6}, {"epoch", 0.3}}, 3},
	}
	var titles []string
	for _, p := range PlotPanels(hist) {
		titles = append(titles, p.Title)
		if strings.HasPrefix(p.Title, "gradient norm") {
			s := p.Series[0]
			if s.Name != "grad_norm" || fmt.Sprint(s.X, s.Y) != "[1 3] [1.5 0.75]" {
				t.Errorf("grad_norm series %v %v", s.X, s.Y)
			}
		}
	}
	if fmt.Sprint(titles) != "[loss gradient norm (before clipping) learning rate]" {
		t.Errorf("panels %v", titles)
	}
	if err := WritePlot(hist, filepath.Join(t.TempDir(), "p.png")); err != nil {
		t.Fatal(err)
	}
}
