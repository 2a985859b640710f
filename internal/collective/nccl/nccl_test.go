package nccl

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/collective"
	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/testenv"
)

// world is rank `rank` of a job whose other ranks are simulated: their
// all-gather payloads are others (empty: "NCCL is fine here"), rank 0's
// broadcast brings rootID, and Barrier returns barrierErr. It records the
// calls.
type world struct {
	rank, size int
	others     []byte
	rootID     []byte
	barrierErr error
	hang       bool // Barrier never returns (a peer that answers but hangs)
	calls      []string
}

func (w *world) Rank() int                                       { return w.rank }
func (w *world) Size() int                                       { return w.size }
func (w *world) AllReduceFloat32([]float32, collective.Op) error { return errors.New("not used") }
func (w *world) AllReduceFloat64([]float64, collective.Op) error { return errors.New("not used") }
func (w *world) Close() error                                    { return nil }
func (w *world) Barrier() error {
	w.calls = append(w.calls, "barrier")
	if w.hang {
		select {}
	}
	return w.barrierErr
}
func (w *world) AllGather(p []byte) ([][]byte, error) {
	w.calls = append(w.calls, "all-gather "+string(p))
	out := make([][]byte, w.size)
	for r := range out {
		out[r] = w.others
		if r == w.rank {
			out[r] = p
		}
	}
	return out, nil
}
func (w *world) Broadcast(b []byte, root int) error {
	w.calls = append(w.calls, "broadcast")
	if w.rank != root {
		copy(b, w.rootID)
	} else {
		w.rootID = bytes.Clone(b)
	}
	return nil
}

func standIn(t *testing.T) (Options, func() []string) {
	t.Helper()
	lib, drv := testenv.StandInNCCL(t)
	log := filepath.Join(t.TempDir(), "calls.log")
	t.Setenv("ORTRAIN_STANDIN_LOG", log)
	return Options{Library: lib, Driver: drv}, func() []string {
		b, _ := os.ReadFile(log)
		return strings.Split(strings.TrimSpace(string(b)), "\n")
	}
}

