package engine

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/ortrain/ortrain/internal/artifacts"
	"github.com/ortrain/ortrain/internal/modelfile"
	"github.com/ortrain/ortrain/internal/onnxrt"
	"github.com/ortrain/ortrain/internal/safetensors"
)

// ResetOptimizerState zeroes the moments and the step, as a fresh torch optimizer.
func (e *Engine) ResetOptimizerState() error {
	for _, p := range e.params {
		for _, sl := range e.state(p) {
			if err := e.zero(e.st[sl.name]); err != nil {
				return err
			}
		}
	}
	e.step = 0
	e.zeros = nil
	return nil
}

// zero fills a value with zeros: in place in host memory, else from one
// host buffer of zeros.
func (e *Engine) zero(v *onnxrt.Value) error {
	if v.Device().Kind == "cpu" {
		return v.Zero()
	}
	n := v.Len()
	if len(e.zeros) < n {
		e.zeros = make([]float32, n)
	}
	return e.upload(v, e.zeros[:n])
}

// SaveParameters writes every parameter (frozen ones too) under the
// model's own names and PyTorch layout, loadable by transformers. The
// file is written one parameter at a time: no copy of them all in memory.
func (e *Engine) SaveParameters(path string) error {
	entries := map[string]safetensors.Entry{}
	byName := map[string]artifacts.Parameter{}
	var initial *safetensors.Index // frozen parameters never change: copy them from the folder's file
	defer func() {
		if initial != nil {
			initial.Close()
		}
	}()
	for _, p := range e.man.Parameters {
		byName[p.Name] = p
		if !p.Trainable {
			if initial == nil {
				f, err := safetensors.OpenIndex(filepath.Join(e.dir, e.man.Files.Parameters))
				if err != nil {
					return err
				}
				initial = f
			}
			ent, ok := initial.Entries[p.Name]
			if !ok {
				return fmt.Errorf("frozen parameter %q is missing from %s", p.Name, e.man.Files.Parameters)
			}
			entries[p.Name] = ent
			continue
		}
		entries[p.Name] = safetensors.Entry{DType: safetensors.Float32, Shape: p.TorchShape()}
	}
	return safetensors.WriteFileStream(path, entries, map[string]string{"format": "pt"}, func(name string, w io.Writer) error {
		if !byName[name].Trainable {
			_, err := io.Copy(w, initial.Reader(entries[name]))
			return err
		}
		v, err := e.Param(name)
		if err != nil {
			return err
		}
		_, err = w.Write(safetensors.FromFloat32(entries[name].Shape, v).Data)
		return err
	})
}

