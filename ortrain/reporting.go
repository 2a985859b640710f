package ortrain

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ortrain/ortrain/internal/progress"
	"github.com/ortrain/ortrain/internal/pyjson"
	"github.com/ortrain/ortrain/internal/report"
)

// pyG formats like Python's f"{v:.4g}".
func pyG(v float64) string {
	switch {
	case math.IsNaN(v):
		return "nan"
	case math.IsInf(v, 1):
		return "inf"
	case math.IsInf(v, -1):
		return "-inf"
	}
	return fmt.Sprintf("%.4g", v)
}

// FormatLogs renders logs as HF's ProgressCallback.on_log prints them:
// str() of a dict whose floats are formatted with .4g, without total_flos.
func FormatLogs(logs Logs) string {
	var b strings.Builder
	b.WriteByte('{')
	first := true
	for _, m := range logs {
		if m.Key == "total_flos" {
			continue
		}
		if !first {
			b.WriteString(", ")
		}
		first = false
		fmt.Fprintf(&b, "'%s': '%s'", m.Key, pyG(m.Value))
	}
	b.WriteByte('}')
	return b.String()
}

// ConsoleCallback prints every log line like HF's ProgressCallback and,
// when Progress is set (a terminal), keeps a progress bar of the
// optimizer steps on the last line.
type ConsoleCallback struct {
	NopCallback
	Out      io.Writer
	Progress bool
	Clock    func() time.Time
	bar      progress.Bar
}

func (c *ConsoleCallback) drawBar(s *TrainerState) {
	if !c.Progress || s.MaxSteps <= 0 {
		return
	}
	c.bar.Out, c.bar.Total, c.bar.Clock = c.Out, s.MaxSteps, c.Clock
	c.bar.Draw(s.GlobalStep)
}

func (c *ConsoleCallback) OnTrainBegin(e *Event) error {
	c.bar.Clock = c.Clock
	c.bar.Start()
	c.drawBar(e.State)
	return nil
}

func (c *ConsoleCallback) OnStepEnd(e *Event) error {
	c.drawBar(e.State)
	return nil
}

func (c *ConsoleCallback) OnLog(e *Event) error {
	c.bar.Clear()
	fmt.Fprintln(c.Out, FormatLogs(e.Logs))
	c.drawBar(e.State)
	return nil
}

func (c *ConsoleCallback) OnTrainEnd(e *Event) error {
	c.bar.Finish()
	return nil
}

// reporter is a report_to integration: a callback holding a file open.
type reporter interface {
	Callback
	Close() error
}

// userCallbacks are the report_to integrations (made on first use, as HF's
// get_reporting_integration_callbacks does at Trainer creation) followed by
// Callbacks.
func (t *Trainer) userCallbacks() []Callback {
	if t.reporters == nil {
		t.reporters = []reporter{}
		for _, r := range t.Args.ReportTo {
			if !t.isMain() {
				break // process 0 reports for all
			}
			switch r {
			case "jsonl":
				// resuming continues the file of the interrupted run
				t.reporters = append(t.reporters, &JSONLCallback{Path: filepath.Join(t.Args.OutputDir, LogHistoryJSONL), Append: t.Args.ResumeFromCheckpoint != ""})
			case "tensorboard":
				t.reporters = append(t.reporters, &TensorBoardCallback{})
			case "mlflow":
				t.reporters = append(t.reporters, &MLflowCallback{Warn: t.Warn})
			}
		}
	}
	out := make([]Callback, 0, len(t.reporters)+len(t.Callbacks))
	for _, r := range t.reporters {
		out = append(out, r)
	}
	return append(out, t.Callbacks...)
}

// Close closes the report_to integrations' files.
func (t *Trainer) Close() error {
	var errs []error
	for _, r := range t.reporters {
		errs = append(errs, r.Close())
	}
	t.reporters = nil
	return errors.Join(errs...)
}

// JSONLCallback appends every log_history entry to a JSON-lines file
// ({"step": N, ...logs}, sorted keys, Python number forms).
type JSONLCallback struct {
	NopCallback
	Path string
	// Append keeps earlier lines (resuming); otherwise the file starts empty.
	Append bool
	f      *os.File
}

