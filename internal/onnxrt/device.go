package onnxrt

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/ortrain/ortrain/internal/fault"
)

// Device names where a session runs and where a value's memory is.
type Device struct {
	Kind string // "cpu" or "cuda"
	ID   int
}

// CPU is host memory and the CPU execution provider.
var CPU = Device{Kind: "cpu"}

// StandIn is a device for tests on machines without a GPU: its sessions
// run on the CPU execution provider, but the values they allocate and the
// outputs bound to the device count as device memory, which Go cannot read
// and whose copies to and from host memory are counted (Env.Transfers), as
// on a GPU. "--device standin" selects it.
var StandIn = Device{Kind: "standin"}

func (d Device) String() string {
	if d.Kind == "cpu" || d.Kind == "" {
		return "cpu"
	}
	if d.Kind == "standin" {
		return "standin"
	}
	return fmt.Sprintf("%s:%d", d.Kind, d.ID)
}

// ParseDevice reads "cpu", "cuda" or "cuda:N".
func ParseDevice(s string) (Device, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	switch {
	case s == "" || s == "cpu":
		return CPU, nil
	case s == "standin":
		return StandIn, nil
	case s == "cuda" || s == "gpu":
		return Device{Kind: "cuda"}, nil
	case strings.HasPrefix(s, "cuda:"):
		id, err := strconv.Atoi(s[len("cuda:"):])
		if err != nil || id < 0 {
			return Device{}, fault.Settingsf("unknown execution provider: %q: the device number after cuda: must be a non-negative integer", s)
		}
		return Device{Kind: "cuda", ID: id}, nil
	}
	return Device{}, fault.Settingsf("unknown execution provider: %q (use cpu, cuda or cuda:N)", s)
}

// memoryName is ONNX Runtime's allocator name for the device.
func (d Device) memoryName() string {
	if d.Kind == "cuda" {
		return "Cuda"
	}
	return "Cpu"
}

func deviceKind(memoryName string) string {
	if strings.HasPrefix(memoryName, "Cuda") {
		return "cuda"
	}
	return strings.ToLower(memoryName)
}
