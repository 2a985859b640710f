package onnxrt

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/modelfile"
)

// SessionOptions configure a session.
type SessionOptions struct {
	// Device is "cpu" (default), "cuda" or "cuda:N". A device that cannot be
	// used is an error; there is never a silent fallback to the CPU.
	Device string
	// IntraOpThreads and InterOpThreads: 0 leaves ONNX Runtime's default.
	IntraOpThreads int
	InterOpThreads int
	// DisableOptimizations turns graph optimisations off (for debugging).
	DisableOptimizations bool
	// NoCPUArena allocates the session's CPU tensors without an arena
	// (each freed block goes back to the C allocator at once) instead of
	// from the arena every CPU session of the process shares, whose blocks
	// are kept for reuse by any session: slower steps, and no less memory
	// for training (see README).
	NoCPUArena bool
	// DisabledOptimizers names ONNX Runtime graph optimizers not to run
	// (session option optimization.disable_specified_optimizers), for
	// example MatMulAddFusion, whose float16 Gemm accumulates in float16
	// on the CPU.
	DisabledOptimizers []string
	// NoSpinning stops the session's intra-op worker threads from spinning
	// while they wait for work (allow_spinning 0). Decoding alternates
	// between several sessions, each with its own pool: workers still
	// spinning after one session's run slow the threads of the next (beam
	// search at two threads on the generation benchmark: 4.3 s with
	// spinning, 2.7 s without). A training step, one long run at a time,
	// is faster with it (0.87 s against 0.96 s), so it stays the default,
	// as it does for the session that does most of a decoding step's work
	// (ortdecoder's decoder with past on the CPU).
	NoSpinning bool
	// TF32 lets the CUDA provider use TensorFloat-32 for float32 matmuls
	// and convolutions (its use_tf32 option). Off by default, as
	// PyTorch's default for matmuls; HF's --tf32 turns it on.
	TF32 bool
}

// IOInfo describes a model input or output. Shape holds -1 for symbolic dims.
type IOInfo struct {
	Name  string
	DType DType
	Shape []int64
}

// Session is a loaded model.
type Session struct {
	env     *Env
	lib     *library
	sess    *ort.DynamicAdvancedSession
	raw     *C.OrtSession
	device  Device
	inputs  []IOInfo
	outputs []IOInfo
	name    string

	mu     sync.Mutex
	devMem *C.OrtMemoryInfo
	devA   *C.OrtAllocator
}

// NewSession loads a model file.
func (e *Env) NewSession(path string, opts SessionOptions) (*Session, error) {
	// A regular file only: ONNX Runtime would wait forever on a FIFO.
	f, err := modelfile.Open(path)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	f.Close()
	return e.newSession(path, nil, path, opts)
}

// MaxThreads is the most threads a session may ask for: ONNX Runtime
// creates them all when the session is made (100000 of them take minutes
// that no signal interrupts), and more than a few per core only slows it.
func MaxThreads() int { return max(16, 4*runtime.NumCPU()) }

// CheckThreads refuses thread counts below 0 or above MaxThreads; flag
// names the setting in the message.
func CheckThreads(flag string, n int) error {
	if n < 0 || n > MaxThreads() {
		return fault.Settingsf("%s %d: choose 0 (ONNX Runtime's default: one per core) or 1 to %d (four per core of this machine's %d)",
			flag, n, MaxThreads(), runtime.NumCPU())
	}
	return nil
}

func (o SessionOptions) checkThreads() error {
	if err := CheckThreads("intra-op threads", o.IntraOpThreads); err != nil {
		return err
	}
	return CheckThreads("inter-op threads", o.InterOpThreads)
}

// NewSessionFromBytes loads a serialized model; name labels errors.
func (e *Env) NewSessionFromBytes(model []byte, name string, opts SessionOptions) (*Session, error) {
	if name == "" {
		name = "model bytes"
	}
	return e.newSession("", model, name, opts)
}

