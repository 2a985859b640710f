package onnxrt

/*
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/ortrain/ortrain/internal/fault"
	"github.com/ortrain/ortrain/internal/ortlib"
)

// apiVersion is the ONNX Runtime C API version both onnxruntime_go v1.27.0
// and our shim are compiled against; libraries older than 1.24 lack it.
const apiVersion = 24

// MinVersion is the oldest ONNX Runtime release that can be loaded.
const MinVersion = "1.24.0"

// library is the loaded ONNX Runtime. ONNX Runtime allows one environment per
// process and cannot be unloaded, so this is the one piece of process-wide
// state in ortrain, guarded by process.mu.
type library struct {
	path    string
	version string
	api     unsafe.Pointer
	cpuMem  *C.OrtMemoryInfo
	cpuA    *C.OrtAllocator
	refs    int
}

var process struct {
	mu  sync.Mutex
	lib *library // nil until the first Open
	env bool     // whether the ORT environment is currently initialised
}

// Env is a handle on the process-wide ONNX Runtime environment.
type Env struct {
	lib       *library
	closed    bool
	mu        sync.Mutex
	transfers transferCounters
	observers observers
}

// LogLevelEnvVar names ONNX Runtime's own log level (error by default).
// "verbose" makes it print, among much else, where each session's nodes were
// placed ("All nodes placed on [CUDAExecutionProvider]. Number of nodes: N"),
// which is how a run on a GPU host shows its live placement.
const LogLevelEnvVar = "ORTRAIN_ORT_LOG_LEVEL"

// logLevelOption maps a value of $ORTRAIN_ORT_LOG_LEVEL to ONNX Runtime's
// environment option; empty means error, the quiet default.
func logLevelOption(value string) (ort.EnvironmentOption, error) {
	switch strings.ToLower(strings.TrimSpace(value)) {
	case "", "error":
		return ort.WithLogLevelError(), nil
	case "verbose":
		return ort.WithLogLevelVerbose(), nil
	case "info":
		return ort.WithLogLevelInfo(), nil
	case "warning":
		return ort.WithLogLevelWarning(), nil
	case "fatal":
		return ort.WithLogLevelFatal(), nil
	}
	return nil, fault.Settingsf("$%s is %q: give one of verbose, info, warning, error, fatal", LogLevelEnvVar, value)
}

// Open loads ONNX Runtime (once per process) and returns a handle on its
// environment. libPath may be empty: then $ORTRAIN_ORT_LIB, then the user
// cache filled by scripts/fetch-onnxruntime.sh are used. Close the Env when
// done; the environment is destroyed with the last one.
func Open(libPath string) (*Env, error) {
	path, err := ortlib.Find(libPath)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, wrapf(ErrLibraryUnusable, "%s: %v", path, err)
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}

	process.mu.Lock()
	defer process.mu.Unlock()
	if process.lib != nil && process.lib.path != abs {
		return nil, fmt.Errorf("ONNX Runtime is already loaded from %s in this process; cannot also load %s (use one library per process)", process.lib.path, abs)
	}
	if process.lib == nil {
		lib, err := loadLibrary(abs)
		if err != nil {
			return nil, err
		}
		process.lib = lib
	}
	lib := process.lib
	if !process.env {
		if ort.IsInitialized() {
			return nil, errors.New("the ONNX Runtime environment was initialised outside internal/onnxrt; use onnxrt.Open only")
		}
		level, err := logLevelOption(os.Getenv(LogLevelEnvVar))
		if err != nil {
			return nil, err
		}
		ort.SetSharedLibraryPath(abs)
		if err := ort.InitializeEnvironment(level); err != nil {
			return nil, wrapf(ErrLibraryUnusable, "initialising ONNX Runtime from %s: %v", abs, err)
		}
		// One CPU arena for every session (see SessionOptions.NoCPUArena):
		// each session's own arena would keep its peak for good, so the
		// training, optimizer, evaluation and generation sessions would
		// hold the sum of their peaks instead of the largest.
		if err := lib.check(C.ortrain_register_cpu_arena(lib.api)); err != nil {
			ort.DestroyEnvironment()
			return nil, wrapf(ErrLibraryUnusable, "registering the shared CPU arena of %s: %v", abs, err)
		}
		process.env = true
	}
	lib.refs++
	return &Env{lib: lib}, nil
}

// loadLibrary opens the shared library with our own loader first, so that a
// missing file, a non-ORT file and an old ORT each get a precise error.
func loadLibrary(path string) (*library, error) {
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var code C.int
	var cversion, cdlerr *C.char
	api := C.ortrain_load(cpath, C.uint32_t(apiVersion), &code, &cversion, &cdlerr)
	version := ""
	if cversion != nil {
		version = C.GoString(cversion)
	}
	dlerr := ""
	if cdlerr != nil {
		dlerr = C.GoString(cdlerr)
	}
	switch code {
	case 0:
	case 1:
		return nil, wrapf(ErrLibraryUnusable, "cannot load %s: %s; %s", path, dlerr, ortlib.FetchHint)
	case 2:
		return nil, wrapf(ErrLibraryUnusable, "%s is not an ONNX Runtime library (no OrtGetApiBase); %s", path, ortlib.FetchHint)
	default:
		return nil, wrapf(ErrLibraryTooOld, "%s is ONNX Runtime %s, which lacks C API version %d; ortrain needs ONNX Runtime >= %s (tested with %s); %s",
			path, orUnknown(version), apiVersion, MinVersion, ortlib.Version, ortlib.FetchHint)
	}
	if older(version, MinVersion) {
		return nil, wrapf(ErrLibraryTooOld, "%s is ONNX Runtime %s; ortrain needs >= %s (tested with %s); %s",
			path, version, MinVersion, ortlib.Version, ortlib.FetchHint)
	}
	lib := &library{path: path, version: version, api: unsafe.Pointer(api)}
	cpu := C.CString("Cpu")
	defer C.free(unsafe.Pointer(cpu))
	if err := lib.check(C.ortrain_memory_info(lib.api, cpu, 0, &lib.cpuMem)); err != nil {
		return nil, wrapf(ErrLibraryUnusable, "creating CPU memory info: %v", err)
	}
	if err := lib.check(C.ortrain_default_allocator(lib.api, &lib.cpuA)); err != nil {
		return nil, wrapf(ErrLibraryUnusable, "getting the CPU allocator: %v", err)
	}
	return lib, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown version)"
	}
	return s
}

// older reports whether dotted version a is older than b; unparsable
// versions are not judged here (the API-version check already passed).
func older(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) && i < len(pb); i++ {
		x, err1 := strconv.Atoi(pa[i])
		y, err2 := strconv.Atoi(pb[i])
		if err1 != nil || err2 != nil {
			return false
		}
		if x != y {
			return x < y
		}
	}
	return false
}

// check turns an OrtStatus into an error and releases it.
func (l *library) check(s *C.OrtStatus) error {
	if s == nil {
		return nil
	}
	msg := C.GoString(C.ortrain_status_message(l.api, s))
	C.ortrain_status_release(l.api, s)
	return errors.New(strings.TrimSpace(msg))
}

// Close releases this handle; the environment is destroyed with the last one.
func (e *Env) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	process.mu.Lock()
	defer process.mu.Unlock()
	e.lib.refs--
	if e.lib.refs == 0 && process.env {
		process.env = false
		if err := ort.DestroyEnvironment(); err != nil {
			return fmt.Errorf("destroying the ONNX Runtime environment: %w", err)
		}
	}
	return nil
}

// Path is the loaded library file.
func (e *Env) Path() string { return e.lib.path }

// Version is the loaded library's ONNX Runtime version.
func (e *Env) Version() string { return e.lib.version }

// Providers lists the execution providers compiled into the library.
func (e *Env) Providers() ([]string, error) {
	var list **C.char
	var n C.int
	if err := e.lib.check(C.ortrain_available_providers(e.lib.api, &list, &n)); err != nil {
		return nil, fmt.Errorf("listing execution providers: %w", err)
	}
	names := make([]string, 0, int(n))
	for _, p := range unsafe.Slice(list, int(n)) {
		names = append(names, C.GoString(p))
	}
	if err := e.lib.check(C.ortrain_release_providers(e.lib.api, list, n)); err != nil {
		return names, fmt.Errorf("releasing the provider list: %w", err)
	}
	return names, nil
}

// current returns the loaded library, for functions that create values
// without an Env at hand.
func current() (*library, error) {
	process.mu.Lock()
	defer process.mu.Unlock()
	if process.lib == nil || !process.env {
		return nil, errors.New("ONNX Runtime is not open: call runtime.Open first")
	}
	return process.lib, nil
}
