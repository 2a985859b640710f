package onnxrt

import (
	"errors"
	"fmt"

	"github.com/ortrain/ortrain/internal/fault"
)

// Why ONNX Runtime cannot be used, besides ortlib.ErrNotFound (no library
// at the given or default places): each is of kind fault.Runtime. A device
// string that names no provider is of kind fault.Settings, a model file
// ONNX Runtime cannot parse of kind fault.Input.
var (
	// ErrLibraryUnusable: the file exists but is not a loadable ONNX Runtime.
	ErrLibraryUnusable = fault.New(fault.Runtime, "ONNX Runtime library unusable")
	// ErrLibraryTooOld: the library does not provide the C API version we need.
	ErrLibraryTooOld = fault.New(fault.Runtime, "ONNX Runtime library too old")
	// ErrProviderUnavailable: the requested execution provider cannot be used.
	ErrProviderUnavailable = fault.New(fault.Runtime, "execution provider unavailable")
)

// ErrClosed: the object was used after Close.
var ErrClosed = errors.New("runtime object used after Close")

func wrapf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...))
}
