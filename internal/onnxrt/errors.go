package onnxrt

import (
	"errors"
	"fmt"

	"github.com/ortrain/ortrain/internal/ortlib"
)

var (
	// ErrLibraryNotFound: no ONNX Runtime library at the given or default places.
	ErrLibraryNotFound = ortlib.ErrNotFound
	// ErrLibraryUnusable: the file exists but is not a loadable ONNX Runtime.
	ErrLibraryUnusable = errors.New("ONNX Runtime library unusable")
	// ErrLibraryTooOld: the library does not provide the C API version we need.
	ErrLibraryTooOld = errors.New("ONNX Runtime library too old")
	// ErrProviderUnavailable: the requested execution provider cannot be used.
	ErrProviderUnavailable = errors.New("execution provider unavailable")
	// ErrUnknownProvider: the device string names no provider we know.
	ErrUnknownProvider = errors.New("unknown execution provider")
	// ErrModelUnloadable: ONNX Runtime cannot parse the model file (cut
	// short, not ONNX): the user's input, not ONNX Runtime itself.
	ErrModelUnloadable = errors.New("model ONNX Runtime cannot load")
	// ErrClosed: the object was used after Close.
	ErrClosed = errors.New("runtime object used after Close")
)

// IsRuntimeError reports whether err means ONNX Runtime itself cannot be
// used (as opposed to a bad model or input), for exit codes and messages.
func IsRuntimeError(err error) bool {
	return errors.Is(err, ErrLibraryNotFound) || errors.Is(err, ErrLibraryUnusable) ||
		errors.Is(err, ErrLibraryTooOld) || errors.Is(err, ErrProviderUnavailable)
}

func wrapf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))
}

// modelError keeps a load error's message and tags it with ErrModelUnloadable.
type modelError struct{ err error }

func (e modelError) Error() string   { return e.err.Error() }
func (e modelError) Unwrap() []error { return []error{e.err, ErrModelUnloadable} }
