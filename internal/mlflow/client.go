// Package mlflow is a client of an MLflow tracking server's REST API
// (https://mlflow.org/docs/latest/rest-api.html): experiments, runs,
// batched params, metrics and tags, and artifacts through the server's
// artifact proxy (mlflow-artifacts: URIs, the default of `mlflow server`).
package mlflow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Limits of one log-batch request (MLflow's documented maxima).
const (
	MaxMetricsPerBatch = 1000
	MaxParamsPerBatch  = 100
	MaxTagsPerBatch    = 100
	// MaxParamValueLength: longer parameter values are refused by the server.
	MaxParamValueLength = 6000
)

// Client talks to one tracking server.
type Client struct {
	base string // scheme://host[:port][/prefix], no trailing slash
	http *http.Client
}

// New returns a client of the tracking server at uri (http or https, as
// MLFLOW_TRACKING_URI names it); each request gives up after timeout.
func New(uri string, timeout time.Duration) (*Client, error) {
	u, err := url.Parse(uri)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("MLFLOW_TRACKING_URI %q: want the http(s):// address of an MLflow tracking server", uri)
	}
	return &Client{base: strings.TrimSuffix(uri, "/"), http: &http.Client{Timeout: timeout}}, nil
}

// APIError is an error the server answered with.
type APIError struct {
	Status  int
	Code    string `json:"error_code"`
	Message string `json:"message"`
}

func (e *APIError) Error() string {
	return fmt.Sprintf("MLflow server: HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		e := &APIError{Status: resp.StatusCode}
		if json.Unmarshal(b, e) != nil || e.Message == "" {
			e.Message = strings.TrimSpace(string(b[:min(len(b), 300)]))
		}
		return e
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("MLflow server: %s %s: unexpected answer: %w", method, path, err)
		}
	}
	return nil
}

// ExperimentID is the id of the named experiment, created when missing
// (what mlflow.set_experiment does).
func (c *Client) ExperimentID(ctx context.Context, name string) (string, error) {
	var got struct {
		Experiment struct {
			ID string `json:"experiment_id"`
		} `json:"experiment"`
	}
	err := c.do(ctx, http.MethodGet, "/api/2.0/mlflow/experiments/get-by-name?experiment_name="+url.QueryEscape(name), nil, &got)
	var ae *APIError
	if errors.As(err, &ae) && ae.Code == "RESOURCE_DOES_NOT_EXIST" {
		var created struct {
			ID string `json:"experiment_id"`
		}
		if err := c.do(ctx, http.MethodPost, "/api/2.0/mlflow/experiments/create", map[string]any{"name": name}, &created); err != nil {
			return "", err
		}
		return created.ID, nil
	}
	return got.Experiment.ID, err
}

// RunInfo identifies a run.
type RunInfo struct {
	RunID        string `json:"run_id"`
	ExperimentID string `json:"experiment_id"`
	ArtifactURI  string `json:"artifact_uri"`
	Status       string `json:"status"`
}

// Tag is a run tag or a parameter (key and string value).
type Tag struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// CreateRun starts a run in an experiment.
func (c *Client) CreateRun(ctx context.Context, experimentID, name string, tags []Tag, start time.Time) (RunInfo, error) {
	in := map[string]any{"experiment_id": experimentID, "start_time": start.UnixMilli(), "tags": append([]Tag{}, tags...)}
	if name != "" {
		in["run_name"] = name
	}
	var got struct {
		Run struct {
			Info RunInfo `json:"info"`
		} `json:"run"`
	}
	err := c.do(ctx, http.MethodPost, "/api/2.0/mlflow/runs/create", in, &got)
	return got.Run.Info, err
}

// GetRun reads a run's info and parameters.
func (c *Client) GetRun(ctx context.Context, runID string) (RunInfo, map[string]string, error) {
	var got struct {
		Run struct {
			Info RunInfo `json:"info"`
			Data struct {
				Params []Tag `json:"params"`
			} `json:"data"`
		} `json:"run"`
	}
	err := c.do(ctx, http.MethodGet, "/api/2.0/mlflow/runs/get?run_id="+url.QueryEscape(runID), nil, &got)
	params := map[string]string{}
	for _, p := range got.Run.Data.Params {
		params[p.Key] = p.Value
	}
	return got.Run.Info, params, err
}

// UpdateRun sets a run's status (RUNNING, FINISHED, FAILED, KILLED); a
// non-zero end time ends it.
func (c *Client) UpdateRun(ctx context.Context, runID, status string, end time.Time) error {
	in := map[string]any{"run_id": runID, "status": status}
	if !end.IsZero() {
		in["end_time"] = end.UnixMilli()
	}
	return c.do(ctx, http.MethodPost, "/api/2.0/mlflow/runs/update", in, nil)
}

