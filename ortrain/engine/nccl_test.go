package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

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
	t.Setenv(onnxrt.NCCLLibEnvVar, "")
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
	// The stand-in device takes the library $ORTRAIN_NCCL_LIB names.
	t.Setenv(onnxrt.NCCLLibEnvVar, lib)
	if c, err := gradientComm(mirrored{}, "standin", nil); c == nil || err != nil {
		t.Errorf("standin with $ORTRAIN_NCCL_LIB set: NCCL %v, error %v", c != nil, err)
	} else {
		c.Close()
	}
	t.Setenv(onnxrt.NCCLLibEnvVar, nccl.Off)
	if c, err := gradientComm(mirrored{}, "cuda:0", missing); c != nil || err != nil {
		t.Errorf("$ORTRAIN_NCCL_LIB=none: NCCL %v, error %v", c != nil, err)
	}
}

// Two processes under mpirun on the stand-in device (device memory as a
// GPU's) average their gradients over the stand-in NCCL, whose ranks
// reduce for real through files, in place on the device: the training
// matches HF's Seq2SeqTrainer under torchrun as the host path does, and
// equals the host path bit for bit (log_history, final weights): with 2
// processes NCCL's average (each rank's sums times 1/2, summed, as DDP's
// reducer does) and the host path's (sum, then / 2) are the same floats.
func TestDDPOverNCCLEqualsHostPath(t *testing.T) {
	lib, _ := testenv.StandInNCCL(t)
	args, kw := ddpArgs(t, "ddp_ga2", nil)
	dir := t.TempDir()
	calls := filepath.Join(dir, "calls.log")
	t.Setenv("ORTRAIN_STANDIN_LOG", calls)
	host := runDDP(t, ddpJob{Args: args, LossKwargs: kw, Out: filepath.Join(dir, "host"), Device: "standin"}, 2)
	t.Setenv(onnxrt.NCCLLibEnvVar, lib)
	t.Setenv("STANDIN_NCCL_DIR", t.TempDir())
	dev := runDDP(t, ddpJob{Args: args, LossKwargs: kw, Out: filepath.Join(dir, "nccl"), Device: "standin", NCCL: true}, 2)

	raw, _ := os.ReadFile(calls)
	log := string(raw)
	steps := dev.GlobalStep
	if n := strings.Count(log, "ncclGroupStart"); n != 2*steps || steps == 0 {
		t.Errorf("%d grouped NCCL all-reduces for %d optimizer steps on 2 processes", n, steps)
	}
	if strings.Count(log, "ncclCommInitRank nranks=2 ") != 2 || strings.Contains(log, "op=0") {
		t.Errorf("NCCL calls:\n%.2000s", log)
	}
	hh, hd := withoutWallClock(logHistory(t, host.State)), withoutWallClock(logHistory(t, dev.State))
	a, _ := json.Marshal(hh)
	b, _ := json.Marshal(hd)
	if string(a) != string(b) {
		t.Errorf("log_history over NCCL differs from the host path's:\nhost %s\nNCCL %s", a, b)
	}
	for _, f := range []string{"final/model.safetensors"} {
		x, err1 := os.ReadFile(filepath.Join(dir, "host", f))
		y, err2 := os.ReadFile(filepath.Join(dir, "nccl", f))
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between NCCL and the host path", f)
		}
	}
	// and both are HF's torchrun run (as TestDDPMatchesHFTorchrun checks
	// for the CPU)
	var sc hfScenario
	if raw, err := os.ReadFile(testenv.Testdata(t, "trainer", "ddp", "ddp_ga2", "scenario.json")); err != nil || json.Unmarshal(raw, &sc) != nil {
		t.Fatal("reading the HF scenario")
	}
	hist := logHistory(t, dev.State)
	if len(hist) != len(sc.LogHistory) {
		t.Fatalf("%d log entries, HF %d", len(hist), len(sc.LogHistory))
	}
	worst := 0.0
	for i, want := range sc.LogHistory {
		got, step := asLogs(hist[i])
		worst = math.Max(worst, compareLogsTol(t, fmt.Sprintf("log_history[%d]", i), got, step, want, 1e-5))
	}
	t.Logf("%d optimizer steps, %d log entries; largest relative difference from HF under torchrun %.2g", steps, len(hist), worst)
}

// A process that stops answering while the others wait in an NCCL
// all-reduce: they abort the communicator after the collective timeout
// and exit non-zero naming the silent rank, never hang.
func TestDDPOverNCCLNamesAStoppedRank(t *testing.T) {
	lib, _ := testenv.StandInNCCL(t)
	args, kw := ddpArgs(t, "ddp_ga2", nil)
	t.Setenv("ORTRAIN_STANDIN_LOG", filepath.Join(t.TempDir(), "calls.log"))
	t.Setenv(onnxrt.NCCLLibEnvVar, lib)
	t.Setenv("STANDIN_NCCL_DIR", t.TempDir())
	// process 1 stops (SIGSTOP) in the all-reduce of its 3rd optimizer step
	t.Setenv("STANDIN_NCCL_STOP", "1:"+strconv.Itoa(2*len(t5TinyManifest(t).Trainable())))
	start := time.Now()
	code, out := startDDP(t, ddpJob{Args: args, LossKwargs: kw, Out: filepath.Join(t.TempDir(), "out"), Device: "standin", NCCL: true,
		Timeout: "3s"}, 2)
	took := time.Since(start)
	if code == 0 || !strings.Contains(out, "rank 0: the NCCL all-reduce") || !strings.Contains(out, "did not finish within 3") ||
		!strings.Contains(out, "rank 1 does not answer") {
		t.Fatalf("exit %d after %s, want an error naming rank 1:\n%s", code, took, out)
	}
	t.Logf("exit %d after %s: %s", code, took.Round(time.Millisecond), strings.SplitN(out, "\n", 2)[0])
}

// t5TinyManifest is the manifest of t5-tiny's training artifacts.
func t5TinyManifest(t *testing.T) *artifacts.Manifest {
	t.Helper()
	_, m := buildFixture(t, "t5-tiny", artifacts.Config{})
	return m
}
