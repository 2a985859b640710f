package onnxrt

import (
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
)

// TestTransfersCounted: on the stand-in device, values a session allocates
// are device memory Go cannot read, and every copy between them and host
// memory is counted (element bytes, per run): host inputs bound to a device
// session, outputs it writes to host memory; values that stay on the
// device cost nothing. On the CPU nothing counts.
func TestTransfersCounted(t *testing.T) {
	env := openEnv(t)
	update := model(t, []*onnxpb.NodeProto{
		node("Mul", []string{"w", "half"}, []string{"w_new"}),
		node("ReduceSum", []string{"w_new"}, []string{"total"}, attrInt("keepdims", 0)),
	}, []*onnxpb.ValueInfoProto{vi("w", f32, 4), vi("half", f32)},
		[]*onnxpb.ValueInfoProto{vi("w_new", f32, 4), vi("total", f32)})
	copyGraph := model(t, []*onnxpb.NodeProto{node("Identity", []string{"x"}, []string{"y"})},
		[]*onnxpb.ValueInfoProto{vi("x", f32, 4)}, []*onnxpb.ValueInfoProto{vi("y", f32, 4)})

	s, err := env.NewSessionFromBytes(update, "update", SessionOptions{Device: "standin"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cp, err := env.NewSessionFromBytes(copyGraph, "copy", SessionOptions{Device: "standin"})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	a, _ := s.Alloc(Float32, []int64{4})
	defer a.Close()
	bb, _ := s.Alloc(Float32, []int64{4})
	defer bb.Close()
	if a.Device() != StandIn {
		t.Fatalf("allocated on %v", a.Device())
	}
	if _, err := a.Float32s(); err == nil || !strings.Contains(err.Error(), "standin memory") {
		t.Fatalf("reading device memory from Go: %v", err)
	}

	// upload: 16 bytes to the device
	before := env.Transfers()
	if err := cp.RunInto(map[string]*Value{"x": mustF32(t, []int64{4}, []float32{8, 16, 32, 64})}, map[string]*Value{"y": a}); err != nil {
		t.Fatal(err)
	}
	if got := env.Transfers().Sub(before); got != (Transfers{HostToDevice: 16, TensorsToDevice: 1, Runs: 1}) {
		t.Errorf("upload: %+v", got)
	}

	// three updates in place: each moves the host scalar in and the total out
	half := mustF32(t, nil, []float32{0.5})
	before = env.Transfers()
	cur, next := a, bb
	for step := 0; step < 3; step++ {
		b, err := s.NewBinding()
		if err != nil {
			t.Fatal(err)
		}
		b.BindInput("w", cur)
		b.BindInput("half", half)
		b.BindOutput("w_new", next)
		b.BindOutputToHost("total")
		if err := b.Run(); err != nil {
			t.Fatal(err)
		}
		outs, err := b.Outputs()
		if err != nil {
			t.Fatal(err)
		}
		if outs["w_new"].Device() != StandIn || outs["total"].Device() != CPU {
			t.Fatalf("outputs on %v and %v", outs["w_new"].Device(), outs["total"].Device())
		}
		total, err := outs["total"].Scalar()
		if want := 120.0 / float64(int(2)<<step); err != nil || total != want {
			t.Fatalf("step %d total %v (%v), want %v", step, total, err, want)
		}
		for _, v := range outs {
			v.Close()
		}
		b.Close()
		cur, next = next, cur
	}
	if got := env.Transfers().Sub(before); got != (Transfers{HostToDevice: 12, DeviceToHost: 12, TensorsToDevice: 3, TensorsToHost: 3, Runs: 3}) {
		t.Errorf("three updates: %+v, want 4 bytes each way per run", got)
	}

	// download through Run: the device value in, the outputs to the host
	before = env.Transfers()
	outs, err := cp.Run(map[string]*Value{"x": cur}, nil)
	if err != nil {
		t.Fatal(err)
	}
	final, _ := outs["y"].Float32s()
	outs["y"].Close()
	if final[0] != 1 || final[3] != 8 {
		t.Fatalf("final %v", final)
	}
	if got := env.Transfers().Sub(before); got != (Transfers{DeviceToHost: 16, TensorsToHost: 1, Runs: 1}) {
		t.Errorf("download: %+v", got)
	}

	// the CPU: nothing is copied, nothing counts
	cpu, err := env.NewSessionFromBytes(update, "update on the CPU", SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer cpu.Close()
	before = env.Transfers()
	outs, err = cpu.Run(map[string]*Value{"w": mustF32(t, []int64{4}, []float32{1, 2, 3, 4}), "half": half}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range outs {
		v.Close()
	}
	if got := env.Transfers().Sub(before); got != (Transfers{}) {
		t.Errorf("CPU session: %+v", got)
	}
}
