package mlflow

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

// Non-finite values go out as protobuf's JSON mapping spells them (as
// MLflow's own client sends them); finite ones in their shortest
// round-trip form.
func TestMetricJSON(t *testing.T) {
	for v, want := range map[float64]string{
		math.NaN(): `"NaN"`, math.Inf(1): `"Infinity"`, math.Inf(-1): `"-Infinity"`, 0.1: "0.1", 2.5e-05: "2.5e-05",
	} {
		b, err := json.Marshal(Metric{Key: `lo"ss`, Value: v, Timestamp: 7, Step: 3})
		if err != nil {
			t.Fatal(err)
		}
		if got, w := string(b), `{"key":"lo\"ss","value":`+want+`,"timestamp":7,"step":3}`; got != w {
			t.Errorf("%v: %s, want %s", v, got, w)
		}
	}
}

func TestNewWantsATrackingServer(t *testing.T) {
	for _, uri := range []string{"mlruns", "file:///tmp/mlruns", "databricks", "http://"} {
		if _, err := New(uri, time.Second); err == nil {
			t.Errorf("%q accepted", uri)
		}
	}
	if _, err := New("http://127.0.0.1:5000/", time.Second); err != nil {
		t.Error(err)
	}
}