// grep returns the recorded calls that start with prefix.
func grep(calls []string, prefix string) []string {
	var out []string
	for _, c := range calls {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}

// TestBootstrapOverTheHostCommunicator: every rank first says over the
// host communicator whether it can use NCCL; rank 0 makes the unique id
// and broadcasts it; every rank joins with it on its device.
func TestBootstrapOverTheHostCommunicator(t *testing.T) {
	opts, calls := standIn(t)
	w0 := &world{rank: 0, size: 2}
	c0, err := Open(w0, onnxrt.StandIn, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c0.Close()
	if !slices.Equal(w0.calls, []string{"all-gather ", "broadcast"}) {
		t.Errorf("rank 0's host calls: %q", w0.calls)
	}
	if len(w0.rootID) != 128 || w0.rootID[0] != 3 || w0.rootID[1] != 10 {
		t.Errorf("rank 0 broadcast % x, not NCCL's unique id", w0.rootID[:4])
	}
	if got := grep(calls(), "ncclGetUniqueId"); len(got) != 1 {
		t.Errorf("rank 0 made %d unique ids", len(got))
	}
	if got := grep(calls(), "ncclCommInitRank"); !slices.Equal(got, []string{"ncclCommInitRank nranks=2 rank=0 id=030a117c device=0 context-thread"}) {
		t.Errorf("rank 0 joined as %q", got)
	}
	if !strings.Contains(c0.Library(), "NCCL 2.30.7") {
		t.Errorf("Library() = %q", c0.Library())
	}

	opts, calls = standIn(t)
	id := make([]byte, 128)
	id[0], id[1], id[2], id[127] = 0xaa, 0xbb, 0xcc, 0xdd
	w1 := &world{rank: 1, size: 2, rootID: id}
	c1, err := Open(w1, onnxrt.StandIn, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	if len(grep(calls(), "ncclGetUniqueId")) != 0 {
		t.Error("rank 1 made a unique id of its own")
	}
	if got := grep(calls(), "ncclCommInitRank"); !slices.Equal(got, []string{"ncclCommInitRank nranks=2 rank=1 id=aabbccdd device=0 context-thread"}) {
		t.Errorf("rank 1 joined as %q, not with rank 0's id", got)
	}
}

// TestAverageInPlace: one grouped ncclAvg over the buffers, in place, and
// the call returns only once the stream is idle.
func TestAverageInPlace(t *testing.T) {
	opts, calls := standIn(t)
	env, err := onnxrt.Open(testenv.ORTLibrary(t))
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	s, err := env.NewSessionFromBytes(identityModel(t), "copy", onnxrt.SessionOptions{Device: "standin"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var vals []*onnxrt.Value
	for _, d := range [][]float32{{1, -2, 4}, {8}} {
		v, err := s.Alloc(onnxrt.Float32, []int64{int64(len(d))})
		if err != nil {
			t.Fatal(err)
		}
		defer v.Close()
		host, _ := onnxrt.NewTensor([]int64{int64(len(d))}, d)
		defer host.Close()
		if err := s.RunInto(map[string]*onnxrt.Value{"x": host}, map[string]*onnxrt.Value{"y": v}); err != nil {
			t.Fatal(err)
		}
		vals = append(vals, v)
	}
	t.Setenv("STANDIN_CUDA_BUSY", "5")
	c, err := Open(&world{rank: 0, size: 2}, onnxrt.StandIn, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AverageFloat32(vals); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	got := calls()
	i := slices.Index(got, "ncclGroupStart")
	if i < 0 || len(got) < i+6 {
		t.Fatalf("calls: %q", got)
	}
	for j, want := range []string{"ncclGroupStart", "ncclAllReduce count=3 dtype=7 op=4 in-place=1", "ncclAllReduce count=1 dtype=7 op=4 in-place=1",
		"ncclGroupEnd", "cuStreamQuery done", "ncclCommDestroy"} {
		if !strings.HasPrefix(got[i+j], want) {
			t.Errorf("call %d: %q, want %q...", j, got[i+j], want)
		}
	}
	if !strings.Contains(got[i+1], "sum=3 ") || !strings.Contains(got[i+2], "sum=8 ") {
		t.Errorf("NCCL did not see the buffers' contents: %q", got[i+1:i+3])
	}
}

// TestTimeoutAbortsAndNamesTheRank: an all-reduce that never finishes
// aborts the communicator after the timeout, and the host communicator's
// barrier names the rank that no longer answers; later calls fail at once.
func TestTimeoutAbortsAndNamesTheRank(t *testing.T) {
	opts, calls := standIn(t)
	opts.Timeout = 50 * time.Millisecond
	env, err := onnxrt.Open(testenv.ORTLibrary(t))
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	s, err := env.NewSessionFromBytes(identityModel(t), "copy", onnxrt.SessionOptions{Device: "standin"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v, err := s.Alloc(onnxrt.Float32, []int64{2})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	w := &world{rank: 0, size: 2, barrierErr: fault.Runtimef("rank 1 does not answer")}
	c, err := Open(w, onnxrt.StandIn, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("STANDIN_CUDA_BUSY", "-1")
	err = c.AverageFloat32([]*onnxrt.Value{v})
	if err == nil || !errors.Is(err, fault.Runtime) || !strings.Contains(err.Error(), "did not finish within") || !strings.Contains(err.Error(), "rank 1 does not answer") {
		t.Fatalf("got %v", err)
	}
	if w.calls[len(w.calls)-1] != "barrier" || len(grep(calls(), "ncclCommAbort")) != 1 || len(grep(calls(), "ncclCommDestroy")) != 0 {
		t.Errorf("host calls %q, NCCL calls %q", w.calls, calls())
	}
	if err := c.AverageFloat32([]*onnxrt.Value{v}); err == nil || !strings.Contains(err.Error(), "failed before") {
		t.Errorf("after a failure: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close after a failure: %v", err)
	}
}

// TestTimeoutWithAHungPeer: when the other processes still answer over
// MPI but one never arrives, the barrier would wait for ever: the failure
// comes after one probe round all the same.
func TestTimeoutWithAHungPeer(t *testing.T) {
	opts, _ := standIn(t)
	opts.Timeout = 50 * time.Millisecond
	env, err := onnxrt.Open(testenv.ORTLibrary(t))
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	s, err := env.NewSessionFromBytes(identityModel(t), "copy", onnxrt.SessionOptions{Device: "standin"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v, err := s.Alloc(onnxrt.Float32, []int64{2})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	c, err := Open(&world{rank: 0, size: 2, hang: true}, onnxrt.StandIn, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("STANDIN_CUDA_BUSY", "-1")
	start := time.Now()
	err = c.AverageFloat32([]*onnxrt.Value{v})
	if err == nil || !strings.Contains(err.Error(), "did not finish within") || !strings.Contains(err.Error(), "one of them hangs") {
		t.Fatalf("got %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %s", took)
	}
}

// TestEveryRankLearnsOfAMissingNCCL: a rank without NCCL fails with the
// loader's error (how to install it), and the others fail naming it,
// rather than wait for it in NCCL's initialisation.
func TestEveryRankLearnsOfAMissingNCCL(t *testing.T) {
	opts, calls := standIn(t)
	good := opts
	opts.Library = filepath.Join(t.TempDir(), "libnccl.so.2")
	w := &world{rank: 1, size: 2}
	_, err := Open(w, onnxrt.StandIn, opts)
	if !errors.Is(err, onnxrt.ErrNCCLUnavailable) || !strings.Contains(err.Error(), "pip install nvidia-nccl-cu13") {
		t.Fatalf("rank without NCCL: %v", err)
	}
	if len(w.calls) != 1 || !strings.HasPrefix(w.calls[0], "all-gather NCCL unavailable") {
		t.Errorf("the rank did not tell the others: %q", w.calls)
	}
	w0 := &world{rank: 0, size: 2, others: []byte(w.calls[0][len("all-gather "):])}
	_, err = Open(w0, onnxrt.StandIn, good)
	if !errors.Is(err, fault.Runtime) || !strings.Contains(err.Error(), "rank 1 cannot use NCCL: NCCL unavailable") {
		t.Fatalf("rank 0: %v", err)
	}
	if len(grep(calls(), "ncclCommInitRank")) != 0 {
		t.Error("rank 0 went on to ncclCommInitRank")
	}
}

func TestDisabled(t *testing.T) {
	t.Setenv(onnxrt.NCCLLibEnvVar, "none")
	if !Disabled() {
		t.Error("$ORTRAIN_NCCL_LIB=none does not turn NCCL off")
	}
	t.Setenv(onnxrt.NCCLLibEnvVar, "/opt/nccl/libnccl.so.2")
	if Disabled() {
		t.Error("a library path turns NCCL off")
	}
}

// identityModel copies a float32 vector: uploads to and reads from the
// stand-in device.
func identityModel(t *testing.T) []byte {
	t.Helper()
	vi := func(name string) *onnxpb.ValueInfoProto {
		shape := &onnxpb.TensorShapeProto{Dim: []*onnxpb.TensorShapeProto_Dimension{{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "n"}}}}
		return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
			TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), Shape: shape}}}}
	}
	b, err := proto.Marshal(&onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(17)}},
		Graph: &onnxpb.GraphProto{Name: proto.String("copy"), Input: []*onnxpb.ValueInfoProto{vi("x")}, Output: []*onnxpb.ValueInfoProto{vi("y")},
			Node: []*onnxpb.NodeProto{{OpType: proto.String("Identity"), Input: []string{"x"}, Output: []string{"y"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}
