package ortdecoder

import (
	"fmt"

	"github.com/ortrain/ortrain/generate"
	"github.com/ortrain/ortrain/internal/onnxrt"
)

// tensor is a host tensor the decoders keep between steps.
type tensor[T int64 | float32] struct {
	data  []T
	shape []int64
}

func newTensor[T int64 | float32](data []T, shape []int64) tensor[T] {
	return tensor[T]{data: data, shape: shape}
}

// gather picks rows along axis 0.
func (t tensor[T]) gather(rows []int) tensor[T] {
	if len(t.shape) == 0 || t.shape[0] == 0 {
		return t
	}
	per := len(t.data) / int(t.shape[0])
	out := make([]T, len(rows)*per)
	for i, r := range rows {
		copy(out[i*per:(i+1)*per], t.data[r*per:(r+1)*per])
	}
	shape := append([]int64{int64(len(rows))}, t.shape[1:]...)
	return tensor[T]{data: out, shape: shape}
}

func (t tensor[T]) value() (*onnxrt.Value, error) { return onnxrt.NewTensor(t.shape, t.data) }

// padSources right-pads the sources with pad and builds the attention mask.
func padSources(sources [][]int64, pad int64) (ids, mask []int64, width int) {
	for _, s := range sources {
		width = max(width, len(s))
	}
	ids = make([]int64, 0, len(sources)*width)
	mask = make([]int64, 0, len(sources)*width)
	for _, s := range sources {
		ids = append(ids, s...)
		for range s {
			mask = append(mask, 1)
		}
		for i := len(s); i < width; i++ {
			ids = append(ids, pad)
			mask = append(mask, 0)
		}
	}
	return ids, mask, width
}

// run feeds the inputs a session declares (from feed, then from extra) and
// returns the wanted outputs as host tensors. feed values are tensor[int64],
// tensor[float32] or *cached.
func run(s *onnxrt.Session, extra map[string]*onnxrt.Value, feed map[string]any, want []string) (map[string]tensor[float32], error) {
	outs, err := runValues(s, extra, feed, want, nil, nil)
	if err != nil {
		return nil, err
	}
	res := make(map[string]tensor[float32], len(outs))
	for name, v := range outs {
		t, rerr := readValue(v)
		v.Close()
		if rerr != nil && err == nil {
			err = fmt.Errorf("output %q: %w", name, rerr)
		}
		res[name] = t
	}
	return res, err
}

func readValue(v *onnxrt.Value) (tensor[float32], error) {
	data, err := v.Float32s()
	return tensor[float32]{data: data, shape: v.Shape()}, err
}

// runValues is run returning ONNX Runtime's output values (the caller closes
// them). The host outputs come to host memory, for Go to read; the onDevice
// ones stay in the session's device memory, for outputs that are only fed
// back into later runs (on a CPU session both are host memory); the into
// ones are written into the values given (returned too, as new handles on
// the same memory). feed values may also be *onnxrt.Value (the caller
// keeps them).
func runValues(s *onnxrt.Session, extra map[string]*onnxrt.Value, feed map[string]any, host, onDevice []string, into map[string]*onnxrt.Value) (map[string]*onnxrt.Value, error) {
	in := map[string]*onnxrt.Value{}
	var created []*onnxrt.Value
	defer func() {
		for _, v := range created {
			v.Close()
		}
	}()
	for _, info := range s.Inputs() {
		var v *onnxrt.Value
		var err error
		switch t := feed[info.Name].(type) {
		case *onnxrt.Value:
			in[info.Name] = t
			continue
		case *cached:
			if v, err = t.value(); err != nil {
				return nil, fmt.Errorf("input %q: %w", info.Name, err)
			}
			in[info.Name] = v
			continue
		case tensor[int64]:
			v, err = t.value()
		case tensor[float32]:
			v, err = t.value()
		case nil:
			ev, ok := extra[info.Name]
			if !ok {
				return nil, fmt.Errorf("graph input %q (%v) is not provided: this graph does not follow the expected layout", info.Name, info.DType)
			}
			in[info.Name] = ev
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("input %q: %w", info.Name, err)
		}
		created = append(created, v)
		in[info.Name] = v
	}
	if len(onDevice) == 0 && len(into) == 0 {
		return s.Run(in, host)
	}
	b, err := s.NewBinding()
	if err != nil {
		return nil, err
	}
	defer b.Close()
	for name, v := range in {
		if err := b.BindInput(name, v); err != nil {
			return nil, err
		}
	}
	for _, name := range host {
		if err := b.BindOutputToHost(name); err != nil {
			return nil, err
		}
	}
	for _, name := range onDevice {
		if err := b.BindOutputToDevice(name); err != nil {
			return nil, err
		}
	}
	for name, v := range into {
		if err := b.BindOutput(name, v); err != nil {
			return nil, err
		}
	}
	if err := b.Run(); err != nil {
		return nil, err
	}
	return b.Outputs()
}

// cached is a float tensor kept between steps, as an ONNX Runtime value
// (fed again without a copy) and/or host data (for gathering rows on the
// host path, see KV.hostOutputs).
type cached struct {
	host *tensor[float32]
	val  *onnxrt.Value
}

func (c *cached) value() (*onnxrt.Value, error) {
	if c.val == nil {
		v, err := c.host.value()
		if err != nil {
			return nil, err
		}
		c.val = v
	}
	return c.val, nil
}

// gather keeps rows (see tensor.gather); the value is rebuilt on demand.
func (c *cached) gather(rows []int) error {
	if c.host == nil {
		t, err := readValue(c.val)
		if err != nil {
			return err
		}
		c.host = &t
	}
	g := c.host.gather(rows)
	c.host = &g
	c.close()
	return nil
}

func (c *cached) close() {
	if c.val != nil {
		c.val.Close()
		c.val = nil
	}
}

// lastPosition copies the logits of the last decoder position of every row.
func lastPosition(t tensor[float32], rows int, buf *[]float32) (generate.Logits, error) {
	if len(t.shape) != 3 || int(t.shape[0]) != rows {
		return generate.Logits{}, fmt.Errorf("logits of shape %v, want [%d, length, vocab]", t.shape, rows)
	}
	length, vocab := int(t.shape[1]), int(t.shape[2])
	out := (*buf)[:0]
	for r := range rows {
		base := (r*length + length - 1) * vocab
		out = append(out, t.data[base:base+vocab]...)
	}
	*buf = out
	return generate.Logits{Rows: rows, Vocab: vocab, Data: out}, nil
}
