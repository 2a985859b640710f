// Command ncclcheck exercises the NCCL path of data-parallel training on a
// GPU host (scripts/check-nccl.sh runs it): NCCL loaded at run time
// ($ORTRAIN_NCCL_LIB or libnccl.so.2), its communicator initialised in a
// world of one process on the GPU, and grouped in-place all-reduces
// (NCCL's average, as training uses) over float32 buffers that ONNX
// Runtime's CUDA provider allocated and an ONNX Runtime run just wrote,
// each read back and compared on the host. One GPU is all a check host
// lends, so the reduction runs over one rank: the result must equal the
// input bit for bit. It prints what it measured as JSON. --device standin
// is a dry run without a GPU, with $ORTRAIN_NCCL_LIB pointing at the
// stand-in NCCL of testdata/standin (its test does that).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/collective"
	"github.com/ortrain/ortrain/internal/collective/nccl"
	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/onnxrt"
)

type report struct {
	NCCL          string    `json:"nccl"`
	Device        string    `json:"device"`
	Buffers       []int     `json:"buffer_elements"`
	InitSeconds   float64   `json:"init_seconds"`
	AllReduceMs   []float64 `json:"all_reduce_ms"`
	MedianMs      float64   `json:"median_all_reduce_ms"`
	GBPerSecond   float64   `json:"median_bus_gb_per_s"`
	Exact         bool      `json:"result_equals_input"`
	Rounds        int       `json:"rounds"`
	ProcessRanks  int       `json:"ranks"`
	OtherGPUsNote string    `json:"note"`
}

func main() {
	lib := flag.String("ort-lib", "", "CUDA build of libonnxruntime (else $ORTRAIN_ORT_LIB)")
	device := flag.String("device", "cuda:0", "GPU to check")
	n := flag.Int("n", 1<<24, "elements of the large buffer (float32)")
	rounds := flag.Int("rounds", 10, "all-reduces to time")
	flag.Parse()
	r, err := check(*lib, *device, *n, *rounds)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ncclcheck:", err)
		os.Exit(1)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	enc.Encode(r)
}

// copyModel is Identity over a float32 vector: it moves data between the
// host and values in GPU memory.
func copyModel() ([]byte, error) {
	vi := func(name string) *onnxpb.ValueInfoProto {
		shape := &onnxpb.TensorShapeProto{Dim: []*onnxpb.TensorShapeProto_Dimension{{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: "n"}}}}
		return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
			TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), Shape: shape}}}}
	}
	return proto.Marshal(&onnxpb.ModelProto{
		IrVersion:   proto.Int64(8),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(17)}},
		Graph: &onnxpb.GraphProto{Name: proto.String("copy"), Input: []*onnxpb.ValueInfoProto{vi("x")}, Output: []*onnxpb.ValueInfoProto{vi("y")},
			Node: []*onnxpb.NodeProto{{OpType: proto.String("Identity"), Input: []string{"x"}, Output: []string{"y"}}}},
	})
}

func check(lib, device string, n, rounds int) (*report, error) {
	dev, err := onnxrt.ParseDevice(device)
	if err != nil {
		return nil, err
	}
	if dev.Kind != "cuda" && dev != onnxrt.StandIn {
		return nil, fmt.Errorf("--device %s: NCCL needs a GPU (cuda:N; standin for a dry run with the stand-in NCCL)", device)
	}
	env, err := onnxrt.Open(lib)
	if err != nil {
		return nil, err
	}
	defer env.Close()
	m, err := copyModel()
	if err != nil {
		return nil, err
	}
	s, err := env.NewSessionFromBytes(m, "copy", onnxrt.SessionOptions{Device: device})
	if err != nil {
		return nil, err
	}
	defer s.Close()

	sizes := []int{n, 1000, 1}
	var want [][]float32
	var vals []*onnxrt.Value
	defer func() {
		for _, v := range vals {
			v.Close()
		}
	}()
	for k, size := range sizes {
		data := make([]float32, size)
		for i := range data {
			data[i] = float32(math.Sin(float64(i+k))) * 1e3
		}
		v, err := s.Alloc(onnxrt.Float32, []int64{int64(size)})
		if err != nil {
			return nil, err
		}
		vals = append(vals, v)
		host, err := onnxrt.NewTensor([]int64{int64(size)}, data)
		if err != nil {
			return nil, err
		}
		// The run that writes the buffer returns after ONNX Runtime
		// synchronised its stream; the all-reduce comes right after.
		err = s.RunInto(map[string]*onnxrt.Value{"x": host}, map[string]*onnxrt.Value{"y": v})
		host.Close()
		if err != nil {
			return nil, err
		}
		want = append(want, data)
	}

	start := time.Now()
	c, err := nccl.Open(collective.Single{}, dev, nccl.Options{Timeout: time.Minute})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	r := &report{NCCL: c.Library(), Device: dev.String(), Buffers: sizes, InitSeconds: time.Since(start).Seconds(),
		Rounds: rounds, ProcessRanks: 1, Exact: true,
		OtherGPUsNote: "one GPU: the all-reduce runs over one rank, so the result must equal the input; several GPUs were not available"}
	for range max(rounds, 1) {
		t := time.Now()
		if err := c.AverageFloat32(vals); err != nil {
			return nil, err
		}
		r.AllReduceMs = append(r.AllReduceMs, float64(time.Since(t).Microseconds())/1e3)
	}
	for k, v := range vals {
		out, err := s.Run(map[string]*onnxrt.Value{"x": v}, []string{"y"})
		if err != nil {
			return nil, err
		}
		got, err := out["y"].Float32s()
		out["y"].Close()
		if err != nil {
			return nil, err
		}
		if !slices.Equal(got, want[k]) {
			r.Exact = false
		}
	}
	sorted := slices.Clone(r.AllReduceMs)
	slices.Sort(sorted)
	r.MedianMs = sorted[len(sorted)/2]
	total := 0
	for _, size := range sizes {
		total += 4 * size
	}
	if r.MedianMs > 0 {
		r.GBPerSecond = float64(total) / (r.MedianMs / 1e3) / 1e9
	}
	if !r.Exact {
		enc, _ := json.Marshal(r)
		return nil, fmt.Errorf("the buffers changed over one rank: %s", enc)
	}
	return r, nil
}
