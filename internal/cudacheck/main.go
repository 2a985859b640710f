// Command cudacheck exercises the CUDA path of internal/onnxrt on a GPU host
// with the CUDA build of ONNX Runtime (scripts/check-cuda.sh runs it): a
// session on cuda:N, parameters allocated in device memory and updated in
// place through IoBinding for many steps, only a scalar copied to the host
// per step, and the result checked on the host at the end. It prints what it
// measured as JSON, with the same work timed on the CPU for comparison.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ortrain/ortrain/internal/onnx/onnxpb"
	"github.com/ortrain/ortrain/internal/onnxrt"
)

func main() {
	lib := flag.String("ort-lib", "", "CUDA build of libonnxruntime (else $ORTRAIN_ORT_LIB)")
	device := flag.String("device", "cuda:0", "device to check")
	n := flag.Int("n", 2048, "matrix size")
	steps := flag.Int("steps", 50, "update steps")
	flag.Parse()
	report, err := check(*lib, *device, *n, *steps)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cudacheck:", err)
		os.Exit(1)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	enc.Encode(report)
}

func vi(name string, dims ...int64) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{}
	for _, d := range dims {
		shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}})
	}
	return &onnxpb.ValueInfoProto{Name: proto.String(name), Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), Shape: shape}}}}
}

// stepModel: y = x @ w; w_new = w * decay; s = mean(y) (a scalar for the host).
func stepModel(n int64) ([]byte, error) {
	nd := func(op string, in []string, out string, attrs ...*onnxpb.AttributeProto) *onnxpb.NodeProto {
		return &onnxpb.NodeProto{OpType: proto.String(op), Input: in, Output: []string{out}, Attribute: attrs}
	}
	keep := &onnxpb.AttributeProto{Name: proto.String("keepdims"), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(0)}
	g := &onnxpb.GraphProto{
		Name: proto.String("step"),
		Node: []*onnxpb.NodeProto{
			nd("MatMul", []string{"x", "w"}, "y"),
			nd("Mul", []string{"w", "decay"}, "w_new"),
			nd("ReduceMean", []string{"y"}, "s", keep),
		},
		Input:  []*onnxpb.ValueInfoProto{vi("x", n, n), vi("w", n, n), vi("decay")},
		Output: []*onnxpb.ValueInfoProto{vi("w_new", n, n), vi("s")},
	}
	m := &onnxpb.ModelProto{IrVersion: proto.Int64(8), Graph: g,
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(17)}}}
	return proto.Marshal(m)
}

type run struct {
	Device      string  `json:"device"`
	Steps       int     `json:"steps"`
	StepMillis  float64 `json:"median_step_ms"`
	GFLOPs      float64 `json:"gflop_per_s"`
	FinalW      float32 `json:"final_w00"`
	WantFinalW  float32 `json:"want_final_w00"`
	ParamsOnDev string  `json:"params_memory"`
}

type report struct {
	Library string  `json:"library"`
	Version string  `json:"onnxruntime_version"`
	Size    int     `json:"matrix_size"`
	Runs    []run   `json:"runs"`
	Speedup float64 `json:"gpu_speedup_vs_cpu"`
}

func check(lib, device string, n, steps int) (*report, error) {
	env, err := onnxrt.Open(lib)
	if err != nil {
		return nil, err
	}
	defer env.Close()
	model, err := stepModel(int64(n))
	if err != nil {
		return nil, err
	}
	rep := &report{Library: env.Path(), Version: env.Version(), Size: n}
	for _, dev := range []string{device, "cpu"} {
		r, err := timeSteps(env, model, dev, n, steps)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", dev, err)
		}
		rep.Runs = append(rep.Runs, *r)
	}
	rep.Speedup = rep.Runs[1].StepMillis / rep.Runs[0].StepMillis
	return rep, nil
}

func timeSteps(env *onnxrt.Env, model []byte, dev string, n, steps int) (*run, error) {
	s, err := env.NewSessionFromBytes(model, "step", onnxrt.SessionOptions{Device: dev})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	ones := make([]float32, n*n)
	for i := range ones {
		ones[i] = 1
	}
	x, err := onnxrt.NewTensor([]int64{int64(n), int64(n)}, ones)
	if err != nil {
		return nil, err
	}
	defer x.Close()
	decay, _ := onnxrt.NewTensor(nil, []float32{0.99})
	defer decay.Close()
	// Parameters in device memory, initialised once by a run that writes
	// w_new = host_w * 1 into the device buffer.
	a, err := s.Alloc(onnxrt.Float32, []int64{int64(n), int64(n)})
	if err != nil {
		return nil, err
	}
	defer a.Close()
	bbuf, err := s.Alloc(onnxrt.Float32, []int64{int64(n), int64(n)})
	if err != nil {
		return nil, err
	}
	defer bbuf.Close()
	one, _ := onnxrt.NewTensor(nil, []float32{1})
	defer one.Close()
	init, _ := s.NewBinding()
	init.BindInput("x", x)
	init.BindInput("w", x)
	init.BindInput("decay", one)
	init.BindOutput("w_new", a)
	init.BindOutputToHost("s")
	if err := init.Run(); err != nil {
		return nil, err
	}
	init.Close()

	cur, next := a, bbuf
	times := make([]float64, 0, steps)
	for i := 0; i < steps; i++ {
		b, err := s.NewBinding()
		if err != nil {
			return nil, err
		}
		b.BindInput("x", x)
		b.BindInput("w", cur)
		b.BindInput("decay", decay)
		b.BindOutput("w_new", next)
		b.BindOutputToHost("s")
		t0 := time.Now()
		if err := b.Run(); err != nil {
			return nil, err
		}
		outs, err := b.Outputs() // the scalar crosses to the host, the parameters do not
		if err != nil {
			return nil, err
		}
		for _, v := range outs {
			v.Close()
		}
		times = append(times, float64(time.Since(t0).Microseconds())/1000)
		b.Close()
		cur, next = next, cur
	}
	// Read the parameters back once through an output bound to the host.
	fb, _ := s.NewBinding()
	defer fb.Close()
	fb.BindInput("x", x)
	fb.BindInput("w", cur)
	fb.BindInput("decay", one)
	fb.BindOutputToHost("w_new")
	fb.BindOutputToHost("s")
	if err := fb.Run(); err != nil {
		return nil, err
	}
	outs, err := fb.Outputs()
	if err != nil {
		return nil, err
	}
	w, err := outs["w_new"].Float32s()
	for _, v := range outs {
		v.Close()
	}
	if err != nil {
		return nil, err
	}
	want := float32(math.Pow(0.99, float64(steps)))
	if math.Abs(float64(w[0]-want)) > 1e-4 {
		return nil, fmt.Errorf("parameters after %d device-resident steps: w[0]=%v, want %v", steps, w[0], want)
	}
	med := median(times)
	return &run{Device: dev, Steps: steps, StepMillis: med, GFLOPs: 2 * float64(n) * float64(n) * float64(n) / med / 1e6,
		FinalW: w[0], WantFinalW: want, ParamsOnDev: a.Device().String()}, nil
}

func median(x []float64) float64 {
	c := append([]float64(nil), x...)
	for i := 1; i < len(c); i++ {
		for j := i; j > 0 && c[j] < c[j-1]; j-- {
			c[j], c[j-1] = c[j-1], c[j]
		}
	}
	return c[len(c)/2]
}
