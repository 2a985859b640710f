// Package schedule holds the learning-rate schedules of transformers'
// optimization.py (get_scheduler), evaluated as torch's LambdaLR does:
// lr(step) = base_lr * lambda(step), where step counts scheduler.step()
// calls so far. The Trainer logs, for optimizer step n (1-based), lr(n-1).
package schedule

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Schedule maps a scheduler step to a learning rate.
type Schedule interface {
	LR(step int) float64
}

type lambdaSchedule struct {
	base   float64
	lambda func(step int) float64
}

func (s lambdaSchedule) LR(step int) float64 { return s.base * s.lambda(step) }

// Types lists the supported lr_scheduler_type names.
var Types = []string{"linear", "cosine", "constant", "constant_with_warmup", "polynomial", "inverse_sqrt"}

// New builds the schedule get_scheduler(name, ...) builds. kwargs are
// lr_scheduler_kwargs: num_cycles (cosine, default 0.5), lr_end (polynomial,
// 1e-7) and power (polynomial, 1.0), timescale (inverse_sqrt, default
// num_warmup_steps or 10000). Unknown kwargs are an error, as in HF (a
// TypeError there).
func New(name string, baseLR float64, numWarmup, numTraining int, kwargs map[string]float64) (Schedule, error) {
	allowed := map[string][]string{
		"cosine":       {"num_cycles"},
		"polynomial":   {"lr_end", "power"},
		"inverse_sqrt": {"timescale"},
	}
	if name != "constant" { // HF ignores kwargs for constant only
		for k := range kwargs {
			ok := false
			for _, a := range allowed[name] {
				ok = ok || a == k
			}
			if !ok {
				keys := allowed[name]
				sort.Strings(keys)
				return nil, fmt.Errorf("lr_scheduler_kwargs: %s does not take %q (accepted: %s)", name, k, strings.Join(keys, ", "))
			}
		}
	}
	kw := func(k string, def float64) float64 {
		if v, ok := kwargs[k]; ok {
			return v
		}
		return def
	}
	w := numWarmup
	warm := func(step int) float64 { return float64(step) / float64(max(1, w)) }
	var f func(int) float64
	switch name {
	case "constant":
		f = func(int) float64 { return 1 }
	case "constant_with_warmup":
		f = func(s int) float64 {
			if s < w {
				return warm(s)
			}
			return 1
		}
	case "linear":
		f = func(s int) float64 {
			if s < w {
				return warm(s)
			}
			return math.Max(0, float64(numTraining-s)/float64(max(1, numTraining-w)))
		}
	case "cosine":
		cycles := kw("num_cycles", 0.5)
		f = func(s int) float64 {
			if s < w {
				return warm(s)
			}
			progress := float64(s-w) / float64(max(1, numTraining-w))
			return math.Max(0, 0.5*(1.0+math.Cos(math.Pi*cycles*2.0*progress)))
		}
	case "polynomial":
		lrEnd, power := kw("lr_end", 1e-7), kw("power", 1.0)
		lrInit := baseLR
		if !(lrInit > lrEnd) {
			return nil, fmt.Errorf("lr_end (%v) must be smaller than initial lr (%v)", lrEnd, lrInit)
		}
		f = func(s int) float64 {
			switch {
			case s < w:
				return warm(s)
			case s > numTraining:
				return lrEnd / lrInit
			}
			lrRange := lrInit - lrEnd
			decaySteps := numTraining - w
			pctRemaining := 1 - float64(s-w)/float64(decaySteps)
			decay := lrRange*math.Pow(pctRemaining, power) + lrEnd
			return decay / lrInit
		}
	case "inverse_sqrt":
		timescale := kw("timescale", 0)
		if _, ok := kwargs["timescale"]; !ok {
			timescale = float64(w)
			if w == 0 {
				timescale = 10_000
			}
		}
		f = func(s int) float64 {
			if s < w {
				return warm(s)
			}
			shift := timescale - float64(w)
			return 1.0 / math.Sqrt((float64(s)+shift)/timescale)
		}
	default:
		return nil, fmt.Errorf("unknown lr_scheduler_type %q (supported: %s)", name, strings.Join(Types, ", "))
	}
	return lambdaSchedule{base: baseLR, lambda: f}, nil
}
