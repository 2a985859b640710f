package onnxrt

/*
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include <string.h>
#include "shim.h"
#include "nccl_shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"unsafe"

	"github.com/ortrain/ortrain/internal/fault"
)

// NCCL lives here for the same reason as MPI: the project keeps its cgo in
// one package. internal/collective/nccl builds the device all-reduce of
// data-parallel training on it (bootstrap over MPI, timeouts).

// NCCLLibEnvVar names the environment variable that points at libnccl.so.2.
const NCCLLibEnvVar = "ORTRAIN_NCCL_LIB"

// NCCLDefaultLibrary and CUDADriverLibrary are the sonames looked up on the
// loader's path when no path is given.
const (
	NCCLDefaultLibrary = "libnccl.so.2"
	CUDADriverLibrary  = "libcuda.so.1"
)

// ErrNCCLUnavailable: NCCL or the CUDA driver could not be loaded (kind
// fault.Runtime).
var ErrNCCLUnavailable = fault.New(fault.Runtime, "NCCL unavailable")

// NCCLHint tells the user how to provide NCCL.
const NCCLHint = "install NCCL with `pip install nvidia-nccl-cu13` (nvidia-nccl-cu12 for CUDA 12; every CUDA PyTorch brings one) and point $" + NCCLLibEnvVar +
	" at its libnccl.so.2 (python -c 'import nvidia.nccl, os; print(os.path.join(nvidia.nccl.__path__[0], \"lib\", \"libnccl.so.2\"))'), or put its folder on LD_LIBRARY_PATH"

// ncclMinVersion is NCCL 2.10, the first with ncclAvg (version codes are
// major*10000 + minor*100 + patch since 2.9).
const ncclMinVersion = 21000

// NCCLOp is a reduction of NCCL.
type NCCLOp int

const (
	NCCLSum NCCLOp = C.ORTRAIN_NCCL_SUM
	NCCLMax NCCLOp = C.ORTRAIN_NCCL_MAX
	// NCCLAvg multiplies every rank's buffer by 1/N and sums them, as
	// PyTorch's DDP averages gradients (Reducer::copy_grad_to_bucket
	// multiplies by 1/world_size, then all-reduces a sum).
	NCCLAvg NCCLOp = C.ORTRAIN_NCCL_AVG
)

// NCCLID is NCCL's unique id: rank 0 makes it, every rank needs it to join.
type NCCLID [C.ORTRAIN_NCCL_ID_BYTES]byte

// NCCL is the NCCL library and the CUDA driver, loaded at run time.
type NCCL struct {
	path, driver string
	version      int
	n            *C.ortrain_nccl
	mu           sync.Mutex // loading the driver
}

// LoadNCCL loads NCCL from library (else $ORTRAIN_NCCL_LIB, else
// libnccl.so.2 on the loader's path); NewComm loads the CUDA driver from
// driver (else libcuda.so.1): NCCL itself loads on hosts without a GPU. It
// fails with ErrNCCLUnavailable, naming what it tried and how to install
// NCCL, when the library cannot be loaded, is not NCCL, or is older than
// 2.10.
func LoadNCCL(library, driver string) (*NCCL, error) {
	from := library
	switch {
	case library != "":
	case os.Getenv(NCCLLibEnvVar) != "":
		library = os.Getenv(NCCLLibEnvVar)
		from = "$" + NCCLLibEnvVar + " = " + library
	default:
		library, from = NCCLDefaultLibrary, NCCLDefaultLibrary+" on the library path"
	}
	if driver == "" {
		driver = CUDADriverLibrary
	}
	clib := C.CString(library)
	defer C.free(unsafe.Pointer(clib))
	var code C.int
	var dlerr *C.char
	h := C.ortrain_nccl_load(clib, &code, &dlerr)
	why := ""
	if dlerr != nil {
		why = C.GoString(dlerr)
	}
	switch code {
	case 0:
	case 1:
		return nil, fmt.Errorf("%w: cannot load NCCL from %s (%s); %s", ErrNCCLUnavailable, from, why, NCCLHint)
	default:
		return nil, fmt.Errorf("%w: %s (from %s) is not an NCCL library (it lacks %s); %s", ErrNCCLUnavailable, library, from, why, NCCLHint)
	}
	n := &NCCL{path: library, driver: driver, n: h}
	var v C.int
	if rc := C.ortrain_nccl_version(h, &v); rc != 0 {
		return nil, fmt.Errorf("%w: ncclGetVersion of %s: %s", ErrNCCLUnavailable, library, n.errorString(rc, nil))
	}
	n.version = int(v)
	if n.version < ncclMinVersion {
		return nil, fmt.Errorf("%w: %s is NCCL %s; ortrain needs NCCL 2.10 or later (ncclAvg); %s", ErrNCCLUnavailable, library, n.Version(), NCCLHint)
	}
	return n, nil
}

// Path is the NCCL library loaded; Version its version ("2.30.7").
func (n *NCCL) Path() string { return n.path }
func (n *NCCL) Version() string {
	v := n.version
	if v < 10000 { // before 2.9: major*1000 + minor*100 + patch
		return fmt.Sprintf("%d.%d.%d", v/1000, v%1000/100, v%100)
	}
	return fmt.Sprintf("%d.%d.%d", v/10000, v%10000/100, v%100)
}

func (n *NCCL) errorString(rc C.int, comm unsafe.Pointer) string {
	s := C.GoString(C.ortrain_nccl_error_string(n.n, rc))
	if last := C.GoString(C.ortrain_nccl_last_error(n.n, comm)); last != "" {
		s += ": " + last
	}
	if s == "" {
		s = fmt.Sprintf("NCCL error %d", int(rc))
	}
	return s
}

func (n *NCCL) cudaError(what string, rc C.int) error {
	name := C.GoString(C.ortrain_cu_error_string(n.n, rc))
	if name == "" {
		name = fmt.Sprintf("CUresult %d", int(rc))
	}
	return fmt.Errorf("%s: %s", what, name)
}

// UniqueID makes the id the ranks of a new communicator share (rank 0
// calls it and broadcasts the id).
func (n *NCCL) UniqueID() (NCCLID, error) {
	var id NCCLID
	cid := (*C.ortrain_nccl_id)(C.calloc(1, C.sizeof_ortrain_nccl_id))
	if cid == nil {
		return id, errors.New("out of memory")
	}
	defer C.free(unsafe.Pointer(cid))
	if rc := C.ortrain_nccl_unique_id(n.n, cid); rc != 0 {
		return id, fmt.Errorf("ncclGetUniqueId: %s", n.errorString(rc, nil))
	}
	copy(id[:], C.GoBytes(unsafe.Pointer(cid), C.ORTRAIN_NCCL_ID_BYTES))
	return id, nil
}

// LoadDriver loads the CUDA driver NewComm needs (once; later calls do
// nothing), so that a job can check every rank has it before any rank
// blocks in NewComm.
func (n *NCCL) LoadDriver() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	cdrv := C.CString(n.driver)
	defer C.free(unsafe.Pointer(cdrv))
	var dlerr *C.char
	switch C.ortrain_nccl_load_driver(n.n, cdrv, &dlerr) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("%w: NCCL needs the CUDA driver, and %s cannot be loaded (%s): is this a host with an NVIDIA GPU and its driver?", ErrNCCLUnavailable, n.driver, C.GoString(dlerr))
	default:
		return fmt.Errorf("%w: %s is not a CUDA driver library (it lacks %s)", ErrNCCLUnavailable, n.driver, C.GoString(dlerr))
	}
}

// NCCLComm is this process's rank in an NCCL communicator on one GPU.
// Every call runs on one locked OS thread on which the GPU's primary
// context (ONNX Runtime's) is current: NCCL takes the device from the
// calling thread. Use it from one goroutine at a time.
type NCCLComm struct {
	n      *NCCL
	dev    Device
	comm   unsafe.Pointer // ncclComm_t
	stream unsafe.Pointer // CUstream, non-blocking, of the primary context
	calls  chan func()
	mu     sync.Mutex
	closed bool
	// retained: this communicator holds a reference on the primary context
	// (released once; ONNX Runtime holds its own)
	retained bool
}

// NewComm joins rank of a communicator of size ranks with the id rank 0
// made, on device dev (cuda:N; the stand-in device, for tests with a
// stand-in library, is device 0). It blocks until every rank has joined.
func (n *NCCL) NewComm(id NCCLID, size, rank int, dev Device) (*NCCLComm, error) {
	if dev.Kind != "cuda" && dev != StandIn {
		return nil, fmt.Errorf("NCCL reduces GPU memory; %v is not a GPU", dev)
	}
	if size < 1 || rank < 0 || rank >= size {
		return nil, fmt.Errorf("NCCL rank %d of %d", rank, size)
	}
	c := &NCCLComm{n: n, dev: dev, calls: make(chan func())}
	started := make(chan struct{})
	go func() {
		// Never unlocked: the thread keeps the device's context current.
		runtime.LockOSThread()
		close(started)
		for f := range c.calls {
			f()
		}
	}()
	<-started
	var err error
	c.do(func() {
		if err = n.LoadDriver(); err != nil {
			return
		}
		var ctx unsafe.Pointer
		if rc := C.ortrain_cu_use_device(n.n, C.int(dev.ID), &ctx); rc != 0 {
			err = n.cudaError(fmt.Sprintf("making %v current", dev), rc)
			return
		}
		c.retained = true
		if rc := C.ortrain_cu_stream_create(n.n, &c.stream); rc != 0 {
			err = n.cudaError(fmt.Sprintf("creating a stream on %v", dev), rc)
			return
		}
		cid := (*C.ortrain_nccl_id)(C.calloc(1, C.sizeof_ortrain_nccl_id))
		if cid == nil {
			err = errors.New("out of memory")
			return
		}
		defer C.free(unsafe.Pointer(cid))
		C.memcpy(unsafe.Pointer(cid), unsafe.Pointer(&id[0]), C.ORTRAIN_NCCL_ID_BYTES)
		if rc := C.ortrain_nccl_comm_init(n.n, &c.comm, C.int(size), cid, C.int(rank)); rc != 0 {
			err = fmt.Errorf("ncclCommInitRank (rank %d of %d on %v): %s", rank, size, dev, n.errorString(rc, nil))
		}
	})
	if err != nil {
		c.release()
		return nil, err
	}
	return c, nil
}

// do runs f on the communicator's thread and waits for it.
func (c *NCCLComm) do(f func()) {
	done := make(chan struct{})
	c.calls <- func() { f(); close(done) }
	<-done
}

// StartAllReduce enqueues the reduction of every value in place, as one
// NCCL group, on the communicator's stream. The values must be float32
// tensors in the communicator's device memory, the same shapes in the same
// order on every rank, and must not be written until Done reports the
// reduction finished. Work ONNX Runtime queued on its own stream must have
// finished first: Binding.Run returns only after ONNX Runtime synchronised
// its stream (the run options ortrain passes leave
// disable_synchronize_execution_providers unset).
func (c *NCCLComm) StartAllReduce(values []*Value, op NCCLOp) error {
	if c.closed {
		return errors.New("NCCL communicator used after Close")
	}
	if len(values) == 0 {
		return nil
	}
	// The arrays NCCL reads are C memory: cgo passes no Go memory that
	// holds pointers.
	pb := C.calloc(C.size_t(len(values)), C.size_t(unsafe.Sizeof(unsafe.Pointer(nil))))
	pc := C.calloc(C.size_t(len(values)), C.size_t(unsafe.Sizeof(C.size_t(0))))
	defer C.free(pb)
	defer C.free(pc)
	if pb == nil || pc == nil {
		return errors.New("out of memory")
	}
	bufs, counts := unsafe.Slice((*unsafe.Pointer)(pb), len(values)), unsafe.Slice((*C.size_t)(pc), len(values))
	for i, v := range values {
		if v.raw == nil {
			return ErrClosed
		}
		if v.dtype != Float32 {
			return fmt.Errorf("NCCL all-reduce of a %v tensor: only float32 is reduced", v.dtype)
		}
		if v.loc != c.dev {
			return fmt.Errorf("NCCL all-reduce on %v of a tensor in %v memory", c.dev, v.loc)
		}
		var p unsafe.Pointer
		if err := v.lib.check(C.ortrain_tensor_data(v.lib.api, v.raw, &p)); err != nil {
			return err
		}
		bufs[i], counts[i] = p, C.size_t(v.Len())
	}
	var err error
	c.do(func() {
		if rc := C.ortrain_nccl_all_reduce(c.n.n, c.comm, &bufs[0], &counts[0], C.int(len(values)), C.ORTRAIN_NCCL_FLOAT32, C.int(op), c.stream); rc != 0 {
			err = fmt.Errorf("ncclAllReduce: %s", c.n.errorString(rc, c.comm))
		}
	})
	return err
}

// Done reports whether everything enqueued on the communicator's stream
// has finished, and an error NCCL met on the way (a peer that failed).
func (c *NCCLComm) Done() (bool, error) {
	if c.closed {
		return false, errors.New("NCCL communicator used after Close")
	}
	var done bool
	var err error
	c.do(func() {
		var async C.int
		if rc := C.ortrain_nccl_async_error(c.n.n, c.comm, &async); rc != 0 {
			err = fmt.Errorf("ncclCommGetAsyncError: %s", c.n.errorString(rc, c.comm))
			return
		}
		if async != 0 && async != C.ORTRAIN_NCCL_IN_PROGRESS {
			err = fmt.Errorf("NCCL: %s", c.n.errorString(async, c.comm))
			return
		}
		switch rc := C.ortrain_cu_stream_query(c.n.n, c.stream); rc {
		case 0:
			done = true
		case C.ORTRAIN_CU_NOT_READY:
		default:
			err = c.n.cudaError("cuStreamQuery", rc)
		}
	})
	return done, err
}

// Abort stops the communicator's pending work without waiting for the
// other ranks (after a failure or a timeout); the communicator is closed.
func (c *NCCLComm) Abort() error {
	return c.end(func() C.int { return C.ortrain_nccl_comm_abort(c.n.n, c.comm) }, "ncclCommAbort")
}

// Close destroys the communicator once its work has finished.
func (c *NCCLComm) Close() error {
	return c.end(func() C.int { return C.ortrain_nccl_comm_destroy(c.n.n, c.comm) }, "ncclCommDestroy")
}

func (c *NCCLComm) end(f func() C.int, what string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	var err error
	c.do(func() {
		if rc := f(); rc != 0 {
			err = fmt.Errorf("%s: %s", what, c.n.errorString(rc, nil))
		}
		c.comm = nil
	})
	c.release()
	return err
}

// release destroys the stream, lets the primary context go and ends the
// thread.
func (c *NCCLComm) release() {
	c.do(func() {
		if c.stream != nil {
			C.ortrain_cu_stream_destroy(c.n.n, c.stream)
			c.stream = nil
		}
		if c.retained {
			C.ortrain_cu_release_device(c.n.n, C.int(c.dev.ID))
			c.retained = false
		}
	})
	close(c.calls)
}
