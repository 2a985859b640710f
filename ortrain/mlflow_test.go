package ortrain

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ortrain/ortrain/internal/mlflow"
)

// mlflowServer starts a real MLflow tracking server (`mlflow server`,
// installed by .ci/run with pip; $ORTRAIN_MLFLOW names the executable)
// with a SQLite store and artifact serving in a temporary folder; stop
// ends it.
func mlflowServer(t *testing.T) (uri string, stop func()) {
	t.Helper()
	exe := os.Getenv("ORTRAIN_MLFLOW")
	if exe == "" {
		var err error
		if exe, err = exec.LookPath("mlflow"); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatal("no mlflow executable: .ci/run installs it (pip install -r scripts/requirements-mlflow.txt)")
			}
			t.Skip("no mlflow executable (pip install -r scripts/requirements-mlflow.txt, or set ORTRAIN_MLFLOW)")
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	cmd := exec.Command(exe, "server", "--host", "127.0.0.1", "--port", fmt.Sprint(port), "--workers", "1",
		"--backend-store-uri", "sqlite:///"+filepath.Join(dir, "mlflow.db"), "--artifacts-destination", filepath.Join(dir, "artifacts"))
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// its own process group: the server runs its workers as children
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
			logf.Close()
		}
	}
	t.Cleanup(stop)
	uri = fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(120 * time.Second)
	for {
		resp, err := http.Get(uri + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return uri, stop
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "server.log"))
			t.Fatalf("the MLflow server did not start in 120 s:\n%s", b)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// TestMLflowReportsToARealServer trains (fake engine) with report_to
