package artifacts_test

import (
	"path/filepath"
	"testing"

	"github.com/ortrain/ortrain/internal/amp"
	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/demo"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/optim"
	"github.com/ortrain/ortrain/internal/testenv"
)

// cudaPrecisions are the lower-precision graphs a GPU runs: mixed precision
// with torch's CUDA autocast lists, and half-precision models (with and
// without autocast), in float16 and bfloat16.
func cudaPrecisions() []artifacts.Precision {
	var out []artifacts.Precision
	for _, dt := range []onnx.DType{onnx.Float16, onnx.BFloat16} {
		out = append(out,
			artifacts.Precision{Options: amp.Options{DType: dt, Device: amp.CUDA}},
			artifacts.Precision{Options: amp.Options{DType: dt, HalfModel: true}},
			artifacts.Precision{Options: amp.Options{DType: dt, HalfModel: true, Device: amp.CUDA}})
	}
	return out
}

// TestCUDAKernelCoverage builds the float16 and bfloat16 graphs of every
// fixture model (T5, T5 v1.1, BART, Marian, their Optimum exports) and of
// the demo, and checks every node of every graph (training with its
// backward pass, eval, forward, encoder, decoder, decoder with past; the
// optimizer and unscale graphs too) against ONNX Runtime 1.29.0's CUDA
// kernel table (internal/amp/kernels, read from the onnxruntime-gpu 1.29.0
// wheel by scripts/fixtures/cuda_kernel_table.py): each must have a CUDA kernel for
// its element types, so nothing falls back to the CPU.
func TestCUDAKernelCoverage(t *testing.T) {
	table, err := amp.CUDAKernels()
	if err != nil {
		t.Fatal(err)
	}
	if table.Runtime != "1.29.0" {
		t.Fatalf("kernel table of ONNX Runtime %s, want 1.29.0", table.Runtime)
	}
	demoDir := filepath.Join(t.TempDir(), "demo")
	if _, _, err := demo.WriteFolder(demoDir, 1); err != nil {
		t.Fatal(err)
	}
	models := map[string]string{"demo": demoDir}
	for _, name := range []string{"t5-tiny", "t5-v1_1-tiny", "bart-tiny", "marian-tiny"} {
		models[name] = testenv.Testdata(t, "models", name)
	}
	models["optimum/bart-tiny-with-past"] = testenv.Testdata(t, "optimum", "bart-tiny-with-past")
	checked := 0
	for name, dir := range models {
		t.Run(name, func(t *testing.T) {
			cfg, err := artifacts.FolderConfig(dir)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Out = t.TempDir()
			cfg.Precisions = cudaPrecisions()
			man, err := artifacts.Build(cfg)
			if err != nil {
				t.Fatal(err)
			}
			files := []string{man.Files.AdamW, man.Files.AdamWLegacy, man.Files.SGD}
			for _, v := range man.Variants {
				f := v.Files
				files = append(files, f.Training, f.Eval, f.Forward, f.Encoder, f.Decoder, f.DecoderWithPast)
			}
			for _, f := range files {
				if f == "" {
					continue
				}
				m, err := onnx.Load(filepath.Join(cfg.Out, f))
				if err != nil {
					t.Fatal(err)
				}
				bad, err := table.Check(m)
				if err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				for _, u := range bad {
					t.Errorf("%s: %s", f, u)
				}
				checked += len(m.Graph.Node)
			}
			var grads []amp.Tensor
			for _, p := range man.Trainable() {
				grads = append(grads, amp.Tensor{Name: p.Name, Shape: p.Shape})
			}
			un, err := amp.BuildUnscale(grads, optim.GradName, optim.UpdatedName)
			if err != nil {
				t.Fatal(err)
			}
			bad, err := table.Check(un)
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range bad {
				t.Errorf("unscale graph: %s", u)
			}
		})
	}
	t.Logf("%d nodes checked", checked)
}

// TestKernelTableFindsGaps: the check reports a node whose types have no
// CUDA kernel (ReduceMean has none for bfloat16 in 1.29.0).
func TestKernelTableFindsGaps(t *testing.T) {
	table, err := amp.CUDAKernels()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dt   onnx.DType
		want int
	}{{onnx.Float16, 0}, {onnx.BFloat16, 1}} {
		b := onnx.NewGraphBuilder(nil)
		x := b.AddInput("x", tc.dt, onnx.D(2), onnx.D(3))
		y := b.Op("ReduceMean", []string{x, b.ConstInt64Vec(-1)})
		b.AddOutput(y, tc.dt, onnx.D(2), onnx.D(1))
		bad, err := table.Check(onnx.NewModel(b.Graph(), 18))
		if err != nil {
			t.Fatal(err)
		}
		if len(bad) != tc.want {
			t.Errorf("ReduceMean %s: %d uncovered nodes %v, want %d", onnx.DTypeName(tc.dt), len(bad), bad, tc.want)
		}
	}
}