func (j *JSONLCallback) OnTrainBegin(e *Event) error {
	if j.f != nil {
		return nil
	}
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if j.Append {
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	f, err := os.OpenFile(j.Path, flags, 0o644)
	if err != nil {
		return err
	}
	j.f = f
	return nil
}

func (j *JSONLCallback) OnLog(e *Event) error {
	if j.f == nil {
		if err := j.OnTrainBegin(e); err != nil {
			return err
		}
	}
	m := e.Logs.toMap()
	m["step"] = e.State.GlobalStep
	b, err := pyjson.Marshal(m, 0)
	if err != nil {
		return err
	}
	_, err = j.f.Write(append(b, '\n'))
	return err
}

// Close closes the file.
func (j *JSONLCallback) Close() error {
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}

// TensorBoardCallback is HF's TensorBoardCallback: every numeric log value
// becomes a scalar at the global step, keys rewritten as rewrite_logs does
// (eval_x -> eval/x, test_x -> test/x, others train/x), in
// output_dir/runs/<Mon02_15-04-05>_<host>.
type TensorBoardCallback struct {
	NopCallback
	Dir   string // default output_dir/runs/<time>_<host>
	Clock func() time.Time
	w     *report.EventWriter
}

// RewriteTag is transformers' rewrite_logs for one key.
func RewriteTag(k string) string {
	switch {
	case strings.HasPrefix(k, "eval_"):
		return "eval/" + k[len("eval_"):]
	case strings.HasPrefix(k, "test_"):
		return "test/" + k[len("test_"):]
	}
	return "train/" + k
}

func (tb *TensorBoardCallback) OnTrainBegin(e *Event) error {
	if tb.w != nil {
		return nil
	}
	dir := tb.Dir
	if dir == "" {
		host, _ := os.Hostname()
		now := time.Now
		if tb.Clock != nil {
			now = tb.Clock
		}
		dir = filepath.Join(e.Args.OutputDir, "runs", now().Format("Jan02_15-04-05")+"_"+host)
		tb.Dir = dir
	}
	w, err := report.NewEventWriter(dir, tb.Clock)
	if err != nil {
		return fmt.Errorf("tensorboard: %w", err)
	}
	tb.w = w
	return nil
}

func (tb *TensorBoardCallback) OnLog(e *Event) error {
	if tb.w == nil {
		if err := tb.OnTrainBegin(e); err != nil {
			return err
		}
	}
	for _, m := range e.Logs {
		if err := tb.w.AddScalar(RewriteTag(m.Key), m.Value, int64(e.State.GlobalStep)); err != nil {
			return err
		}
	}
	return tb.w.Flush()
}

// OnTrainEnd flushes; the file stays open for the evaluations that follow
// training (call Close at the end).
func (tb *TensorBoardCallback) OnTrainEnd(e *Event) error {
	if tb.w == nil {
		return nil
	}
	return tb.w.Flush()
}

// Close closes the event file.
func (tb *TensorBoardCallback) Close() error {
	if tb.w == nil {
		return nil
	}
	err := tb.w.Close()
	tb.w = nil
	return err
}

// PlotPanels turns log_history into plot panels: training loss with
// eval_loss, the evaluation metrics (wall-clock and sample-count keys left
// out), the gradient norm (finite values: the loss scaler's skipped steps
// log inf or nan) and the learning rate, up to the end of training.
func PlotPanels(hist []LogEntry) []report.Panel {
	series := map[string]*report.Series{}
	var order []string
	add := func(name string, x, y float64) {
		s, ok := series[name]
		if !ok {
			s = &report.Series{Name: name}
			series[name] = s
			order = append(order, name)
		}
		s.X = append(s.X, x)
		s.Y = append(s.Y, y)
	}
	for _, e := range hist {
		if _, ok := e.Logs.Get("train_runtime"); ok {
			// what follows evaluates the final (best) model, not the run
			break
		}
		for _, m := range e.Logs {
			switch {
			case m.Key == "epoch", strings.HasSuffix(m.Key, "_runtime"),
				strings.HasSuffix(m.Key, "_per_second"), strings.HasSuffix(m.Key, "_samples"),
				strings.HasSuffix(m.Key, "_preparation_time"):
				continue
			}
			if m.Key == "grad_norm" && (math.IsNaN(m.Value) || math.IsInf(m.Value, 0)) {
				continue // a step the loss scaler skipped: no point to draw
			}
			add(m.Key, float64(e.Step), m.Value)
		}
	}
	var loss, lr, evals, norm []report.Series
	for _, k := range order {
		switch {
		case k == "loss" || k == "eval_loss":
			loss = append(loss, *series[k])
		case k == "learning_rate":
			lr = append(lr, *series[k])
		case k == "grad_norm":
			norm = append(norm, *series[k])
		case strings.HasPrefix(k, "eval_") && k != "eval_gen_len":
			evals = append(evals, *series[k])
		}
	}
	sort.SliceStable(loss, func(i, j int) bool { return loss[i].Name < loss[j].Name })
	var panels []report.Panel
	if len(loss) > 0 {
		panels = append(panels, report.Panel{Title: "loss", Series: loss})
	}
	if len(evals) > 0 {
		panels = append(panels, report.Panel{Title: "evaluation metrics", Series: evals})
	}
	if len(norm) > 0 {
		panels = append(panels, report.Panel{Title: "gradient norm (before clipping)", Series: norm})
	}
	if len(lr) > 0 {
		panels = append(panels, report.Panel{Title: "learning rate", Series: lr})
	}
	return panels
}

// WritePlot writes the PNG of PlotPanels(hist) to path.
func WritePlot(hist []LogEntry, path string) error {
	panels := PlotPanels(hist)
	if len(panels) == 0 {
		return nil
	}
	data, err := report.PlotPNG(panels)
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}
