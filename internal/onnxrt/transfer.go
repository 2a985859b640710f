package onnxrt

import (
	"sync"
	"sync/atomic"
)

// Transfers counts what the sessions of an Env copied between host memory
// and device memory: inputs bound from host values to a session that runs
// on a device (ONNX Runtime copies them at every run), outputs a device
// session writes to host memory (allocated there or preallocated host
// values), and device values bound to a CPU session. Bytes are element
// bytes; Tensors counts the tensors copied; Runs counts the runs of
// sessions on a device.
//
// On the CPU nothing is copied, and nothing counts, except on the
// stand-in device (SessionOptions.Device "standin"), which runs on the CPU
// but keeps its values apart from host memory as a GPU would: tests on
// machines without a GPU measure there what a GPU run would copy.
type Transfers struct {
	HostToDevice, DeviceToHost int64 // bytes
	TensorsToDevice            int64
	TensorsToHost              int64
	Runs                       int64
}

// Sub is t minus an earlier reading u.
func (t Transfers) Sub(u Transfers) Transfers {
	return Transfers{HostToDevice: t.HostToDevice - u.HostToDevice, DeviceToHost: t.DeviceToHost - u.DeviceToHost,
		TensorsToDevice: t.TensorsToDevice - u.TensorsToDevice, TensorsToHost: t.TensorsToHost - u.TensorsToHost, Runs: t.Runs - u.Runs}
}

type transferCounters struct {
	h2d, d2h, toDev, toHost, runs atomic.Int64
}

func (c *transferCounters) read() Transfers {
	return Transfers{HostToDevice: c.h2d.Load(), DeviceToHost: c.d2h.Load(), TensorsToDevice: c.toDev.Load(),
		TensorsToHost: c.toHost.Load(), Runs: c.runs.Load()}
}

// Transfers returns the copies counted so far by the sessions of e.
func (e *Env) Transfers() Transfers { return e.transfers.read() }

// ModelSource is a model a session is made from: a file, or bytes.
type ModelSource struct {
	Name  string // the session's name in errors (the path, or the caller's label)
	Path  string // "" for a session made from bytes
	Bytes []byte // nil for a session made from a file
	Opts  SessionOptions
}

type observers struct {
	mu  sync.Mutex
	fns []func(ModelSource)
}

// ObserveModels makes fn hear every model a session of e is made from,
// before ONNX Runtime loads it (also when loading then fails): checks that
// must see every graph ortrain builds at run time (the CUDA kernel
// coverage test) register here. fn must not keep Bytes beyond the call
// unless it copies them.
func (e *Env) ObserveModels(fn func(ModelSource)) {
	e.observers.mu.Lock()
	defer e.observers.mu.Unlock()
	e.observers.fns = append(e.observers.fns, fn)
}

func (e *Env) observe(src ModelSource) {
	e.observers.mu.Lock()
	fns := append([]func(ModelSource){}, e.observers.fns...)
	e.observers.mu.Unlock()
	for _, fn := range fns {
		fn(src)
	}
}

// onHost reports whether a value's memory is host memory.
func onHost(d Device) bool { return d.Kind == "cpu" || d.Kind == "" }

// bytes is the size of a value's elements.
func (v *Value) bytes() int64 { return int64(v.Len()) * int64(v.dtype.Size()) }

// bindingTransfers is what one run of a binding copies.
type bindingTransfers struct {
	inputs      map[string]int64 // copied input bytes by name (rebinding replaces)
	inputDir    map[string]bool  // true: host to device
	outputs     map[string]int64 // preallocated host outputs of a device session
	hostOutputs []string         // outputs a device session allocates in host memory
}

func (x *bindingTransfers) bindInput(name string, v *Value, session Device) {
	if x.inputs == nil {
		x.inputs, x.inputDir = map[string]int64{}, map[string]bool{}
	}
	delete(x.inputs, name)
	switch {
	case onHost(v.loc) && !onHost(session):
		x.inputs[name], x.inputDir[name] = v.bytes(), true
	case !onHost(v.loc) && onHost(session):
		x.inputs[name], x.inputDir[name] = v.bytes(), false
	}
}

func (x *bindingTransfers) bindOutput(name string, v *Value, session Device) {
	if x.outputs == nil {
		x.outputs = map[string]int64{}
	}
	delete(x.outputs, name)
	if onHost(v.loc) && !onHost(session) {
		x.outputs[name] = v.bytes()
	}
}
