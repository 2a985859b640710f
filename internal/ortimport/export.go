package ortimport

import (
	"fmt"
	"math"
	"strconv"

	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/optim"
	"github.com/ortrain/ortrain/internal/ortckpt"
	"github.com/ortrain/ortrain/internal/safetensors"
)

// ExportOptions says what to write back as an ONNX Runtime checkpoint.
type ExportOptions struct {
	Artifacts string // the ortrain artifact folder (for parameter names and layout)
	// Parameters is a safetensors file of the model's parameters (what
	// artifacts.Trainer.SaveParameters or a checkpoint's model.safetensors
	// holds); default: the artifact folder's initial parameters.
	Parameters string
	// OptimizerState is an ortrain optimizer-state file (AdamW); when set,
	// its moments and step go into the checkpoint's optimizer group.
	OptimizerState string
	InitialLR      float32 // recorded as the group's initial learning rate
	Out            string  // checkpoint file to write
}

// Export writes ortrain parameters (and AdamW state) as an ONNX Runtime
// training checkpoint, under the names and in the layout of the training
// graphs' parameter inputs, so a user with a training build of ONNX Runtime
// can load it with CheckpointState.load_checkpoint.
func Export(o ExportOptions) error {
	man, err := artifacts.ReadManifest(o.Artifacts)
	if err != nil {
		return err
	}
	paramsPath := o.Parameters
	if paramsPath == "" {
		paramsPath = o.Artifacts + "/" + man.Files.Parameters
	}
	pf, err := safetensors.ReadFile(paramsPath)
	if err != nil {
		return err
	}
	c := &ortckpt.Checkpoint{Ints: map[string]int64{}, Floats: map[string]float32{}, Strings: map[string]string{}}
	tensor := func(p artifacts.Parameter, name string, file *safetensors.File, path, key string) (ortckpt.Tensor, error) {
		t, ok := file.Tensors[key]
		if !ok {
			return ortckpt.Tensor{}, fmt.Errorf("%s has no tensor %q", path, key)
		}
		v, err := t.Float32s()
		if err != nil {
			return ortckpt.Tensor{}, fmt.Errorf("%s: tensor %q: %w", path, key, err)
		}
		if fmt.Sprint(t.Shape) != fmt.Sprint(p.TorchShape()) {
			return ortckpt.Tensor{}, fmt.Errorf("%s: tensor %q has shape %v, the model's is %v", path, key, t.Shape, p.TorchShape())
		}
		if p.Transposed { // back to the graph's layout
			v = transpose(v, int(p.TorchShape()[0]), int(p.TorchShape()[1]))
		}
		raw := make([]byte, 4*len(v))
		for i, x := range v {
			b := math.Float32bits(x)
			raw[4*i], raw[4*i+1], raw[4*i+2], raw[4*i+3] = byte(b), byte(b>>8), byte(b>>16), byte(b>>24)
		}
		return ortckpt.Tensor{Name: name, Dims: p.Shape, DataType: 1, Raw: raw}, nil
	}
	graphName := func(p artifacts.Parameter) string {
		if p.ONNXName != "" {
			return p.ONNXName
		}
		return p.Name
	}
	for _, p := range man.Parameters {
		if p.DType != "float32" {
			return fmt.Errorf("parameter %q is %s; only float32 parameters are exported", p.Name, p.DType)
		}
		t, err := tensor(p, graphName(p), pf, paramsPath, p.Name)
		if err != nil {
			return err
		}
		if p.Trainable {
			c.Trainable = append(c.Trainable, t)
		} else {
			c.Frozen = append(c.Frozen, t)
		}
	}
	if o.OptimizerState != "" {
		sf, err := safetensors.ReadFile(o.OptimizerState)
		if err != nil {
			return err
		}
		if sf.Metadata["optimizer"] != "adamw" {
			return fmt.Errorf("%s holds %q optimizer state; ONNX Runtime checkpoints take AdamW moments", o.OptimizerState, sf.Metadata["optimizer"])
		}
		step, err := strconv.ParseInt(sf.Metadata["step"], 10, 64)
		if err != nil {
			return fmt.Errorf("%s: bad step %q", o.OptimizerState, sf.Metadata["step"])
		}
		g := ortckpt.OptimizerGroup{Name: "group0", Step: step, InitialLR: o.InitialLR}
		for _, p := range man.Trainable() {
			m0, err := tensor(p, "momentum0", sf, o.OptimizerState, optim.ExpAvgName(p.Name))
			if err != nil {
				return err
			}
			m1, err := tensor(p, "momentum1", sf, o.OptimizerState, optim.ExpAvgSqName(p.Name))
			if err != nil {
				return err
			}
			g.States = append(g.States, ortckpt.ParamState{Param: graphName(p), Momentums: []ortckpt.Tensor{m0, m1}})
		}
		c.Groups = []ortckpt.OptimizerGroup{g}
	}
	return ortckpt.WriteFile(o.Out, c)
}

func transpose(v []float32, rows, cols int) []float32 {
	out := make([]float32, len(v))
	for r := 0; r < rows; r++ {
		for k := 0; k < cols; k++ {
			out[k*rows+r] = v[r*cols+k]
		}
	}
	return out
}