// LoadParameters reads trainable parameters from a safetensors file written
// by SaveParameters (or by transformers for the same model).
func (e *Engine) LoadParameters(path string) error {
	e.version++
	f, err := safetensors.OpenIndex(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range e.params {
		if err := e.loadParam(p, f); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return nil
}

// SaveOptimizerState writes the optimizer state as safetensors: one tensor
// per state value named "<state>.<param>" (torch's state keys, PyTorch
// layout) and the step in the metadata, one tensor at a time.
func (e *Engine) SaveOptimizerState(path string) error {
	entries := map[string]safetensors.Entry{}
	type slotOf struct {
		p  artifacts.Parameter
		sl stateSlot
	}
	slots := map[string]slotOf{}
	for _, p := range e.params {
		for _, sl := range e.state(p) {
			entries[sl.name] = safetensors.Entry{DType: safetensors.Float32, Shape: sl.torch}
			slots[sl.name] = slotOf{p, sl}
		}
	}
	opt := e.opts.Optimizer
	if opt == "" {
		opt = "adamw"
	}
	meta := map[string]string{"step": strconv.FormatInt(e.step, 10), "optimizer": opt, "format": "ortrain-optimizer"}
	return safetensors.WriteFileStream(path, entries, meta, func(name string, w io.Writer) error {
		s := slots[name]
		v, err := e.download(e.st[name])
		if err != nil {
			return err
		}
		if s.sl.param {
			v = s.p.ToTorch(v)
		}
		_, err = w.Write(safetensors.FromFloat32(s.sl.torch, v).Data)
		return err
	})
}

// LoadOptimizerState reads what SaveOptimizerState wrote.
func (e *Engine) LoadOptimizerState(path string) error {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return err
	}
	opt := e.opts.Optimizer
	if opt == "" {
		opt = "adamw"
	}
	// Both AdamW variants keep the same moments with the same meaning.
	family := func(o string) string {
		if o == "adamw_hf" {
			return "adamw"
		}
		return o
	}
	if got := f.Metadata["optimizer"]; family(got) != family(opt) {
		return fmt.Errorf("%s: optimizer state of %q, this trainer uses %q", path, got, opt)
	}
	step, err := strconv.ParseInt(f.Metadata["step"], 10, 64)
	if err != nil || step < 0 {
		return fmt.Errorf("%s: bad step %q in the metadata", path, f.Metadata["step"])
	}
	for _, p := range e.params {
		for _, sl := range e.state(p) {
			ts, ok := f.Tensors[sl.name]
			if !ok || fmt.Sprint(ts.Shape) != fmt.Sprint(sl.torch) {
				return fmt.Errorf("%s: tensor %q missing or of the wrong shape (want %v)", path, sl.name, sl.torch)
			}
			v, err := ts.Float32s()
			if err != nil {
				return err
			}
			if sl.param {
				v = p.ToGraph(v)
			}
			if err := e.upload(e.st[sl.name], v); err != nil {
				return err
			}
		}
	}
	e.step = step
	return nil
}

// SaveModel writes model.safetensors (the model's own parameter names) into
// dir, with the source model's configs when Options.ModelDir is set; an
// engine that trains LoRA adapters writes the adapter in PEFT's layout
// (adapter_config.json, adapter_model.safetensors) instead.
func (e *Engine) SaveModel(dir string) error {
	if e.man.LoRA != nil {
		return e.saveAdapter(dir)
	}
	if err := e.SaveParameters(filepath.Join(dir, ModelFile)); err != nil {
		return err
	}
	return e.copyModelFiles(dir, copiedModelFiles)
}

// copiedModelFiles are the source model's files that checkpoints and
// exports carry.
var copiedModelFiles = []string{"config.json", "generation_config.json"}

// checkModelFiles checks, when the run opens, that the files checkpoints
// will copy out of the model folder may be read (modelfile's rule), so a
// link out of the folder stops the run before training, not at the first
// save.
func checkModelFiles(modelDir string) error {
	if modelDir == "" {
		return nil
	}
	for _, f := range copiedModelFiles {
		if err := modelfile.CheckIn(modelDir, f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// copyModelFiles copies the named files of the source model folder (those
// it has) into dir.
func (e *Engine) copyModelFiles(dir string, names []string) error {
	if e.opts.ModelDir == "" {
		return nil
	}
	for _, f := range names {
		b, err := modelfile.ReadIn(e.opts.ModelDir, f, 16<<20)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// SaveOptimizer writes the optimizer state (and the loss scaler's) into dir.
func (e *Engine) SaveOptimizer(dir string) error {
	if err := e.SaveOptimizerState(filepath.Join(dir, OptimizerFile)); err != nil {
		return err
	}
	return e.saveScaler(dir)
}

// LoadModel reads the parameters SaveModel wrote into dir.
func (e *Engine) LoadModel(dir string) error {
	if e.man.LoRA != nil {
		return e.LoadAdapter(dir)
	}
	return e.LoadParameters(filepath.Join(dir, ModelFile))
}

// LoadOptimizer reads the optimizer state SaveOptimizer wrote into dir.
func (e *Engine) LoadOptimizer(dir string) error {
	if err := e.LoadOptimizerState(filepath.Join(dir, OptimizerFile)); err != nil {
		return err
	}
	return e.loadScaler(dir)
}
