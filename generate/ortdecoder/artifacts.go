package ortdecoder

import (
	"fmt"
	"path/filepath"

	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/safetensors"
)

// Artifacts is a KV decoder over an artifact folder's generation graphs,
// whose parameters are graph inputs. The parameter values are bound at every
// run, so a trainer whose optimizer updates them in place keeps one
// Artifacts for the whole training run; SetParameters swaps in other values.
type Artifacts struct {
	*KV
	owned  []*onnxrt.Value   // parameter values loaded here, closed by Close
	needed map[string]string // parameter name → role of a graph that takes it
	dir    string
}

// OpenArtifacts opens the generation graphs of the ortrain artifact folder
// dir. params feeds the parameters by name (the trainer's current values,
// in the graphs' layout, on any device); nil loads the folder's initial
// parameters (model.safetensors, transposed back where the graphs hold the
// transpose). opts.Inputs is ignored.
func OpenArtifacts(env *onnxrt.Env, dir string, params map[string]*onnxrt.Value, opts Options) (*Artifacts, error) {
	man, err := artifacts.ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	files := man.Files
	if opts.Variant != "" {
		v, err := man.Variant(opts.Variant)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
		files = v.Files
	}
	if files.Encoder == "" || files.Decoder == "" || files.DecoderWithPast == "" {
		return nil, fmt.Errorf("%s: the artifacts have no encoder / decoder / decoder_with_past generation graphs; rebuild them from an export with past key values (Optimum layout)", dir)
	}
	a := &Artifacts{needed: map[string]string{}, dir: dir}
	for _, g := range man.Generation {
		for _, name := range g.Parameters {
			a.needed[name] = g.Role
		}
	}
	if params == nil {
		if a.owned, params, err = loadArtifactParams(dir, man); err != nil {
			return nil, err
		}
	}
	if err := a.check(params); err != nil {
		a.closeOwned()
		return nil, err
	}
	pad := int64(0)
	if p, ok := man.SpecialTokens["pad_token_id"]; ok {
		pad = p
	}
	opts.Inputs = params
	a.KV, err = NewKV(env, filepath.Join(dir, files.Encoder), filepath.Join(dir, files.Decoder), filepath.Join(dir, files.DecoderWithPast), pad, opts)
	if err != nil {
		a.closeOwned()
		return nil, err
	}
	return a, nil
}

func (a *Artifacts) check(params map[string]*onnxrt.Value) error {
	for name, role := range a.needed {
		if params[name] == nil {
			return fmt.Errorf("%s: the %s graph takes parameter %q, which was not provided", a.dir, role, name)
		}
	}
	return nil
}

// SetParameters makes later decoding read these parameter values (the
// caller keeps ownership). States already started keep their cache.
func (a *Artifacts) SetParameters(params map[string]*onnxrt.Value) error {
	if err := a.check(params); err != nil {
		return err
	}
	a.closeOwned()
	a.KV.inputs = params
	return nil
}

// Close releases the sessions and the parameters loaded from the folder.
func (a *Artifacts) Close() error {
	a.KV.Close()
	a.closeOwned()
	return nil
}

func (a *Artifacts) closeOwned() {
	for _, v := range a.owned {
		v.Close()
	}
	a.owned = nil
}

// loadArtifactParams reads the initial parameters into host values, in the
// graphs' layout.
func loadArtifactParams(dir string, man *artifacts.Manifest) ([]*onnxrt.Value, map[string]*onnxrt.Value, error) {
	file := man.Files.Parameters
	if file == "" {
		file = "model.safetensors"
	}
	st, err := safetensors.ReadFile(filepath.Join(dir, file))
	if err != nil {
		return nil, nil, err
	}
	var owned []*onnxrt.Value
	params := map[string]*onnxrt.Value{}
	fail := func(err error) ([]*onnxrt.Value, map[string]*onnxrt.Value, error) {
		for _, v := range owned {
			v.Close()
		}
		return nil, nil, err
	}
	for _, p := range man.Parameters {
		t, ok := st.Tensors[p.Name]
		if !ok {
			continue // frozen constants stay in the graphs
		}
		if t.DType != safetensors.Float32 {
			return fail(fmt.Errorf("%s: parameter %q is %s; only float32 parameters are supported", file, p.Name, t.DType))
		}
		if t.DType != safetensors.Float32 {
			return fail(fmt.Errorf("%s: parameter %q is %s; only float32 parameters are supported", file, p.Name, t.DType))
		}
		if fmt.Sprint(t.Shape) != fmt.Sprint(p.TorchShape()) {
			return fail(fmt.Errorf("%s: parameter %q has shape %v, the manifest says %v", file, p.Name, t.Shape, p.TorchShape()))
		}
		data, err := t.Float32s()
		if err != nil {
			return fail(fmt.Errorf("%s: parameter %q: %w", file, p.Name, err))
		}
		data = p.ToGraph(data)
		v, err := onnxrt.NewTensor(p.Shape, data)
		if err != nil {
			return fail(fmt.Errorf("parameter %q: %w", p.Name, err))
		}
		owned = append(owned, v)
		params[p.Name] = v
	}
	return owned, params, nil
}
