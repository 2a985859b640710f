package ortrain

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/ortrain/ortrain/internal/mlflow"
)

// MLflowCallback is HF's MLflowCallback over MLflow's REST API, configured
// by MLflow's environment variables as HF reads them:
// MLFLOW_TRACKING_URI (an http(s) tracking server; required),
// MLFLOW_EXPERIMENT_NAME (created when missing; default: the server's
// Default experiment), MLFLOW_RUN_ID (continue that run instead of
// starting one; parameters it has keep their values, as MLflow refuses
// changes), MLFLOW_TAGS (a JSON object of tags). The server names
// the run (HF's run_name None); the TrainingArguments are its parameters (values longer than
// 250 characters dropped with a warning, as HF does); every log is logged
// as metrics at the global step (names sanitized as HF does). At the end
// of Trainer.Run, trainer_state.json and the plot are uploaded as
// artifacts and the run ends FINISHED; a run that stops on an error ends
// FAILED. A tracker that cannot be reached or refuses never stops
// training: one warning, and no more reports to it in this run.
type MLflowCallback struct {
	NopCallback
	Warn   io.Writer
	Getenv func(string) string // default os.Getenv
	Clock  func() time.Time
	// Timeout bounds each request (default 10 s).
	Timeout time.Duration

	client   *mlflow.Client
	run      mlflow.RunInfo
	setUp    bool
	disabled bool
	ended    bool
}

// mlflowMaxParamLength is HF's _MAX_PARAM_VAL_LENGTH.
const mlflowMaxParamLength = 250

var mlflowBadMetricChars = regexp.MustCompile(`[^0-9A-Za-z_\-. :/]`)

func (m *MLflowCallback) now() time.Time {
	if m.Clock != nil {
		return m.Clock()
	}
	return time.Now()
}

func (m *MLflowCallback) fail(what string, err error) {
	if m.Warn != nil {
		fmt.Fprintf(m.Warn, "warning: report_to mlflow: %s: %v; training goes on without MLflow reports\n", what, err)
	}
	m.disabled = true
}

func (m *MLflowCallback) setup(a *TrainingArguments) {
	if m.setUp {
		return
	}
	m.setUp = true
	getenv := m.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	uri := getenv("MLFLOW_TRACKING_URI")
	if uri == "" {
		m.fail("setup", fmt.Errorf("MLFLOW_TRACKING_URI is not set; set it to the address of an MLflow tracking server"))
		return
	}
	timeout := m.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	c, err := mlflow.New(uri, timeout)
	if err != nil {
		m.fail("setup", err)
		return
	}
	m.client = c
	ctx := context.Background()
	var tags []mlflow.Tag
	if raw := getenv("MLFLOW_TAGS"); raw != "" {
		var obj map[string]any
		if err := json.Unmarshal([]byte(raw), &obj); err != nil {
			m.fail("MLFLOW_TAGS", fmt.Errorf("not a JSON object: %v", err))
			return
		}
		for k, v := range obj {
			s, ok := v.(string)
			if !ok {
				b, _ := json.Marshal(v)
				s = string(b)
			}
			tags = append(tags, mlflow.Tag{Key: k, Value: s})
		}
		sort.Slice(tags, func(i, j int) bool { return tags[i].Key < tags[j].Key })
	}
	var logged map[string]string // parameters a continued run has
	if id := getenv("MLFLOW_RUN_ID"); id != "" {
		if m.run, logged, err = c.GetRun(ctx, id); err != nil {
			m.fail("MLFLOW_RUN_ID "+id, err)
			return
		}
		if err := c.UpdateRun(ctx, id, "RUNNING", time.Time{}); err != nil {
			m.fail("continuing run "+id, err)
			return
		}
	} else {
		exp := "0" // the Default experiment
		if name := getenv("MLFLOW_EXPERIMENT_NAME"); name != "" {
			if exp, err = c.ExperimentID(ctx, name); err != nil {
				m.fail("experiment "+name, err)
				return
			}
		}
		// run_name None: the server names the run
		if m.run, err = c.CreateRun(ctx, exp, "", nil, m.now()); err != nil {
			m.fail("starting a run", err)
			return
		}
	}
	var params []mlflow.Tag
	args := a.ToMap()
	keys := make([]string, 0, len(args))
	for k := range args {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := pythonStr(args[k])
		if _, ok := logged[k]; ok {
			continue // MLflow refuses to change a parameter
		}
		if len(v) > mlflowMaxParamLength {
			if m.Warn != nil {
				fmt.Fprintf(m.Warn, "warning: report_to mlflow: parameter %s is longer than MLflow's %d characters; dropped\n", k, mlflowMaxParamLength)
			}
			continue
		}
		params = append(params, mlflow.Tag{Key: k, Value: v})
	}
	if err := c.LogBatch(ctx, m.run.RunID, nil, params, tags); err != nil {
		m.fail("logging the parameters", err)
	}
}

// pythonStr is str(value) as MLflow's Python client stores a parameter.
func pythonStr(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case string:
		return x
	case float64:
		return pyFloatRepr(x)
	case int, int64:
		return fmt.Sprint(x)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func pyFloatRepr(f float64) string {
	s := fmt.Sprint(f)
	if !strings.ContainsAny(s, "e.nI") {
		s += ".0"
	}
	return s
}

func (m *MLflowCallback) OnTrainBegin(e *Event) error {
	m.setup(e.Args)
	return nil
}

func (m *MLflowCallback) OnLog(e *Event) error {
	m.setup(e.Args)
	if m.disabled || m.ended {
		return nil
	}
	ts := m.now().UnixMilli()
	var metrics []mlflow.Metric
	for _, l := range e.Logs {
		metrics = append(metrics, mlflow.Metric{Key: mlflowBadMetricChars.ReplaceAllString(l.Key, "_"), Value: l.Value, Timestamp: ts, Step: int64(e.State.GlobalStep)})
	}
	if err := m.client.LogBatch(context.Background(), m.run.RunID, metrics, nil, nil); err != nil {
		m.fail(fmt.Sprintf("logging the metrics of step %d", e.State.GlobalStep), err)
	}
	return nil
}

// Finish uploads the output files and ends the run FINISHED (the end of
// Trainer.Run).
func (m *MLflowCallback) Finish(outputDir string) {
	if !m.setUp || m.disabled || m.ended {
		return
	}
	ctx := context.Background()
	for _, name := range []string{TrainerStateName, PlotName} {
		p := filepath.Join(outputDir, name)
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if err := m.client.UploadArtifact(ctx, m.run.ArtifactURI, name, p); err != nil {
			m.fail("uploading "+name, err)
			return
		}
	}
	m.ended = true
	if err := m.client.UpdateRun(ctx, m.run.RunID, "FINISHED", m.now()); err != nil {
		m.fail("ending the run", err)
	}
}

// RunID is the MLflow run reported to ("" before setup or when disabled).
func (m *MLflowCallback) RunID() string {
	if m.disabled {
		return ""
	}
	return m.run.RunID
}

// Close ends a run that Finish did not end: FAILED.
func (m *MLflowCallback) Close() error {
	if m.setUp && !m.disabled && !m.ended {
		m.ended = true
		if err := m.client.UpdateRun(context.Background(), m.run.RunID, "FAILED", m.now()); err != nil {
			m.fail("ending the run", err)
		}
	}
	return nil
}