func (e *Env) newSession(path string, data []byte, name string, opts SessionOptions) (*Session, error) {
	if e.closed {
		return nil, ErrClosed
	}
	dev, err := ParseDevice(opts.Device)
	if err != nil {
		return nil, err
	}
	e.observe(ModelSource{Name: name, Path: path, Bytes: data, Opts: opts})
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("creating session options: %w", err)
	}
	defer so.Destroy()
	if err := opts.checkThreads(); err != nil {
		return nil, err
	}
	if opts.IntraOpThreads > 0 {
		if err := so.SetIntraOpNumThreads(opts.IntraOpThreads); err != nil {
			return nil, fmt.Errorf("setting intra-op threads: %w", err)
		}
	}
	if opts.InterOpThreads > 0 {
		if err := so.SetInterOpNumThreads(opts.InterOpThreads); err != nil {
			return nil, fmt.Errorf("setting inter-op threads: %w", err)
		}
	}
	if opts.NoCPUArena {
		if err := so.SetCpuMemArena(false); err != nil {
			return nil, fmt.Errorf("disabling the CPU arena: %w", err)
		}
	} else if dev.Kind == "cpu" || dev == StandIn {
		if err := shareCPUArena(so); err != nil {
			return nil, err
		}
	}
	if opts.NoSpinning {
		if err := so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0"); err != nil {
			return nil, fmt.Errorf("turning intra-op spinning off: %w", err)
		}
	}
	if len(opts.DisabledOptimizers) > 0 {
		if err := so.AddSessionConfigEntry("optimization.disable_specified_optimizers", strings.Join(opts.DisabledOptimizers, ",")); err != nil {
			return nil, fmt.Errorf("disabling optimizers %v: %w", opts.DisabledOptimizers, err)
		}
	}
	if opts.DisableOptimizations {
		if err := so.SetGraphOptimizationLevel(ort.GraphOptimizationLevelDisableAll); err != nil {
			return nil, err
		}
	}
	if dev.Kind == "cuda" {
		if err := e.appendCUDA(so, dev, opts.TF32); err != nil {
			return nil, err
		}
	}

	// Names are passed per run through our IoBinding, so the wrapper's
	// session is created without fixed input/output lists. Inputs and
	// outputs are read from this session: onnxruntime_go's helpers for that
	// would load the model a second time, into a default (CPU) session,
	// which doubles load time and memory and fails for graphs only the
	// chosen provider can run (bfloat16 MatMul on CUDA).
	var sess *ort.DynamicAdvancedSession
	if data != nil {
		sess, err = ort.NewDynamicAdvancedSessionWithONNXData(data, nil, nil, so)
	} else {
		sess, err = ort.NewDynamicAdvancedSession(path, nil, nil, so)
	}
	if err != nil {
		if dev.Kind == "cuda" {
			return nil, wrapf(ErrProviderUnavailable, "creating a %v session for %s: %v", dev, name, err)
		}
		// The library loaded and made sessions before: the model is what
		// it cannot use (bad values, an unknown operator): bad input.
		return nil, fault.Inputf("%s is not a model ONNX Runtime can load: %w", name, err)
	}
	raw := rawSession(sess)
	ins, err := e.lib.sessionIO(raw, false)
	var outs []IOInfo
	if err == nil {
		outs, err = e.lib.sessionIO(raw, true)
	}
	if err != nil {
		sess.Destroy()
		return nil, fault.Inputf("%s: %w", name, err)
	}
	s := &Session{env: e, lib: e.lib, sess: sess, raw: raw, device: dev, name: name, inputs: ins, outputs: outs}
	return s, nil
}

// shareCPUArena makes the session allocate its CPU tensors from the arena
// registered with the environment (Open), shared by every CPU session, and
// turns memory patterns off: a pattern is one block per run holding all of
// the run's intermediates at their planned offsets, taken from the arena
// besides the blocks the first (planning) run left there, which doubles
// the training graph's activations; without it each intermediate is a
// block of the arena, reused across runs and sessions.
func shareCPUArena(so *ort.SessionOptions) error {
	if err := so.AddSessionConfigEntry("session.use_env_allocators", "1"); err != nil {
		return fmt.Errorf("sharing the CPU arena: %w", err)
	}
	if err := so.SetMemPattern(false); err != nil {
		return fmt.Errorf("turning memory patterns off: %w", err)
	}
	return nil
}

// ArenaStats reports the statistics of the allocator the session's CPU
// tensors come from (ONNX Runtime's names: "TotalAllocated" bytes
// reserved, "InUse", "MaxInUse", "NumAllocs", ...); empty for an allocator
// that keeps none (NoCPUArena).
func (s *Session) ArenaStats() (map[string]int64, error) {
	if s.sess == nil {
		return nil, ErrClosed
	}
	var a *C.OrtAllocator
	if err := s.lib.check(C.ortrain_allocator(s.lib.api, s.raw, s.lib.cpuMem, &a)); err != nil {
		return nil, fmt.Errorf("%s: the CPU allocator: %w", s.name, err)
	}
	defer C.ortrain_allocator_release(s.lib.api, a)
	return s.allocatorStats(a)
}

