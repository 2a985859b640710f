package onnxrt

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/testenv"
)

// standInLog points the stand-in NCCL's call log at a fresh file and
// returns a function reading the calls recorded so far.
func standInLog(t *testing.T) func() []string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "calls.log")
	t.Setenv("ORTRAIN_STANDIN_LOG", path)
	return func() []string {
		b, err := os.ReadFile(path)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		return strings.Split(strings.TrimSpace(string(b)), "\n")
	}
}

// standInValues uploads each slice into a float32 value in stand-in device
// memory and returns the values and a function reading them back.
func standInValues(t *testing.T, env *Env, data ...[]float32) ([]*Value, func(*Value) []float32) {
	t.Helper()
	cp, err := env.NewSessionFromBytes(model(t, []*onnxpb.NodeProto{node("Identity", []string{"x"}, []string{"y"})},
		[]*onnxpb.ValueInfoProto{vi("x", f32, "n")}, []*onnxpb.ValueInfoProto{vi("y", f32, "n")}), "copy", SessionOptions{Device: "standin"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cp.Close() })
	var vals []*Value
	for _, d := range data {
		v, err := cp.Alloc(Float32, []int64{int64(len(d))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { v.Close() })
		if err := cp.RunInto(map[string]*Value{"x": mustF32(t, []int64{int64(len(d))}, d)}, map[string]*Value{"y": v}); err != nil {
			t.Fatal(err)
		}
		vals = append(vals, v)
	}
	read := func(v *Value) []float32 {
		out, err := cp.Run(map[string]*Value{"x": v}, []string{"y"})
		if err != nil {
			t.Fatal(err)
		}
		defer out["y"].Close()
		f, err := out["y"].Float32s()
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	return vals, read
}

func waitDone(t *testing.T, c *NCCLComm) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		done, err := c.Done()
		if err != nil {
			t.Fatal(err)
		}
		if done {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("the all-reduce never finished")
}

// TestNCCLCallSequence drives the stand-in NCCL and CUDA driver (built by
// the test with gcc) through what a rank of data-parallel training does:
// the unique id, joining the communicator on the device's context, one
// grouped in-place all-reduce over buffers in device memory on the
// communicator's own non-blocking stream, polled until the stream is idle,
// then destroy. The stand-in records every call, reduces as if the other
// rank held the same buffers, and reports the stream busy a few times.
func TestNCCLCallSequence(t *testing.T) {
	env := openEnv(t)
	libNCCL, libCUDA := testenv.StandInNCCL(t)
	calls := standInLog(t)
	t.Setenv("STANDIN_CUDA_BUSY", "3")

	n, err := LoadNCCL(libNCCL, libCUDA)
	if err != nil {
		t.Fatal(err)
	}
	if n.Version() != "2.30.7" || n.Path() != libNCCL {
		t.Fatalf("version %q, path %q", n.Version(), n.Path())
	}
	id, err := n.UniqueID()
	if err != nil {
		t.Fatal(err)
	}
	if id[0] != 3 || id[1] != 10 || id[127] != 0x7c {
		t.Fatalf("unique id not copied out: % x", id[:4])
	}
	c, err := n.NewComm(id, 2, 1, StandIn)
	if err != nil {
		t.Fatal(err)
	}
	vals, read := standInValues(t, env, []float32{1, 2, 3, 4}, []float32{0.5})
	if err := c.StartAllReduce(vals, NCCLSum); err != nil {
		t.Fatal(err)
	}
	waitDone(t, c)
	if got := read(vals[0]); !slices.Equal(got, []float32{2, 4, 6, 8}) {
		t.Errorf("sum over 2 ranks in place: %v", got)
	}
	if got := read(vals[1]); !slices.Equal(got, []float32{1}) {
		t.Errorf("sum over 2 ranks in place: %v", got)
	}
	if err := c.StartAllReduce(vals[:1], NCCLAvg); err != nil {
		t.Fatal(err)
	}
	waitDone(t, c)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := c.StartAllReduce(vals, NCCLSum); err == nil {
		t.Error("all-reduce after Close accepted")
	}
	if _, err := c.Done(); err == nil {
		t.Error("Done after Close answered")
	}

	log := strings.Join(calls(), "\n")
	stream := regexp.MustCompile(`stream=(0x[0-9a-f]+)`).FindStringSubmatch(log)
	if stream == nil {
		t.Fatalf("no stream created:\n%s", log)
	}
	want := strings.Join([]string{
		"ncclGetVersion",
		"ncclGetUniqueId",
		"cuInit 0",
		"cuDevicePrimaryCtxRetain 0",
		"cuCtxSetCurrent",
		"cuStreamCreate flags=1 stream=" + stream[1],
		"ncclCommInitRank nranks=2 rank=1 id=030a117c device=0 context-thread",
		"ncclGroupStart",
		"ncclAllReduce count=4 dtype=7 op=0 in-place=1 stream=" + stream[1] + " sum=10 context-thread",
		"ncclAllReduce count=1 dtype=7 op=0 in-place=1 stream=" + stream[1] + " sum=0.5 context-thread",
		"ncclGroupEnd",
		"cuStreamQuery done",
		"ncclGroupStart",
		"ncclAllReduce count=4 dtype=7 op=4 in-place=1 stream=" + stream[1] + " sum=20 context-thread",
		"ncclGroupEnd",
		"cuStreamQuery done",
		"ncclCommDestroy",
		"cuStreamDestroy",
		"cuDevicePrimaryCtxRelease 0",
	}, "\n")
	if log != want {
		t.Errorf("calls:\n%s\nwant:\n%s", log, want)
	}
}

// TestNCCLErrors: a missing or wrong library is ErrNCCLUnavailable (a
// runtime fault) that names what was tried and how to install NCCL; an
// NCCL without ncclAvg, a missing driver or device, values that are not
// float32 device memory of the communicator's GPU, and an error a peer
// causes are clear errors too.
func TestNCCLErrors(t *testing.T) {
	env := openEnv(t)
	libNCCL, libCUDA := testenv.StandInNCCL(t)
	dir := t.TempDir()
	standInLog(t)
	unavailable := func(t *testing.T, err error, parts ...string) {
		t.Helper()
		if !errors.Is(err, ErrNCCLUnavailable) || !errors.Is(err, fault.Runtime) {
			t.Fatalf("want ErrNCCLUnavailable, got %v", err)
		}
		for _, p := range parts {
			if !strings.Contains(err.Error(), p) {
				t.Errorf("error lacks %q: %v", p, err)
			}
		}
	}
	t.Run("missing", func(t *testing.T) {
		missing := filepath.Join(dir, "nope", "libnccl.so.2")
		_, err := LoadNCCL(missing, "")
		unavailable(t, err, missing, "pip install nvidia-nccl-cu13", "nvidia-nccl-cu12", "$ORTRAIN_NCCL_LIB")
		t.Setenv(NCCLLibEnvVar, missing)
		_, err = LoadNCCL("", "")
		unavailable(t, err, "$ORTRAIN_NCCL_LIB = "+missing)
		t.Setenv(NCCLLibEnvVar, libNCCL)
		if _, err := LoadNCCL("", libCUDA); err != nil {
			t.Fatalf("through $%s: %v", NCCLLibEnvVar, err)
		}
	})
	t.Run("not NCCL", func(t *testing.T) {
		src := filepath.Join(dir, "other.c")
		so := filepath.Join(dir, "libother.so")
		if err := os.WriteFile(src, []byte("int ncclGetVersion(int *v) { *v = 23000; return 0; }\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("gcc", "-shared", "-fPIC", "-o", so, src).CombinedOutput(); err != nil {
			t.Fatalf("gcc: %v\n%s", err, out)
		}
		_, err := LoadNCCL(so, "")
		unavailable(t, err, so, "not an NCCL library (it lacks ncclGetErrorString)")
	})
	t.Run("too old", func(t *testing.T) {
		t.Setenv("STANDIN_NCCL_VERSION", "2712")
		_, err := LoadNCCL(libNCCL, libCUDA)
		unavailable(t, err, "NCCL 2.7.12", "2.10 or later")
	})
	n, err := LoadNCCL(libNCCL, libCUDA)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("no driver", func(t *testing.T) {
		n2, err := LoadNCCL(libNCCL, filepath.Join(dir, "libcuda.so.1"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = n2.NewComm(NCCLID{}, 1, 0, StandIn)
		unavailable(t, err, filepath.Join(dir, "libcuda.so.1"), "NVIDIA GPU")
	})
	t.Run("device", func(t *testing.T) {
		if _, err := n.NewComm(NCCLID{}, 1, 0, CPU); err == nil || !strings.Contains(err.Error(), "not a GPU") {
			t.Errorf("cpu: %v", err)
		}
		if _, err := n.NewComm(NCCLID{}, 1, 0, Device{Kind: "cuda", ID: 1}); err == nil || !strings.Contains(err.Error(), "CUDA_ERROR_INVALID_DEVICE") {
			t.Errorf("cuda:1 on a host with one GPU: %v", err)
		}
		if _, err := n.NewComm(NCCLID{}, 2, 2, StandIn); err == nil {
			t.Error("rank 2 of 2 accepted")
		}
	})
	t.Run("values", func(t *testing.T) {
		c, err := n.NewComm(NCCLID{}, 1, 0, StandIn)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		host := mustF32(t, []int64{2}, []float32{1, 2})
		if err := c.StartAllReduce([]*Value{host}, NCCLSum); err == nil || !strings.Contains(err.Error(), "in cpu memory") {
			t.Errorf("host value: %v", err)
		}
		f64, err := NewTensor([]int64{1}, []float64{1})
		if err != nil {
			t.Fatal(err)
		}
		defer f64.Close()
		if err := c.StartAllReduce([]*Value{f64}, NCCLSum); err == nil || !strings.Contains(err.Error(), "only float32") {
			t.Errorf("float64 value: %v", err)
		}
	})
	t.Run("peer fails", func(t *testing.T) {
		c, err := n.NewComm(NCCLID{}, 2, 0, StandIn)
		if err != nil {
			t.Fatal(err)
		}
		vals, _ := standInValues(t, env, []float32{1})
		t.Setenv("STANDIN_CUDA_BUSY", "-1")
		if err := c.StartAllReduce(vals, NCCLAvg); err != nil {
			t.Fatal(err)
		}
		t.Setenv("STANDIN_NCCL_ASYNC_ERROR", "6")
		if _, err := c.Done(); err == nil || !strings.Contains(err.Error(), "remote process exited") {
			t.Errorf("async error: %v", err)
		}
		if err := c.Abort(); err != nil {
			t.Fatal(err)
		}
	})
}
