package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/collective"
	"github.com/ortrain/ortrain/internal/collective/nccl"
	"github.com/ortrain/ortrain/internal/data"
	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/testenv"
)

// mirrored is rank 0 of two processes whose other rank computes exactly
// what this one does: a sum over the ranks doubles a buffer, so averaged
// gradients equal this rank's own. Broadcasts and gathers pass NCCL's
// bootstrap through.
type mirrored struct{}

func (mirrored) Rank() int { return 0 }
func (mirrored) Size() int { return 2 }
func (mirrored) AllReduceFloat32(b []float32, _ collective.Op) error {
	for i := range b {
		b[i] *= 2
	}
	return nil
}
func (mirrored) AllReduceFloat64(b []float64, _ collective.Op) error {
	for i := range b {
		b[i] *= 2
	}
	return nil
}
func (mirrored) Broadcast([]byte, int) error { return nil }
func (mirrored) Barrier() error              { return nil }
func (mirrored) Close() error                { return nil }
func (mirrored) AllGather(p []byte) ([][]byte, error) {
	return [][]byte{p, p}, nil
}

// TestNCCLAveragesGradientsOnTheDevice: with several processes on a GPU
// (the stand-in device and the stand-in NCCL here), the optimizer step
// averages the gradient sums where they are, in one grouped NCCL average
// over every trainable parameter's buffer in graph order, and copies
// nothing to the host for it; the host path downloads and uploads every
// gradient. Both give the same parameters (the other rank mirrors this
// one, so the mean is this rank's gradient).
func TestNCCLAveragesGradientsOnTheDevice(t *testing.T) {
	env := openEnv(t)
	dir, man := buildFixture(t, "t5-tiny", artifacts.Config{})
	lib, drv := testenv.StandInNCCL(t)
	log := filepath.Join(t.TempDir(), "calls.log")
	t.Setenv("ORTRAIN_STANDIN_LOG", log)
	gradBytes := int64(0)
	var counts []string
	for _, p := range man.Trainable() {
		n := int64(1)
		for _, d := range p.Shape {
			n *= d
		}
		gradBytes += 4 * n
		counts = append(counts, "count="+itoa(n))
	}
	b := &data.Batch{Rows: 2, SourceLen: 5, TargetLen: 4}
	for i := int64(0); i < 10; i++ {
		b.InputIDs = append(b.InputIDs, 3+i)
		b.AttentionMask = append(b.AttentionMask, 1)
	}
	for i := int64(0); i < 8; i++ {
		b.DecoderInputIDs = append(b.DecoderInputIDs, 4+i)
		b.Labels = append(b.Labels, 5+i)
	}
	run := func(dc DeviceComm) (onnxrt.Transfers, float64, []float32) {
		e := openTrainer(t, env, dir, Options{Optimizer: "adamw", Hyper: Hyper{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, MaxGradNorm: 1},
			Session: onnxrt.SessionOptions{Device: "standin"}, Comm: mirrored{}, DeviceComm: dc})
		ctx := context.Background()
		if _, err := e.TrainMicroBatch(ctx, b, 1, 7); err != nil {
			t.Fatal(err)
		}
		before := env.Transfers()
		norm, err := e.OptimizerStep(ctx, 1e-3)
		if err != nil {
			t.Fatal(err)
		}
		moved := env.Transfers().Sub(before)
		w, err := e.Param(man.Trainable()[0].Name)
		if err != nil {
			t.Fatal(err)
		}
		return moved, norm, w
	}
	hostMoved, hostNorm, hostW := run(nil)
	c, err := nccl.Open(mirrored{}, onnxrt.StandIn, nccl.Options{Library: lib, Driver: drv})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	devMoved, devNorm, devW := run(c)

	if devNorm != hostNorm || !slices.Equal(devW, hostW) {
		t.Errorf("NCCL path: norm %v, want %v; parameters equal: %v", devNorm, hostNorm, slices.Equal(devW, hostW))
	}
	// the optimizer step's own hyperparameters and norm, nothing more
	want := onnxrt.Transfers{HostToDevice: 5*8 + 4 + 8, TensorsToDevice: 7, DeviceToHost: 4, TensorsToHost: 1, Runs: 1}
	if devMoved != want {
		t.Errorf("NCCL path moved %+v, want %+v", devMoved, want)
	}
	if hostMoved.DeviceToHost-devMoved.DeviceToHost != gradBytes || hostMoved.HostToDevice-devMoved.HostToDevice != gradBytes {
		t.Errorf("host path moved %+v: want the gradients' %d bytes each way more", hostMoved, gradBytes)
	}
	raw, _ := os.ReadFile(log)
	var got []string
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, "ncclAllReduce ") {
			if !strings.Contains(l, " dtype=7 op=4 in-place=1 ") {
				t.Errorf("not an in-place float32 average: %s", l)
			}
			got = append(got, strings.Fields(l)[1])
		}
	}
	if !slices.Equal(got, counts) {
		t.Errorf("NCCL reduced %v, want every trainable parameter's gradient in graph order %v", got, counts)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestGradientBackendChoice: NCCL with several processes on CUDA; the host
// path on the CPU, with one process, and with $ORTRAIN_NCCL_LIB=none; an
// NCCL that cannot be loaded on CUDA is an error that says how to install
// it or to turn it off.
func TestGradientBackendChoice(t *testing.T) {
	lib, drv := testenv.StandInNCCL(t)
	t.Setenv("ORTRAIN_STANDIN_LOG", filepath.Join(t.TempDir(), "calls.log"))
	missing := &nccl.Options{Library: filepath.Join(t.TempDir(), "libnccl.so.2")}
	for _, tc := range []struct {
		world  collective.Comm
		device string
		opts   *nccl.Options
		use    bool
	}{
		{collective.Single{}, "cuda:0", missing, false},
		{mirrored{}, "cpu", missing, false},
		{mirrored{}, "standin", nil, false},
		{mirrored{}, "standin", &nccl.Options{Library: lib, Driver: drv}, true},
	} {
		c, err := gradientComm(tc.world, tc.device, tc.opts)
		if err != nil || (c != nil) != tc.use {
			t.Errorf("%d processes on %s: NCCL %v, error %v", tc.world.Size(), tc.device, c != nil, err)
		}
		if c != nil {
			c.Close()
		}
	}
	_, err := gradientComm(mirrored{}, "cuda:0", missing)
	if !errors.Is(err, onnxrt.ErrNCCLUnavailable) || !errors.Is(err, fault.Runtime) {
		t.Fatalf("missing NCCL on CUDA: %v", err)
	}
	for _, part := range []string{missing.Library, "pip install nvidia-nccl-cu13", "$ORTRAIN_NCCL_LIB=none", "host memory over MPI", "over 2 processes"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error lacks %q: %v", part, err)
		}
	}
	t.Setenv(onnxrt.NCCLLibEnvVar, nccl.Off)
	if c, err := gradientComm(mirrored{}, "cuda:0", missing); c != nil || err != nil {
		t.Errorf("$ORTRAIN_NCCL_LIB=none: NCCL %v, error %v", c != nil, err)
	}
}
