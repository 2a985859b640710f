package amp

import (
	"encoding/json"
	"fmt"
	"math"
)

// ScalerConfig holds torch.amp.GradScaler's constructor arguments.
type ScalerConfig struct {
	InitScale      float64 `json:"init_scale"`
	GrowthFactor   float64 `json:"growth_factor"`
	BackoffFactor  float64 `json:"backoff_factor"`
	GrowthInterval int     `json:"growth_interval"`
}

// DefaultScalerConfig is GradScaler's defaults, which HF's Trainer (through
// accelerate) uses for fp16: initial scale 2^16, doubled after 2000
// consecutive steps without inf/NaN gradients, halved after one with.
func DefaultScalerConfig() ScalerConfig {
	return ScalerConfig{InitScale: 65536, GrowthFactor: 2, BackoffFactor: 0.5, GrowthInterval: 2000}
}

func (c ScalerConfig) check() error {
	switch {
	case !(c.InitScale > 0) || math.IsInf(c.InitScale, 0):
		return fmt.Errorf("grad scaler: init_scale %v must be a positive number", c.InitScale)
	case !(c.GrowthFactor > 1):
		return fmt.Errorf("grad scaler: growth_factor %v must be > 1.0", c.GrowthFactor)
	case !(c.BackoffFactor < 1) || !(c.BackoffFactor > 0):
		return fmt.Errorf("grad scaler: backoff_factor %v must be in (0, 1)", c.BackoffFactor)
	case c.GrowthInterval <= 0:
		return fmt.Errorf("grad scaler: growth_interval %d must be a positive integer", c.GrowthInterval)
	}
	return nil
}

// GradScaler is torch.amp.GradScaler's dynamic loss scale: the state and
// the update rule (_amp_update_scale_), with the scale kept in float32 as
// torch keeps it. The engine multiplies each backward pass's seed by
// Scale, unscales the summed gradients by InvScale before clipping, skips
// the optimizer step when they hold an inf or NaN, and calls Update once
// per optimizer step.
type GradScaler struct {
	cfg           ScalerConfig
	scale         float32
	growthTracker int
}

// NewGradScaler starts a scaler at cfg.InitScale.
func NewGradScaler(cfg ScalerConfig) (*GradScaler, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	return &GradScaler{cfg: cfg, scale: float32(cfg.InitScale)}, nil
}

// Scale is the factor the loss is multiplied by.
func (s *GradScaler) Scale() float32 { return s.scale }

// InvScale is the unscaling factor, computed as torch does:
// scale.double().reciprocal().float().
func (s *GradScaler) InvScale() float32 { return float32(1 / float64(s.scale)) }

// GrowthTracker counts the consecutive steps without inf/NaN gradients.
func (s *GradScaler) GrowthTracker() int { return s.growthTracker }

// Update applies one optimizer step's outcome: backoff after inf/NaN
// gradients, growth after GrowthInterval good steps in a row (kept only if
// the grown scale is finite in float32).
func (s *GradScaler) Update(foundInf bool) {
	if foundInf {
		s.scale = float32(float64(s.scale) * s.cfg.BackoffFactor)
		s.growthTracker = 0
		return
	}
	successful := s.growthTracker + 1
	if successful == s.cfg.GrowthInterval {
		grown := float32(float64(s.scale) * s.cfg.GrowthFactor)
		if !math.IsInf(float64(grown), 0) && !math.IsNaN(float64(grown)) {
			s.scale = grown
		}
		s.growthTracker = 0
		return
	}
	s.growthTracker = successful
}

// scalerState is GradScaler.state_dict()'s keys.
type scalerState struct {
	Scale          float64 `json:"scale"`
	GrowthFactor   float64 `json:"growth_factor"`
	BackoffFactor  float64 `json:"backoff_factor"`
	GrowthInterval int     `json:"growth_interval"`
	GrowthTracker  int     `json:"_growth_tracker"`
}

// MarshalJSON writes GradScaler.state_dict() as JSON.
func (s *GradScaler) MarshalJSON() ([]byte, error) {
	return json.Marshal(scalerState{Scale: float64(s.scale), GrowthFactor: s.cfg.GrowthFactor, BackoffFactor: s.cfg.BackoffFactor,
		GrowthInterval: s.cfg.GrowthInterval, GrowthTracker: s.growthTracker})
}

// UnmarshalJSON is load_state_dict: the scale, the factors, the interval
// and the tracker all come from the saved state.
func (s *GradScaler) UnmarshalJSON(b []byte) error {
	var st scalerState
	if err := json.Unmarshal(b, &st); err != nil {
		return err
	}
	cfg := ScalerConfig{InitScale: st.Scale, GrowthFactor: st.GrowthFactor, BackoffFactor: st.BackoffFactor, GrowthInterval: st.GrowthInterval}
	if err := cfg.check(); err != nil {
		return err
	}
	if st.GrowthTracker < 0 || st.GrowthTracker >= st.GrowthInterval {
		return fmt.Errorf("grad scaler: _growth_tracker %d outside [0, growth_interval %d)", st.GrowthTracker, st.GrowthInterval)
	}
	s.cfg, s.scale, s.growthTracker = cfg, float32(st.Scale), st.GrowthTracker
	return nil
}
