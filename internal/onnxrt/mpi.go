package onnxrt

/*
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include <string.h>
#include "mpi_shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"github.com/ortrain/ortrain/internal/fault"
)

// MPI lives here, next to ONNX Runtime, because the project keeps its cgo
// in one package; internal/collective/mpi builds the collective interface
// on it. The binding is deliberately thin: loading, init, the non-blocking
// operations and their completion tests. Timeouts, naming of missing ranks
// and the wire protocol are Go, in internal/collective/mpi.

// MPILibEnvVar names the environment variable that points at an MPI library.
const MPILibEnvVar = "ORTRAIN_MPI_LIB"

// ErrMPIUnavailable: no usable MPI library could be loaded (kind
// fault.Runtime).
var ErrMPIUnavailable = fault.New(fault.Runtime, "MPI library unavailable")

// mpiHint tells the user how to provide MPI.
const mpiHint = "install an MPI (Debian/Ubuntu: apt-get install openmpi-bin; clusters: module load openmpi or the site's MPI) or point $" + MPILibEnvVar + " at its libmpi.so"

// mpiLibraryNames are tried in order when no path is given: Open MPI 3-5,
// MPICH 3.1+ and Intel MPI (libmpi.so.12), MPICH's own name, then the
// development link.
var mpiLibraryNames = []string{"libmpi.so.40", "libmpi.so.12", "libmpich.so.12", "libmpi.so"}

// MPIDType is an element type of an MPI operation.
type MPIDType int

const (
	MPIByte    MPIDType = C.ORTRAIN_MPI_BYTE
	MPIFloat32 MPIDType = C.ORTRAIN_MPI_FLOAT
	MPIFloat64 MPIDType = C.ORTRAIN_MPI_DOUBLE
)

func (d MPIDType) size() int {
	switch d {
	case MPIFloat32:
		return 4
	case MPIFloat64:
		return 8
	}
	return 1
}

// MPIOp is a reduction operation.
type MPIOp int

const (
	MPISum MPIOp = C.ORTRAIN_MPI_SUM
	MPIMax MPIOp = C.ORTRAIN_MPI_MAX
)

// MPI is an MPI library loaded at run time and initialised for this
// process (MPI_COMM_WORLD). MPI allows one initialisation per process, so
// there is one MPI per process (LoadMPI returns it again). Every call runs
// on one locked OS thread, the thread that initialised MPI, so the library
// needs only MPI_THREAD_FUNNELED.
type MPI struct {
	path, family, version string
	m                     *C.ortrain_mpi
	calls                 chan func()
	rank, size            int
	mu                    sync.Mutex
	finalized             bool
}

var mpiProcess struct {
	mu  sync.Mutex
	mpi *MPI
	err error
}

// LoadMPI loads and initialises MPI once per process: the library at path,
// else $ORTRAIN_MPI_LIB, else the usual sonames on the loader's path.
// A library that cannot be loaded is ErrMPIUnavailable with the reason.
func LoadMPI(path string) (*MPI, error) {
	mpiProcess.mu.Lock()
	defer mpiProcess.mu.Unlock()
	if mpiProcess.mpi != nil || mpiProcess.err != nil {
		return mpiProcess.mpi, mpiProcess.err
	}
	m, err := loadMPI(path)
	mpiProcess.mpi, mpiProcess.err = m, err
	return m, err
}

func loadMPI(path string) (*MPI, error) {
	candidates := mpiLibraryNames
	from := "the default names " + strings.Join(mpiLibraryNames, ", ")
	switch {
	case path != "":
		candidates, from = []string{path}, path
	case os.Getenv(MPILibEnvVar) != "":
		candidates, from = []string{os.Getenv(MPILibEnvVar)}, "$"+MPILibEnvVar+" = "+os.Getenv(MPILibEnvVar)
	}
	var reasons []string
	for _, name := range candidates {
		m, err := openMPI(name)
		if err == nil {
			return m, m.init()
		}
		reasons = append(reasons, err.Error())
	}
	return nil, fmt.Errorf("%w: cannot load MPI from %s (%s); %s", ErrMPIUnavailable, from, strings.Join(reasons, "; "), mpiHint)
}

func openMPI(name string) (*MPI, error) {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	var code C.int
	var dlerr *C.char
	h := C.ortrain_mpi_load(cname, &code, &dlerr)
	why := ""
	if dlerr != nil {
		why = C.GoString(dlerr)
	}
	switch code {
	case 0:
	case 1:
		return nil, errors.New(why)
	case 2:
		return nil, fmt.Errorf("%s is not an MPI library (it lacks %s)", name, why)
	default:
		return nil, fmt.Errorf("%s is an MPI whose handle types ortrain does not know (it supports Open MPI and the MPICH family: MPICH, Intel MPI, MVAPICH, Cray MPICH)", name)
	}
	m := &MPI{path: name, m: h, family: "Open MPI", calls: make(chan func())}
	if C.ortrain_mpi_family(h) == C.ORTRAIN_MPI_MPICH {
		m.family = "MPICH"
	}
	buf := make([]byte, 512)
	C.ortrain_mpi_library_version(h, (*C.char)(unsafe.Pointer(&buf[0])), C.int(len(buf)))
	m.version = strings.TrimSpace(strings.SplitN(C.GoString((*C.char)(unsafe.Pointer(&buf[0]))), "\n", 2)[0])
	return m, nil
}

// init starts the MPI thread and initialises MPI on it.
func (m *MPI) init() error {
	started := make(chan struct{})
	go func() {
		// Never unlocked: the thread that initialised MPI makes every call.
		runtime.LockOSThread()
		close(started)
		for f := range m.calls {
			f()
		}
	}()
	<-started
	var err error
	m.do(func() {
		var flag C.int
		if rc := C.ortrain_mpi_initialized(m.m, &flag); rc != 0 || flag != 0 {
			err = fmt.Errorf("%w: MPI was initialised outside ortrain in this process", ErrMPIUnavailable)
			return
		}
		var provided C.int
		if rc := C.ortrain_mpi_init(m.m, &provided); rc != 0 {
			err = fmt.Errorf("%w: MPI_Init_thread: %s", ErrMPIUnavailable, m.errorString(rc))
			return
		}
		if provided < 1 {
			err = fmt.Errorf("%w: %s grants only MPI_THREAD_SINGLE; ortrain needs MPI_THREAD_FUNNELED", ErrMPIUnavailable, m.path)
			return
		}
		var r, s C.int
		if rc := C.ortrain_mpi_rank(m.m, &r); rc != 0 {
			err = fmt.Errorf("MPI_Comm_rank: %s", m.errorString(rc))
			return
		}
		if rc := C.ortrain_mpi_size(m.m, &s); rc != 0 {
			err = fmt.Errorf("MPI_Comm_size: %s", m.errorString(rc))
			return
		}
		m.rank, m.size = int(r), int(s)
	})
	return err
}

// do runs f on the MPI thread and waits for it.
func (m *MPI) do(f func()) {
	done := make(chan struct{})
	m.calls <- func() { f(); close(done) }
	<-done
}

func (m *MPI) errorString(rc C.int) string {
	buf := make([]byte, 512)
	C.ortrain_mpi_error_string(m.m, rc, (*C.char)(unsafe.Pointer(&buf[0])), C.int(len(buf)))
	if s := C.GoString((*C.char)(unsafe.Pointer(&buf[0]))); s != "" {
		return s
	}
	return fmt.Sprintf("MPI error %d", int(rc))
}

func (m *MPI) check(what string, rc C.int) error {
	if rc == 0 {
		return nil
	}
	return fmt.Errorf("%s: %s", what, m.errorString(rc))
}

// Rank is this process's rank in MPI_COMM_WORLD; Size the number of processes.
func (m *MPI) Rank() int { return m.rank }
func (m *MPI) Size() int { return m.size }

// Path is the library loaded; Family "Open MPI" or "MPICH"; Version the
// first line of MPI_Get_library_version.
func (m *MPI) Path() string    { return m.path }
func (m *MPI) Family() string  { return m.family }
func (m *MPI) Version() string { return m.version }

// Finalize ends MPI for the process (after every rank's last operation);
// later calls do nothing. MPI cannot be initialised again.
func (m *MPI) Finalize() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.finalized {
		return nil
	}
	m.finalized = true
	var err error
	m.do(func() { err = m.check("MPI_Finalize", C.ortrain_mpi_finalize(m.m)) })
	return err
}

// Abort asks the MPI runtime to end every process of the job with exit
// status code. It normally does not return.
func (m *MPI) Abort(code int) {
	m.do(func() { C.ortrain_mpi_abort(m.m, C.int(code)) })
}

// MPIBuffer is memory outside Go's heap that an MPI operation may keep
// using after the call that started it returns (cgo forbids that for Go
// memory). Free it when no operation uses it any more.
type MPIBuffer struct {
	p    unsafe.Pointer
	n    int
	view bool // part of another buffer: Free does nothing
}

// NewMPIBuffer allocates n bytes (zeroed).
func NewMPIBuffer(n int) (*MPIBuffer, error) {
	if n < 0 {
		return nil, fmt.Errorf("buffer of %d bytes", n)
	}
	p := C.calloc(C.size_t(max(n, 1)), 1)
	if p == nil {
		return nil, fmt.Errorf("cannot allocate %d bytes for MPI", n)
	}
	return &MPIBuffer{p: p, n: n}, nil
}

// Bytes views the buffer; Float32s and Float64s view it as elements (the
// length rounded down).
func (b *MPIBuffer) Bytes() []byte { return unsafe.Slice((*byte)(b.p), b.n) }
func (b *MPIBuffer) Float32s() []float32 {
	return unsafe.Slice((*float32)(b.p), b.n/4)
}
func (b *MPIBuffer) Float64s() []float64 {
	return unsafe.Slice((*float64)(b.p), b.n/8)
}

// Int32s views the buffer as C ints (counts and displacements).
func (b *MPIBuffer) int32s() []int32 { return unsafe.Slice((*int32)(b.p), b.n/4) }

// Len is the size in bytes.
func (b *MPIBuffer) Len() int { return b.n }

// Free releases the memory; freeing twice is harmless.
func (b *MPIBuffer) Free() {
	if b != nil && b.p != nil && !b.view {
		C.free(b.p)
		b.p = nil
	}
}

// MPIRequest is a started non-blocking operation.
type MPIRequest struct {
	r      C.ortrain_mpi_request
	active bool
	keep   []*MPIBuffer // freed when the request completes
}

func (m *MPI) start(what string, f func(*C.ortrain_mpi_request) C.int) (*MPIRequest, error) {
	req := &MPIRequest{}
	var err error
	m.do(func() { err = m.check(what, f(&req.r)) })
	if err != nil {
		return nil, err
	}
	req.active = true
	return req, nil
}

func checkCount(what string, count int, dt MPIDType, buf *MPIBuffer) error {
	if count < 0 || count > 1<<31-1 {
		return fmt.Errorf("%s of %d elements: MPI counts are C ints (split the buffer)", what, count)
	}
	if count*dt.size() > buf.n {
		return fmt.Errorf("%s of %d elements: the buffer holds %d bytes", what, count, buf.n)
	}
	return nil
}

// StartAllReduce reduces count elements of buf across all ranks in place.
func (m *MPI) StartAllReduce(buf *MPIBuffer, count int, dt MPIDType, op MPIOp) (*MPIRequest, error) {
	if err := checkCount("all-reduce", count, dt, buf); err != nil {
		return nil, err
	}
	return m.start("MPI_Iallreduce", func(r *C.ortrain_mpi_request) C.int {
		return C.ortrain_mpi_iallreduce(m.m, buf.p, C.int(count), C.int(dt), C.int(op), r)
	})
}

// StartBroadcast sends n bytes of buf from root to every rank.
func (m *MPI) StartBroadcast(buf *MPIBuffer, n, root int) (*MPIRequest, error) {
	if err := checkCount("broadcast", n, MPIByte, buf); err != nil {
		return nil, err
	}
	return m.start("MPI_Ibcast", func(r *C.ortrain_mpi_request) C.int {
		return C.ortrain_mpi_ibcast(m.m, buf.p, C.int(n), C.int(root), r)
	})
}

// StartAllGather gathers every rank's n bytes of send into recv, rank r's
// counts[r] bytes at offset displs[r].
func (m *MPI) StartAllGather(send *MPIBuffer, n int, recv *MPIBuffer, counts, displs []int) (*MPIRequest, error) {
	if len(counts) != m.size || len(displs) != m.size {
		return nil, fmt.Errorf("all-gather: %d counts and %d offsets for %d ranks", len(counts), len(displs), m.size)
	}
	if err := checkCount("all-gather", n, MPIByte, send); err != nil {
		return nil, err
	}
	for i := range counts {
		if counts[i] < 0 || displs[i] < 0 || counts[i] > 1<<31-1 || displs[i] > 1<<31-1 || counts[i]+displs[i] > recv.n {
			return nil, fmt.Errorf("all-gather: rank %d's %d bytes at %d do not fit the %d-byte buffer (or exceed MPI's int counts)", i, counts[i], displs[i], recv.n)
		}
	}
	cd, err := NewMPIBuffer(8 * m.size)
	if err != nil {
		return nil, err
	}
	v := cd.int32s()
	for i := range counts {
		v[i], v[m.size+i] = int32(counts[i]), int32(displs[i])
	}
	req, err := m.start("MPI_Iallgatherv", func(r *C.ortrain_mpi_request) C.int {
		return C.ortrain_mpi_iallgatherv(m.m, send.p, C.int(n), recv.p, (*C.int)(cd.p), (*C.int)(unsafe.Add(cd.p, 4*m.size)), r)
	})
	if err != nil {
		cd.Free()
		return nil, err
	}
	req.keep = append(req.keep, cd)
	return req, nil
}

// StartBarrier starts a barrier.
func (m *MPI) StartBarrier() (*MPIRequest, error) {
	return m.start("MPI_Ibarrier", func(r *C.ortrain_mpi_request) C.int { return C.ortrain_mpi_ibarrier(m.m, r) })
}

// StartSend sends n bytes of buf to rank dest with tag.
func (m *MPI) StartSend(buf *MPIBuffer, n, dest, tag int) (*MPIRequest, error) {
	if err := checkCount("send", n, MPIByte, buf); err != nil {
		return nil, err
	}
	return m.start("MPI_Isend", func(r *C.ortrain_mpi_request) C.int {
		return C.ortrain_mpi_isend(m.m, buf.p, C.int(n), C.int(dest), C.int(tag), r)
	})
}

// StartReceive receives up to n bytes with tag from any rank into buf.
func (m *MPI) StartReceive(buf *MPIBuffer, n, tag int) (*MPIRequest, error) {
	if err := checkCount("receive", n, MPIByte, buf); err != nil {
		return nil, err
	}
	return m.start("MPI_Irecv", func(r *C.ortrain_mpi_request) C.int {
		return C.ortrain_mpi_irecv_any(m.m, buf.p, C.int(n), C.int(tag), r)
	})
}

// Test reports whether req has completed (MPI_Test); a completed request
// is inactive and frees what it kept.
func (m *MPI) Test(req *MPIRequest) (bool, error) {
	if !req.active {
		return true, nil
	}
	var done C.int
	var err error
	m.do(func() { err = m.check("MPI_Test", C.ortrain_mpi_test(m.m, &req.r, &done)) })
	if err != nil {
		return false, err
	}
	if done != 0 {
		req.active = false
		for _, b := range req.keep {
			b.Free()
		}
		req.keep = nil
	}
	return done != 0, nil
}

// Release lets an unfinished send complete in the background
// (MPI_Request_free); the buffer must stay allocated.
func (m *MPI) Release(req *MPIRequest) error {
	if !req.active {
		return nil
	}
	req.active = false
	var err error
	m.do(func() { err = m.check("MPI_Request_free", C.ortrain_mpi_request_free(m.m, &req.r)) })
	return err
}

// Cancel cancels a pending receive and completes it.
func (m *MPI) Cancel(req *MPIRequest) error {
	if !req.active {
		return nil
	}
	var err error
	m.do(func() {
		if err = m.check("MPI_Cancel", C.ortrain_mpi_cancel(m.m, &req.r)); err != nil {
			return
		}
		var done C.int
		for done == 0 && err == nil {
			err = m.check("MPI_Test", C.ortrain_mpi_test(m.m, &req.r, &done))
		}
	})
	req.active = false
	return err
}

// MPIBufferView is n bytes of b from offset off, sharing b's memory (b
// must outlive it; freeing the view does nothing).
func MPIBufferView(b *MPIBuffer, off, n int) *MPIBuffer {
	if off < 0 || n < 0 || off+n > b.n {
		panic(fmt.Sprintf("MPI buffer view [%d, %d) of %d bytes", off, off+n, b.n))
	}
	return &MPIBuffer{p: unsafe.Add(b.p, off), n: n, view: true}
}
