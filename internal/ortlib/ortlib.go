// Package ortlib locates the ONNX Runtime shared library. It is pure Go so
// that tools and tests can find (or explain the absence of) the library
// without loading it.
package ortlib

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/ortrain/ortrain/internal/fault"
)

// Version is the ONNX Runtime release ortrain is built and tested against.
const Version = "1.29.0"

// EnvVar names the environment variable that points at a libonnxruntime build.
const EnvVar = "ORTRAIN_ORT_LIB"

// FetchHint tells the user how to obtain the pinned library.
const FetchHint = "run scripts/fetch-onnxruntime.sh (downloads and checksums ONNX Runtime " + Version +
	" into the user cache), or point --ort-lib / $" + EnvVar + " at a libonnxruntime.so"

// ErrNotFound is returned (wrapped) when no library could be located; it is
// of kind fault.Runtime.
var ErrNotFound = fault.New(fault.Runtime, "ONNX Runtime library not found")

// CacheDir is the per-user folder scripts/fetch-onnxruntime.sh fills.
func CacheDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("locating the user cache folder: %w", err)
	}
	return filepath.Join(base, "ortrain", "onnxruntime", Version), nil
}

// CachedPath is where the fetch script leaves the CPU library.
func CachedPath() (string, error) {
	dir, err := CacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "libonnxruntime.so.1"), nil
}

// Find resolves the library path: an explicit path (the --ort-lib flag) first,
// then $ORTRAIN_ORT_LIB, then the cache. It checks the file exists; whether
// it is a usable ONNX Runtime is checked when it is loaded.
func Find(explicit string) (string, error) {
	for _, c := range []struct{ path, from string }{
		{explicit, "--ort-lib"},
		{os.Getenv(EnvVar), "$" + EnvVar},
	} {
		if c.path == "" {
			continue
		}
		if _, err := os.Stat(c.path); err != nil {
			return "", fmt.Errorf("%w: %s points at %s: %v; %s", ErrNotFound, c.from, c.path, err, FetchHint)
		}
		return c.path, nil
	}
	cached, err := CachedPath()
	if err != nil {
		return "", fmt.Errorf("%w: %v; %s", ErrNotFound, err, FetchHint)
	}
	if _, err := os.Stat(cached); err != nil {
		return "", fmt.Errorf("%w: no --ort-lib, no $%s, and nothing cached at %s; %s", ErrNotFound, EnvVar, cached, FetchHint)
	}
	return cached, nil
}