// DeviceArenaStats reports the statistics of the allocator of the session's
// device: on CUDA, the session's own device arena (the activations and other
// intermediates of its runs, and the tensors allocated through Alloc).
func (s *Session) DeviceArenaStats() (map[string]int64, error) {
	if s.sess == nil {
		return nil, ErrClosed
	}
	a, _, err := s.deviceAllocator()
	if err != nil {
		return nil, err
	}
	return s.allocatorStats(a)
}

func (s *Session) allocatorStats(a *C.OrtAllocator) (map[string]int64, error) {
	buf := make([]byte, 4096)
	if err := s.lib.check(C.ortrain_allocator_stats(s.lib.api, a, (*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)))); err != nil {
		return nil, fmt.Errorf("%s: allocator statistics: %w", s.name, err)
	}
	out := map[string]int64{}
	for _, line := range strings.Split(C.GoString((*C.char)(unsafe.Pointer(&buf[0]))), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			out[k] = n
		}
	}
	return out, nil
}

func (e *Env) appendCUDA(so *ort.SessionOptions, dev Device, tf32 bool) error {
	providers, err := e.Providers()
	if err != nil {
		return err
	}
	found := false
	for _, p := range providers {
		if p == "CUDAExecutionProvider" {
			found = true
		}
	}
	if !found {
		return wrapf(ErrProviderUnavailable, "%v requested, but %s (ONNX Runtime %s) has no CUDA execution provider (it offers %v); use a CUDA build of ONNX Runtime with libonnxruntime_providers_cuda.so and libonnxruntime_providers_shared.so beside it (see README), or --device cpu",
			dev, e.lib.path, e.lib.version, providers)
	}
	dir := filepath.Dir(e.lib.path)
	for _, f := range []string{"libonnxruntime_providers_shared.so", "libonnxruntime_providers_cuda.so"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return wrapf(ErrProviderUnavailable, "%v requested, but %s is not beside %s: this is not a CUDA build of ONNX Runtime; put the CUDA provider libraries of ONNX Runtime %s next to the core library (scripts/fetch-onnxruntime-cuda.sh, see README), or use --device cpu",
				dev, f, e.lib.path, e.lib.version)
		}
	}
	co, err := ort.NewCUDAProviderOptions()
	if err != nil {
		return wrapf(ErrProviderUnavailable, "CUDA provider options: %v", err)
	}
	defer co.Destroy()
	useTF32 := "0"
	if tf32 {
		useTF32 = "1"
	}
	// The arena grows by what is asked, not to the next power of two: on an
	// H200 the t5-small training step's peak device memory went from 11,683
	// to 10,853 MiB (nvidia-smi) at the same step time.
	if err := co.Update(map[string]string{"device_id": strconv.Itoa(dev.ID), "use_tf32": useTF32, "arena_extend_strategy": "kSameAsRequested"}); err != nil {
		return wrapf(ErrProviderUnavailable, "configuring CUDA device %d: %v", dev.ID, err)
	}
	if err := so.AppendExecutionProviderCUDA(co); err != nil {
		return wrapf(ErrProviderUnavailable, "the CUDA execution provider of %s cannot load (are the CUDA 13 and cuDNN 9 libraries on the library path?): %v", e.lib.path, err)
	}
	return nil
}

// maxIORank bounds the rank of a model's declared input or output that
// ortrain reads; ONNX graphs of seq2seq models use at most 5.
const maxIORank = 64

