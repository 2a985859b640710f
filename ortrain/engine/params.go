package engine

import (
	"fmt"
	"path/filepath"

	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/onnx"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/safetensors"
)

// upload writes host floats (graph layout) into a runtime value.
func (e *Engine) upload(dst *onnxrt.Value, data []float32) error {
	if dst.Device().Kind == "cpu" {
		return dst.SetFloat32s(data)
	}
	src, err := onnxrt.NewTensor(dst.Shape(), data)
	if err != nil {
		return err
	}
	defer src.Close()
	return e.copier.RunInto(map[string]*onnxrt.Value{"x": src}, map[string]*onnxrt.Value{"y": dst})
}

// download reads a runtime value into host floats (graph layout).
func (e *Engine) download(v *onnxrt.Value) ([]float32, error) {
	if v.Device().Kind == "cpu" {
		return v.Float32s()
	}
	out, err := e.copier.Run(map[string]*onnxrt.Value{"x": v}, []string{"y"})
	if err != nil {
		return nil, err
	}
	defer out["y"].Close()
	return out["y"].Float32s()
}

func (e *Engine) param(name string) (artifacts.Parameter, bool) {
	for _, p := range e.man.Parameters {
		if p.Name == name {
			return p, true
		}
	}
	return artifacts.Parameter{}, false
}

func (e *Engine) loadParam(p artifacts.Parameter, f *safetensors.Index) error {
	ent, ok := f.Entries[p.Name]
	if !ok {
		return fmt.Errorf("parameter %q is missing from the parameter file", p.Name)
	}
	if fmt.Sprint(ent.Shape) != fmt.Sprint(p.TorchShape()) {
		return fmt.Errorf("parameter %q has shape %v in the file, the model needs %v", p.Name, ent.Shape, p.TorchShape())
	}
	dst := e.cur[p.Name]
	if dst == nil {
		dst = e.shared[p.Name]
	}
	if ent.DType == safetensors.Float32 && !p.Transposed && dst.Device().Kind == "cpu" {
		// Straight from the file into the runtime value: no copy of the
		// parameters in Go memory, which would stay resident as garbage.
		if err := dst.Fill(f.Reader(ent)); err != nil {
			return fmt.Errorf("parameter %q: %w", p.Name, err)
		}
		return nil
	}
	ts, _, err := f.Tensor(p.Name)
	if err != nil {
		return fmt.Errorf("parameter %q: %w", p.Name, err)
	}
	v, err := ts.Float32s()
	if err != nil {
		return fmt.Errorf("parameter %q: %w", p.Name, err)
	}
	return e.upload(dst, p.ToGraph(v))
}

// Param returns a parameter's values in PyTorch layout (frozen ones too).
func (e *Engine) Param(name string) ([]float32, error) {
	p, ok := e.param(name)
	if !ok {
		return nil, fmt.Errorf("no parameter %q", name)
	}
	if !p.Trainable {
		f, err := safetensors.ReadFile(filepath.Join(e.dir, e.man.Files.Parameters))
		if err != nil {
			return nil, err
		}
		return f.Tensors[name].Float32s()
	}
	v, err := e.download(e.cur[name])
	if err != nil {
		return nil, err
	}
	return p.ToTorch(v), nil
}

// SetParam overwrites a trainable parameter (PyTorch layout).
func (e *Engine) SetParam(name string, v []float32) error {
	e.version++
	p, ok := e.param(name)
	if !ok || !p.Trainable {
		return fmt.Errorf("no trainable parameter %q", name)
	}
	if int64(len(v)) != onnx.NumElements(p.Shape) {
		return fmt.Errorf("parameter %q has %d elements, got %d", name, onnx.NumElements(p.Shape), len(v))
	}
	return e.upload(e.cur[name], p.ToGraph(v))
}

// Gradient returns a trainable parameter's accumulated gradient (PyTorch
// layout) since the last optimizer step.
func (e *Engine) Gradient(name string) ([]float32, error) {
	p, ok := e.param(name)
	if !ok || !p.Trainable {
		return nil, fmt.Errorf("no trainable parameter %q", name)
	}
	if !e.haveGrads {
		return make([]float32, onnx.NumElements(p.Shape)), nil
	}
	v, err := e.download(e.grad[name])
	if err != nil {
		return nil, err
	}
	return p.ToTorch(v), nil
}

// ParamValues returns the current trainable parameter values by name
// (graph layout), and the frozen ones the graphs take as inputs, to bind
// as inputs of the generation graphs. They stay
// owned by the Engine and change after OptimizerStep.
func (e *Engine) ParamValues() map[string]*onnxrt.Value {
	out := make(map[string]*onnxrt.Value, len(e.cur)+len(e.shared))
	for k, v := range e.cur {
		out[k] = v
	}
	for k, v := range e.shared {
		out[k] = v
	}
	return out
}
