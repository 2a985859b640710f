package amp

import (
	"encoding/json"
	"math"
	"testing"
)

// TestGradScalerRules follows torch.amp.GradScaler's update rule
// (_amp_update_scale_): halve after a step with inf/NaN gradients and
// restart the count, double after growth_interval good steps in a row.
func TestGradScalerRules(t *testing.T) {
	s, err := NewGradScaler(ScalerConfig{InitScale: 8, GrowthFactor: 2, BackoffFactor: 0.5, GrowthInterval: 3})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		foundInf bool
		scale    float32
		tracker  int
	}{
		{false, 8, 1}, {false, 8, 2}, {false, 16, 0}, // growth after 3 good steps
		{true, 8, 0}, {false, 8, 1}, {true, 4, 0}, // an overflow restarts the count
		{false, 4, 1}, {false, 4, 2}, {false, 8, 0},
	}
	for i, st := range steps {
		s.Update(st.foundInf)
		if s.Scale() != st.scale || s.GrowthTracker() != st.tracker {
			t.Errorf("after step %d (inf %v): scale %v tracker %d, want %v %d", i+1, st.foundInf, s.Scale(), s.GrowthTracker(), st.scale, st.tracker)
		}
	}
	if got, want := s.InvScale(), float32(1.0/8); got != want {
		t.Errorf("inv scale %v, want %v", got, want)
	}
	d := DefaultScalerConfig()
	if d.InitScale != 65536 || d.GrowthFactor != 2 || d.BackoffFactor != 0.5 || d.GrowthInterval != 2000 {
		t.Errorf("defaults %+v are not torch's", d)
	}
}

// TestGradScalerKeepsFiniteScale: growth that would overflow float32 is
// not applied (torch keeps the old scale), the count restarts.
func TestGradScalerKeepsFiniteScale(t *testing.T) {
	s, err := NewGradScaler(ScalerConfig{InitScale: math.MaxFloat32, GrowthFactor: 2, BackoffFactor: 0.5, GrowthInterval: 1})
	if err != nil {
		t.Fatal(err)
	}
	s.Update(false)
	if s.Scale() != math.MaxFloat32 || s.GrowthTracker() != 0 {
		t.Errorf("scale %v tracker %d after a growth past float32's range", s.Scale(), s.GrowthTracker())
	}
}

// TestGradScalerState: the state round-trips with GradScaler.state_dict()'s
// keys; bad states and settings are refused with a message.
func TestGradScalerState(t *testing.T) {
	s, _ := NewGradScaler(DefaultScalerConfig())
	s.Update(true)
	s.Update(false)
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]any
	json.Unmarshal(b, &keys)
	for _, k := range []string{"scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("state lacks %q: %s", k, b)
		}
	}
	var r GradScaler
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if r.Scale() != 32768 || r.GrowthTracker() != 1 || r.cfg.GrowthFactor != 2 || r.cfg.BackoffFactor != 0.5 || r.cfg.GrowthInterval != 2000 {
		t.Errorf("restored %+v, saved %+v", r, *s)
	}
	for _, bad := range []string{
		`{"scale": 0, "growth_factor": 2, "backoff_factor": 0.5, "growth_interval": 10, "_growth_tracker": 0}`,
		`{"scale": 8, "growth_factor": 1, "backoff_factor": 0.5, "growth_interval": 10, "_growth_tracker": 0}`,
		`{"scale": 8, "growth_factor": 2, "backoff_factor": 1.5, "growth_interval": 10, "_growth_tracker": 0}`,
		`{"scale": 8, "growth_factor": 2, "backoff_factor": 0.5, "growth_interval": 10, "_growth_tracker": 10}`,
		`{"scale": -1, "growth_factor": 2, "backoff_factor": 0.5, "growth_interval": 10, "_growth_tracker": 0}`,
		`[1, 2]`,
	} {
		var g GradScaler
		if err := json.Unmarshal([]byte(bad), &g); err == nil {
			t.Errorf("state %s accepted", bad)
		}
	}
	if _, err := NewGradScaler(ScalerConfig{InitScale: 1, GrowthFactor: 2, BackoffFactor: 0.5}); err == nil {
		t.Error("growth_interval 0 accepted")
	}
}