// sessionIO lists a session's inputs (output false) or outputs.
func (l *library) sessionIO(raw *C.OrtSession, output bool) ([]IOInfo, error) {
	kind, which := "input", C.int(0)
	if output {
		kind, which = "output", 1
	}
	var n C.size_t
	if err := l.check(C.ortrain_session_io_count(l.api, raw, which, &n)); err != nil {
		return nil, fmt.Errorf("counting the %ss: %w", kind, err)
	}
	infos := make([]IOInfo, 0, min(int(n), 1<<16))
	for i := range int(n) {
		var name *C.char
		var onnxType, elem C.int
		var rank C.size_t
		var dims [maxIORank]C.int64_t
		err := l.check(C.ortrain_session_io(l.api, raw, which, C.size_t(i), &name, &onnxType, &elem, &rank, &dims[0], maxIORank))
		goName := ""
		if name != nil {
			goName = C.GoString(name)
			C.free(unsafe.Pointer(name))
		}
		if err != nil {
			return nil, fmt.Errorf("describing %s %d %q: %w", kind, i, goName, err)
		}
		if rank > maxIORank {
			return nil, fmt.Errorf("%s %q has rank %d, more than the %d ortrain reads", kind, goName, rank, maxIORank)
		}
		info := IOInfo{Name: goName, DType: DType(elem)}
		for _, d := range dims[:rank] {
			info.Shape = append(info.Shape, int64(d))
		}
		infos = append(infos, info)
	}
	return infos, nil
}

// rawSession reads the OrtSession pointer out of the wrapper's session; the
// layout (a pointer to a struct whose first field is the OrtSession) is that
// of onnxruntime_go v1.27.0, pinned in go.mod and exercised by every test.
func rawSession(s *ort.DynamicAdvancedSession) *C.OrtSession {
	type advanced struct{ ortSession unsafe.Pointer }
	type dynamic struct{ s *advanced }
	return (*C.OrtSession)((*dynamic)(unsafe.Pointer(s)).s.ortSession)
}

// Inputs describes the model's inputs.
func (s *Session) Inputs() []IOInfo { return s.inputs }

// Outputs describes the model's outputs.
func (s *Session) Outputs() []IOInfo { return s.outputs }

// Device is where the session runs.
func (s *Session) Device() Device { return s.device }

// Close releases the session.
func (s *Session) Close() error {
	if s.sess == nil {
		return nil
	}
	s.mu.Lock()
	if s.devA != nil {
		C.ortrain_allocator_release(s.lib.api, s.devA)
		s.devA = nil
	}
	if s.devMem != nil {
		C.ortrain_memory_info_release(s.lib.api, s.devMem)
		s.devMem = nil
	}
	s.mu.Unlock()
	err := s.sess.Destroy()
	s.sess = nil
	return err
}

// Run feeds the inputs and returns the named outputs (all outputs if names
// is empty) in host memory, allocated by ONNX Runtime; the caller closes them.
func (s *Session) Run(inputs map[string]*Value, names []string) (map[string]*Value, error) {
	b, err := s.NewBinding()
	if err != nil {
		return nil, err
	}
	defer b.Close()
	for name, v := range inputs {
		if err := b.BindInput(name, v); err != nil {
			return nil, err
		}
	}
	if len(names) == 0 {
		for _, o := range s.outputs {
			names = append(names, o.Name)
		}
	}
	for _, name := range names {
		if err := b.BindOutputToHost(name); err != nil {
			return nil, err
		}
	}
	if err := b.Run(); err != nil {
		return nil, err
	}
	return b.Outputs()
}

// RunInto feeds the inputs and writes the outputs into preallocated values.
func (s *Session) RunInto(inputs, outputs map[string]*Value) error {
	b, err := s.NewBinding()
	if err != nil {
		return err
	}
	defer b.Close()
	for name, v := range inputs {
		if err := b.BindInput(name, v); err != nil {
			return err
		}
	}
	for name, v := range outputs {
		if err := b.BindOutput(name, v); err != nil {
			return err
		}
	}
	return b.Run()
}

// deviceAllocator returns (creating once) the allocator for the session's
// device memory.
func (s *Session) deviceAllocator() (*C.OrtAllocator, *C.OrtMemoryInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.device.Kind == "cpu" || s.device == StandIn {
		return s.lib.cpuA, s.lib.cpuMem, nil
	}
	if s.devA != nil {
		return s.devA, s.devMem, nil
	}
	name := C.CString(s.device.memoryName())
	defer C.free(unsafe.Pointer(name))
	if err := s.lib.check(C.ortrain_memory_info(s.lib.api, name, C.int(s.device.ID), &s.devMem)); err != nil {
		return nil, nil, fmt.Errorf("memory info for %v: %w", s.device, err)
	}
	if err := s.lib.check(C.ortrain_allocator(s.lib.api, s.raw, s.devMem, &s.devA)); err != nil {
		return nil, nil, fmt.Errorf("allocator for %v: %w", s.device, err)
	}
	return s.devA, s.devMem, nil
}