// Metric is one value of a metric at a step.
type Metric struct {
	Key       string
	Value     float64
	Timestamp int64 // milliseconds since the epoch
	Step      int64
}

// MarshalJSON writes the metric; non-finite values as the protobuf JSON
// mapping spells them ("NaN", "Infinity", "-Infinity" strings), which is
// how MLflow's own client sends them.
func (m Metric) MarshalJSON() ([]byte, error) {
	var v string
	switch {
	case math.IsNaN(m.Value):
		v = `"NaN"`
	case math.IsInf(m.Value, 1):
		v = `"Infinity"`
	case math.IsInf(m.Value, -1):
		v = `"-Infinity"`
	default:
		v = strconv.FormatFloat(m.Value, 'g', -1, 64)
	}
	k, err := json.Marshal(m.Key)
	if err != nil {
		return nil, err
	}
	return fmt.Appendf(nil, `{"key":%s,"value":%s,"timestamp":%d,"step":%d}`, k, v, m.Timestamp, m.Step), nil
}

// LogBatch logs metrics, params and tags of a run, split into requests
// within the server's limits.
func (c *Client) LogBatch(ctx context.Context, runID string, metrics []Metric, params, tags []Tag) error {
	for len(metrics) > 0 || len(params) > 0 || len(tags) > 0 {
		nm, np, nt := min(len(metrics), MaxMetricsPerBatch), min(len(params), MaxParamsPerBatch), min(len(tags), MaxTagsPerBatch)
		// empty lists, not null: the server fails on null
		in := map[string]any{"run_id": runID, "metrics": append([]Metric{}, metrics[:nm]...),
			"params": append([]Tag{}, params[:np]...), "tags": append([]Tag{}, tags[:nt]...)}
		if err := c.do(ctx, http.MethodPost, "/api/2.0/mlflow/runs/log-batch", in, nil); err != nil {
			return err
		}
		metrics, params, tags = metrics[nm:], params[np:], tags[nt:]
	}
	return nil
}

// MetricHistory reads every logged value of a metric.
func (c *Client) MetricHistory(ctx context.Context, runID, key string) ([]Metric, error) {
	var got struct {
		Metrics []struct {
			Key       string `json:"key"`
			Value     any    `json:"value"` // a number, or "NaN", "Infinity", "-Infinity"
			Timestamp int64  `json:"timestamp"`
			Step      int64  `json:"step"`
		} `json:"metrics"`
	}
	err := c.do(ctx, http.MethodGet, "/api/2.0/mlflow/metrics/get-history?run_id="+url.QueryEscape(runID)+"&metric_key="+url.QueryEscape(key), nil, &got)
	out := make([]Metric, len(got.Metrics))
	for i, m := range got.Metrics {
		v := math.NaN()
		switch x := m.Value.(type) {
		case float64:
			v = x
		case string:
			if f, perr := strconv.ParseFloat(x, 64); perr == nil {
				v = f
			}
		}
		out[i] = Metric{Key: m.Key, Value: v, Timestamp: m.Timestamp, Step: m.Step}
	}
	return out, err
}

// UploadArtifact stores a local file as artifact name of a run whose
// artifact URI is served by the tracking server (mlflow-artifacts:/...).
func (c *Client) UploadArtifact(ctx context.Context, artifactURI, name, path string) error {
	rest, ok := strings.CutPrefix(artifactURI, "mlflow-artifacts:")
	if !ok {
		return fmt.Errorf("artifact store %q is not served by the tracking server (start it with artifact serving, the default of `mlflow server`)", artifactURI)
	}
	if u, err := url.Parse(artifactURI); err == nil && u.Host != "" {
		rest = u.Path // mlflow-artifacts://host:port/path
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.base+"/api/2.0/mlflow-artifacts/artifacts/"+strings.TrimPrefix(rest, "/")+"/"+url.PathEscape(name), f)
	if err != nil {
		return err
	}
	req.ContentLength = st.Size()
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		e := &APIError{Status: resp.StatusCode}
		if json.Unmarshal(b, e) != nil || e.Message == "" {
			e.Message = strings.TrimSpace(string(b))
		}
		return e
	}
	return nil
}

// ListArtifacts lists the artifact names of a run's artifact URI (top level).
func (c *Client) ListArtifacts(ctx context.Context, artifactURI string) ([]string, error) {
	rest, ok := strings.CutPrefix(artifactURI, "mlflow-artifacts:")
	if !ok {
		return nil, fmt.Errorf("artifact store %q is not served by the tracking server", artifactURI)
	}
	var got struct {
		Files []struct {
			Path string `json:"path"`
		} `json:"files"`
	}
	err := c.do(ctx, http.MethodGet, "/api/2.0/mlflow-artifacts/artifacts?path="+url.QueryEscape(strings.TrimPrefix(rest, "/")), nil, &got)
	var out []string
	for _, f := range got.Files {
		out = append(out, f.Path)
	}
	return out, err
}