// mlflow against a real tracking server: the metrics read back from its
// API equal log_history, value and step; the run has the arguments as
// parameters, the MLFLOW_TAGS, the experiment named by
// MLFLOW_EXPERIMENT_NAME, trainer_state.json and the plot as artifacts,
// and ends FINISHED. MLFLOW_RUN_ID continues that run. Then the server is
// stopped mid-run: one warning, and training finishes.
func TestMLflowReportsToARealServer(t *testing.T) {
	uri, stop := mlflowServer(t)
	t.Setenv("MLFLOW_TRACKING_URI", uri)
	t.Setenv("MLFLOW_EXPERIMENT_NAME", "ortrain-test")
	t.Setenv("MLFLOW_TAGS", `{"team": "mt", "release": 2}`)
	ctx := context.Background()
	c, err := mlflow.New(uri, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}

	run := func(out string, kill int) (*Trainer, *MLflowCallback, string) {
		a := resumeArgs(out)
		a.ReportTo = []string{"mlflow"}
		if err := a.Finalize(); err != nil {
			t.Fatal(err)
		}
		tr, _ := newResumeTrainer(a, nil)
		var warn strings.Builder
		tr.Warn = &warn
		if kill > 0 {
			tr.Callbacks = []Callback{&stepHook{at: kill, fn: stop}}
		}
		os.MkdirAll(out, 0o755)
		if _, err := tr.Run(ctx, RunOptions{}); err != nil {
			t.Fatalf("training stopped: %v", err)
		}
		cb := tr.reporters[0].(*MLflowCallback)
		if err := tr.Close(); err != nil {
			t.Fatal(err)
		}
		return tr, cb, warn.String()
	}

	tr, cb, warn := run(filepath.Join(t.TempDir(), "out"), 0)
	if warn != "" || cb.RunID() == "" {
		t.Fatalf("run %q, warnings: %s", cb.RunID(), warn)
	}
	want := map[string][][2]float64{}
	for _, e := range tr.State().LogHistory {
		for _, l := range e.Logs {
			want[l.Key] = append(want[l.Key], [2]float64{float64(e.Step), l.Value})
		}
	}
	n := 0
	for key, w := range want {
		hist, err := c.MetricHistory(ctx, cb.RunID(), key)
		if err != nil {
			t.Fatal(err)
		}
		var got [][2]float64
		for _, m := range hist {
			got = append(got, [2]float64{float64(m.Step), m.Value})
		}
		cmp := func(a, b [2]float64) int {
			if a[0] != b[0] {
				return int(a[0] - b[0])
			}
			if a[1] < b[1] {
				return -1
			}
			if a[1] > b[1] {
				return 1
			}
			return 0
		}
		slices.SortFunc(got, cmp)
		slices.SortFunc(w, cmp)
		if !slices.Equal(got, w) {
			t.Errorf("metric %s: MLflow has (step, value) %v, log_history %v", key, got, w)
		}
		n += len(got)
	}
	info, data, err := getRun(ctx, uri, cb.RunID())
	if err != nil {
		t.Fatal(err)
	}
	if info.Status != "FINISHED" || data.params["learning_rate"] != "0.05" || data.params["report_to"] == "" ||
		data.tags["team"] != "mt" || data.tags["release"] != "2" {
		t.Errorf("run status %s, params learning_rate=%q report_to=%q, tags %v", info.Status, data.params["learning_rate"], data.params["report_to"], data.tags)
	}
	exp, err := c.ExperimentID(ctx, "ortrain-test")
	if err != nil || exp != info.ExperimentID || exp == "0" {
		t.Errorf("experiment %q (%v), run's %q", exp, err, info.ExperimentID)
	}
	arts, err := c.ListArtifacts(ctx, info.ArtifactURI)
	if err != nil || !slices.Contains(arts, TrainerStateName) || !slices.Contains(arts, PlotName) {
		t.Errorf("artifacts %v (%v)", arts, err)
	}
	t.Logf("run %s: %d metric values over %d keys equal log_history; %d params; artifacts %v", cb.RunID(), n, len(want), len(data.params), arts)

	// A non-finite value (a step the loss scaler skipped logs grad_norm
	// inf or nan) is accepted as MLflow's own client sends it.
	nonFinite := []mlflow.Metric{{Key: "grad_norm", Value: math.NaN(), Timestamp: 1, Step: 99}, {Key: "grad_norm", Value: math.Inf(1), Timestamp: 1, Step: 100}}
	if err := c.LogBatch(ctx, cb.RunID(), nonFinite, nil, nil); err != nil {
		t.Errorf("non-finite metric values refused: %v", err)
	}

	// MLFLOW_RUN_ID continues the run (another output_dir: parameters the
	// run has keep their first values).
	t.Setenv("MLFLOW_RUN_ID", cb.RunID())
	_, cb2, warn := run(filepath.Join(t.TempDir(), "out2"), 0)
	if warn != "" || cb2.RunID() != cb.RunID() {
		t.Errorf("MLFLOW_RUN_ID: reported to %q, want %q; warnings %s", cb2.RunID(), cb.RunID(), warn)
	}
	os.Unsetenv("MLFLOW_RUN_ID")

	// The server stopped after step 3: a warning, training finishes.
	tr3, _, warn := run(filepath.Join(t.TempDir(), "out3"), 3)
	if !strings.Contains(warn, "report_to mlflow") || strings.Count(warn, "warning:") != 1 || tr3.State().GlobalStep != tr.State().GlobalStep {
		t.Errorf("server stopped mid-run: step %d of %d; warnings:\n%s", tr3.State().GlobalStep, tr.State().GlobalStep, warn)
	}
	t.Logf("server stopped at step 3: %s", strings.TrimSpace(warn))
}

// stepHook calls fn once the global step reaches at.
type stepHook struct {
	NopCallback
	at   int
	fn   func()
	done bool
}

func (h *stepHook) OnStepEnd(e *Event) error {
	if !h.done && e.State.GlobalStep >= h.at {
		h.done = true
		h.fn()
	}
	return nil
}

type runData struct{ params, tags map[string]string }

// getRun reads a run's info, params and tags.
func getRun(ctx context.Context, uri, id string) (mlflow.RunInfo, runData, error) {
	var got struct {
		Run struct {
			Info mlflow.RunInfo `json:"info"`
			Data struct {
				Params []mlflow.Tag `json:"params"`
				Tags   []mlflow.Tag `json:"tags"`
			} `json:"data"`
		} `json:"run"`
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, uri+"/api/2.0/mlflow/runs/get?run_id="+id, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return got.Run.Info, runData{}, err
	}
	defer resp.Body.Close()
	if err := jsonDecode(resp, &got); err != nil {
		return got.Run.Info, runData{}, err
	}
	d := runData{params: map[string]string{}, tags: map[string]string{}}
	for _, p := range got.Run.Data.Params {
		d.params[p.Key] = p.Value
	}
	for _, p := range got.Run.Data.Tags {
		d.tags[p.Key] = p.Value
	}
	return got.Run.Info, d, nil
}

func jsonDecode(resp *http.Response, v any) error {
	return json.NewDecoder(resp.Body).Decode(v)
}