// Alloc makes an uninitialised tensor in the session's device memory (host
// memory for a CPU session). Use it for values that stay on the device
// between runs, bound with a Binding.
func (s *Session) Alloc(dtype DType, shape []int64) (*Value, error) {
	if dtype.Size() == 0 {
		return nil, fmt.Errorf("unsupported tensor element type %v", dtype)
	}
	if _, err := elements(shape); err != nil {
		return nil, err
	}
	a, _, err := s.deviceAllocator()
	if err != nil {
		return nil, err
	}
	cshape := make([]C.int64_t, len(shape)+1)
	for i, d := range shape {
		cshape[i] = C.int64_t(d)
	}
	var raw *C.OrtValue
	if err := s.lib.check(C.ortrain_tensor_alloc(s.lib.api, a, &cshape[0], C.size_t(len(shape)), C.int(dtype), &raw)); err != nil {
		return nil, fmt.Errorf("allocating %v %v on %v: %w", dtype, shape, s.device, err)
	}
	return &Value{lib: s.lib, raw: raw, dtype: dtype, shape: append([]int64(nil), shape...), loc: s.device}, nil
}

// Binding binds inputs and outputs to values for repeated runs without
// copies. Bound input values must stay open until the run returns.
type Binding struct {
	s     *Session
	b     *C.OrtIoBinding
	names []string // output names in bind order: ONNX Runtime returns values in this order
	// where the bound outputs live, by name (the stand-in device's values
	// are host memory to ONNX Runtime)
	outLoc map[string]Device
	xfer   bindingTransfers
}

// NewBinding makes an empty binding for the session.
func (s *Session) NewBinding() (*Binding, error) {
	if s.sess == nil {
		return nil, ErrClosed
	}
	var b *C.OrtIoBinding
	if err := s.lib.check(C.ortrain_binding_create(s.lib.api, s.raw, &b)); err != nil {
		return nil, fmt.Errorf("creating an IoBinding: %w", err)
	}
	return &Binding{s: s, b: b, outLoc: map[string]Device{}}, nil
}

func (b *Binding) bindErr(kind, name string, err error) error {
	return fmt.Errorf("%s: binding %s %q: %w", b.s.name, kind, name, err)
}

