package predict

import (
	"errors"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/fault"
)

// The batch shrinks so that a step's scores fit in memory; beams that do
// not fit for one source are refused (10^5 beams used to be allocated).
func TestBeamsBoundedByMemory(t *testing.T) {
	var warned string
	j := &job{batch: 64, warn: func(s string) { warned = s }}
	if err := j.fitMemory(4096, 32128, 64<<30); err != nil || j.batch != 32 || !strings.Contains(warned, "lowered from 64 to 32") {
		t.Errorf("4096 beams in 64 GB: %v, batch %d, %q", err, j.batch, warned)
	}
	j = &job{batch: 8}
	if err := j.fitMemory(4096, 250000, 4<<30); !errors.Is(err, fault.Settings) || !strings.Contains(err.Error(), "fewer beams") {
		t.Errorf("4096 beams over 250000 ids in 4 GB: %v", err)
	}
	j = &job{batch: 8}
	if err := j.fitMemory(4, 32128, 0); err != nil || j.batch != 8 {
		t.Errorf("unknown memory: %v, batch %d", err, j.batch)
	}
}