// BindInput binds a value to an input.
func (b *Binding) BindInput(name string, v *Value) error {
	if v == nil || v.raw == nil {
		return b.bindErr("input", name, errors.New("value is nil or closed"))
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	if err := b.s.lib.check(C.ortrain_binding_input(b.s.lib.api, b.b, cname, v.raw)); err != nil {
		return b.bindErr("input", name, err)
	}
	b.xfer.bindInput(name, v, b.s.device)
	return nil
}

// BindOutput makes the run write an output into a preallocated value.
func (b *Binding) BindOutput(name string, v *Value) error {
	if v == nil || v.raw == nil {
		return b.bindErr("output", name, errors.New("value is nil or closed"))
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	if err := b.s.lib.check(C.ortrain_binding_output(b.s.lib.api, b.b, cname, v.raw)); err != nil {
		return b.bindErr("output", name, err)
	}
	b.names = append(b.names, name)
	b.outLoc[name] = v.loc
	b.xfer.bindOutput(name, v, b.s.device)
	return nil
}

// BindOutputToDevice lets ONNX Runtime allocate the output in the session's
// device memory; read it with Outputs.
func (b *Binding) BindOutputToDevice(name string) error {
	_, mem, err := b.s.deviceAllocator()
	if err != nil {
		return err
	}
	if err := b.bindTo(name, mem); err != nil {
		return err
	}
	b.outLoc[name] = b.s.device
	return nil
}

// BindOutputToHost lets ONNX Runtime allocate the output in host memory,
// copying it from the device if the session runs elsewhere.
func (b *Binding) BindOutputToHost(name string) error {
	if err := b.bindTo(name, b.s.lib.cpuMem); err != nil {
		return err
	}
	b.outLoc[name] = CPU
	if !onHost(b.s.device) {
		b.xfer.hostOutputs = append(b.xfer.hostOutputs, name)
	}
	return nil
}

func (b *Binding) bindTo(name string, mem *C.OrtMemoryInfo) error {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	if err := b.s.lib.check(C.ortrain_binding_output_device(b.s.lib.api, b.b, cname, mem)); err != nil {
		return b.bindErr("output", name, err)
	}
	b.names = append(b.names, name)
	return nil
}

// Run executes the session with the bound values.
func (b *Binding) Run() error {
	if b.s.sess == nil {
		return ErrClosed
	}
	if err := b.s.lib.check(C.ortrain_binding_run(b.s.lib.api, b.s.raw, b.b)); err != nil {
		return fmt.Errorf("running %s: %w", b.s.name, err)
	}
	b.count()
	return nil
}

// count adds what the run copied to the Env's transfer counters.
func (b *Binding) count() {
	c := &b.s.env.transfers
	x := &b.xfer
	for name, n := range x.inputs {
		if x.inputDir[name] {
			c.h2d.Add(n)
			c.toDev.Add(1)
		} else {
			c.d2h.Add(n)
			c.toHost.Add(1)
		}
	}
	for _, n := range x.outputs {
		c.d2h.Add(n)
		c.toHost.Add(1)
	}
	if onHost(b.s.device) {
		return
	}
	c.runs.Add(1)
	if len(x.hostOutputs) == 0 {
		return
	}
	// outputs allocated in host memory: their sizes are known after the run
	var arr **C.OrtValue
	var n C.size_t
	if b.s.lib.check(C.ortrain_binding_outputs(b.s.lib.api, b.b, &arr, &n)) != nil || n == 0 {
		return
	}
	raws := unsafe.Slice(arr, int(n))
	host := map[string]bool{}
	for _, name := range x.hostOutputs {
		host[name] = true
	}
	for i, r := range raws {
		if i < len(b.names) && host[b.names[i]] {
			if v, err := wrap(b.s.lib, r); err == nil { // wrap releases r on error
				c.d2h.Add(v.bytes())
				c.toHost.Add(1)
				v.Close()
			}
			continue
		}
		C.ortrain_value_release(b.s.lib.api, r)
	}
	C.ortrain_binding_free_output_array(b.s.lib.api, arr)
}

// OutputNames lists the bound outputs in bind order (tracked here, since the
// wrapper's GetBoundOutputNames garbles every name after the first).
func (b *Binding) OutputNames() []string { return append([]string(nil), b.names...) }

// Outputs returns the bound outputs of the last run, by name. Each is a new
// reference the caller closes (for a preallocated output it shares memory
// with the bound value).
func (b *Binding) Outputs() (map[string]*Value, error) {
	var arr **C.OrtValue
	var n C.size_t
	if err := b.s.lib.check(C.ortrain_binding_outputs(b.s.lib.api, b.b, &arr, &n)); err != nil {
		return nil, fmt.Errorf("%s: reading bound outputs: %w", b.s.name, err)
	}
	if n == 0 {
		return map[string]*Value{}, nil
	}
	raws := unsafe.Slice(arr, int(n))
	defer C.ortrain_binding_free_output_array(b.s.lib.api, arr)
	if int(n) != len(b.names) {
		for _, r := range raws {
			C.ortrain_value_release(b.s.lib.api, r)
		}
		return nil, fmt.Errorf("%s: %d bound outputs returned for %d names", b.s.name, n, len(b.names))
	}
	out := make(map[string]*Value, int(n))
	var firstErr error
	for i, r := range raws {
		if firstErr != nil {
			C.ortrain_value_release(b.s.lib.api, r)
			continue
		}
		v, err := wrap(b.s.lib, r)
		if err != nil {
			firstErr = fmt.Errorf("output %q: %w", b.names[i], err)
			continue
		}
		if loc, ok := b.outLoc[b.names[i]]; ok && !onHost(loc) && onHost(v.loc) {
			v.loc = loc // the stand-in device's memory
		}
		out[b.names[i]] = v
	}
	if firstErr != nil {
		for _, v := range out {
			v.Close()
		}
		return nil, firstErr
	}
	return out, nil
}

// Clear unbinds everything.
func (b *Binding) Clear() {
	C.ortrain_binding_clear(b.s.lib.api, b.b)
	b.names = b.names[:0]
	b.outLoc = map[string]Device{}
	b.xfer = bindingTransfers{}
}

// Close releases the binding.
func (b *Binding) Close() error {
	if b.b != nil {
		C.ortrain_binding_release(b.s.lib.api, b.b)
		b.b = nil
	}
	return nil
}
